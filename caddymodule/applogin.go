package caddymodule

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-2fa/caddy-2fa/keyring"
	"github.com/caddy-2fa/caddy-2fa/sessions"
)

// AppLogin is identity source B: the application does its own password
// login and cannot be changed. The gate watches login POSTs to Paths,
// reads the user name from the body (handed on to the application byte
// for byte), and when the application's answer is a successful login
// (Success), binds every session cookie the login gave the browser (by a
// keyed hash of its name and value, never the value itself) to the user.
//
// The rule: the application receives a session cookie only if (a) the
// gate bound that cookie, name and value, to user U at a login it saw
// succeed, and this browser holds a verified second factor for U; or (b)
// the gate saw the application issue it to this browser as an anonymous
// (pre-login) session, and no successful login has been seen with it
// since. Every other cookie the application could read as a session
// cookie, under its platform's parsing (PHP's name mangling, duplicates,
// case), is withheld, on every path, the login path included. A request
// the gate cannot read unambiguously is refused with 400.
type AppLogin struct {
	// Paths are where the application's login form POSTs: paths or path
	// globs (path.Match syntax), e.g. /login, /wp-login.php, /index.php.
	// POSTs there that carry the user field are login attempts; every
	// other request there is an ordinary one (the rule applies: a front
	// controller serving the whole application from one script is
	// protected like any other path).
	Paths []string `json:"paths,omitempty"`
	// Path is one login path: the earlier form of Paths, still accepted.
	Path string `json:"path,omitempty"`
	// UsernameField is the form field or JSON key (a dotted path for
	// nested JSON objects, e.g. user.email) that carries the user name.
	UsernameField string `json:"username_field,omitempty"`
	// SessionCookies are the names of the cookies that make a browser
	// logged in to the application, or globs for applications with hashed
	// names: JSESSIONID, PHPSESSID, SESS*, wordpress_logged_in_*. List
	// every cookie the application authenticates by, remember-me cookies
	// included: a cookie not listed reaches the application untouched.
	SessionCookies []string `json:"session_cookies,omitempty"`
	// SessionCookie is one session cookie name or glob: the earlier form
	// of SessionCookies, still accepted.
	SessionCookie string `json:"session_cookie,omitempty"`
	// Success is the signal of a successful login. Default: a redirect
	// (3xx) that sets a new session cookie value, or keeps the pre-login
	// session and leads away from the login URL; a 200 never binds.
	Success *LoginSuccess `json:"success,omitempty"`
	// LogoutPath, if set, is the application's logout path (or glob):
	// a verified request to it ends the binding and the 2FA session,
	// whatever the application does. An application clearing its cookie
	// ends the binding too.
	LogoutPath string `json:"logout_path,omitempty"`
	// UnknownSession says what happens to a request with an application
	// session cookie the gate neither bound nor saw issued anonymously
	// (for example from before the gate was installed): "relogin"
	// (default) withholds it, expires it in the response and sends
	// browsers to the login page; "deny" refuses with 403. Either way the
	// login path itself is served, with such cookies withheld, so that
	// users can log in.
	UnknownSession string `json:"unknown_session,omitempty"`

	paths, names []string // Paths and SessionCookies with the earlier forms, set by provision
	lowNames     []string // names in lower case, set by provision
}

const (
	// maxLoginBody is how much of a login request body the gate reads to
	// learn the user name. A POST to a login path with a larger body is
	// refused: the gate could not know who logs in.
	maxLoginBody = 64 << 10
	// pendingBindingTTL is how long an application session may wait for
	// its second factor before the user must log in again.
	pendingBindingTTL = 15 * time.Minute
	// MethodPending marks an application session whose second factor has
	// not been given yet.
	MethodPending = "pending"
	// bindingPrefix starts the store IDs of application-session bindings,
	// which are kept as sessions so that revoking a user's sessions
	// revokes them too.
	bindingPrefix = "app:"
)

// provision merges the earlier single-value options into the lists.
func (a *AppLogin) provision() {
	a.paths = a.loginPaths()
	a.names = a.cookieNames()
	a.lowNames = lowerAll(a.names)
}

// lowCookieNames are cookieNames in lower case.
func (a *AppLogin) lowCookieNames() []string {
	if a.lowNames != nil {
		return a.lowNames
	}
	return lowerAll(a.cookieNames())
}

// loginPaths are the watched login paths.
func (a *AppLogin) loginPaths() []string {
	if a.paths != nil {
		return a.paths
	}
	if a.Path == "" {
		return a.Paths
	}
	return append(slices.Clip(a.Paths), a.Path)
}

// cookieNames are the session cookie names and globs.
func (a *AppLogin) cookieNames() []string {
	if a.names != nil {
		return a.names
	}
	if a.SessionCookie == "" {
		return a.SessionCookies
	}
	return append(slices.Clip(a.SessionCookies), a.SessionCookie)
}

// watches reports whether p is a login path.
func (a *AppLogin) watches(p string) bool {
	for _, g := range a.loginPaths() {
		if matchPath(g, p) {
			return true
		}
	}
	return false
}

