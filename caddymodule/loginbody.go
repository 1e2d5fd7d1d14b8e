package caddymodule

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Reading the user name of a login attempt.
//
// The gate binds the application session a login starts to the user the
// login names; so the gate must read the same user the application will
// log in, or refuse the request. The application's platform decides how
// the body is read, and the common ones disagree:
//
//   - PHP drops leading spaces from field names, cuts them at a NUL byte,
//     turns ' ' and '.' (and an unmatched '[') into '_', files "a[b]" as
//     key b of the array a and ignores anything after the closing ']';
//     the last duplicate wins; $_REQUEST and Java's getParameter merge the
//     query string with the body.
//   - Go's ParseForm skips a pair with a ';' or a bad %-escape, which PHP
//     and Python keep; older Python and some servers also split on ';'.
//   - Go's encoding/json matches keys case-insensitively (Unicode simple
//     folding: ſ is s, K (Kelvin) is k) and the last match wins, even over
//     an exact key; Jackson, Python and PHP match exactly and also keep the
//     last duplicate; Java servlets and Flask keep the first form value,
//     Django the last.
//   - Apps that read php://input themselves decode JSON (or parse_str) whatever
//     the Content-Type says.
//
// So the gate looks for the user field under every one of these readings,
// in the query string and in the body. If exactly one occurrence is found,
// spelled exactly as configured and read the same way by all of them, its
// value is the user. If none is found, the request is an ordinary one. In
// every other case (a duplicate, a look-alike name, a case variant, a
// value two parsers decode differently) the request is refused with
// errAmbiguousLogin and never reaches the application.

// errAmbiguousLogin is wrapped by every error readLoginAttempt returns when
// two common parsers could read different users from the request (or one
// could find the user field where the gate finds none). The caller answers
// 400 and does not forward the request.
var errAmbiguousLogin = errors.New("ambiguous login request")

// Other errors of readLoginAttempt; the caller answers 400 to each (the
// request is a login attempt the gate cannot read) and does not forward it.
var (
	errLoginBodyTooLarge = fmt.Errorf("request body larger than %d bytes", maxLoginBody)
	errMalformedLogin    = errors.New("malformed login request")
	errEmptyLoginUser    = errors.New("login request with an empty user name")
	errBadLoginUser      = errors.New("user name with control characters")
)

const (
	// maxFormVars is how many fields PHP reads from one source
	// (max_input_vars); a field past it is dropped by PHP but read by Go.
	maxFormVars = 1000
	// maxJSONDepth bounds the nesting of a JSON body the gate reads.
	maxJSONDepth = 64
	// maxPHPNesting is PHP's max_input_nesting_level: deeper names are
	// dropped by PHP.
	maxPHPNesting = 64
)

// readLoginAttempt reads the body of r (at most maxLoginBody bytes) and
// its query string, and returns the user named by field. The body is put
// back for the application byte for byte, whatever happens.
//
// present is false with a nil error when no common parser would find the
// field: an ordinary request. Whenever err is not nil, present is true:
// the request may be a login the gate cannot read, and is refused. user is
// the value as the form gave it, trimmed of surrounding space; the caller
// applies identify.
func readLoginAttempt(r *http.Request, field string) (user string, present bool, err error) {
	f, err := newLoginField(field)
	if err != nil {
		return "", true, err
	}
	var body []byte
	if r.Body != nil && r.Body != http.NoBody {
		body, err = io.ReadAll(io.LimitReader(r.Body, maxLoginBody+1))
		orig := r.Body
		r.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(body), orig), orig}
		if err != nil {
			return "", true, fmt.Errorf("%w: reading body: %v", errMalformedLogin, err)
		}
	}
	if len(body) > maxLoginBody {
		// The field may be in the part not read: a login that cannot be
		// read is not forwarded.
		return "", true, errLoginBodyTooLarge
	}
	if len(body) > 0 && len(r.Header.Values("Content-Type")) > 1 {
		// The gate, PHP's FastCGI and a proxied backend may each take a
		// different one.
		return "", true, fmt.Errorf("%w: more than one Content-Type header", errAmbiguousLogin)
	}
	if ce := r.Header.Values("Content-Encoding"); len(body) > 0 && len(ce) > 0 && !(len(ce) == 1 && strings.EqualFold(strings.TrimSpace(ce[0]), "identity")) {
		// A server that decompresses request bodies would see fields the
		// gate cannot.
		return "", true, fmt.Errorf("%w: encoded (compressed) request body", errAmbiguousLogin)
	}
	user, present, err = f.parse(r.Header.Get("Content-Type"), body, r.URL.RawQuery)
	if err == nil && present && f.cookieDisagrees(r.Header.Values("Cookie"), user) {
		// PHP without a php.ini (request_order unset) fills $_REQUEST
		// from GET, POST and then cookies: a cookie named like the user
		// field overrides the form.
		return "", true, fmt.Errorf("%w: a cookie named like the user field holds another user", errAmbiguousLogin)
	}
	return user, present, err
}

