// Package demoapp is a small "legacy" web application with its own password
// login and server-side sessions, used to demonstrate and test caddy-2fa's
// app_login mode. It behaves like a classic PHP or Java application: a
// login form that POSTs username and password, a random session ID in a
// cookie (DEMOSESSID), sessions kept in memory until logout.
//
// Options make it behave like the real legacy applications the gate must
// hold against: a front controller (every page and form through
// /index.php?page=…), an anonymous pre-login session holding a CSRF token
// (PHP's session_start), a session ID kept at login (old PHP without
// session_regenerate_id), PHP's cookie and form parsing (name mangling,
// first or last duplicate), and a login form with PHP array field names.
// With the zero Options it is the plain path-routed app.
//
// It is a DEMO for caddy-2fa and nothing else: passwords are kept in plain
// text in memory, there is no rate limiting and no session expiry (and no
// CSRF protection unless Options.PreLoginSession). Never use it to protect
// anything.
package demoapp

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"html/template"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// DefaultCookieName is the session cookie's name unless Options says
// otherwise.
const DefaultCookieName = "DEMOSESSID"

// maxBody caps the size of a login request body.
const maxBody = 1 << 20

// Options configures an App. The zero value is the plain path-routed demo
// app (/login, /, /account, /api/me, /rotate, /logout).
type Options struct {
	// Users maps user names to plain-text passwords. nil means the demo
	// users alice / wonderland and bob / builder; an empty, non-nil map
	// means nobody can log in.
	Users map[string]string
	// CookieName is the session cookie's name; "" means "DEMOSESSID".
	CookieName string

	// FrontController serves every page, form and API through one
	// script, /index.php (also reachable as /), routed by the query:
	// ?page=home|account|api_me|login|logout|rotate (home when absent).
	// The login is POST /index.php?page=login, or POST /index.php with
	// do=login in the body; the account form is POST
	// /index.php?page=account, or POST /index.php with do=save_email (it
	// changes the user's e-mail address; CSRF-checked only with
	// PreLoginSession). Every other path is the app's 404. Default false:
	// one path per page.
	FrontController bool
	// PreLoginSession starts an anonymous session on every request that
	// has none (like PHP's session_start), with a CSRF token in it; the
	// login form and the account form carry the token and are refused
	// without it (a login is then a failed login). It also enables the
	// account form (POST to the account page changes the e-mail address).
	// Default false: a session exists only after login.
	PreLoginSession bool
	// KeepSessionIDAtLogin keeps the pre-login session's ID at login (old
	// PHP without session_regenerate_id): no new cookie, a 302 away from
	// the login page. Only meaningful with PreLoginSession. Default false:
	// a login always starts a new session ID.
	KeepSessionIDAtLogin bool
	// FailedLoginStatus is the status of the re-rendered login form after
	// a failed form login; 0 means 200. A 3xx status instead redirects
	// back to the login page with error=1 in the query (as Spring's and
	// many PHP apps' failure handlers do). With PreLoginSession a failed
	// login also starts a fresh anonymous session (a new cookie), as many
	// PHP applications do.
	FailedLoginStatus int
	// PHPCookies reads cookies and form bodies the way PHP 8 fills
	// $_COOKIE and $_POST (see php.go): leading spaces dropped, ' ' and
	// '.' and an unmatched '[' become '_', a NUL ends a name, "a[b]" is
	// an array under "a", the first duplicate cookie and the last
	// duplicate form field win. Default false: Go's net/http parsing.
	PHPCookies bool
	// LastCookieWins makes the app read the LAST of duplicate session
	// cookies (like Python's http.cookies or Django); default false: the
	// first (Go's Request.Cookie, PHP, Java). Not used with PHPCookies.
	LastCookieWins bool
	// ArrayLoginForm names the login form's fields login[username] and
	// login[password] (a PHP array form, like phpMyAdmin's). With
	// PHPCookies the app reads $_POST['login']['username']; without, the
	// literal field name. Default false: username and password.
	ArrayLoginForm bool
}

// DemoUsers returns the users of an App made with a nil Options.Users.
func DemoUsers() map[string]string {
	return map[string]string{"alice": "wonderland", "bob": "builder"}
}