func (a *AppLogin) validate() error {
	if len(a.loginPaths()) == 0 || a.UsernameField == "" || len(a.cookieNames()) == 0 {
		return fmt.Errorf("app_login: path, username_field and session_cookie are required")
	}
	if err := checkLoginField(a.UsernameField); err != nil {
		return fmt.Errorf("app_login: username_field: %v", err)
	}
	type glob struct{ name, glob string }
	var globs []glob
	for _, p := range a.loginPaths() {
		globs = append(globs, glob{"path", p})
	}
	if a.LogoutPath != "" {
		globs = append(globs, glob{"logout_path", a.LogoutPath})
	}
	for _, g := range globs {
		if !strings.HasPrefix(g.glob, "/") {
			return fmt.Errorf("app_login: %s must start with /, got %q", g.name, g.glob)
		}
		if _, err := path.Match(g.glob, "/"); err != nil {
			return fmt.Errorf("app_login: %s %q is not a valid glob: %v", g.name, g.glob, err)
		}
	}
	for _, n := range a.cookieNames() {
		if _, err := path.Match(n, "x"); err != nil || n == "" || strings.ContainsAny(n, " ;=,\t\x00") {
			return fmt.Errorf("app_login: session_cookie %q is not a valid cookie name or glob", n)
		}
		if isGateCookieName(n) {
			return fmt.Errorf("app_login: session_cookie %q is a name of the gate's own cookies", n)
		}
	}
	if err := a.Success.validate(); err != nil {
		return err
	}
	switch a.UnknownSession {
	case "", "relogin", "deny":
	default:
		return fmt.Errorf("app_login: unknown_session must be relogin or deny, got %q", a.UnknownSession)
	}
	return nil
}

// matchPath reports whether p matches the path or glob pattern.
func matchPath(pattern, p string) bool {
	if pattern == "" {
		return false
	}
	if pattern == p {
		return true
	}
	ok, _ := path.Match(pattern, p)
	return ok
}

// bindingID is the store ID of the binding of an application cookie: a
// keyed hash of its name and value, so the store never holds a usable
// application session, and a value bound under one name is nothing under
// another.
func (h *Handler) bindingID(name, value string) string {
	return bindingIDWith(h.keys, name, value)
}

// bindingIDWith is bindingID under the keys k (a previous secret's, when
// looking for a binding made before the secret was rotated).
func bindingIDWith(k *keyring.Keys, name, value string) string {
	m := hmac.New(sha256.New, k.DeviceID)
	m.Write([]byte("app-session-cookie\x00"))
	m.Write(binary.AppendUvarint(nil, uint64(len(name))))
	m.Write([]byte(name))
	m.Write([]byte(value))
	return bindingPrefix + hex.EncodeToString(m.Sum(nil))
}

// lookupBinding returns the binding stored under id (the binding ID of
// name and value), moving one made under a previous secret's keys to id
// first. sessions.ErrNotFound if there is none.
func (h *Handler) lookupBinding(r *http.Request, name, value, id string) (sessions.Session, error) {
	b, err := h.store.Session(r.Context(), h.Realm, id)
	if !errors.Is(err, sessions.ErrNotFound) {
		return b, err
	}
	for _, k := range h.ring.Previous {
		oldID := bindingIDWith(k, name, value)
		b, err := h.store.Session(r.Context(), h.Realm, oldID)
		if errors.Is(err, sessions.ErrNotFound) {
			continue
		}
		if err != nil {
			return b, err
		}
		if err := h.store.PutSession(r.Context(), h.Realm, id, b); err != nil {
			return b, err
		}
		return b, h.store.DeleteSession(r.Context(), h.Realm, oldID)
	}
	return sessions.Session{}, sessions.ErrNotFound
}

// What the gate knows of a session cookie a request carries.
const (
	// cookieUnknown: neither bound nor anonymous (or not under its exact
	// name): withheld, and unknown_session applies.
	cookieUnknown = iota
	// cookieBound: bound to a user at a login the gate saw succeed.
	cookieBound
	// cookieAnon: issued to this browser as an anonymous session (b).
	cookieAnon
	// cookieRetired: was anonymous, and a login with it has been seen (or
	// is in flight): withheld, quietly.
	cookieRetired
)

// appCookie is a cookie of the request that the application could read
// as one of its session cookies.
type appCookie struct {
	part        int // index in appRequest.parts
	name, value string
	state       int
	id          string           // binding ID (cookies under their exact name)
	binding     sessions.Session // when bound
	key         [16]byte         // companion key (cookies under their exact name)
	release     func()           // undoes the in-flight count (anonymous ones)
}

// appRequest is what the gate made of a request's cookies.
type appRequest struct {
	parts []cookiePart
	cands []*appCookie
	anon  []anonEntry // the companion cookie's live entries
	user  string      // the user the bound cookies are bound to; "" if none
}