// cookieDisagrees reports whether a cookie that PHP could file under the
// user field holds a value other than user. A cookie that agrees (a
// "remember my name" cookie) is harmless.
func (f *loginField) cookieDisagrees(headers []string, user string) bool {
	for _, h := range headers {
		for _, c := range strings.Split(h, ";") {
			name, value, _ := strings.Cut(strings.TrimLeft(c, " \t"), "=")
			r1, _ := f.formKeyRelation(name)
			r2, _ := f.formKeyRelation(phpURLDecode(name))
			if (r1 || r2) && strings.TrimSpace(phpURLDecode(value)) != user {
				return true
			}
		}
	}
	return false
}

// parseLoginUser is the pure core of readLoginAttempt: it returns the user
// named by field in a request with the given Content-Type header, body and
// raw query string.
func parseLoginUser(contentType string, body []byte, query string, field string) (user string, present bool, err error) {
	f, err := newLoginField(field)
	if err != nil {
		return "", true, err
	}
	return f.parse(contentType, body, query)
}

// checkLoginField reports whether field can name the user field of a login
// form: a form field name as the HTML form sends it (PHP array syntax such
// as login[username] included), or a JSON key, dotted for nested objects
// (user.email).
func checkLoginField(field string) error {
	_, err := newLoginField(field)
	return err
}

// loginField is the configured user field under each reading.
type loginField struct {
	raw  string   // the form field name, as the HTML form sends it
	php  []string // PHP's path: base variable, then array keys
	json []string // the JSON path
}

func newLoginField(field string) (*loginField, error) {
	if field == "" {
		return nil, errors.New("empty user field name")
	}
	if strings.TrimSpace(field) != field || strings.ContainsAny(field, "=&;%+\"\\") {
		return nil, fmt.Errorf("user field name %q: no surrounding space, '=', '&', ';', '%%', '+', '\"' or '\\' allowed", field)
	}
	for _, c := range field {
		if unicode.IsControl(c) || c == utf8.RuneError {
			return nil, fmt.Errorf("user field name %q: control or invalid characters", field)
		}
	}
	f := &loginField{raw: field, php: phpPath(field, false)}
	if len(f.php) == 0 || hasAppend(f.php) {
		return nil, fmt.Errorf("user field name %q: PHP would not read it as one value", field)
	}
	if strings.ContainsRune(field, '[') {
		if strings.Join(f.php, "") != strings.NewReplacer("[", "", "]", "").Replace(field) || strings.Count(field, "[") != len(f.php)-1 || !strings.HasSuffix(field, "]") {
			return nil, fmt.Errorf("user field name %q: malformed array name (want name[key] or name[key][key2])", field)
		}
		f.json = f.php
	} else {
		f.json = strings.Split(field, ".")
	}
	for _, k := range f.json {
		if k == "" {
			return nil, fmt.Errorf("user field name %q: empty key", field)
		}
	}
	return f, nil
}

// hasAppend reports whether some key of a PHP path is empty (an append,
// "name[]"), which cannot name one value.
func hasAppend(p []string) bool {
	for _, k := range p[1:] {
		if k == "" {
			return true
		}
	}
	return false
}

// loginScan collects what the readings of one request found.
type loginScan struct {
	f       *loginField
	found   int    // occurrences of the field, under any reading
	clean   bool   // the single occurrence is read the same by all
	value   string // its value
	reason  string // why the request is ambiguous, if it is
	charset bool   // a non-UTF-8 charset was declared (header or _charset_)
}

func (s *loginScan) ambiguous(reason string) {
	if s.reason == "" {
		s.reason = reason
	}
}

// occurrence records one occurrence of the field; exact says it is spelled
// as configured and decoded the same by every parser.
func (s *loginScan) occurrence(exact bool, value string, reason string) {
	s.found++
	if s.found > 1 {
		s.ambiguous("the user field appears more than once (or under a look-alike name)")
		return
	}
	if !exact {
		s.ambiguous(reason)
		return
	}
	s.clean, s.value = true, value
}

