package caddymodule

import (
	"fmt"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"
)

// LoginSuccess names the signal by which the gate recognises that the
// application accepted a login. Every condition given must hold. Without
// a success block (nil) the signal is Redirect alone. A response the
// signal does not recognise never binds a session, whatever cookies it
// sets: an application that answers a failed login with 200 and a fresh
// session cookie must not give the attacker who typed a name a binding to
// it.
//
// Caddyfile, inside app_login (the line may repeat, one kind per line):
//
//	success redirect
//	success status <code>...
//	success location <glob>
//	success cookie <name or glob>
type LoginSuccess struct {
	// Redirect: the response is a redirect (3xx) whose Location leads
	// away from the login page (another path of this site, or the same
	// path with a query that drops or changes a parameter of the login
	// request's; not the login page with parameters added, such as
	// ?error=1), and it either sets a new value for a session cookie or
	// keeps the pre-login session (the anonymous session cookie the login
	// request carried). The default when no success is given.
	Redirect bool `json:"redirect,omitempty"`
	// Status: the response's status code is one of these.
	Status []int `json:"status,omitempty"`
	// Location: the response's Location (resolved against the login
	// URL) matches this glob (path.Match syntax) on its path; when the
	// glob has a '?', the part before the first '?' is matched against
	// the path and the part after it against the raw query. Example:
	// /wp-admin/*.
	Location string `json:"location,omitempty"`
	// Cookie: the response sets a cookie of this name (or glob) to a
	// non-empty value: a cookie the application sets only after a
	// successful login (it need not be a session cookie).
	Cookie string `json:"cookie,omitempty"`
}

func (s *LoginSuccess) validate() error {
	if s == nil {
		return nil
	}
	if !s.Redirect && len(s.Status) == 0 && s.Location == "" && s.Cookie == "" {
		return fmt.Errorf("app_login: success needs at least one of redirect, status, location or cookie")
	}
	for _, c := range s.Status {
		if c < 100 || c > 599 {
			return fmt.Errorf("app_login: success status %d is not an HTTP status code", c)
		}
	}
	if s.Location != "" {
		if !strings.HasPrefix(s.Location, "/") {
			return fmt.Errorf("app_login: success location must start with /, got %q", s.Location)
		}
		p, q, _ := strings.Cut(s.Location, "?")
		for _, g := range []string{p, q} {
			if _, err := path.Match(g, ""); err != nil {
				return fmt.Errorf("app_login: success location %q is not a valid glob: %v", s.Location, err)
			}
		}
	}
	if s.Cookie != "" {
		if _, err := path.Match(s.Cookie, "x"); err != nil || strings.ContainsAny(s.Cookie, " ;=,\t") {
			return fmt.Errorf("app_login: success cookie %q is not a valid cookie name or glob", s.Cookie)
		}
	}
	return nil
}

// setCookie is one Set-Cookie line of a response, as far as the gate
// needs it.
type setCookie struct {
	name, value string // value as sent, quotes kept
	cleared     bool   // empty value, Max-Age <= 0 or an expiry in the past
}

// responseCookies parses the Set-Cookie lines of a response. The value is
// taken as sent (the browser sends it back so), not unquoted.
func responseCookies(hdr http.Header) []setCookie {
	var out []setCookie
	for _, line := range hdr.Values("Set-Cookie") {
		first, _, _ := strings.Cut(line, ";")
		name, value, ok := strings.Cut(first, "=")
		name, value = strings.Trim(name, cookieSpace), strings.Trim(value, cookieSpace)
		if !ok || name == "" {
			continue
		}
		c := setCookie{name: name, value: value, cleared: value == "" || value == `""`}
		if pc, err := http.ParseSetCookie(line); err == nil {
			if pc.MaxAge < 0 || (!pc.Expires.IsZero() && !pc.Expires.After(time.Now())) {
				c.cleared = true
			}
		}
		out = append(out, c)
	}
	return out
}

// loginOutcome is what the gate made of the application's answer to a
// login attempt.
type loginOutcome struct {
	success bool
	// bind are the session cookies (name → value) the login gave the
	// browser: those the response set to a new value, and the pre-login
	// ones it kept.
	bind map[string]string
	// fresh are the session cookies the response set to a new value.
	fresh map[string]string
}