// count is how many candidates are in state.
func (ar *appRequest) count(state int) int {
	n := 0
	for _, c := range ar.cands {
		if c.state == state {
			n++
		}
	}
	return n
}

// release undoes every in-flight count the request holds.
func (ar *appRequest) release() {
	for _, c := range ar.cands {
		if c.release != nil {
			c.release()
		}
	}
}

// setHeader rebuilds the request's Cookie header (one line) with every
// part but the session cookies keep refuses. Gate cookies stay (the
// gate may still read them); pass strips them.
func (ar *appRequest) setHeader(r *http.Request, keep func(*appCookie) bool) {
	at := make(map[int]*appCookie, len(ar.cands))
	for _, c := range ar.cands {
		at[c.part] = c
	}
	v := buildCookieHeader(ar.parts, func(i int) bool {
		c := at[i]
		return c == nil || keep(c)
	})
	delete(r.Header, "Cookie")
	if v != "" {
		r.Header["Cookie"] = []string{v}
	}
}

// readAppRequest parses the request's cookies and finds out what the gate
// knows of each one the application could read as a session cookie. A
// non-empty reason means the request cannot be read unambiguously (400).
// With track, anonymous cookies are counted in flight (ar.release undoes
// it).
func (h *Handler) readAppRequest(r *http.Request, t time.Time, track bool) (ar *appRequest, reason string, err error) {
	parts, err := parseCookieHeader(r.Header["Cookie"])
	if err != nil {
		return nil, fmt.Sprintf("more than %d cookies", maxCookieParts), nil
	}
	ar = &appRequest{parts: parts}
	names, lowNames := h.AppLogin.cookieNames(), h.AppLogin.lowCookieNames()
	if sessionIDInURL(lowNames, r.URL.EscapedPath(), r.URL.RawQuery) {
		return nil, "a session cookie's name in the URL (a session ID the application could read from there)", nil
	}
	for i, p := range parts {
		if h.isGateCookie(p.name) {
			continue
		}
		if !couldBeSessionCookie(lowNames, p.name) {
			if commaSessionCookie(lowNames, p.value) {
				return nil, "a session cookie inside another cookie's value (split at ',' by old cookie parsers)", nil
			}
			continue
		}
		for _, o := range ar.cands {
			if sameFiledName(o.name, p.name) {
				return nil, "two cookies the application could read as the same session cookie", nil
			}
		}
		ar.cands = append(ar.cands, &appCookie{part: i, name: p.name, value: p.value})
	}
	if len(ar.cands) == 0 {
		return ar, "", nil
	}
	ar.anon = h.readAnon(r, t)
	counted := ar
	defer func() {
		if err != nil || reason != "" {
			counted.release()
		}
	}()
	for _, c := range ar.cands {
		p := parts[c.part]
		// Only a cookie under its exact configured name can pass: a
		// mangled or case-variant spelling is always withheld.
		if !p.hasEq || p.value == "" || !matchCookieName(names, p.name) {
			continue
		}
		c.id = h.bindingID(c.name, c.value)
		b, err := h.lookupBinding(r, c.name, c.value, c.id)
		if err != nil && !errors.Is(err, sessions.ErrNotFound) {
			return nil, "", err
		}
		if err == nil && t.Before(b.Expires) {
			if ar.user != "" && canonicalUser(ar.user) != canonicalUser(b.User) {
				return nil, "session cookies bound to different users", nil
			}
			c.state, c.binding, ar.user = cookieBound, b, b.User
			continue
		}
		c.key = anonKey(h.keys, c.name, c.value)
		if !hasAnon(ar.anon, c.key) {
			continue
		}
		// Counted before the marker is looked for (see inFlight).
		if track {
			c.release = acquireInFlight(h.Realm, markerID(c.key))
		}
		_, err = h.store.Session(r.Context(), h.Realm, doneMarkerID(c.key))
		if errors.Is(err, sessions.ErrNotFound) {
			_, err = h.store.Session(r.Context(), h.Realm, markerID(c.key))
		}
		switch {
		case errors.Is(err, sessions.ErrNotFound):
			c.state = cookieAnon
		case err != nil:
			return nil, "", err
		default:
			c.state = cookieRetired
			if c.release != nil {
				c.release()
				c.release = nil
			}
		}
	}
	return ar, "", nil
}

// refuseAmbiguous answers a request the gate cannot read the way the
// application would (400), without forwarding it. reason goes to the log;
// it never holds cookie values or bodies.
func (h *Handler) refuseAmbiguous(w http.ResponseWriter, r *http.Request, reason string) error {
	h.logger.Warn("app_login: request refused: the gate cannot read it the way the application would",
		zap.String("realm", h.Realm), zap.String("client_ip", clientIP(r)), zap.String("uri", r.URL.Path), zap.String("reason", reason))
	h.audit(r, "app_login_refused", "", "", "refused", "ambiguous_request", zap.String("detail", reason))
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Add("Vary", "Accept")
	if !wantsHTML(r) {
		return writeJSON(w, http.StatusBadRequest, map[string]string{"error": "ambiguous_request"})
	}
	return h.renderError(w, r, http.StatusBadRequest, "ambiguous_request")
}