func (f *loginField) parse(contentType string, body []byte, query string) (string, bool, error) {
	s := &loginScan{f: f}
	if query != "" {
		s.scanForm(query, "query string", true)
	}
	mt, params, err := mime.ParseMediaType(contentType)
	if contentType == "" || err != nil {
		mt = ""
	}
	if len(body) > 0 && mt != phpMediaType(contentType) && (isFormType(mt) || isFormType(phpMediaType(contentType))) {
		// PHP takes the type up to the first ';', ',' or space; Go
		// parses the whole header. One of them parses the body as a
		// form, the other does not.
		return "", true, fmt.Errorf("%w: a Content-Type header that PHP and Go read differently", errAmbiguousLogin)
	}
	if cs, ok := params["charset"]; ok && !utf8Charset(cs) {
		s.charset = true
	}
	switch {
	case len(body) == 0:
	case mt == "application/x-www-form-urlencoded":
		s.scanForm(string(body), "body", true)
		// An application that decodes php://input as JSON whatever
		// the Content-Type says.
		s.otherReading(func(o *loginScan) error { return o.scanJSON(body) })
	case mt == "multipart/form-data":
		if err := s.scanMultipart(contentType, params, body); err != nil {
			return "", true, err
		}
	case mt == "application/json" || strings.HasSuffix(mt, "+json"):
		if err := s.scanJSON(body); err != nil {
			return "", true, err
		}
		// An application that runs parse_str on php://input.
		s.otherReading(func(o *loginScan) error { o.scanForm(string(body), "body", false); return nil })
	default:
		// No, or an unknown, Content-Type: PHP, Go, Java and Python
		// parse nothing into their form values, but an application
		// reading the raw body (json_decode, parse_str, enctype
		// text/plain) could still find the field. Refuse if any of
		// those readings finds it.
		s.otherReading(func(o *loginScan) error { return o.scanJSON(body) })
		s.otherReading(func(o *loginScan) error { o.scanForm(string(body), "body", false); return nil })
	}
	if s.found == 0 && s.reason == "" {
		return "", false, nil
	}
	if s.found > 0 && s.charset {
		s.ambiguous("a charset other than UTF-8 is declared: parsers may decode the user differently")
	}
	if s.reason != "" || !s.clean {
		r := s.reason
		if r == "" {
			r = "the user field cannot be read unambiguously"
		}
		return "", true, fmt.Errorf("%w: %s", errAmbiguousLogin, r)
	}
	return checkLoginValue(s.value)
}

// otherReading runs a reading the application might apply to the raw body
// whatever its Content-Type; if it finds the field at all, the request is
// ambiguous.
func (s *loginScan) otherReading(read func(o *loginScan) error) {
	o := &loginScan{f: s.f}
	if err := read(o); err != nil {
		return // that reading fails on this body: it finds nothing
	}
	if o.found > 0 || o.reason != "" {
		s.ambiguous("the body could name the user under a reading other than its Content-Type")
	}
}

// checkLoginValue validates the user value of a clean occurrence.
func checkLoginValue(v string) (string, bool, error) {
	if !utf8.ValidString(v) {
		// Python decodes invalid UTF-8 with replacement characters, PHP
		// and Go keep the bytes.
		return "", true, fmt.Errorf("%w: the user name is not valid UTF-8", errAmbiguousLogin)
	}
	v = strings.TrimSpace(v)
	for _, c := range v {
		if unicode.IsControl(c) {
			return "", true, errBadLoginUser
		}
	}
	if v == "" {
		return "", true, errEmptyLoginUser
	}
	if _, err := identify(v); err != nil {
		return "", true, err
	}
	return v, true, nil
}

// phpMediaType returns the media type as PHP's SAPI reads it: lower case,
// up to the first ';', ',' or space.
func phpMediaType(ct string) string {
	if i := strings.IndexAny(ct, "; ,"); i >= 0 {
		ct = ct[:i]
	}
	return strings.ToLower(ct)
}

func isFormType(mt string) bool {
	return mt == "application/x-www-form-urlencoded" || mt == "multipart/form-data"
}

// utf8Charset reports whether a charset name means UTF-8 (or its ASCII
// subset).
func utf8Charset(cs string) bool {
	switch strings.ToLower(strings.TrimSpace(cs)) {
	case "utf-8", "utf8", "us-ascii", "ascii":
		return true
	}
	return false
}