// App is the demo application. It is an http.Handler, safe for
// concurrent use, and expects to be mounted at the root of a site (its
// links and redirects are absolute paths such as "/login").
type App struct {
	users  map[string]string
	cookie string
	opts   Options
	links  links

	mu       sync.Mutex
	sessions map[string]*session // session ID → session
	emails   map[string]string   // user → e-mail set with the account form
	acted    map[string]int      // user → requests served as that user
	requests int
}

// session is a server-side session: anonymous (user "") until login.
type session struct {
	user string
	csrf string
}

// links are the app's URLs in its routing mode.
type links struct {
	Home, Account, Rotate, Logout, Login, APIMe string
}

var (
	pathLinks  = links{Home: "/", Account: "/account", Rotate: "/rotate", Logout: "/logout", Login: "/login", APIMe: "/api/me"}
	frontLinks = links{Home: "/index.php?page=home", Account: "/index.php?page=account", Rotate: "/index.php?page=rotate", Logout: "/index.php?page=logout", Login: "/index.php?page=login", APIMe: "/index.php?page=api_me"}
)

// New returns an App with no sessions.
func New(opts Options) *App {
	users := opts.Users
	if users == nil {
		users = DemoUsers()
	}
	a := &App{
		users:    make(map[string]string, len(users)),
		cookie:   opts.CookieName,
		opts:     opts,
		links:    pathLinks,
		sessions: make(map[string]*session),
		emails:   make(map[string]string),
		acted:    make(map[string]int),
	}
	if opts.FrontController {
		a.links = frontLinks
	}
	for u, p := range users {
		a.users[u] = p
	}
	if a.cookie == "" {
		a.cookie = DefaultCookieName
	}
	a.opts.Users = nil
	return a
}

// CookieName returns the name of the session cookie.
func (a *App) CookieName() string { return a.cookie }

// SessionCount returns the number of live logged-in sessions (anonymous
// pre-login sessions are not counted).
func (a *App) SessionCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, s := range a.sessions {
		if s.user != "" {
			n++
		}
	}
	return n
}

// UserOf returns the user a session ID belongs to, if the session exists
// and is logged in.
func (a *App) UserOf(sessionID string) (string, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s, ok := a.sessions[sessionID]
	if !ok || s.user == "" {
		return "", false
	}
	return s.user, true
}

// IsAnonymousSession reports whether sessionID is a live anonymous
// (pre-login) session.
func (a *App) IsAnonymousSession(sessionID string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	s, ok := a.sessions[sessionID]
	return ok && s.user == ""
}

// ActedAs returns how many requests the app has served with a logged-in
// session of user: every page, form, API call, rotation or logout it
// handled as that user. Tests compare it before and after an attack: an
// attack that made the app act as the victim raises it.
func (a *App) ActedAs(user string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.acted[user]
}

// Requests returns how many requests reached the app.
func (a *App) Requests() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.requests
}

// EmailOf returns user's e-mail address (user@example.com until changed
// with the account form).
func (a *App) EmailOf(user string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if e, ok := a.emails[user]; ok {
		return e
	}
	return user + "@example.com"
}

// ServeHTTP implements http.Handler.
func (a *App) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	_, user, _ := a.session(r)
	a.mu.Lock()
	a.requests++
	if user != "" {
		a.acted[user]++
	}
	a.mu.Unlock()
	if a.opts.PreLoginSession {
		a.ensureSession(w, r)
	}
	if a.opts.FrontController {
		a.serveFront(w, r)
		return
	}
	switch r.URL.Path {
	case "/login":
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			a.loginForm(w, r, http.StatusOK, "", "", nil)
		case http.MethodPost:
			in, ok := a.readInput(w, r)
			if ok {
				a.login(w, r, in)
			}
		default:
			methodNotAllowed(w, "GET, HEAD, POST")
		}
	case "/":
		if a.onlyGet(w, r) {
			a.home(w, r)
		}
	case "/account":
		if a.opts.PreLoginSession && r.Method == http.MethodPost {
			if in, ok := a.readInput(w, r); ok {
				a.saveEmail(w, r, in)
			}
			return
		}
		if a.onlyGet(w, r) {
			a.account(w, r, "")
		}
	case "/rotate":
		if r.Method != http.MethodGet && r.Method != http.MethodHead && r.Method != http.MethodPost {
			methodNotAllowed(w, "GET, HEAD, POST")
			return
		}
		a.rotate(w, r)
	case "/api/me":
		if a.onlyGet(w, r) {
			a.apiMe(w, r)
		}
	case "/logout":
		if r.Method != http.MethodGet && r.Method != http.MethodHead && r.Method != http.MethodPost {
			methodNotAllowed(w, "GET, HEAD, POST")
			return
		}
		a.logout(w, r)
	default:
		a.render(w, http.StatusNotFound, "notfound", a.page(r, page{Title: "Not found", Path: r.URL.Path}))
	}
}

