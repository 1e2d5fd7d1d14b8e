// Package demoapp is a small "legacy" web application with its own password
// login and server-side sessions, used to demonstrate and test caddy-2fa's
// app_login mode. It behaves like a classic PHP or Java application: a
// login form that POSTs username and password, a random session ID in a
// cookie (DEMOSESSID), sessions kept in memory until logout.
//
// It is a DEMO for caddy-2fa and nothing else: passwords are kept in plain
// text in memory, there is no CSRF protection, no rate limiting and no
// session expiry. Never use it to protect anything.
package demoapp

import (
	"bytes"
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

// Options configures an App.
type Options struct {
	// Users maps user names to plain-text passwords. nil means the demo
	// users alice / wonderland and bob / builder; an empty, non-nil map
	// means nobody can log in.
	Users map[string]string
	// CookieName is the session cookie's name; "" means "DEMOSESSID".
	CookieName string
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

	mu       sync.Mutex
	sessions map[string]string // session ID → user
}

// New returns an App with no sessions.
func New(opts Options) *App {
	users := opts.Users
	if users == nil {
		users = DemoUsers()
	}
	a := &App{
		users:    make(map[string]string, len(users)),
		cookie:   opts.CookieName,
		sessions: make(map[string]string),
	}
	for u, p := range users {
		a.users[u] = p
	}
	if a.cookie == "" {
		a.cookie = DefaultCookieName
	}
	return a
}

// CookieName returns the name of the session cookie.
func (a *App) CookieName() string { return a.cookie }

// SessionCount returns the number of live sessions.
func (a *App) SessionCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.sessions)
}

// UserOf returns the user a session ID belongs to, if the session exists.
func (a *App) UserOf(sessionID string) (string, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	u, ok := a.sessions[sessionID]
	return u, ok
}

// ServeHTTP implements http.Handler.
func (a *App) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	switch r.URL.Path {
	case "/login":
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			a.loginForm(w, r, http.StatusOK, "", "")
		case http.MethodPost:
			a.login(w, r)
		default:
			methodNotAllowed(w, "GET, HEAD, POST")
		}
	case "/":
		if a.onlyGet(w, r) {
			a.home(w, r)
		}
	case "/account":
		if a.onlyGet(w, r) {
			a.account(w, r)
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
		a.render(w, http.StatusNotFound, "notfound", page{Title: "Not found", Path: r.URL.Path})
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

// session returns the request's session ID and user, if it has a live one.
func (a *App) session(r *http.Request) (id, user string, ok bool) {
	c, err := r.Cookie(a.cookie)
	if err != nil || c.Value == "" {
		return "", "", false
	}
	user, ok = a.UserOf(c.Value)
	if !ok {
		return "", "", false
	}
	return c.Value, user, true
}

// startSession creates a session for user, replacing (deleting) old if
// it is not "", and sets the cookie.
func (a *App) startSession(w http.ResponseWriter, old, user string) string {
	id := newSessionID()
	a.mu.Lock()
	if old != "" {
		delete(a.sessions, old)
	}
	a.sessions[id] = user
	a.mu.Unlock()
	http.SetCookie(w, &http.Cookie{
		Name:     a.cookie,
		Value:    id,
		Path:     "/",
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	})
	return id
}

func (a *App) clearCookie(w http.ResponseWriter) {
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
// no scheme, host, backslash or control character), "/" otherwise.
func safeNext(next string) string {
	if next == "" || next[0] != '/' || strings.HasPrefix(next, "//") {
		return "/"
	}
	for _, c := range next {
		if c == '\\' || c < 0x20 || c == 0x7f {
			return "/"
		}
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || !strings.HasPrefix(u.Path, "/") {
		return "/"
	}
	return next
}

type credentials struct {
	Username string `json:"username"`
	Password string `json:"password"`
	Next     string `json:"next,omitempty"`
}

func (a *App) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var creds credentials
	isJSON := false
	switch mediaType {
	case "application/json":
		isJSON = true
		dec := json.NewDecoder(r.Body)
		if err := dec.Decode(&creds); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]any{"ok": false, "error": "malformed JSON body"})
			return
		}
	case "application/x-www-form-urlencoded":
		if err := r.ParseForm(); err != nil {
			http.Error(w, "malformed form body", http.StatusBadRequest)
			return
		}
	case "multipart/form-data":
		if err := r.ParseMultipartForm(maxBody); err != nil {
			http.Error(w, "malformed multipart body", http.StatusBadRequest)
			return
		}
		defer r.MultipartForm.RemoveAll()
	default:
		w.Header().Set("Accept-Post", "application/x-www-form-urlencoded, multipart/form-data, application/json")
		http.Error(w, "unsupported Content-Type", http.StatusUnsupportedMediaType)
		return
	}
	if !isJSON {
		creds.Username = r.PostFormValue("username")
		creds.Password = r.PostFormValue("password")
		creds.Next = r.PostFormValue("next")
	}
	if creds.Next == "" {
		creds.Next = r.URL.Query().Get("next")
	}

	if !a.checkPassword(creds.Username, creds.Password) {
		if isJSON {
			writeJSON(w, http.StatusUnauthorized, map[string]any{"ok": false, "error": "invalid username or password"})
			return
		}
		a.loginForm(w, r, http.StatusOK, "Invalid username or password.", creds.Username)
		return
	}

	old, _, _ := a.session(r) // no session fixation: the old ID dies
	a.startSession(w, old, creds.Username)
	if isJSON {
		writeJSON(w, http.StatusOK, map[string]any{"ok": true, "user": creds.Username})
		return
	}
	http.Redirect(w, r, safeNext(creds.Next), http.StatusFound)
}