// serveAppLogin is identity source B ("app_login"): it reads what state
// the request's application session is in, handles login attempts and
// requests without a bound user itself, and hands every request with a
// bound user to the pipeline (serve.go), with code the otp_header value
// ServeHTTP took from the request.
func (h *Handler) serveAppLogin(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, repl *caddy.Replacer, code string, gatePage bool) error {
	t := now()
	ar, reason, err := h.readAppRequest(r, t, !gatePage)
	if err != nil {
		return h.unavailable(w, r, err)
	}
	if reason != "" {
		return h.refuseAmbiguous(w, r, reason)
	}
	defer ar.release()
	// The binding holds the canonical name from the login form; the
	// records may be stored under an earlier spelling (identity.go).
	var user string
	if ar.user != "" {
		var ok bool
		if _, user, ok, err = h.userName(w, r, ar.user); !ok {
			return err
		}
	}
	repl.Set("http.two_factor.user", ar.user)
	repl.Set("http.two_factor.method", "")
	if gatePage {
		if ar.user == "" {
			return h.renderError(w, r, http.StatusForbidden, "sign_in_first")
		}
		return h.pipeline(w, r, next, repl, subject{user: user, app: ar}, code, true, t)
	}
	if r.Method == http.MethodPost && h.AppLogin.watches(r.URL.Path) {
		name, present, err := readLoginAttempt(r, h.AppLogin.UsernameField)
		if err == nil && present {
			name, err = identify(name)
		}
		switch {
		case errors.Is(err, errNameTooLong):
			// Refused before the application sees it: a session it
			// started for this name could never be bound, and the user
			// would go round in circles between the login page and the
			// gate.
			h.logger.Warn("login with a user name longer than the gate accepts: refused", zap.String("realm", h.Realm), zap.Int("max_bytes", maxUserName), zap.String("client_ip", clientIP(r)))
			return h.renderError(w, r, http.StatusBadRequest, "name_too_long")
		case errors.Is(err, errAmbiguousLogin):
			return h.refuseAmbiguous(w, r, "login body: "+err.Error())
		case err != nil:
			return h.refuseAmbiguous(w, r, "login body not readable: "+err.Error())
		case present && name != "":
			return h.watchLogin(w, r, next, repl, ar, name, t)
		}
		// No user field: an ordinary request.
	}
	logout := matchPath(h.AppLogin.LogoutPath, r.URL.Path)
	keep := func(c *appCookie) bool { return c.state == cookieBound || c.state == cookieAnon }
	loginPage := h.AppLogin.watches(r.URL.Path)
	if ar.count(cookieUnknown) > 0 && h.AppLogin.UnknownSession == "deny" && !loginPage {
		return h.unknownAppSession(w, r, ar)
	}
	if ar.user != "" {
		// The application session is bound to user: from here on, the
		// same pipeline as the user placeholder source, with the
		// bound (and anonymous) cookies only, and the application's
		// answer watched. Policy passes (exempt, disabled, grace) keep
		// the bound cookies; everyone else goes to the gate, and the
		// cookies go nowhere.
		ar.setHeader(r, keep)
		fw := h.watchAppResponse(w, r, ar, t, true)
		err = h.pipeline(fw, r, next, repl, subject{user: user, app: ar, logout: logout}, code, false, t)
		if fw.err != nil {
			h.logger.Error("following the application's session cookies", zap.String("realm", h.Realm), zap.Error(fw.err))
		}
		return err
	}
	// No bound user: a code in otp_header has nobody to be checked for
	// and was only removed; the request goes on as one without a user.
	if ar.count(cookieUnknown) > 0 {
		if !(loginPage || logout) {
			return h.unknownAppSession(w, r, ar)
		}
		// The login page stays reachable: served without them.
		h.expireUnknown(w, r, ar)
	}
	if logout {
		if err := h.endBindings(w, r, ar); err != nil {
			return h.unavailable(w, r, err)
		}
	}
	ar.setHeader(r, keep)
	fw := h.watchAppResponse(w, r, ar, t, false)
	err = h.pass(fw, r, next, repl, "")
	if fw.err != nil {
		h.logger.Error("recording the application's anonymous sessions", zap.String("realm", h.Realm), zap.Error(fw.err))
	}
	return err
}

// unknownAppSession answers a request with application session cookies
// the gate neither bound nor saw issued anonymously, on a page other than
// the login page (or with unknown_session deny anywhere).
func (h *Handler) unknownAppSession(w http.ResponseWriter, r *http.Request, ar *appRequest) error {
	h.audit(r, "unknown_app_session", "", "", "refused", h.AppLogin.UnknownSession)
	if h.AppLogin.UnknownSession == "deny" {
		return h.renderError(w, r, http.StatusForbidden, "unknown_session")
	}
	h.expireUnknown(w, r, ar)
	w.Header().Set("Cache-Control", "no-store")
	if !wantsHTML(r) {
		return writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "app_session_unknown", "login": h.loginURL()})
	}
	http.Redirect(w, r, h.loginURL(), http.StatusSeeOther)
	return nil
}

