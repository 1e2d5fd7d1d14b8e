package caddymodule

import (
	"errors"
	"path"
	"slices"
	"strings"
)

// maxCookieParts is how many cookies one request may carry before the
// gate refuses it (400). Browsers keep at most 180 cookies per site
// (Chrome; Firefox and Safari fewer), so a real browser never comes near
// it; PHP stops reading at max_input_vars (1000) and Go's net/http returns
// no cookies at all past 3000 parts, and both disagreements were bypasses
// (issue 13). Below both, every platform reads every part the gate reads.
const maxCookieParts = 300

// errTooManyCookies is returned by parseCookieHeader for a request over
// maxCookieParts.
var errTooManyCookies = errors.New("more cookies than any browser sends")

// cookiePart is one ';'-separated part of a Cookie header.
type cookiePart struct {
	name  string // as sent, surrounding white space removed
	value string // as sent (quotes and %-escapes kept), white space removed
	hasEq bool   // the part has a '='
}

// String is the part as the application receives it.
func (p cookiePart) String() string {
	if !p.hasEq {
		return p.name
	}
	return p.name + "=" + p.value
}

// cookieSpace is the white space the platforms trim around cookie names
// and values (Go: space and tab; Java, Python and PHP: more).
const cookieSpace = " \t\r\n\v\f"

// parseCookieHeader splits every Cookie header line into its parts, the
// way the application platforms do: ';' separates, white space around
// names and values goes, empty parts are skipped, a part without '=' is a
// name with an empty value (PHP). Unlike net/http it never drops a part,
// and it refuses a request with more than maxCookieParts parts, empty
// ones included.
func parseCookieHeader(lines []string) ([]cookiePart, error) {
	n := 0
	for _, line := range lines {
		n += strings.Count(line, ";") + 1
	}
	// Empty parts count too: Go's parser gives up on the whole header
	// past 3000 parts, empty ones included, and no browser sends a
	// header of hundreds of empty parts. Such a request is refused, not
	// quietly cleaned up.
	if n > maxCookieParts {
		return nil, errTooManyCookies
	}
	parts := make([]cookiePart, 0, n)
	for _, line := range lines {
		for p := range strings.SplitSeq(line, ";") {
			p = strings.Trim(p, cookieSpace)
			if p == "" {
				continue
			}
			if len(parts) == maxCookieParts {
				return nil, errTooManyCookies
			}
			name, value, eq := strings.Cut(p, "=")
			parts = append(parts, cookiePart{name: strings.Trim(name, cookieSpace), value: strings.Trim(value, cookieSpace), hasEq: eq})
		}
	}
	return parts, nil
}

// filedNames are the names under which an application could file a
// cookie sent as name: the name itself (Go, Java, Python), and PHP's
// $_COOKIE key. PHP drops leading spaces, cuts the name at NUL, maps ' '
// and '.' to '_', files "a[x]" under "a" (an array), and turns an
// unmatched '[' into '_' (PHP 8 then also maps ' ', '.' and '[' in the
// rest of the name; PHP 7 keeps them: both are returned). PHP before
// 8.0.24 and 8.1.11 first %-decoded cookie names ('+' a space), later
// versions do not: both are returned too.
func filedNames(name string) []string {
	out := []string{name}
	add := func(n string) {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	for _, n := range phpMangle(name) {
		add(n)
	}
	if dec := phpURLDecode(name); dec != name {
		for _, n := range phpMangle(dec) {
			add(n)
		}
	}
	return out
}

// phpMangle is the $_COOKIE key (or keys, PHP 7 and 8) PHP files a cookie
// name under, after any decoding.
func phpMangle(php string) []string {
	if i := strings.IndexByte(php, 0); i >= 0 {
		php = php[:i]
	}
	php = strings.TrimLeft(php, " ")
	var b strings.Builder
	rest, array := "", false
	for i := 0; i < len(php); i++ {
		c := php[i]
		if c == ' ' || c == '.' {
			b.WriteByte('_')
			continue
		}
		if c == '[' {
			if strings.IndexByte(php[i+1:], ']') >= 0 {
				// An array: filed under the name before '['.
				array = true
			} else {
				b.WriteByte('_')
				rest = php[i+1:]
			}
			break
		}
		b.WriteByte(c)
	}
	base := b.String()
	if array || rest == "" {
		return []string{base}
	}
	return []string{base + rest, base + strings.Map(func(r rune) rune {
		if r == ' ' || r == '.' || r == '[' {
			return '_'
		}
		return r
	}, rest)}
}

// phpURLDecode decodes like PHP's urldecode: '+' is a space, %XX with two
// hex digits is the byte, anything else stays as it is.
func phpURLDecode(s string) string {
	if !strings.ContainsAny(s, "%+") {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '+':
			b = append(b, ' ')
		case c == '%' && i+2 < len(s) && ishex(s[i+1]) && ishex(s[i+2]):
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
		default:
			b = append(b, c)
		}
	}
	return string(b)
}