// serveFront routes a front-controller request by ?page= (and, for a
// POST to /index.php, by the body's do=).
func (a *App) serveFront(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/index.php" && r.URL.Path != "/" {
		a.render(w, http.StatusNotFound, "notfound", a.page(r, page{Title: "Not found", Path: r.URL.Path}))
		return
	}
	pg := r.URL.Query().Get("page")
	if r.Method == http.MethodPost {
		in, ok := a.readInput(w, r)
		if !ok {
			return
		}
		do := in.get("do")
		switch {
		case pg == "login" || (pg == "" && do == "login"):
			a.login(w, r, in)
		case pg == "account" || (pg == "" && do == "save_email"):
			a.saveEmail(w, r, in)
		case pg == "logout":
			a.logout(w, r)
		case pg == "rotate":
			a.rotate(w, r)
		default:
			methodNotAllowed(w, "GET, HEAD")
		}
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, "GET, HEAD, POST")
		return
	}
	switch pg {
	case "", "home":
		a.home(w, r)
	case "account":
		a.account(w, r, "")
	case "api_me":
		a.apiMe(w, r)
	case "login":
		a.loginForm(w, r, http.StatusOK, "", "", nil)
	case "logout":
		a.logout(w, r)
	case "rotate":
		a.rotate(w, r)
	default:
		a.render(w, http.StatusNotFound, "notfound", a.page(r, page{Title: "Not found", Path: r.URL.RequestURI()}))
	}
}

func (a *App) onlyGet(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	methodNotAllowed(w, "GET, HEAD")
	return false
}

func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
}

// --- sessions ---------------------------------------------------------

func newSessionID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("demoapp: crypto/rand failed: " + err.Error())
	}
	return hex.EncodeToString(b[:])
}

// sessionCookie returns the value the app reads as its session cookie
// under its parsing rules ("" if none).
func (a *App) sessionCookie(r *http.Request) string {
	switch {
	case a.opts.PHPCookies:
		v, _ := phpCookies(r.Header.Values("Cookie")).str(a.cookie)
		return v
	case a.opts.LastCookieWins:
		v := ""
		for _, c := range r.Cookies() {
			if c.Name == a.cookie {
				v = c.Value
			}
		}
		return v
	}
	c, err := r.Cookie(a.cookie)
	if err != nil {
		return ""
	}
	return c.Value
}