// scanForm reads an application/x-www-form-urlencoded string (a query or a
// body). strict says the string is known to be urlencoded (so the field's
// occurrence counts as the user); otherwise any occurrence only makes the
// request ambiguous.
func (s *loginScan) scanForm(q, where string, strict bool) {
	pairs := strings.Split(q, "&")
	n := 0
	for _, pair := range pairs {
		if pair == "" {
			continue
		}
		n++
		rel, exact := s.f.formKeyRelation(pairKey(pair))
		if strings.ContainsAny(pair, ";\r\n") {
			// Go skips a pair with ';'; older Python and some servers
			// split on ';'; enctype text/plain separates with CRLF.
			for _, seg := range strings.FieldsFunc(pair, func(r rune) bool { return r == ';' || r == '\r' || r == '\n' }) {
				if r, _ := s.f.formKeyRelation(pairKey(seg)); r {
					rel = true
					s.ambiguous("the user field is in a pair some parsers split at ';' or a line break")
				}
			}
			exact = false
		}
		if !rel {
			continue
		}
		if n > maxFormVars {
			s.ambiguous("the user field comes after more fields than PHP reads")
		}
		key, value, _ := strings.Cut(pair, "=")
		_, err1 := url.QueryUnescape(key)
		v, err2 := url.QueryUnescape(value)
		if err1 != nil || err2 != nil {
			// Go skips the pair, PHP and Python keep it.
			exact = false
		}
		if !strict {
			s.ambiguous("the user field is in the " + where)
		}
		s.occurrence(exact, v, "the user field is spelled so that parsers disagree on it (PHP name mangling, case, or escapes)")
	}
	for _, pair := range pairs {
		// A _charset_ field (HTML's name for it) tells some frameworks
		// how to decode the other fields.
		key, value, _ := strings.Cut(pair, "=")
		if k := phpURLDecode(key); strings.EqualFold(strings.TrimSpace(k), "_charset_") && !utf8Charset(phpURLDecode(value)) {
			s.charset = true
		}
	}
}

// pairKey returns the key of a urlencoded pair decoded the lenient way
// (PHP, Python): '+' is a space, a bad escape stays as it is. Go and Java
// refuse a bad escape; where they decode, they agree with it.
func pairKey(pair string) string {
	key, _, _ := strings.Cut(pair, "=")
	return phpURLDecode(key)
}

// formKeyRelation tells whether a (decoded) form field name could be read
// as the user field by some common parser (rel), and whether it is the
// user field spelled exactly as configured (exact).
func (f *loginField) formKeyRelation(key string) (rel, exact bool) {
	if key == f.raw {
		return true, true
	}
	if looseEqual(key, f.raw) || looseEqual(strings.TrimSpace(key), f.raw) {
		return true, false
	}
	// PHP before and since 8.0 (the rest of a name after an unmatched
	// '[' is mangled since 8.0).
	for _, old := range []bool{false, true} {
		p := phpPath(key, old)
		if p == nil {
			continue
		}
		if len(p) > maxPHPNesting {
			p = p[:maxPHPNesting]
		}
		if pathsOverlap(p, f.php) {
			return true, false
		}
	}
	return false, false
}

// pathsOverlap reports whether one PHP path is a prefix of the other, so
// that a value under p would change what the application finds at q: the
// same key, an array where a string is expected, or a string where the
// array holding the key is expected.
func pathsOverlap(p, q []string) bool {
	n := min(len(p), len(q))
	for i := range n {
		if p[i] == "" || !looseEqual(strings.TrimSpace(p[i]), strings.TrimSpace(q[i])) {
			return false
		}
	}
	return true
}