func ishex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// matchCookieName reports whether name matches one of the session_cookie
// names or globs exactly (case and all).
func matchCookieName(globs []string, name string) bool {
	for _, g := range globs {
		if matchPath(g, name) {
			return true
		}
	}
	return false
}

// couldBeSessionCookie reports whether an application could read a cookie
// sent under name as one of its session cookies: under any name it could
// file it under, in any case. lowGlobs are the session cookie names and
// globs in lower case.
func couldBeSessionCookie(lowGlobs []string, name string) bool {
	if plainCookieName(name) {
		// The common case: every platform files it under name itself.
		return matchLower(lowGlobs, name)
	}
	for _, f := range filedNames(name) {
		if matchLower(lowGlobs, f) {
			return true
		}
	}
	return false
}

// plainCookieName reports whether name is filed under itself by every
// platform (nothing PHP would decode or mangle).
func plainCookieName(name string) bool {
	if name == "" || name[0] == ' ' {
		return false
	}
	return !strings.ContainsAny(name, "%+. [\x00")
}

// matchLower reports whether name, in lower case, matches one of the
// lower-case globs.
func matchLower(lowGlobs []string, name string) bool {
	ln := strings.ToLower(name)
	for _, g := range lowGlobs {
		if g == ln {
			return true
		}
		if ok, _ := path.Match(g, ln); ok {
			return true
		}
	}
	return false
}

// lowerAll returns globs in lower case.
func lowerAll(globs []string) []string {
	out := make([]string, len(globs))
	for i, g := range globs {
		out[i] = strings.ToLower(g)
	}
	return out
}

// sameFiledName reports whether an application could file the cookies
// sent as a and b under one name (a duplicate, a.b and a_b, a case
// variant), so that the gate cannot know which of the two it reads.
func sameFiledName(a, b string) bool {
	for _, x := range filedNames(a) {
		for _, y := range filedNames(b) {
			if strings.EqualFold(x, y) {
				return true
			}
		}
	}
	return false
}

// buildCookieHeader is the Cookie header of parts, in order, keeping
// those keep says yes to ("" when none is kept).
func buildCookieHeader(parts []cookiePart, keep func(i int) bool) string {
	size := 0
	for _, p := range parts {
		size += len(p.name) + len(p.value) + 3
	}
	var b strings.Builder
	b.Grow(size)
	for i, p := range parts {
		if !keep(i) {
			continue
		}
		if b.Len() > 0 {
			b.WriteString("; ")
		}
		b.WriteString(p.name)
		if p.hasEq {
			b.WriteByte('=')
			b.WriteString(p.value)
		}
	}
	return b.String()
}

// sessionIDInURL reports whether the URL carries what an application
// could take for its session ID instead of the cookie: Java's path
// parameter (";jsessionid=..." in any segment) or a query parameter
// (PHP with session.use_only_cookies off, servlet URL rewriting) named
// like a session cookie. The gate never sees such an ID as a cookie, so
// it could not withhold it.
func sessionIDInURL(lowGlobs []string, rawPath, rawQuery string) bool {
	for seg := range strings.SplitSeq(rawPath, "/") {
		_, params, ok := strings.Cut(seg, ";")
		if !ok {
			continue
		}
		for p := range strings.SplitSeq(params, ";") {
			name, _, _ := strings.Cut(p, "=")
			if name != "" && couldBeSessionCookie(lowGlobs, phpURLDecode(name)) {
				return true
			}
		}
	}
	for p := range strings.SplitSeq(rawQuery, "&") {
		name, _, _ := strings.Cut(p, "=")
		if name != "" && couldBeSessionCookie(lowGlobs, name) {
			return true
		}
	}
	return false
}

// commaSessionCookie reports whether value hides what an old cookie
// parser (RFC 2109 style, e.g. Tomcat's legacy processor) reads as
// further cookies, split at ',', and one of them could be a session
// cookie: "x=1, JSESSIONID=<stolen>" is one cookie to the gate and two
// to such a parser.
func commaSessionCookie(lowGlobs []string, value string) bool {
	if !strings.Contains(value, ",") {
		return false
	}
	pieces := strings.Split(value, ",")
	for _, p := range pieces[1:] {
		name, _, _ := strings.Cut(strings.Trim(p, cookieSpace), "=")
		if name = strings.Trim(name, cookieSpace); name != "" && couldBeSessionCookie(lowGlobs, name) {
			return true
		}
	}
	return false
}