// anySession returns the request's live session (anonymous or not).
func (a *App) anySession(r *http.Request) (string, *session) {
	if id, ok := r.Context().Value(newSessionKey{}).(string); ok {
		a.mu.Lock()
		s := a.sessions[id]
		a.mu.Unlock()
		if s != nil {
			return id, s
		}
	}
	id := a.sessionCookie(r)
	if id == "" {
		return "", nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.sessions[id]
	if s == nil {
		return "", nil
	}
	return id, s
}

// newSessionKey marks (in a request's context) the anonymous session the
// app started while handling it.
type newSessionKey struct{}

// session returns the request's session ID and user, if it has a live
// logged-in one.
func (a *App) session(r *http.Request) (id, user string, ok bool) {
	v := a.sessionCookie(r)
	if v == "" {
		return "", "", false
	}
	user, ok = a.UserOf(v)
	if !ok {
		return "", "", false
	}
	return v, user, true
}

// ensureSession starts an anonymous session when the request has no live
// session (PreLoginSession).
func (a *App) ensureSession(w http.ResponseWriter, r *http.Request) {
	if _, s := a.anySession(r); s != nil {
		return
	}
	id := a.newSession(w, "", "")
	*r = *r.WithContext(contextWith(r, id))
}

// newSession creates a session for user ("" for anonymous), deleting old
// if it is not "", and sets the cookie (replacing one set earlier in this
// response).
func (a *App) newSession(w http.ResponseWriter, old, user string) string {
	id := newSessionID()
	s := &session{user: user}
	if a.opts.PreLoginSession {
		s.csrf = newSessionID()
	}
	a.mu.Lock()
	if old != "" {
		delete(a.sessions, old)
	}
	a.sessions[id] = s
	a.mu.Unlock()
	w.Header().Del("Set-Cookie")
	http.SetCookie(w, &http.Cookie{
		Name:     a.cookie,
		Value:    id,
		Path:     "/",
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	})
	return id
}

// startSession creates a session for user, replacing (deleting) old if
// it is not "", and sets the cookie.
func (a *App) startSession(w http.ResponseWriter, old, user string) string {
	return a.newSession(w, old, user)
}

func (a *App) clearCookie(w http.ResponseWriter) {
	w.Header().Del("Set-Cookie")
	http.SetCookie(w, &http.Cookie{
		Name:     a.cookie,
		Value:    "",
		Path:     "/",
		MaxAge:   -1, // Max-Age=0
		Expires:  time.Unix(1, 0),
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	})
}

// --- login ------------------------------------------------------------

// checkPassword reports whether user exists and password is theirs.
func (a *App) checkPassword(user, password string) bool {
	want, ok := a.users[user]
	if !ok {
		want = "\x00no such user"
	}
	eq := subtle.ConstantTimeCompare([]byte(want), []byte(password)) == 1
	return ok && eq && user != ""
}

// safeNext returns next if it is a local path (a single leading "/",
// no scheme, host, backslash or control character), "" otherwise.
func safeNext(next string) string {
	if next == "" || next[0] != '/' || strings.HasPrefix(next, "//") {
		return ""
	}
	for _, c := range next {
		if c == '\\' || c < 0x20 || c == 0x7f {
			return ""
		}
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || !strings.HasPrefix(u.Path, "/") {
		return ""
	}
	return next
}

type credentials struct {
	Username string `json:"username"`
	Password string `json:"password"`
	Next     string `json:"next,omitempty"`
	CSRF     string `json:"csrf,omitempty"`
	Do       string `json:"do,omitempty"`
}

// input is a parsed POST body.
type input struct {
	isJSON bool
	creds  credentials
	form   func(name string) string // form bodies: a field by name
}

// get returns a field of the body: username, password, next, csrf, do,
// email. In an ArrayLoginForm username and password are
// login[username] and login[password].
func (in *input) get(name string) string {
	if in.isJSON {
		switch name {
		case "username":
			return in.creds.Username
		case "password":
			return in.creds.Password
		case "next":
			return in.creds.Next
		case "csrf":
			return in.creds.CSRF
		case "do":
			return in.creds.Do
		}
		return ""
	}
	return in.form(name)
}

// readInput parses a POST body as JSON, urlencoded or multipart. It
// reports ok == false after answering the request itself.
func (a *App) readInput(w http.ResponseWriter, r *http.Request) (*input, bool) {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	in := &input{}
	switch mediaType {
	case "application/json":
		in.isJSON = true
		dec := json.NewDecoder(r.Body)
		if err := dec.Decode(&in.creds); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]any{"ok": false, "error": "malformed JSON body"})
			return nil, false
		}
		return in, true
	case "application/x-www-form-urlencoded", "multipart/form-data":
	default:
		w.Header().Set("Accept-Post", "application/x-www-form-urlencoded, multipart/form-data, application/json")
		http.Error(w, "unsupported Content-Type", http.StatusUnsupportedMediaType)
		return nil, false
	}
	fieldName := func(name string) string {
		if a.opts.ArrayLoginForm && (name == "username" || name == "password") {
			return "login[" + name + "]"
		}
		return name
	}
	if a.opts.PHPCookies {
		vars, ok := phpPostBody(w, r)
		if !ok {
			return nil, false
		}
		in.form = func(name string) string {
			if a.opts.ArrayLoginForm && (name == "username" || name == "password") {
				v, _ := vars.str("login", name)
				return v
			}
			v, _ := vars.str(name)
			return v
		}
		return in, true
	}
	if mediaType == "multipart/form-data" {
		if err := r.ParseMultipartForm(maxBody); err != nil {
			http.Error(w, "malformed multipart body", http.StatusBadRequest)
			return nil, false
		}
		mf := r.MultipartForm
		in.form = func(name string) string {
			if v := mf.Value[fieldName(name)]; len(v) > 0 {
				return v[0]
			}
			return ""
		}
		_ = mf.RemoveAll()
		return in, true
	}
	if err := r.ParseForm(); err != nil {
		http.Error(w, "malformed form body", http.StatusBadRequest)
		return nil, false
	}
	in.form = func(name string) string { return r.PostFormValue(fieldName(name)) }
	return in, true
}