// phpPath returns the path under which PHP files a form field: the base
// variable name, then one key per "[...]" ("" for an append, "[]"); nil
// for a name PHP drops. old selects PHP 7's handling of an unmatched '['
// (the rest of the name is left as it is).
func phpPath(name string, old bool) []string {
	name = strings.TrimLeft(name, " ")
	if i := strings.IndexByte(name, 0); i >= 0 {
		name = name[:i]
	}
	b := []byte(name)
	i := 0
	for ; i < len(b); i++ {
		if b[i] == ' ' || b[i] == '.' {
			b[i] = '_'
		} else if b[i] == '[' {
			break
		}
	}
	if i == 0 {
		return nil
	}
	if i == len(b) {
		return []string{string(b)}
	}
	path := []string{string(b[:i])}
	ip := i // at '['
	for {
		ip++
		start := ip
		if ip < len(b) && (b[ip] == ' ' || b[ip] == '\r' || b[ip] == '\n' || b[ip] == '\t') {
			ip++
		}
		if ip < len(b) && b[ip] == ']' {
			path = append(path, "")
		} else {
			j := bytes.IndexByte(b[ip:], ']')
			if j < 0 {
				// Not an index: at the top level the '[' becomes '_'
				// and the name is a plain variable; deeper, the rest
				// is ignored.
				if len(path) == 1 {
					rest := b[start:]
					if !old {
						rest = bytes.Map(func(r rune) rune {
							if r == ' ' || r == '.' || r == '[' {
								return '_'
							}
							return r
						}, rest)
					}
					return []string{path[0] + "_" + string(rest)}
				}
				return path
			}
			ip += j
			path = append(path, string(b[start:ip]))
		}
		// ip is at ']'; a following '[' opens the next key, anything
		// else ends the name.
		ip++
		if ip >= len(b) || b[ip] != '[' {
			return path
		}
	}
}

// looseEqual reports whether a and b could be taken for the same name by a
// parser that ignores case: Go's encoding/json (Unicode simple folding),
// Java's equalsIgnoreCase and .NET (upper- and lower-casing).
func looseEqual(a, b string) bool {
	if strings.EqualFold(a, b) {
		return true
	}
	if utf8.RuneCountInString(a) != utf8.RuneCountInString(b) {
		// Go's case mappings are rune for rune, so names of different
		// lengths never match here (Java's full mappings, "ß" to "SS",
		// are not modelled).
		return false
	}
	rb := []rune(b)
	i := 0
	for _, ca := range a {
		cb := rb[i]
		i++
		if ca == cb || unicode.ToUpper(ca) == unicode.ToUpper(cb) || unicode.ToLower(ca) == unicode.ToLower(cb) ||
			unicode.ToLower(unicode.ToUpper(ca)) == unicode.ToLower(unicode.ToUpper(cb)) || strings.EqualFold(string(ca), string(cb)) {
			continue
		}
		return false
	}
	return true
}

// scanJSON reads a JSON body: only an object can hold the user field.
func (s *loginScan) scanJSON(body []byte) error {
	if !utf8.Valid(body) || !json.Valid(body) {
		// Go replaces invalid UTF-8, PHP refuses it; Python accepts NaN.
		return fmt.Errorf("%w: not valid JSON", errMalformedLogin)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("%w: not valid JSON", errMalformedLogin)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		// Not an object: no parser finds a key in it. Still bound the
		// depth.
		if ok {
			return skipJSON(dec, 1)
		}
		return nil
	}
	return s.jsonObject(dec, s.f.json, 1)
}

// jsonObject reads the members of the object dec has just entered,
// looking for path.
func (s *loginScan) jsonObject(dec *json.Decoder, path []string, depth int) error {
	if depth > maxJSONDepth {
		return fmt.Errorf("%w: JSON nested deeper than %d", errMalformedLogin, maxJSONDepth)
	}
	seen := 0
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return fmt.Errorf("%w: not valid JSON", errMalformedLogin)
		}
		key, _ := kt.(string)
		if !looseEqual(key, path[0]) {
			if err := skipValue(dec, depth); err != nil {
				return err
			}
			continue
		}
		// Go's encoding/json lets a case variant overwrite the exact key;
		// Jackson, Python and PHP keep the last duplicate.
		seen++
		if seen > 1 {
			s.ambiguous("the user key appears more than once in the JSON body (after unescaping and case folding)")
		} else if key != path[0] {
			s.ambiguous("the JSON body has a key that differs from the user key only in case")
		}
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("%w: not valid JSON", errMalformedLogin)
		}
		if len(path) == 1 {
			switch v := tok.(type) {
			case string:
				s.occurrence(key == path[0], v, "")
			case json.Delim:
				s.occurrence(false, "", "the user field in the JSON body is not a string")
				if err := skipJSON(dec, depth+1); err != nil {
					return err
				}
			default:
				// A number or true would be the user "123" or "1" in
				// PHP.
				s.occurrence(false, "", "the user field in the JSON body is not a string")
			}
			continue
		}
		switch v := tok.(type) {
		case json.Delim:
			if v == '{' {
				if err := s.jsonObject(dec, path[1:], depth+1); err != nil {
					return err
				}
			} else if err := skipJSON(dec, depth+1); err != nil {
				return err
			}
		case string:
			// PHP 7 reads $a['user']['email'] of a string as one of its
			// characters.
			s.occurrence(false, "", "an object on the user field's path is a string in the JSON body")
		}
	}
	if _, err := dec.Token(); err != nil {
		return fmt.Errorf("%w: not valid JSON", errMalformedLogin)
	}
	return nil
}

