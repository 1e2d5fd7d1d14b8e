package caddymodule

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-2fa/caddy-2fa/keyring"
	"github.com/caddy-2fa/caddy-2fa/sessions"
)

// AppLogin is identity source B: the application does its own password
// login and cannot be changed. The gate watches POSTs to Path, reads the
// user name from the body (handed on to the application byte for byte),
// and when the application's response sets a cookie matching
// SessionCookie, binds that cookie value (by a keyed hash, never the value
// itself) to the user. From then on a request carrying the cookie passes
// only with a verified 2FA session of the same user; a stolen application
// cookie alone gets nowhere.
type AppLogin struct {
	// Path of the login form's POST target: a path or a path glob
	// (path.Match syntax), e.g. /login or /wp-login.php. Requests to it
	// always reach the application (so users can log in again).
	Path string `json:"path,omitempty"`
	// UsernameField is the form field or JSON key (a dotted path for
	// nested JSON objects, e.g. user.email) that carries the user name.
	UsernameField string `json:"username_field,omitempty"`
	// SessionCookie is the name of the cookie the application sets on a
	// successful login, or a glob for applications with hashed names:
	// JSESSIONID, PHPSESSID, SESS*, wordpress_logged_in_*.
	SessionCookie string `json:"session_cookie,omitempty"`
	// LogoutPath, if set, is the application's logout path (or glob):
	// a request to it ends the binding and the 2FA session, whatever the
	// application does. An application clearing its cookie ends the
	// binding too.
	LogoutPath string `json:"logout_path,omitempty"`
	// UnknownSession says what happens to a request with an application
	// cookie the gate never saw created (for example from before the
	// gate was installed): "relogin" (default) expires the cookie and
	// sends the browser to log in again; "deny" refuses with 403.
	UnknownSession string `json:"unknown_session,omitempty"`
}