// csrfOK reports whether the body carries the session's CSRF token (or
// the app has no CSRF tokens).
func (a *App) csrfOK(r *http.Request, in *input) bool {
	if !a.opts.PreLoginSession {
		return true
	}
	_, s := a.anySession(r)
	token := in.get("csrf")
	if token == "" {
		token = r.Header.Get("X-CSRF-Token")
	}
	return s != nil && s.csrf != "" && subtle.ConstantTimeCompare([]byte(s.csrf), []byte(token)) == 1
}

func (a *App) login(w http.ResponseWriter, r *http.Request, in *input) {
	creds := credentials{Username: in.get("username"), Password: in.get("password"), Next: in.get("next")}
	if creds.Next == "" {
		creds.Next = r.URL.Query().Get("next")
	}
	csrfOK := a.csrfOK(r, in)
	if !csrfOK || !a.checkPassword(creds.Username, creds.Password) {
		msg := "Invalid username or password."
		if !csrfOK {
			msg = "Your session expired. Please sign in again."
		}
		if old, s := a.anySession(r); a.opts.PreLoginSession && (s == nil || s.user == "") {
			// A fresh anonymous session after a failed login (a user
			// already logged in stays logged in).
			id := a.newSession(w, old, "")
			*r = *r.WithContext(contextWith(r, id))
		}
		if in.isJSON {
			writeJSON(w, http.StatusUnauthorized, map[string]any{"ok": false, "error": "invalid username or password"})
			return
		}
		status := a.opts.FailedLoginStatus
		if status == 0 {
			status = http.StatusOK
		}
		if status >= 300 && status < 400 {
			sep := "?"
			if strings.Contains(a.links.Login, "?") {
				sep = "&"
			}
			http.Redirect(w, r, a.links.Login+sep+"error=1", status)
			return
		}
		a.loginForm(w, r, status, msg, creds.Username, in)
		return
	}

	oldID, old := a.anySession(r) // no session fixation: the old ID dies
	if a.opts.KeepSessionIDAtLogin && old != nil {
		// Old PHP: the pre-login session simply becomes logged in, and
		// the browser keeps its cookie (no Set-Cookie). The cookie set
		// earlier in this response, if any, names this same session.
		a.mu.Lock()
		old.user = creds.Username
		a.mu.Unlock()
	} else {
		a.startSession(w, oldID, creds.Username)
	}
	if in.isJSON {
		writeJSON(w, http.StatusOK, map[string]any{"ok": true, "user": creds.Username})
		return
	}
	next := safeNext(creds.Next)
	if next == "" {
		next = a.links.Home
	}
	http.Redirect(w, r, next, http.StatusFound)
}

func (a *App) loginForm(w http.ResponseWriter, r *http.Request, status int, errMsg, username string, in *input) {
	_, user, _ := a.session(r)
	next := r.URL.Query().Get("next")
	if in != nil && in.get("next") != "" {
		next = in.get("next")
	}
	if next != "" && safeNext(next) != next {
		next = ""
	}
	p := a.page(r, page{
		Title:    "Sign in",
		User:     user,
		Error:    errMsg,
		Username: username,
		Next:     next,
	})
	a.render(w, status, "login", p)
}

// --- pages ------------------------------------------------------------

// requireLogin returns the session, or redirects to the login page and
// returns ok == false.
func (a *App) requireLogin(w http.ResponseWriter, r *http.Request) (id, user string, ok bool) {
	id, user, ok = a.session(r)
	if !ok {
		loc := a.links.Login
		if a.opts.FrontController {
			if pg := r.URL.Query().Get("page"); pg != "" && pg != "home" && pg != "rotate" {
				loc += "&next=" + url.QueryEscape(r.URL.RequestURI())
			}
		} else if r.URL.Path != "/" && r.URL.Path != "/rotate" {
			loc += "?next=" + url.QueryEscape(r.URL.RequestURI())
		}
		http.Redirect(w, r, loc, http.StatusFound)
	}
	return id, user, ok
}