// expireUnknown tells the browser to forget the unknown session cookies
// (under the names it sent them, where those are valid cookie names).
func (h *Handler) expireUnknown(w http.ResponseWriter, r *http.Request, ar *appRequest) {
	for _, c := range ar.cands {
		if c.state == cookieUnknown {
			http.SetCookie(w, &http.Cookie{Name: c.name, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: r.TLS != nil})
		}
	}
}

// loginURL is where a browser goes to log in again: the first login path
// that is a plain path, else the site's root.
func (h *Handler) loginURL() string {
	for _, p := range h.AppLogin.loginPaths() {
		if !strings.ContainsAny(p, "*?[\\") {
			return p
		}
	}
	return "/"
}

// endBindings ends the request's bindings and the browser's 2FA session
// (application logout).
func (h *Handler) endBindings(w http.ResponseWriter, r *http.Request, ar *appRequest) error {
	for _, c := range ar.cands {
		if c.state != cookieBound {
			continue
		}
		if err := h.store.DeleteSession(r.Context(), h.Realm, c.id); err != nil {
			return err
		}
		h.audit(r, "app_logout", c.binding.User, "", "success", "")
	}
	return h.endGateSession(w, r)
}

// endGateSession ends the browser's 2FA session, if it has one.
func (h *Handler) endGateSession(w http.ResponseWriter, r *http.Request) error {
	sid := h.readCookie(r, sessionCookie)
	if fw, ok := w.(*appCookieWatcher); ok {
		// The session started in this request, if one was.
		sid = fw.gateSID
	}
	if sid != nil {
		if err := h.store.DeleteSession(r.Context(), h.Realm, string(sid)); err != nil {
			return err
		}
		h.clearCookie(w, r, sessionCookie)
	}
	return nil
}

// verifyBindings marks the request's pending bindings verified by method.
func (h *Handler) verifyBindings(r *http.Request, ar *appRequest, method string, t time.Time) error {
	for _, c := range ar.cands {
		if c.state == cookieBound && c.binding.Method == MethodPending {
			if err := h.verifyBinding(r, c, method, t); err != nil {
				return err
			}
		}
	}
	return nil
}

// verifyBinding marks a pending binding as verified by method.
func (h *Handler) verifyBinding(r *http.Request, c *appCookie, method string, t time.Time) error {
	b := c.binding
	b.Method = method
	b.LastSeen = t
	b.Expires = t.Add(h.bindingTTL())
	if err := h.store.PutSession(r.Context(), h.Realm, c.id, b); err != nil {
		return err
	}
	c.binding = b
	return nil
}

// bindingTTL is how long a verified binding is kept: longer than the 2FA
// session, so that when the 2FA session expires the user is asked for a
// code again rather than sent back to the application's login.
func (h *Handler) bindingTTL() time.Duration {
	return max(2*time.Duration(h.SessionTTL), 24*time.Hour)
}

// verifyAppBinding marks the bindings of this request's application
// cookies verified, after a successful challenge on the gate's pages.
func (h *Handler) verifyAppBinding(r *http.Request, user, method string, t time.Time) error {
	if h.AppLogin == nil {
		return nil
	}
	ar, reason, err := h.readAppRequest(r, t, false)
	if err != nil || reason != "" || ar.user == "" || canonicalUser(ar.user) != canonicalUser(user) {
		return err
	}
	return h.verifyBindings(r, ar, method, t)
}