const (
	// maxLoginBody is how much of a login request body the gate reads to
	// learn the user name. A larger body reaches the application
	// untouched and the gate learns no user.
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

func (a *AppLogin) validate() error {
	if a.Path == "" || a.UsernameField == "" || a.SessionCookie == "" {
		return fmt.Errorf("app_login: path, username_field and session_cookie are required")
	}
	for _, g := range []struct{ name, glob string }{{"path", a.Path}, {"logout_path", a.LogoutPath}} {
		if g.glob == "" {
			continue
		}
		if !strings.HasPrefix(g.glob, "/") {
			return fmt.Errorf("app_login: %s must start with /, got %q", g.name, g.glob)
		}
		if _, err := path.Match(g.glob, "/"); err != nil {
			return fmt.Errorf("app_login: %s %q is not a valid glob: %v", g.name, g.glob, err)
		}
	}
	if _, err := path.Match(a.SessionCookie, "x"); err != nil || strings.ContainsAny(a.SessionCookie, " ;=,\t") {
		return fmt.Errorf("app_login: session_cookie %q is not a valid cookie name or glob", a.SessionCookie)
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

// appCookies returns the non-empty values of the request's cookies whose
// names match session_cookie, in header order.
func (h *Handler) appCookies(r *http.Request) (names, values []string) {
	for _, c := range r.Cookies() {
		if c.Value != "" && !h.isGateCookie(c.Name) && matchPath(h.AppLogin.SessionCookie, c.Name) {
			names = append(names, c.Name)
			values = append(values, c.Value)
		}
	}
	return names, values
}

// bindingID is the store ID of the binding of an application cookie value:
// a keyed hash, so the store never holds a usable application session.
func (h *Handler) bindingID(cookieValue string) string {
	return bindingIDWith(h.keys, cookieValue)
}

// bindingIDWith is bindingID under the keys k (a previous secret's, when
// looking for a binding made before the secret was rotated).
func bindingIDWith(k *keyring.Keys, cookieValue string) string {
	m := hmac.New(sha256.New, k.DeviceID)
	m.Write([]byte("app-session\x00"))
	m.Write([]byte(cookieValue))
	return bindingPrefix + hex.EncodeToString(m.Sum(nil))
}

// binding finds the binding of the first application cookie the gate
// knows. found is false when the request carries application cookies
// none of which the gate has seen created.
func (h *Handler) binding(r *http.Request, t time.Time) (id string, b sessions.Session, hasCookie, found bool, err error) {
	_, values := h.appCookies(r)
	for _, v := range values {
		id := h.bindingID(v)
		b, err := h.store.Session(r.Context(), h.Realm, id)
		if errors.Is(err, sessions.ErrNotFound) {
			if b, err = h.moveBinding(r, v, id); errors.Is(err, sessions.ErrNotFound) {
				continue
			}
		}
		if err != nil {
			return "", b, true, false, err
		}
		if !t.Before(b.Expires) {
			continue
		}
		return id, b, true, true, nil
	}
	return "", sessions.Session{}, len(values) > 0, false, nil
}

// moveBinding looks for the binding of cookieValue under the previous
// secrets' keys and, when it finds one, moves it to id (its ID under the
// current key): put new, then delete old. sessions.ErrNotFound if there
// is none.
func (h *Handler) moveBinding(r *http.Request, cookieValue, id string) (sessions.Session, error) {
	for _, k := range h.ring.Previous {
		oldID := bindingIDWith(k, cookieValue)
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

// serveAppLogin is ServeHTTP for identity source B.
func (h *Handler) serveAppLogin(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, repl *caddy.Replacer, gatePage bool) error {
	t := now()
	id, b, hasCookie, found, err := h.binding(r, t)
	if err != nil {
		return h.unavailable(w, r, err)
	}
	// The binding holds the canonical name from the login form; the
	// records may be stored under an earlier spelling (identity.go).
	var user string
	if found {
		var ok bool
		if _, user, ok, err = h.userName(w, r, b.User); !ok {
			return err
		}
		repl.Set("http.two_factor.user", b.User)
	}
	if gatePage {
		if !found {
			return h.renderError(w, r, http.StatusForbidden, "sign_in_first")
		}
		return h.serveGate(w, r, user)
	}
	if r.Method == http.MethodPost && matchPath(h.AppLogin.Path, r.URL.Path) {
		return h.watchLogin(w, r, next, repl, t)
	}
	if matchPath(h.AppLogin.LogoutPath, r.URL.Path) {
		if err := h.endBinding(w, r, id, b, found); err != nil {
			return h.unavailable(w, r, err)
		}
		h.stripGateCookies(r)
		return next.ServeHTTP(w, r)
	}
	if !hasCookie || matchPath(h.AppLogin.Path, r.URL.Path) {
		// Not signed in to the application (or on its login page, which
		// must stay reachable): the application's business.
		h.stripGateCookies(r)
		repl.Set("http.two_factor.user", "")
		repl.Set("http.two_factor.method", "")
		return next.ServeHTTP(w, r)
	}
	if !found {
		return h.unknownAppSession(w, r)
	}
	s, ok, err := h.verifiedSession(w, r, user, t)
	if err != nil {
		return h.unavailable(w, r, err)
	}
	method := s.Method
	if !ok && h.trust > 0 {
		if ok, err = h.trustedDevice(w, r, user, t); err != nil {
			return h.unavailable(w, r, err)
		}
		method = MethodTrustedDevice
	}
	if !ok {
		return h.enforce(w, r, next, repl, user, t)
	}
	if b.Method == MethodPending {
		if err := h.verifyBinding(r, id, b, method, t); err != nil {
			return h.unavailable(w, r, err)
		}
	}
	fw := &appCookieWatcher{ResponseWriterWrapper: &caddyhttp.ResponseWriterWrapper{ResponseWriter: w}, h: h, r: r, id: id, binding: b}
	err = h.pass(fw, r, next, repl, method)
	if fw.err != nil {
		h.logger.Error("following the application's session cookie", zap.String("realm", h.Realm), zap.Error(fw.err))
	}
	return err
}

// unknownAppSession answers a request with an application cookie the gate
// never saw created.
func (h *Handler) unknownAppSession(w http.ResponseWriter, r *http.Request) error {
	h.audit(r, "unknown_app_session", "", "", "refused", h.AppLogin.UnknownSession)
	if h.AppLogin.UnknownSession == "deny" {
		return h.renderError(w, r, http.StatusForbidden, "unknown_session")
	}
	names, _ := h.appCookies(r)
	for _, n := range names {
		http.SetCookie(w, &http.Cookie{Name: n, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: r.TLS != nil})
	}
	w.Header().Set("Cache-Control", "no-store")
	if !wantsHTML(r) {
		return writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "app_session_unknown", "login": h.loginURL()})
	}
	http.Redirect(w, r, h.loginURL(), http.StatusSeeOther)
	return nil
}

// loginURL is where a browser goes to log in again: the login path if it
// is a plain path, else the site's root.
func (h *Handler) loginURL() string {
	if !strings.ContainsAny(h.AppLogin.Path, "*?[\\") {
		return h.AppLogin.Path
	}
	return "/"
}

// endBinding ends the binding and the browser's 2FA session (application
// logout).
func (h *Handler) endBinding(w http.ResponseWriter, r *http.Request, id string, b sessions.Session, found bool) error {
	if found {
		if err := h.store.DeleteSession(r.Context(), h.Realm, id); err != nil {
			return err
		}
		h.audit(r, "app_logout", b.User, "", "success", "")
	}
	if sid := h.readCookie(r, sessionCookie); sid != nil {
		if err := h.store.DeleteSession(r.Context(), h.Realm, string(sid)); err != nil {
			return err
		}
		h.clearCookie(w, r, sessionCookie)
	}
	return nil
}

// verifyBinding marks a pending binding as verified by method.
func (h *Handler) verifyBinding(r *http.Request, id string, b sessions.Session, method string, t time.Time) error {
	b.Method = method
	b.LastSeen = t
	b.Expires = t.Add(h.bindingTTL())
	return h.store.PutSession(r.Context(), h.Realm, id, b)
}

// bindingTTL is how long a verified binding is kept: longer than the 2FA
// session, so that when the 2FA session expires the user is asked for a
// code again rather than sent back to the application's login.
func (h *Handler) bindingTTL() time.Duration {
	return max(2*time.Duration(h.SessionTTL), 24*time.Hour)
}

// verifyAppBinding marks the binding of this request's application cookie
// verified, after a successful challenge on the gate's pages.
func (h *Handler) verifyAppBinding(r *http.Request, user, method string, t time.Time) error {
	if h.AppLogin == nil {
		return nil
	}
	id, b, _, found, err := h.binding(r, t)
	if err != nil || !found || canonicalUser(b.User) != canonicalUser(user) {
		return err
	}
	return h.verifyBinding(r, id, b, method, t)
}

// watchLogin hands a login POST to the application and, if the
// application's response starts a session, binds it to the user named in
// the body and sends the browser to the second factor.
func (h *Handler) watchLogin(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, repl *caddy.Replacer, t time.Time) error {
	// The application never sees the gate's cookies; the gate reads them
	// again after the application answered.
	gateCookies := r.Header.Values("Cookie")
	h.stripGateCookies(r)
	user, err := h.readLoginUser(r)
	if errors.Is(err, errNameTooLong) {
		// Refused before the application sees it: a session it started
		// for this name could never be bound, and the user would go round
		// in circles between the login page and the gate.
		h.logger.Warn("login with a user name longer than the gate accepts: refused", zap.String("realm", h.Realm), zap.Int("max_bytes", maxUserName), zap.String("client_ip", clientIP(r)))
		return h.renderError(w, r, http.StatusBadRequest, "name_too_long")
	}
	if err != nil {
		h.logger.Warn("login body not read: the gate cannot learn who logs in, so the application session it starts will not be accepted", zap.String("realm", h.Realm), zap.String("client_ip", clientIP(r)), zap.String("reason", err.Error()))
	}
	repl.Set("http.two_factor.user", "")
	repl.Set("http.two_factor.method", "")
	var buf bytes.Buffer
	var cookieValue string
	rec := caddyhttp.NewResponseRecorder(w, &buf, func(status int, header http.Header) bool {
		if user == "" || status >= 400 {
			return false
		}
		cookieValue = h.newAppCookie(header)
		return cookieValue != ""
	})
	if err := next.ServeHTTP(rec, r); err != nil {
		return err
	}
	if !rec.Buffered() {
		return nil
	}
	// The application accepted the password and started a session. The
	// binding names the canonical identity; the records may be stored
	// under an earlier spelling (identity.go).
	r.Header["Cookie"] = gateCookies
	_, stored, ok, err := h.userName(w, r, user)
	if !ok {
		return err
	}
	id := h.bindingID(cookieValue)
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
	if err := h.store.PutSession(r.Context(), h.Realm, id, b); err != nil {
		return h.unavailable(w, r, err)
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
	_, err = h.store.Enrollment(r.Context(), h.Realm, stored)
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

// newAppCookie returns the value of the first Set-Cookie in header that
// sets a cookie matching session_cookie to a non-empty value.
func (h *Handler) newAppCookie(header http.Header) string {
	for _, line := range header.Values("Set-Cookie") {
		c, err := http.ParseSetCookie(line)
		if err != nil || !matchPath(h.AppLogin.SessionCookie, c.Name) {
			continue
		}
		if c.Value != "" && c.MaxAge >= 0 && (c.Expires.IsZero() || c.Expires.After(time.Now())) {
			return c.Value
		}
	}
	return ""
}

// readLoginUser reads the login body (up to maxLoginBody), puts it back
// for the application unchanged, and returns the user name in it.
func (h *Handler) readLoginUser(r *http.Request) (string, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return "", errors.New("empty body")
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, maxLoginBody+1))
	orig := r.Body
	r.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(data), orig), orig}
	if err != nil {
		return "", fmt.Errorf("reading body: %v", err)
	}
	if len(data) > maxLoginBody {
		return "", fmt.Errorf("body larger than %d bytes", maxLoginBody)
	}
	// An application may read the name from the query string too (PHP's
	// $_REQUEST): a name there could differ from the one in the body.
	base := phpFieldBase(h.AppLogin.UsernameField)
	for k := range r.URL.Query() {
		if phpFieldBase(k) == base {
			return "", fmt.Errorf("the user field is also in the query string")
		}
	}
	user, err := usernameFrom(r.Header.Get("Content-Type"), data, h.AppLogin.UsernameField)
	if err != nil {
		return "", err
	}
	// The application's own login may treat "Alice" and "alice" as one
	// account; so does the gate, or a case variant could enroll a second
	// authenticator for the same account.
	return identify(user)
}

// phpFieldBase is the name under which PHP (and frameworks imitating it)
// files a form field: '.' and ' ' become '_', and "name[...]" is "name".
// Fields that land on the same base are ambiguous: the gate and the
// application could read different values.
func phpFieldBase(name string) string {
	if i := strings.IndexByte(name, '['); i > 0 {
		name = name[:i]
	}
	return strings.Map(func(r rune) rune {
		if r == '.' || r == ' ' {
			return '_'
		}
		return r
	}, name)
}

// errAmbiguous is returned when a login body names the user more than
// once: the gate would bind the session to one name while the application
// logs in another.
var errAmbiguous = errors.New("the user field appears more than once (or under a look-alike name): the gate cannot know which one the application reads")

// usernameFrom extracts field from an urlencoded, multipart or JSON body.
func usernameFrom(contentType string, body []byte, field string) (string, error) {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		mt = "application/x-www-form-urlencoded" // what browsers send by default
	}
	var user string
	switch {
	case mt == "application/x-www-form-urlencoded":
		vals, err := url.ParseQuery(string(body))
		if err != nil {
			return "", fmt.Errorf("malformed form body")
		}
		n, base := 0, phpFieldBase(field)
		for k, v := range vals {
			if phpFieldBase(k) == base {
				n += len(v)
			}
		}
		if n > 1 || (n == 1 && len(vals[field]) != 1) {
			return "", errAmbiguous
		}
		user = vals.Get(field)
	case mt == "multipart/form-data":
		mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
		n, base := 0, phpFieldBase(field)
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				return "", fmt.Errorf("malformed multipart body")
			}
			if phpFieldBase(p.FormName()) != base {
				continue
			}
			if n++; n > 1 || p.FormName() != field || p.FileName() != "" {
				return "", errAmbiguous
			}
			v, err := io.ReadAll(io.LimitReader(p, 1024))
			if err != nil {
				return "", fmt.Errorf("malformed multipart body")
			}
			user = string(v)
		}
	case mt == "application/json" || strings.HasSuffix(mt, "+json"):
		if !json.Valid(body) {
			return "", fmt.Errorf("malformed JSON body")
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		v, err := jsonPath(dec, strings.Split(field, "."))
		if err != nil {
			return "", err
		}
		s, ok := v.(string)
		if !ok {
			return "", fmt.Errorf("JSON body has no string %q", field)
		}
		user = s
	default:
		return "", fmt.Errorf("unsupported content type %q", mt)
	}
	user = strings.TrimSpace(user)
	if user == "" {
		return "", fmt.Errorf("no %q in the body", field)
	}
	if strings.ContainsAny(user, "\x00\r\n") {
		return "", fmt.Errorf("user name with control characters")
	}
	if _, err := identify(user); err != nil {
		return "", err
	}
	return user, nil
}