func (a *App) home(w http.ResponseWriter, r *http.Request) {
	_, user, ok := a.requireLogin(w, r)
	if !ok {
		return
	}
	p := a.page(r, page{
		Title:        "Home",
		User:         user,
		GateUser:     r.Header.Get("X-2FA-User"),
		GateMethod:   r.Header.Get("X-2FA-Method"),
		SessionCount: a.SessionCount(),
	})
	p.GateMismatch = p.GateUser != "" && p.GateUser != user
	a.render(w, http.StatusOK, "home", p)
}

func (a *App) account(w http.ResponseWriter, r *http.Request, notice string) {
	_, user, ok := a.requireLogin(w, r)
	if !ok {
		return
	}
	a.render(w, http.StatusOK, "account", a.page(r, page{
		Title:  "Account settings",
		User:   user,
		Email:  a.EmailOf(user),
		Notice: notice,
	}))
}

// saveEmail is the account form (PreLoginSession): a CSRF-protected
// change of the user's e-mail address.
func (a *App) saveEmail(w http.ResponseWriter, r *http.Request, in *input) {
	_, user, ok := a.requireLogin(w, r)
	if !ok {
		return
	}
	if !a.csrfOK(r, in) {
		http.Error(w, "invalid CSRF token", http.StatusForbidden)
		return
	}
	email := strings.TrimSpace(in.get("email"))
	if email == "" || len(email) > 200 {
		http.Error(w, "missing e-mail address", http.StatusBadRequest)
		return
	}
	a.mu.Lock()
	a.emails[user] = email
	a.mu.Unlock()
	a.account(w, r, "Saved.")
}

func (a *App) rotate(w http.ResponseWriter, r *http.Request) {
	old, user, ok := a.requireLogin(w, r)
	if !ok {
		return
	}
	a.startSession(w, old, user)
	http.Redirect(w, r, a.links.Account, http.StatusFound)
}

func (a *App) apiMe(w http.ResponseWriter, r *http.Request) {
	_, user, ok := a.session(r)
	if !ok {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "not logged in"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"user": user})
}

func (a *App) logout(w http.ResponseWriter, r *http.Request) {
	if v := a.sessionCookie(r); v != "" {
		a.mu.Lock()
		delete(a.sessions, v)
		a.mu.Unlock()
	}
	a.clearCookie(w)
	http.Redirect(w, r, a.links.Login, http.StatusFound)
}

// contextWith returns r's context marked with the session the app just
// started for it.
func contextWith(r *http.Request, id string) context.Context {
	return context.WithValue(r.Context(), newSessionKey{}, id)
}

// --- rendering --------------------------------------------------------

type page struct {
	Title        string
	User         string // the app's logged-in user, "" if none
	Error        string
	Username     string // login form: the name typed last time
	Next         string // login form: where to go after login
	GateUser     string
	GateMethod   string
	GateMismatch bool
	SessionCount int
	Email        string
	Path         string
	Notice       string // account form: "Saved." after a change
	L            links  // the app's URLs
	CSRF         string // the session's CSRF token (PreLoginSession)
	UserField    string // the login form's field names
	PassField    string
	AccountForm  bool // show the account form (PreLoginSession, FrontController)
}