// watchLogin hands a login attempt to the application with only the
// anonymous session cookies (rule b) and, if the application's answer is
// a successful login, binds the session cookies it gave the browser to
// the user named in the body and sends the browser to the second factor.
func (h *Handler) watchLogin(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, repl *caddy.Replacer, ar *appRequest, user string, t time.Time) error {
	// Before the attempt is forwarded, each anonymous cookie it carries
	// stops being anonymous (a marker in the store), and the requests
	// already on their way with it are let finish: once the application
	// has logged the session in, nothing else may reach it as anonymous.
	ctx := r.Context()
	sent := map[string]string{}
	var markers []string
	var sentKeys [][16]byte
	if hook := loginMarkerHook.Load(); hook != nil {
		(*hook)()
	}
	// A user verified here who logs in again as themself hands the
	// application the session it knows: the request would carry it to
	// any other page anyway. (phpMyAdmin's logout keeps its session ID;
	// withheld, the next login fails on a token that lives in it.)
	own := false
	if ar.user != "" && canonicalUser(ar.user) == canonicalUser(user) {
		_, stored, ok, err := h.userName(w, r, user)
		if !ok {
			return err
		}
		if _, own, err = h.verifiedSession(w, r, stored, t); err != nil {
			return h.unavailable(w, r, err)
		}
	}
	for _, c := range ar.cands {
		if own && c.state == cookieBound {
			sent[c.name] = c.value
		}
	}
	for _, c := range ar.cands {
		if c.state != cookieAnon {
			continue
		}
		id := markerID(c.key)
		startLogin(h.Realm, id)
		markers = append(markers, id)
		if err := h.store.PutSession(ctx, h.Realm, id, loginMarker(r, t)); err != nil {
			h.endLogins(r, markers, false)
			return h.unavailable(w, r, err)
		}
		if c.release != nil {
			c.release()
			c.release = nil
		}
		if !waitInFlight(h.Realm, id) {
			h.logger.Warn("login attempt: requests with its pre-login session still in flight: the session is withheld from the attempt", zap.String("realm", h.Realm), zap.String("client_ip", clientIP(r)))
			continue
		}
		sent[c.name] = c.value
		sentKeys = append(sentKeys, c.key)
	}
	// The application never sees the gate's cookies, nor a session
	// cookie that is not anonymous (a bound one reaches a login only as
	// above: its own user's, verified in this browser); the gate reads its
	// own again after the application answered.
	gateCookies := slices.Clone(r.Header["Cookie"])
	ar.setHeader(r, func(c *appCookie) bool {
		return (c.state == cookieAnon || own && c.state == cookieBound) && sent[c.name] == c.value
	})
	h.stripGateCookies(r)
	repl.Set("http.two_factor.user", "")
	repl.Set("http.two_factor.method", "")

	var buf bytes.Buffer
	var outcome loginOutcome
	judged := false
	rec := caddyhttp.NewResponseRecorder(w, &buf, func(status int, header http.Header) bool {
		judged = true
		outcome = h.judgeLogin(r, sent, status, header)
		if outcome.success {
			// The pre-login sessions are someone's now, for good.
			for _, c := range ar.cands {
				if c.state == cookieAnon && sent[c.name] == c.value {
					if err := h.store.PutSession(ctx, h.Realm, doneMarkerID(c.key), loginMarker(r, t)); err != nil {
						// Fail closed: the in-flight marker stays.
						h.logger.Error("app_login: recording a successful login", zap.String("realm", h.Realm), zap.Error(err))
					}
				}
			}
			h.endLogins(r, markers, false)
		}
		if outcome.success && len(outcome.bind) > 0 {
			return true
		}
		h.loginNotSeen(w, r, ar, outcome, markers, sent, status, header, t)
		return false
	})
	err := next.ServeHTTP(rec, r)
	if !judged {
		// No answer seen: the in-flight markers stay (whatever the
		// application did, the pre-login sessions do not count as
		// anonymous any more).
		h.endLogins(r, markers, false)
	}
	if err != nil {
		return err
	}
	if !rec.Buffered() {
		return nil
	}
	// The application accepted the password and gave the browser a
	// session. The bindings name the canonical identity; the records may
	// be stored under an earlier spelling (identity.go).
	r.Header["Cookie"] = gateCookies
	_, stored, ok, err := h.userName(w, r, user)
	if !ok {
		return err
	}
	b := sessions.Session{User: user, Method: MethodPending, Created: t, Expires: t.Add(pendingBindingTTL), LastSeen: t, ClientIP: clientIP(r), UserAgent: truncate(r.UserAgent(), 256)}

	// Already verified on this browser (a trusted device, or a live 2FA
	// session of the same user): the new application session is verified
	// at once.
	method := ""
	if s, ok, err := h.verifiedSession(w, r, stored, t); err != nil {
		return h.unavailable(w, r, err)
	} else if ok {
		method = s.Method
	} else if h.trust > 0 {
		if ok, err := h.trustedDevice(w, r, stored, t); err != nil {
			return h.unavailable(w, r, err)
		} else if ok {
			method = MethodTrustedDevice
		}
	}
	if method != "" {
		b.Method = method
		b.Expires = t.Add(h.bindingTTL())
	}
	for name, value := range outcome.bind {
		id := h.bindingID(name, value)
		// A value already bound to someone else is no per-browser
		// session (a flag cookie every browser gets, listed by mistake):
		// it is not moved to this user.
		if old, err := h.store.Session(ctx, h.Realm, id); err == nil && t.Before(old.Expires) && canonicalUser(old.User) != canonicalUser(user) {
			h.logger.Warn("app_login: a session cookie value the login kept is bound to another user: not rebound (is it a per-browser session? check session_cookie)", zap.String("realm", h.Realm), zap.String("cookie", name))
			continue
		} else if err != nil && !errors.Is(err, sessions.ErrNotFound) {
			return h.unavailable(w, r, err)
		}
		if err := h.store.PutSession(ctx, h.Realm, id, b); err != nil {
			return h.unavailable(w, r, err)
		}
	}
	// The pre-login sessions are someone's now: out of the companion
	// cookie (their markers keep them from counting as anonymous).
	if len(sentKeys) > 0 {
		if err := h.writeAnon(w, r, withAnon(ar.anon, sentKeys, nil)); err != nil {
			return h.unavailable(w, r, err)
		}
	}
	h.audit(r, "app_login", user, b.Method, "success", "")
	if method != "" {
		return rec.WriteResponse()
	}

	status := rec.Status()
	htmlResponse := strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html")
	if status < 300 && !(htmlResponse && wantsHTML(r)) {
		// An SPA or JSON login: let it through (the cookie is useless
		// until verified); the next request is challenged.
		return rec.WriteResponse()
	}
	rd := "/"
	if loc := rec.Header().Get("Location"); status >= 300 && status < 400 && loc != "" {
		rd = sameHostTarget(loc, r)
	}
	_, err = h.store.Enrollment(ctx, h.Realm, stored)
	page := "/challenge"
	if errors.Is(err, sessions.ErrNotFound) {
		page = "/enroll"
	} else if err != nil {
		return h.unavailable(w, r, err)
	}
	// Keep the application's cookies (Set-Cookie), replace the rest of
	// its answer with a redirect to the second factor.
	hdr := w.Header()
	for _, k := range []string{"Content-Length", "Content-Type", "Content-Encoding", "Location", "Etag", "Last-Modified"} {
		hdr.Del(k)
	}
	hdr.Set("Cache-Control", "no-store")
	http.Redirect(w, r, h.pageURL(page, rd), http.StatusSeeOther)
	return nil
}