// skipValue skips the next JSON value.
func skipValue(dec *json.Decoder, depth int) error {
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("%w: not valid JSON", errMalformedLogin)
	}
	if _, ok := tok.(json.Delim); ok {
		return skipJSON(dec, depth+1)
	}
	return nil
}

// skipJSON skips the rest of the object or array dec has just entered,
// bounding the depth.
func skipJSON(dec *json.Decoder, depth int) error {
	for level := depth; level >= depth; {
		if level > maxJSONDepth {
			return fmt.Errorf("%w: JSON nested deeper than %d", errMalformedLogin, maxJSONDepth)
		}
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("%w: not valid JSON", errMalformedLogin)
		}
		if d, ok := tok.(json.Delim); ok {
			if d == '{' || d == '[' {
				level++
			} else {
				level--
			}
		}
	}
	return nil
}

// cdName finds name parameters in a raw Content-Disposition value, the
// way a lenient parser would (quoted or not, RFC 2231 name*).
var cdName = regexp.MustCompile(`(?i)(?:^|[;\s])name(\*?)\s*=\s*("(?:[^"\\]|\\.)*"?|[^;\s]*)`)

// scanMultipart reads a multipart/form-data body. Every part whose name
// could be read as the user field by some parser is an occurrence; only a
// plain part (Content-Disposition exactly `form-data; name="field"`, no
// filename, no transfer encoding, UTF-8) can be the clean one.
func (s *loginScan) scanMultipart(contentType string, params map[string]string, body []byte) error {
	boundary := params["boundary"]
	if boundary == "" {
		return fmt.Errorf("%w: multipart body without boundary", errMalformedLogin)
	}
	// PHP finds the boundary with a substring search for "boundary"
	// (so "xboundary=" counts), Go parses the parameters.
	if strings.Count(strings.ToLower(contentType), "boundary") != 1 || !strings.Contains(contentType, "boundary=") {
		s.ambiguous("the multipart boundary can be read two ways")
		return nil
	}
	mr := multipart.NewReader(bytes.NewReader(body), boundary)
	parts := 0
	var charsets []string
	for {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%w: malformed multipart body", errMalformedLogin)
		}
		parts++
		value, err := io.ReadAll(p)
		if err != nil {
			return fmt.Errorf("%w: malformed multipart body", errMalformedLogin)
		}
		cds := p.Header.Values("Content-Disposition")
		var names []string
		if n := p.FormName(); n != "" {
			names = append(names, n)
		}
		for _, cd := range cds {
			for _, m := range cdName.FindAllStringSubmatch(cd, -1) {
				v := strings.Trim(m[2], `"`)
				names = append(names, v, strings.ReplaceAll(v, `\`, ""))
				if m[1] == "*" {
					if _, enc, ok := strings.Cut(v, "''"); ok {
						v = enc
					}
				}
				names = append(names, phpURLDecode(v))
			}
		}
		rel, exact := false, false
		for _, n := range names {
			r, e := s.f.formKeyRelation(n)
			rel, exact = rel || r, exact || e
			if strings.EqualFold(strings.TrimSpace(n), "_charset_") {
				charsets = append(charsets, string(value))
			}
		}
		if !rel {
			continue
		}
		clean := exact && len(cds) == 1 && cds[0] == `form-data; name="`+s.f.raw+`"` && len(p.Header.Values("Content-Transfer-Encoding")) == 0
		if cts := p.Header.Values("Content-Type"); clean && len(cts) > 0 {
			mt, ps, err := mime.ParseMediaType(cts[0])
			cs, hasCS := ps["charset"]
			clean = len(cts) == 1 && err == nil && mt == "text/plain" && (!hasCS || utf8Charset(cs))
		}
		s.occurrence(clean, string(value), "the user field's part is not a plain form field (file, look-alike name, transfer encoding or charset)")
	}
	// A boundary the Go reader did not take (after a bare LF, in the
	// preamble or the epilogue) could be taken by PHP's parser, which
	// looks for "\n--boundary".
	if bytes.Count(body, []byte("--"+boundary)) != parts+1 {
		s.ambiguous("the multipart body holds its boundary where parsers disagree on it")
	}
	for _, cs := range charsets {
		if !utf8Charset(cs) {
			s.charset = true
		}
	}
	return nil
}