// page fills in what every page needs: links, field names, CSRF token.
func (a *App) page(r *http.Request, p page) page {
	p.L = a.links
	p.AccountForm = a.opts.PreLoginSession || a.opts.FrontController
	p.UserField, p.PassField = "username", "password"
	if a.opts.ArrayLoginForm {
		p.UserField, p.PassField = "login[username]", "login[password]"
	}
	if a.opts.PreLoginSession {
		if _, s := a.anySession(r); s != nil {
			a.mu.Lock()
			p.CSRF = s.csrf
			a.mu.Unlock()
		}
	}
	return p
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (a *App) render(w http.ResponseWriter, status int, name string, p page) {
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, name, p); err != nil {
		http.Error(w, "template error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	w.WriteHeader(status)
	_, _ = io.Copy(w, &buf)
}

var pages = template.Must(template.New("").Parse(`
{{define "top"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}} · Legacy Demo App</title>
<style>
body{margin:0;font-family:Georgia,"Times New Roman",serif;background:#fbf8f1;color:#2b2b2b;line-height:1.5}
.bar{background:#2f6b3a;color:#fff;padding:.6rem 1rem;display:flex;justify-content:space-between;align-items:center;border-bottom:4px solid #c9a227}
.bar b{font-size:1.15rem;letter-spacing:.02em}.bar a{color:#fff}
main{max-width:34rem;margin:2rem auto;padding:0 1rem}
.box{background:#fff;border:1px solid #d8d2c0;padding:1rem 1.25rem;border-radius:4px}
label{display:block;margin:.6rem 0 .2rem}input[type=text],input[type=password]{width:100%;box-sizing:border-box;padding:.4rem;border:1px solid #aaa;font:inherit}
button{margin-top:1rem;padding:.45rem 1.2rem;background:#2f6b3a;color:#fff;border:0;border-radius:3px;font:inherit;cursor:pointer}
.err{background:#fbe3e1;border:1px solid #d9534f;padding:.5rem .75rem;margin-bottom:.75rem}
.warn{background:#fff3cd;border:1px solid #c9a227;padding:.5rem .75rem}
.note{color:#666;font-size:.9rem}nav a{margin-right:1rem}
table{border-collapse:collapse}td{padding:.2rem .8rem .2rem 0}
</style></head><body>
<div class="bar"><b>Legacy Demo App</b>{{if .User}}<span>{{.User}} · <a href="{{.L.Logout}}">Log out</a></span>{{end}}</div>
<main>{{end}}

{{define "bottom"}}</main></body></html>
{{end}}

{{define "login"}}{{template "top" .}}
<h1>Sign in</h1>
{{if .User}}<p class="warn">You are already signed in as <strong>{{.User}}</strong>. <a href="{{.L.Home}}">Continue to the app</a></p>{{end}}
<div class="box">
{{if .Error}}<div class="err" role="alert">{{.Error}}</div>{{end}}
<form method="post" action="{{.L.Login}}">
{{if .Next}}<input type="hidden" name="next" value="{{.Next}}">{{end}}
{{if .CSRF}}<input type="hidden" name="csrf" value="{{.CSRF}}">{{end}}
<label for="username">Username</label>
<input type="text" id="username" name="{{.UserField}}" value="{{.Username}}" autocomplete="username" autofocus required>
<label for="password">Password</label>
<input type="password" id="password" name="{{.PassField}}" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form>
</div>
<p class="note">Demo users: alice / wonderland, bob / builder</p>
{{template "bottom" .}}{{end}}

{{define "home"}}{{template "top" .}}
<h1>Hello, {{.User}}</h1>
<nav><a href="{{.L.Account}}">Account</a><a href="{{.L.Rotate}}">Rotate session ID</a><a href="{{.L.Logout}}">Log out</a></nav>
<div class="box" style="margin-top:1rem">
{{if .GateUser}}<p id="gate">Two-factor gate passed as <strong>{{.GateUser}}</strong>{{if .GateMethod}} via <strong>{{.GateMethod}}</strong>{{end}}.</p>
{{if .GateMismatch}}<p class="warn">The gate's user ({{.GateUser}}) is not the app's user ({{.User}}).</p>{{end}}
{{else}}<p id="gate">No two-factor headers (X-2FA-User / X-2FA-Method): this request did not come through the gate.</p>{{end}}
<p class="note">Live sessions in the app: {{.SessionCount}}</p>
</div>
{{template "bottom" .}}{{end}}

{{define "account"}}{{template "top" .}}
<h1>Account settings for {{.User}}</h1>
<nav><a href="{{.L.Home}}">Home</a><a href="{{.L.Rotate}}">Rotate session ID</a><a href="{{.L.Logout}}">Log out</a></nav>
<div class="box" style="margin-top:1rem"><table>
<tr><td>Username</td><td>{{.User}}</td></tr>
<tr><td>E-mail</td><td>{{.Email}}</td></tr>
<tr><td>Plan</td><td>Legacy Gold (since 2009)</td></tr>
<tr><td>Newsletter</td><td>subscribed</td></tr>
</table></div>
{{if .AccountForm}}<div class="box" style="margin-top:1rem">{{if .Notice}}<p id="notice">{{.Notice}}</p>{{end}}
<form method="post" action="{{.L.Account}}">
{{if .CSRF}}<input type="hidden" name="csrf" value="{{.CSRF}}">{{end}}
<label for="email">E-mail</label>
<input type="text" id="email" name="email" value="{{.Email}}">
<button type="submit">Save</button>
</form></div>{{end}}
{{template "bottom" .}}{{end}}

{{define "notfound"}}{{template "top" .}}
<h1>Not found</h1><p>There is no page at <code>{{.Path}}</code>. <a href="{{.L.Home}}">Home</a></p>
{{template "bottom" .}}{{end}}
`))