// loginNotSeen handles the answer to a login attempt that the success
// signal did not recognise (or that gave the browser no session cookie to
// bind), while its headers can still be changed: the pre-login sessions
// stay anonymous (their markers go), and a session cookie the answer sets
// is recorded as anonymous where that is safe.
func (h *Handler) loginNotSeen(w http.ResponseWriter, r *http.Request, ar *appRequest, o loginOutcome, markers []string, sent map[string]string, status int, header http.Header, t time.Time) {
	if o.success {
		// Recognised, but nothing to bind: the markers stay (a login was
		// seen), and nothing becomes anonymous.
		h.logger.Warn("app_login: a successful login gave the browser no session cookie the gate knows: check session_cookie", zap.String("realm", h.Realm), zap.String("client_ip", clientIP(r)))
		return
	}
	h.endLogins(r, markers, true)
	// A fresh session in a re-rendered login form (a 2xx page) or an
	// error answer is the anonymous session of the next attempt (its
	// CSRF token lives there). Anything else is not recorded, so it is
	// withheld: a redirect or a non-page 2xx may be a login that
	// succeeded in a way the signal does not know, and a new ID in answer
	// to a login that carried one is what applications do when a login
	// succeeds (against session fixation). A browser that lost its
	// session that way gets a new anonymous one with the next page.
	var add []anonEntry
	page := strings.HasPrefix(header.Get("Content-Type"), "text/html")
	for name, value := range o.fresh {
		if sent[name] != "" || !(status >= 400 || status >= 200 && status < 300 && page) {
			h.logger.Warn("app_login: the application started a session at a login the success signal did not recognise: the session is withheld (set success if logins succeed this way)", zap.String("realm", h.Realm), zap.Int("status", status), zap.String("cookie", name))
			continue
		}
		add = append(add, anonEntry{key: anonKey(h.keys, name, value), issued: t})
	}
	if len(add) > 0 {
		if err := h.writeAnon(w, r, withAnon(ar.anon, nil, add)); err != nil {
			h.logger.Error("app_login: recording an anonymous session", zap.String("realm", h.Realm), zap.Error(err))
		}
	}
}

// endLogins ends the login attempt's count for each in-flight marker
// and, when failed, deletes the markers no other login here still needs.
func (h *Handler) endLogins(r *http.Request, markers []string, failed bool) {
	for _, id := range markers {
		if !endLogin(h.Realm, id) || !failed {
			continue
		}
		if err := h.store.DeleteSession(r.Context(), h.Realm, id); err != nil {
			// Fail closed: the pre-login session stays withheld.
			h.logger.Error("app_login: removing the marker of a failed login", zap.String("realm", h.Realm), zap.Error(err))
		}
	}
}

// sameHostTarget turns the application's Location into a same-host
// relative target, or "/" if it points elsewhere.
func sameHostTarget(loc string, r *http.Request) string {
	u, err := url.Parse(loc)
	if err != nil {
		return "/"
	}
	if u.IsAbs() || u.Host != "" {
		if !strings.EqualFold(u.Host, r.Host) || (u.Scheme != "http" && u.Scheme != "https") {
			return "/"
		}
		u.Scheme, u.Host, u.User = "", "", nil
	}
	if !strings.HasPrefix(u.Path, "/") {
		u.Path = path.Join(path.Dir(r.URL.Path), u.Path)
	}
	return u.String()
}

// appCookieWatcher follows the application's session cookies on the
// responses to forwarded requests. On a request forwarded with bound
// cookies, a new value (session rotation) inherits the binding, and a
// cleared cookie ends its binding (and, when all are cleared, the 2FA
// session). On a GET or HEAD forwarded without bound cookies, the session
// cookies the application issues are recorded as anonymous (rule b). On
// any other request, nothing is recorded: a session the application
// starts there is withheld afterwards.
type appCookieWatcher struct {
	*caddyhttp.ResponseWriterWrapper
	h     *Handler
	r     *http.Request
	ar    *appRequest
	t     time.Time
	bound bool // forwarded with the bound cookies of ar.user
	// gateSID is the browser's 2FA session ID, read before the gate's
	// cookies were stripped from the request.
	gateSID []byte
	wrote   bool
	err     error
}