// judgeLogin applies the success signal to the application's answer to
// a login request that was forwarded with the session cookies sent.
func (h *Handler) judgeLogin(r *http.Request, sent map[string]string, status int, hdr http.Header) loginOutcome {
	names := h.AppLogin.cookieNames()
	o := loginOutcome{bind: map[string]string{}, fresh: map[string]string{}}
	cleared := map[string]bool{}
	for _, c := range responseCookies(hdr) {
		if !matchCookieName(names, c.name) {
			continue
		}
		if c.cleared {
			cleared[c.name] = true
			delete(o.fresh, c.name)
			continue
		}
		delete(cleared, c.name)
		if sent[c.name] != c.value {
			o.fresh[c.name] = c.value
		}
	}
	kept := map[string]string{}
	for n, v := range sent {
		if _, replaced := o.fresh[n]; !replaced && !cleared[n] {
			kept[n] = v
		}
	}
	sig := h.AppLogin.Success
	if sig == nil {
		sig = &LoginSuccess{Redirect: true}
	}
	ok := true
	if sig.Redirect {
		// A redirect back to the login page (a failed login that sends
		// the browser to "/login?error=1" with a fresh session cookie)
		// is no success, whatever cookies it sets.
		ok = status >= 300 && status < 400 && (len(o.fresh) > 0 || len(kept) > 0) && leadsAway(r, hdr.Get("Location"))
	}
	if ok && len(sig.Status) > 0 {
		ok = slices.Contains(sig.Status, status)
	}
	if ok && sig.Location != "" {
		ok = locationMatches(r, hdr.Get("Location"), sig.Location)
	}
	if ok && sig.Cookie != "" {
		ok = false
		for _, c := range responseCookies(hdr) {
			if !c.cleared && matchPath(sig.Cookie, c.name) {
				ok = true
			}
		}
	}
	o.success = ok
	for n, v := range kept {
		o.bind[n] = v
	}
	for n, v := range o.fresh {
		o.bind[n] = v
	}
	return o
}

// resolveLocation resolves a Location header against the request's URL;
// nil when there is none or it is another host's.
func resolveLocation(r *http.Request, loc string) *url.URL {
	if loc == "" {
		return nil
	}
	u, err := url.Parse(loc)
	if err != nil {
		return nil
	}
	if u.Host != "" && !strings.EqualFold(u.Host, r.Host) {
		return nil
	}
	base := &url.URL{Path: r.URL.Path, RawQuery: r.URL.RawQuery}
	return base.ResolveReference(&url.URL{Path: u.Path, RawPath: u.RawPath, RawQuery: u.RawQuery})
}

// leadsAway reports whether Location leads away from the login page: to
// another path of this site, or to the same path with a query that does
// not keep every parameter of the login request's query. The same page
// with parameters added ("/login?error=1", "index.php?page=login&failed=1")
// is the login page again: the usual answer to a failed login. A Location
// to another host (or one that does not parse, or none) does not count:
// nothing there tells a success from a failure, so the gate does not guess.
func leadsAway(r *http.Request, loc string) bool {
	u := resolveLocation(r, loc)
	if u == nil {
		return false
	}
	if path.Clean(u.Path) != path.Clean(r.URL.Path) {
		return true
	}
	// Read leniently, as the application's own parser would: a pair
	// that does not decode is dropped, not taken as "somewhere else"
	// (a malformed ?error=%zz must not turn a failure into a success).
	to, _ := url.ParseQuery(u.RawQuery)
	for k, vs := range r.URL.Query() {
		for _, v := range vs {
			if !slices.Contains(to[k], v) {
				return true
			}
		}
	}
	return false
}

// locationMatches applies a success location glob to Location.
func locationMatches(r *http.Request, loc, glob string) bool {
	u := resolveLocation(r, loc)
	if u == nil {
		return false
	}
	pg, qg, hasQuery := strings.Cut(glob, "?")
	if ok, _ := path.Match(pg, u.Path); !ok {
		return false
	}
	if !hasQuery {
		return true
	}
	ok, _ := path.Match(qg, u.RawQuery)
	return ok
}