// appCookieWatcher follows the application's session cookie on the
// responses to verified requests: a new value (session rotation) inherits
// the verification; a cleared cookie ends the binding.
type appCookieWatcher struct {
	*caddyhttp.ResponseWriterWrapper
	h       *Handler
	r       *http.Request
	id      string
	binding sessions.Session
	wrote   bool
	err     error
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

func (fw *appCookieWatcher) follow() {
	lines := fw.Header().Values("Set-Cookie")
	if len(lines) == 0 {
		return
	}
	h, ctx, t := fw.h, fw.r.Context(), now()
	for _, line := range lines {
		c, err := http.ParseSetCookie(line)
		if err != nil || !matchPath(h.AppLogin.SessionCookie, c.Name) {
			continue
		}
		cleared := c.Value == "" || c.MaxAge < 0 || (!c.Expires.IsZero() && !c.Expires.After(time.Now()))
		if cleared {
			fw.err = errors.Join(fw.err, h.store.DeleteSession(ctx, h.Realm, fw.id))
			h.audit(fw.r, "app_logout", fw.binding.User, "", "success", "cookie_cleared")
			continue
		}
		newID := h.bindingID(c.Value)
		if newID == fw.id {
			continue
		}
		b := fw.binding
		b.Created, b.LastSeen, b.Expires = t, t, t.Add(h.bindingTTL())
		fw.err = errors.Join(fw.err, h.store.PutSession(ctx, h.Realm, newID, b))
	}
}

// jsonPath reads the value at path from the JSON object dec is at,
// refusing an object that has the key on the path more than once (JSON
// parsers differ on which duplicate wins).
func jsonPath(dec *json.Decoder, path []string) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("malformed JSON body")
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		// Not an object: skip whatever it is.
		if d, ok := tok.(json.Delim); ok && (d == '[') {
			for dec.More() {
				var skip json.RawMessage
				if err := dec.Decode(&skip); err != nil {
					return nil, fmt.Errorf("malformed JSON body")
				}
			}
			dec.Token()
		}
		return nil, nil
	}
	var found any
	seen := false
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("malformed JSON body")
		}
		key, _ := kt.(string)
		if key != path[0] {
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return nil, fmt.Errorf("malformed JSON body")
			}
			continue
		}
		if seen {
			return nil, errAmbiguous
		}
		seen = true
		if len(path) == 1 {
			if err := dec.Decode(&found); err != nil {
				return nil, fmt.Errorf("malformed JSON body")
			}
			continue
		}
		if found, err = jsonPath(dec, path[1:]); err != nil {
			return nil, err
		}
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("malformed JSON body")
	}
	return found, nil
}