// watchAppResponse wraps w in an appCookieWatcher.
func (h *Handler) watchAppResponse(w http.ResponseWriter, r *http.Request, ar *appRequest, t time.Time, bound bool) *appCookieWatcher {
	// The gate's cookies are stripped before the request is forwarded:
	// the 2FA session an application logout must end is read now.
	return &appCookieWatcher{ResponseWriterWrapper: &caddyhttp.ResponseWriterWrapper{ResponseWriter: w}, h: h, r: r, ar: ar, t: t, bound: bound, gateSID: h.readCookie(r, sessionCookie)}
}

// WriteHeader implements http.ResponseWriter.
func (fw *appCookieWatcher) WriteHeader(status int) {
	if !fw.wrote {
		fw.wrote = true
		fw.follow()
	}
	fw.ResponseWriterWrapper.WriteHeader(status)
}

// Write implements http.ResponseWriter.
func (fw *appCookieWatcher) Write(p []byte) (int, error) {
	if !fw.wrote {
		fw.WriteHeader(http.StatusOK)
	}
	return fw.ResponseWriterWrapper.Write(p)
}

// ReadFrom implements io.ReaderFrom, so that a body copied straight to
// the underlying writer still has its headers followed first.
func (fw *appCookieWatcher) ReadFrom(src io.Reader) (int64, error) {
	if !fw.wrote {
		fw.WriteHeader(http.StatusOK)
	}
	return fw.ResponseWriterWrapper.ReadFrom(src)
}

func (fw *appCookieWatcher) follow() {
	set := responseCookies(fw.Header())
	if len(set) == 0 {
		return
	}
	h, r := fw.h, fw.r
	names := h.AppLogin.cookieNames()
	if !fw.bound {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			return
		}
		var add []anonEntry
		for _, c := range set {
			if !c.cleared && matchCookieName(names, c.name) {
				add = append(add, anonEntry{key: anonKey(h.keys, c.name, c.value), issued: fw.t})
			}
		}
		if len(add) > 0 {
			fw.err = h.writeAnon(fw.ResponseWriterWrapper.ResponseWriter, r, withAnon(fw.ar.anon, nil, add))
		}
		return
	}
	var src *appCookie
	boundByName := map[string]*appCookie{}
	for _, c := range fw.ar.cands {
		if c.state == cookieBound {
			boundByName[c.name] = c
			if src == nil || c.binding.Method != MethodPending {
				src = c
			}
		}
	}
	if src == nil {
		return
	}
	ctx := r.Context()
	// A response that clears a bound cookie is a logout, even when it
	// also starts a new session (PHP's session_destroy then
	// session_start): that new session is the anonymous one of a
	// logged-out browser and inherits nothing. Rotation
	// (session_regenerate_id) sets the new value without clearing.
	logout := false
	for _, c := range set {
		if c.cleared && boundByName[c.name] != nil {
			logout = true
		}
	}
	cleared, renewed := 0, false
	var anon []anonEntry
	for _, c := range set {
		if !matchCookieName(names, c.name) {
			continue
		}
		old := boundByName[c.name]
		if logout && !c.cleared {
			if r.Method == http.MethodGet || r.Method == http.MethodHead {
				anon = append(anon, anonEntry{key: anonKey(h.keys, c.name, c.value), issued: fw.t})
			}
			continue
		}
		if c.cleared {
			if old != nil {
				fw.err = errors.Join(fw.err, h.store.DeleteSession(ctx, h.Realm, old.id))
				h.audit(r, "app_logout", old.binding.User, "", "success", "cookie_cleared")
				cleared++
			}
			continue
		}
		if old != nil && old.value == c.value {
			continue
		}
		b := src.binding
		b.Created, b.LastSeen = fw.t, fw.t
		if b.Method != MethodPending {
			b.Expires = fw.t.Add(h.bindingTTL())
		}
		fw.err = errors.Join(fw.err, h.store.PutSession(ctx, h.Realm, h.bindingID(c.name, c.value), b))
		renewed = true
	}
	if cleared > 0 && cleared == len(boundByName) && !renewed {
		// The application logged the user out: so does the gate.
		if fw.gateSID != nil {
			fw.err = errors.Join(fw.err, h.store.DeleteSession(ctx, h.Realm, string(fw.gateSID)))
			h.clearCookie(fw.ResponseWriterWrapper.ResponseWriter, r, sessionCookie)
		}
	}
	if len(anon) > 0 {
		fw.err = errors.Join(fw.err, h.writeAnon(fw.ResponseWriterWrapper.ResponseWriter, r, withAnon(fw.ar.anon, nil, anon)))
	}
}