func (a *App) loginForm(w http.ResponseWriter, r *http.Request, status int, errMsg, username string) {
	_, user, _ := a.session(r)
	next := r.URL.Query().Get("next")
	if r.Method == http.MethodPost && r.PostForm != nil && r.PostFormValue("next") != "" {
		next = r.PostFormValue("next")
	}
	if next != "" && safeNext(next) != next {
		next = ""
	}
	a.render(w, status, "login", page{
		Title:    "Sign in",
		User:     user,
		Error:    errMsg,
		Username: username,
		Next:     next,
	})
}

// --- pages ------------------------------------------------------------

// requireLogin returns the session, or redirects to /login and returns
// ok == false.
func (a *App) requireLogin(w http.ResponseWriter, r *http.Request) (id, user string, ok bool) {
	id, user, ok = a.session(r)
	if !ok {
		loc := "/login"
		if r.URL.Path != "/" && r.URL.Path != "/rotate" {
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
	p := page{
		Title:        "Home",
		User:         user,
		GateUser:     r.Header.Get("X-2FA-User"),
		GateMethod:   r.Header.Get("X-2FA-Method"),
		SessionCount: a.SessionCount(),
	}
	p.GateMismatch = p.GateUser != "" && p.GateUser != user
	a.render(w, http.StatusOK, "home", p)
}

func (a *App) account(w http.ResponseWriter, r *http.Request) {
	_, user, ok := a.requireLogin(w, r)
	if !ok {
		return
	}
	a.render(w, http.StatusOK, "account", page{
		Title: "Account settings",
		User:  user,
		Email: user + "@example.com",
	})
}

func (a *App) rotate(w http.ResponseWriter, r *http.Request) {
	old, user, ok := a.requireLogin(w, r)
	if !ok {
		return
	}
	a.startSession(w, old, user)
	http.Redirect(w, r, "/account", http.StatusFound)
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
	if c, err := r.Cookie(a.cookie); err == nil && c.Value != "" {
		a.mu.Lock()
		delete(a.sessions, c.Value)
		a.mu.Unlock()
	}
	a.clearCookie(w)
	http.Redirect(w, r, "/login", http.StatusFound)
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
<div class="bar"><b>Legacy Demo App</b>{{if .User}}<span>{{.User}} · <a href="/logout">Log out</a></span>{{end}}</div>
<main>{{end}}

{{define "bottom"}}</main></body></html>
{{end}}

{{define "login"}}{{template "top" .}}
<h1>Sign in</h1>
{{if .User}}<p class="warn">You are already signed in as <strong>{{.User}}</strong>. <a href="/">Continue to the app</a></p>{{end}}
<div class="box">
{{if .Error}}<div class="err" role="alert">{{.Error}}</div>{{end}}
<form method="post" action="/login">
{{if .Next}}<input type="hidden" name="next" value="{{.Next}}">{{end}}
<label for="username">Username</label>
<input type="text" id="username" name="username" value="{{.Username}}" autocomplete="username" autofocus required>
<label for="password">Password</label>
<input type="password" id="password" name="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form>
</div>
<p class="note">Demo users: alice / wonderland, bob / builder</p>
{{template "bottom" .}}{{end}}

{{define "home"}}{{template "top" .}}
<h1>Hello, {{.User}}</h1>
<nav><a href="/account">Account</a><a href="/rotate">Rotate session ID</a><a href="/logout">Log out</a></nav>
<div class="box" style="margin-top:1rem">
{{if .GateUser}}<p id="gate">Two-factor gate passed as <strong>{{.GateUser}}</strong>{{if .GateMethod}} via <strong>{{.GateMethod}}</strong>{{end}}.</p>
{{if .GateMismatch}}<p class="warn">The gate's user ({{.GateUser}}) is not the app's user ({{.User}}).</p>{{end}}
{{else}}<p id="gate">No two-factor headers (X-2FA-User / X-2FA-Method): this request did not come through the gate.</p>{{end}}
<p class="note">Live sessions in the app: {{.SessionCount}}</p>
</div>
{{template "bottom" .}}{{end}}

{{define "account"}}{{template "top" .}}
<h1>Account settings for {{.User}}</h1>
<nav><a href="/">Home</a><a href="/rotate">Rotate session ID</a><a href="/logout">Log out</a></nav>
<div class="box" style="margin-top:1rem"><table>
<tr><td>Username</td><td>{{.User}}</td></tr>
<tr><td>E-mail</td><td>{{.Email}}</td></tr>
<tr><td>Plan</td><td>Legacy Gold (since 2009)</td></tr>
<tr><td>Newsletter</td><td>subscribed</td></tr>
</table></div>
{{template "bottom" .}}{{end}}

{{define "notfound"}}{{template "top" .}}
<h1>Not found</h1><p>There is no page at <code>{{.Path}}</code>. <a href="/">Home</a></p>
{{template "bottom" .}}{{end}}
`))
