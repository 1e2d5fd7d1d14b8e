package demoapp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// --- helpers ----------------------------------------------------------

type client struct {
	t   *testing.T
	srv *httptest.Server
	app *App
	c   *http.Client
}

func newClient(t *testing.T, opts Options) *client {
	t.Helper()
	app := New(opts)
	srv := httptest.NewServer(app)
	t.Cleanup(srv.Close)
	return clientFor(t, srv, app)
}

// clientFor returns a client with its own cookie jar that does not follow
// redirects.
func clientFor(t *testing.T, srv *httptest.Server, app *App) *client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &client{t: t, srv: srv, app: app, c: &http.Client{
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

type result struct {
	status int
	header http.Header
	body   string
	resp   *http.Response
}

// sessionCookie returns the Set-Cookie for the session cookie in the
// response, nil if none.
func (r result) sessionCookie(name string) *http.Cookie {
	for _, c := range r.resp.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func (c *client) do(req *http.Request) result {
	c.t.Helper()
	resp, err := c.c.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return result{status: resp.StatusCode, header: resp.Header, body: string(b), resp: resp}
}

func (c *client) req(method, path string, body io.Reader, contentType string) *http.Request {
	c.t.Helper()
	req, err := http.NewRequest(method, c.srv.URL+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return req
}

func (c *client) get(path string) result {
	c.t.Helper()
	return c.do(c.req(http.MethodGet, path, nil, ""))
}

func (c *client) postForm(path string, v url.Values) result {
	c.t.Helper()
	return c.do(c.req(http.MethodPost, path, strings.NewReader(v.Encode()), "application/x-www-form-urlencoded"))
}

func (c *client) postJSON(path string, v any) result {
	c.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		c.t.Fatal(err)
	}
	return c.do(c.req(http.MethodPost, path, bytes.NewReader(b), "application/json"))
}

func (c *client) postMultipart(path string, v map[string]string) result {
	c.t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, val := range v {
		if err := mw.WriteField(k, val); err != nil {
			c.t.Fatal(err)
		}
	}
	if err := mw.Close(); err != nil {
		c.t.Fatal(err)
	}
	return c.do(c.req(http.MethodPost, path, &buf, mw.FormDataContentType()))
}

// jarSession returns the session cookie's value in the jar, "" if none.
func (c *client) jarSession() string {
	u, _ := url.Parse(c.srv.URL)
	for _, ck := range c.c.Jar.Cookies(u) {
		if ck.Name == c.app.CookieName() {
			return ck.Value
		}
	}
	return ""
}

// getWithCookie sends GET path with exactly the given session cookie and
// no jar.
func (c *client) getWithCookie(path, id string) result {
	c.t.Helper()
	req := c.req(http.MethodGet, path, nil, "")
	req.AddCookie(&http.Cookie{Name: c.app.CookieName(), Value: id})
	resp, err := (&http.Client{CheckRedirect: c.c.CheckRedirect}).Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return result{status: resp.StatusCode, header: resp.Header, body: string(b), resp: resp}
}

var sessionIDRe = regexp.MustCompile(`^[0-9a-f]{32}$`)

// checkSessionSetCookie checks the attributes of a fresh session cookie
// and returns its value.
func checkSessionSetCookie(t *testing.T, r result, name string) string {
	t.Helper()
	ck := r.sessionCookie(name)
	if ck == nil {
		t.Fatalf("no %s Set-Cookie; headers %v", name, r.header)
	}
	if !sessionIDRe.MatchString(ck.Value) {
		t.Errorf("session ID %q is not 128 bits of hex", ck.Value)
	}
	if ck.Path != "/" || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Secure {
		t.Errorf("cookie attributes: path %q httponly %v samesite %v secure %v; raw %q",
			ck.Path, ck.HttpOnly, ck.SameSite, ck.Secure, r.header.Values("Set-Cookie"))
	}
	if ck.MaxAge != 0 || !ck.Expires.IsZero() {
		t.Errorf("session cookie should be a browser-session cookie, got MaxAge %d Expires %v", ck.MaxAge, ck.Expires)
	}
	return ck.Value
}

func wantRedirect(t *testing.T, r result, loc string) {
	t.Helper()
	if r.status != http.StatusFound || r.header.Get("Location") != loc {
		t.Fatalf("got %d Location %q, want 302 %q", r.status, r.header.Get("Location"), loc)
	}
}

func wantNoSetCookie(t *testing.T, r result) {
	t.Helper()
	if sc := r.header.Values("Set-Cookie"); len(sc) != 0 {
		t.Fatalf("unexpected Set-Cookie %q", sc)
	}
}

// --- login ------------------------------------------------------------

func TestLoginBodyTypes(t *testing.T) {
	for _, tc := range []struct {
		name  string
		login func(c *client) result
		check func(t *testing.T, r result)
	}{
		{"form", func(c *client) result {
			return c.postForm("/login", url.Values{"username": {"alice"}, "password": {"wonderland"}})
		}, func(t *testing.T, r result) { wantRedirect(t, r, "/") }},
		{"multipart", func(c *client) result {
			return c.postMultipart("/login", map[string]string{"username": "alice", "password": "wonderland"})
		}, func(t *testing.T, r result) { wantRedirect(t, r, "/") }},
		{"json", func(c *client) result {
			return c.postJSON("/login", map[string]string{"username": "alice", "password": "wonderland"})
		}, func(t *testing.T, r result) {
			if r.status != http.StatusOK {
				t.Fatalf("status %d, want 200", r.status)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			var got map[string]any
			if err := json.Unmarshal([]byte(r.body), &got); err != nil {
				t.Fatalf("body %q: %v", r.body, err)
			}
			if got["ok"] != true || got["user"] != "alice" || len(got) != 2 {
				t.Fatalf("body %q, want {\"ok\":true,\"user\":\"alice\"}", r.body)
			}
		}},
		{"json with charset", func(c *client) result {
			b := `{"username":"alice","password":"wonderland"}`
			return c.do(c.req(http.MethodPost, "/login", strings.NewReader(b), "application/json; charset=utf-8"))
		}, func(t *testing.T, r result) {
			if r.status != http.StatusOK || !strings.Contains(r.body, `"user":"alice"`) {
				t.Fatalf("got %d %q", r.status, r.body)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClient(t, Options{})
			r := tc.login(c)
			tc.check(t, r)
			id := checkSessionSetCookie(t, r, DefaultCookieName)
			if u, ok := c.app.UserOf(id); !ok || u != "alice" {
				t.Fatalf("UserOf(%q) = %q, %v", id, u, ok)
			}
			if n := c.app.SessionCount(); n != 1 {
				t.Fatalf("SessionCount %d, want 1", n)
			}
			if c.jarSession() != id {
				t.Fatalf("jar holds %q, want %q", c.jarSession(), id)
			}
			home := c.get("/")
			if home.status != http.StatusOK || !strings.Contains(home.body, "Hello, alice") {
				t.Fatalf("GET / after login: %d %q", home.status, home.body)
			}
			me := c.get("/api/me")
			if me.status != http.StatusOK || strings.TrimSpace(me.body) != `{"user":"alice"}` {
				t.Fatalf("GET /api/me: %d %q", me.status, me.body)
			}
		})
	}
}

func TestWrongPasswordSetsNoCookie(t *testing.T) {
	for _, tc := range []struct{ user, pass string }{
		{"alice", "builder"},
		{"alice", ""},
		{"alice", "wonderland "},
		{"bob", "wonderland"},
		{"mallory", "wonderland"},
		{"", ""},
	} {
		c := newClient(t, Options{})
		r := c.postForm("/login", url.Values{"username": {tc.user}, "password": {tc.pass}})
		if r.status != http.StatusOK {
			t.Fatalf("%q/%q form: status %d, want 200", tc.user, tc.pass, r.status)
		}
		wantNoSetCookie(t, r)
		if !strings.Contains(r.body, "Invalid username or password.") || !strings.Contains(r.body, `name="password"`) {
			t.Fatalf("%q/%q: no error message or no form: %q", tc.user, tc.pass, r.body)
		}
		r = c.postMultipart("/login", map[string]string{"username": tc.user, "password": tc.pass})
		if r.status != http.StatusOK || !strings.Contains(r.body, "Invalid username or password.") {
			t.Fatalf("%q/%q multipart: %d %q", tc.user, tc.pass, r.status, r.body)
		}
		wantNoSetCookie(t, r)
		r = c.postJSON("/login", map[string]string{"username": tc.user, "password": tc.pass})
		if r.status != http.StatusUnauthorized || !strings.Contains(r.body, `"ok":false`) {
			t.Fatalf("%q/%q JSON: %d %q", tc.user, tc.pass, r.status, r.body)
		}
		wantNoSetCookie(t, r)
		if n := c.app.SessionCount(); n != 0 {
			t.Fatalf("SessionCount %d after failed logins", n)
		}
		if got := c.get("/"); got.status != http.StatusFound {
			t.Fatalf("GET / after failed login: %d", got.status)
		}
	}
}

func TestWrongPasswordKeepsUsernameEscaped(t *testing.T) {
	c := newClient(t, Options{})
	r := c.postForm("/login", url.Values{"username": {`"><script>x()</script>`}, "password": {"no"}})
	if strings.Contains(r.body, "<script>x()") {
		t.Fatalf("username not escaped: %q", r.body)
	}
	if !strings.Contains(r.body, "&lt;script&gt;x()") && !strings.Contains(r.body, "&#34;&gt;&lt;script&gt;") {
		t.Fatalf("escaped username missing: %q", r.body)
	}
}

func TestBadLoginRequests(t *testing.T) {
	c := newClient(t, Options{})
	r := c.do(c.req(http.MethodPost, "/login", strings.NewReader("username=alice&password=wonderland"), "text/plain"))
	if r.status != http.StatusUnsupportedMediaType {
		t.Fatalf("text/plain: %d", r.status)
	}
	wantNoSetCookie(t, r)
	r = c.do(c.req(http.MethodPost, "/login", strings.NewReader("username=alice&password=wonderland"), ""))
	if r.status != http.StatusUnsupportedMediaType {
		t.Fatalf("no Content-Type: %d", r.status)
	}
	r = c.do(c.req(http.MethodPost, "/login", strings.NewReader(`{"username":`), "application/json"))
	if r.status != http.StatusBadRequest {
		t.Fatalf("malformed JSON: %d", r.status)
	}
	wantNoSetCookie(t, r)
	r = c.do(c.req(http.MethodPut, "/login", nil, ""))
	if r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") == "" {
		t.Fatalf("PUT /login: %d Allow %q", r.status, r.header.Get("Allow"))
	}
	if c.app.SessionCount() != 0 {
		t.Fatal("a bad request created a session")
	}
}

func TestLoginReplacesOldSession(t *testing.T) {
	c := newClient(t, Options{})
	first := checkSessionSetCookie(t, c.postForm("/login", url.Values{"username": {"alice"}, "password": {"wonderland"}}), DefaultCookieName)
	r := c.postForm("/login", url.Values{"username": {"bob"}, "password": {"builder"}})
	second := checkSessionSetCookie(t, r, DefaultCookieName)
	if first == second {
		t.Fatal("login reused the session ID")
	}
	if _, ok := c.app.UserOf(first); ok {
		t.Fatal("the old session survived a new login")
	}
	if u, _ := c.app.UserOf(second); u != "bob" {
		t.Fatalf("new session user %q", u)
	}
	if n := c.app.SessionCount(); n != 1 {
		t.Fatalf("SessionCount %d, want 1", n)
	}
}

func TestLoginPage(t *testing.T) {
	c := newClient(t, Options{})
	r := c.get("/login")
	if r.status != http.StatusOK {
		t.Fatalf("status %d", r.status)
	}
	for _, want := range []string{
		`name="username"`, `name="password"`, `type="submit"`, `action="/login"`,
		"Demo users: alice / wonderland, bob / builder", "Legacy Demo App",
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("login page lacks %q", want)
		}
	}
	if strings.Contains(r.body, `href="/">Continue`) {
		t.Error("logged-out login page links to the app")
	}
	wantNoSetCookie(t, r)

	c.postForm("/login", url.Values{"username": {"alice"}, "password": {"wonderland"}})
	r = c.get("/login")
	if r.status != http.StatusOK || !strings.Contains(r.body, `<a href="/">Continue to the app</a>`) {
		t.Fatalf("logged-in login page: %d %q", r.status, r.body)
	}
}

// --- pages ------------------------------------------------------------

func TestPagesRequireLogin(t *testing.T) {
	c := newClient(t, Options{})
	wantRedirect(t, c.get("/"), "/login")
	wantRedirect(t, c.get("/account"), "/login?next=%2Faccount")
	wantRedirect(t, c.get("/rotate"), "/login")
	me := c.get("/api/me")
	if me.status != http.StatusUnauthorized || strings.TrimSpace(me.body) != `{"error":"not logged in"}` {
		t.Fatalf("/api/me: %d %q", me.status, me.body)
	}
	// A made-up session ID is no better.
	for _, p := range []string{"/", "/account"} {
		r := c.getWithCookie(p, "00112233445566778899aabbccddeeff")
		if r.status != http.StatusFound || !strings.HasPrefix(r.header.Get("Location"), "/login") {
			t.Fatalf("%s with a forged cookie: %d %q", p, r.status, r.header.Get("Location"))
		}
	}
	if c.app.SessionCount() != 0 {
		t.Fatal("visiting pages created a session")
	}

	c.postForm("/login", url.Values{"username": {"bob"}, "password": {"builder"}})
	r := c.get("/account")
	if r.status != http.StatusOK || !strings.Contains(r.body, "Account settings for bob") {
		t.Fatalf("/account: %d %q", r.status, r.body)
	}
	r = c.get("/")
	for _, want := range []string{"Hello, bob", `href="/account"`, `href="/rotate"`, `href="/logout"`} {
		if !strings.Contains(r.body, want) {
			t.Errorf("home lacks %q", want)
		}
	}
	if r := c.get("/nope"); r.status != http.StatusNotFound {
		t.Fatalf("/nope: %d", r.status)
	}
	if r := c.do(c.req(http.MethodPost, "/", nil, "")); r.status != http.StatusMethodNotAllowed {
		t.Fatalf("POST /: %d", r.status)
	}
}

func TestGateHeadersShownEscaped(t *testing.T) {
	c := newClient(t, Options{})
	c.postForm("/login", url.Values{"username": {"alice"}, "password": {"wonderland"}})

	r := c.get("/")
	if !strings.Contains(r.body, "did not come through the gate") {
		t.Fatalf("no-header notice missing: %q", r.body)
	}

	req := c.req(http.MethodGet, "/", nil, "")
	req.Header.Set("X-2FA-User", "alice")
	req.Header.Set("X-2FA-Method", "totp")
	r = c.do(req)
	if !strings.Contains(r.body, "passed as <strong>alice</strong> via <strong>totp</strong>") {
		t.Fatalf("gate line missing: %q", r.body)
	}
	if strings.Contains(r.body, "is not the app's user") {
		t.Fatal("mismatch warning for matching users")
	}

	req = c.req(http.MethodGet, "/", nil, "")
	req.Header.Set("X-2FA-User", `<img src=x onerror=alert(1)>`)
	req.Header.Set("X-2FA-Method", `<b>bold</b>`)
	r = c.do(req)
	if strings.Contains(r.body, "<img src=x") || strings.Contains(r.body, "<b>bold</b>") {
		t.Fatalf("gate headers not escaped: %q", r.body)
	}
	if !strings.Contains(r.body, "&lt;img src=x onerror=alert(1)&gt;") || !strings.Contains(r.body, "&lt;b&gt;bold&lt;/b&gt;") {
		t.Fatalf("escaped gate headers missing: %q", r.body)
	}
	if !strings.Contains(r.body, "is not the app's user (alice)") {
		t.Fatalf("mismatch warning missing: %q", r.body)
	}
}

// --- rotate and logout ------------------------------------------------

func TestRotate(t *testing.T) {
	c := newClient(t, Options{})
	old := checkSessionSetCookie(t, c.postForm("/login", url.Values{"username": {"alice"}, "password": {"wonderland"}}), DefaultCookieName)

	r := c.get("/rotate")
	wantRedirect(t, r, "/account")
	id := checkSessionSetCookie(t, r, DefaultCookieName)
	if id == old {
		t.Fatal("/rotate kept the session ID")
	}
	if c.jarSession() != id {
		t.Fatal("the jar did not take the new ID")
	}
	if _, ok := c.app.UserOf(old); ok {
		t.Fatal("old ID still valid after /rotate")
	}
	if u, ok := c.app.UserOf(id); !ok || u != "alice" {
		t.Fatalf("UserOf(new) = %q, %v", u, ok)
	}
	if n := c.app.SessionCount(); n != 1 {
		t.Fatalf("SessionCount %d, want 1", n)
	}
	if r := c.get("/account"); r.status != http.StatusOK || !strings.Contains(r.body, "Account settings for alice") {
		t.Fatalf("/account with the new ID: %d", r.status)
	}
	wantRedirect(t, c.getWithCookie("/", old), "/login")
	if r := c.getWithCookie("/api/me", old); r.status != http.StatusUnauthorized {
		t.Fatalf("/api/me with the old ID: %d", r.status)
	}
}

func TestLogout(t *testing.T) {
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		t.Run(method, func(t *testing.T) {
			c := newClient(t, Options{})
			id := checkSessionSetCookie(t, c.postForm("/login", url.Values{"username": {"bob"}, "password": {"builder"}}), DefaultCookieName)

			// A second browser, logged in as well, must not be touched.
			c2 := clientFor(t, c.srv, c.app)
			c2.postForm("/login", url.Values{"username": {"alice"}, "password": {"wonderland"}})
			if n := c.app.SessionCount(); n != 2 {
				t.Fatalf("SessionCount %d, want 2", n)
			}

			r := c.do(c.req(method, "/logout", nil, ""))
			wantRedirect(t, r, "/login")
			ck := r.sessionCookie(DefaultCookieName)
			if ck == nil {
				t.Fatal("no clearing Set-Cookie")
			}
			if ck.Value != "" || ck.MaxAge >= 0 || ck.Path != "/" {
				t.Fatalf("clearing cookie: value %q MaxAge %d path %q", ck.Value, ck.MaxAge, ck.Path)
			}
			if raw := strings.Join(r.header.Values("Set-Cookie"), "\n"); !strings.Contains(raw, "Max-Age=0") {
				t.Fatalf("raw Set-Cookie %q lacks Max-Age=0", raw)
			}
			if c.jarSession() != "" {
				t.Fatal("jar still holds the session cookie")
			}
			if _, ok := c.app.UserOf(id); ok {
				t.Fatal("session survived logout")
			}
			if n := c.app.SessionCount(); n != 1 {
				t.Fatalf("SessionCount %d, want 1 (the other browser)", n)
			}
			wantRedirect(t, c.getWithCookie("/", id), "/login")
			if r := c.getWithCookie("/api/me", id); r.status != http.StatusUnauthorized {
				t.Fatalf("/api/me with the old cookie: %d", r.status)
			}
			if r := c2.get("/"); r.status != http.StatusOK || !strings.Contains(r.body, "Hello, alice") {
				t.Fatalf("other browser logged out too: %d", r.status)
			}
			// Logging out without a session still clears and redirects.
			r = c.get("/logout")
			wantRedirect(t, r, "/login")
			if r.sessionCookie(DefaultCookieName) == nil {
				t.Fatal("no clearing Set-Cookie without a session")
			}
		})
	}
}

// --- next -------------------------------------------------------------

func TestNextRedirect(t *testing.T) {
	for _, tc := range []struct{ next, want string }{
		{"", "/"},
		{"/", "/"},
		{"/account", "/account"},
		{"/account?tab=1&x=%2F", "/account?tab=1&x=%2F"},
		{"//evil", "/"},
		{"//evil.example/path", "/"},
		{"https://evil", "/"},
		{"http://evil.example/", "/"},
		{`/\evil`, "/"},
		{`\\evil`, "/"},
		{"/\t/evil", "/"},
		{"/\n/evil", "/"},
		{"evil", "/"},
		{"javascript:alert(1)", "/"},
		{"/%zz", "/"},
	} {
		// As a form field.
		c := newClient(t, Options{})
		r := c.postForm("/login", url.Values{"username": {"alice"}, "password": {"wonderland"}, "next": {tc.next}})
		wantRedirect(t, r, tc.want)
		// As a query parameter (the form posts to /login?next=...).
		c = newClient(t, Options{})
		r = c.postForm("/login?next="+url.QueryEscape(tc.next), url.Values{"username": {"alice"}, "password": {"wonderland"}})
		wantRedirect(t, r, tc.want)
		// In a multipart form.
		c = newClient(t, Options{})
		r = c.postMultipart("/login", map[string]string{"username": "alice", "password": "wonderland", "next": tc.next})
		wantRedirect(t, r, tc.want)
	}
}

func TestNextRoundTrip(t *testing.T) {
	c := newClient(t, Options{})
	r := c.get("/account")
	wantRedirect(t, r, "/login?next=%2Faccount")
	r = c.get(r.header.Get("Location"))
	if !strings.Contains(r.body, `<input type="hidden" name="next" value="/account">`) {
		t.Fatalf("login form lacks the next field: %q", r.body)
	}
	// A failed attempt keeps it.
	r = c.postForm("/login", url.Values{"username": {"alice"}, "password": {"x"}, "next": {"/account"}})
	if !strings.Contains(r.body, `name="next" value="/account"`) {
		t.Fatalf("failed login dropped next: %q", r.body)
	}
	// An unsafe next is not echoed into the form.
	r = c.get("/login?next=" + url.QueryEscape("//evil"))
	if strings.Contains(r.body, "evil") {
		t.Fatalf("unsafe next echoed: %q", r.body)
	}
	r = c.postForm("/login", url.Values{"username": {"alice"}, "password": {"wonderland"}, "next": {"/account"}})
	wantRedirect(t, r, "/account")
}

// --- options and concurrency -------------------------------------------

func TestOptions(t *testing.T) {
	c := newClient(t, Options{Users: map[string]string{"carol": "s3cret"}, CookieName: "JSESSIONID"})
	if r := c.postForm("/login", url.Values{"username": {"alice"}, "password": {"wonderland"}}); r.status != http.StatusOK {
		t.Fatalf("a demo user logged in with custom Users: %d", r.status)
	}
	r := c.postForm("/login", url.Values{"username": {"carol"}, "password": {"s3cret"}})
	wantRedirect(t, r, "/")
	id := checkSessionSetCookie(t, r, "JSESSIONID")
	if u, _ := c.app.UserOf(id); u != "carol" {
		t.Fatalf("user %q", u)
	}
	if r.sessionCookie(DefaultCookieName) != nil {
		t.Fatal("default cookie name used")
	}

	users := map[string]string{"dave": "pw"}
	app := New(Options{Users: users})
	users["dave"] = "changed" // New copies the map
	if !app.checkPassword("dave", "pw") {
		t.Fatal("New did not copy Users")
	}
	if New(Options{Users: map[string]string{}}).checkPassword("alice", "wonderland") {
		t.Fatal("an empty Users map fell back to the demo users")
	}
}

func TestConcurrentSessions(t *testing.T) {
	app := New(Options{})
	srv := httptest.NewServer(app)
	defer srv.Close()
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := clientFor(t, srv, app)
			login := func() *http.Response {
				resp, err := c.c.PostForm(srv.URL+"/login", url.Values{"username": {"bob"}, "password": {"builder"}})
				if err != nil {
					errs <- err.Error()
					return nil
				}
				resp.Body.Close()
				return resp
			}
			if login() == nil {
				return
			}
			for _, p := range []string{"/rotate", "/account", "/api/me", "/logout"} {
				resp, err := c.c.Get(srv.URL + p)
				if err != nil {
					errs <- err.Error()
					return
				}
				resp.Body.Close()
				if p == "/api/me" && resp.StatusCode != http.StatusOK {
					errs <- "api/me " + resp.Status
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if c := app.SessionCount(); c != 0 {
		t.Fatalf("SessionCount %d after everyone logged out", c)
	}
}

// --- Caddy module -----------------------------------------------------

func TestUnmarshalCaddyfile(t *testing.T) {
	for _, in := range []string{"legacy_demo_app", "legacy_demo_app\n"} {
		var h Handler
		if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(in)); err != nil {
			t.Fatalf("%q: %v", in, err)
		}
	}
	for _, tc := range []struct{ in, wantErr string }{
		{"legacy_demo_app extra", `legacy_demo_app takes no arguments, got "extra"`},
		{"legacy_demo_app {\n users alice\n}", `legacy_demo_app: unrecognized option "users"`},
	} {
		var h Handler
		err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Fatalf("%q: error %v, want %q", tc.in, err, tc.wantErr)
		}
		// The same through the directive's parse function.
		_, err = parseCaddyfile(httpcaddyfile.Helper{Dispenser: caddyfile.NewTestDispenser(tc.in)})
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Fatalf("%q via parseCaddyfile: error %v, want %q", tc.in, err, tc.wantErr)
		}
	}
}

func TestCaddyfileAdapt(t *testing.T) {
	// legacy_demo_app is ordered before respond without a global `order`.
	in := "http://localhost:8080 {\n\trespond /health 200\n\tlegacy_demo_app\n}\n"
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(in), nil)
	if err != nil {
		t.Fatalf("adapt: %v", err)
	}
	s := string(out)
	i, j := strings.Index(s, `"handler":"legacy_demo_app"`), strings.Index(s, `"handler":"static_response"`)
	if i < 0 || j < 0 || i > j {
		t.Fatalf("legacy_demo_app not before respond: %s", s)
	}

	_, _, err = caddyconfig.GetAdapter("caddyfile").Adapt([]byte("http://localhost:8080 {\n\tlegacy_demo_app {\n\t\tfoo\n\t}\n}\n"), nil)
	if err == nil || !strings.Contains(err.Error(), `legacy_demo_app: unrecognized option "foo"`) {
		t.Fatalf("adapt with a block: %v", err)
	}
}

func TestCaddyHandlerSharedAcrossReload(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	mod, err := caddy.GetModule("http.handlers.legacy_demo_app")
	if err != nil {
		t.Fatal(err)
	}
	h1 := mod.New().(*Handler)
	if err := h1.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error {
		t.Error("legacy_demo_app called next")
		return nil
	})
	serve := func(h *Handler, req *http.Request) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		if err := h.ServeHTTP(rec, req, next); err != nil {
			t.Fatal(err)
		}
		return rec
	}

	req := httptest.NewRequest(http.MethodPost, "/login", strings.NewReader("username=alice&password=wonderland"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := serve(h1, req)
	if rec.Code != http.StatusFound {
		t.Fatalf("login: %d", rec.Code)
	}
	var id string
	for _, c := range rec.Result().Cookies() {
		if c.Name == DefaultCookieName {
			id = c.Value
		}
	}
	if id == "" {
		t.Fatal("no session cookie")
	}

	// "Reload": a new handler, provisioned from scratch, same process.
	h2 := mod.New().(*Handler)
	if err := h2.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	if h1.app != h2.app || h2.app != Shared() {
		t.Fatal("handlers do not share the App")
	}
	req = httptest.NewRequest(http.MethodGet, "/api/me", nil)
	req.AddCookie(&http.Cookie{Name: DefaultCookieName, Value: id})
	rec = serve(h2, req)
	if rec.Code != http.StatusOK || strings.TrimSpace(rec.Body.String()) != `{"user":"alice"}` {
		t.Fatalf("session lost across reload: %d %q", rec.Code, rec.Body.String())
	}

	// Unknown paths are the app's 404, not the next handler.
	rec = serve(h2, httptest.NewRequest(http.MethodGet, "/nope", nil))
	if rec.Code != http.StatusNotFound {
		t.Fatalf("/nope: %d", rec.Code)
	}
}

// --- PHP parsing --------------------------------------------------------

// phpCase is a request part and what PHP 8 puts in $_COOKIE or $_POST for
// it (documented behaviour of main/php_variables.c).
type phpCase struct {
	in   string
	want map[string]any
}

var phpCookieCases = []phpCase{
	{"a=1; a=2", map[string]any{"a": "1"}},               // first duplicate wins
	{" PHP.SESSID=x", map[string]any{"PHP_SESSID": "x"}}, // leading space dropped, '.' → '_'
	{"PHP SESSID=x", map[string]any{"PHP_SESSID": "x"}},  // ' ' → '_'
	{"PHP[SESSID=x", map[string]any{"PHP_SESSID": "x"}},  // unmatched '[' → '_'
	{"\tname=1;  other=2", map[string]any{"name": "1", "other": "2"}},
	{"wordpress.logged_in_ab=v", map[string]any{"wordpress_logged_in_ab": "v"}},
	{"wordpress[logged.in_ab=v", map[string]any{"wordpress_logged_in_ab": "v"}}, // PHP 8: after '[' too
	{"a[b]=1; a[c]=2", map[string]any{"a": map[string]any{"b": "1", "c": "2"}}},
	{"S=1; S[x]=2", map[string]any{"S": map[string]any{"x": "2"}}}, // an index makes it an array
	{"S[x]=2; S=1", map[string]any{"S": map[string]any{"x": "2"}}}, // and a later plain one is ignored
	{"v=%41+B%zz", map[string]any{"v": "A+B%zz"}},                  // raw URL decoding of values
	{"%41=1", map[string]any{"%41": "1"}},                          // names are not decoded
	{"=x; ;noval", map[string]any{"noval": ""}},
	{"a.b[c.d]=1", map[string]any{"a_b": map[string]any{"c.d": "1"}}}, // indexes are not mangled
	{"SESSd41d=a; SESSmallory=b", map[string]any{"SESSd41d": "a", "SESSmallory": "b"}},
	{"DEMOSESSID=a; demosessid=b", map[string]any{"DEMOSESSID": "a", "demosessid": "b"}}, // case-sensitive
}

var phpFormCases = []phpCase{
	{"username=nobody-1&%20username=alice", map[string]any{"username": "alice"}},  // last wins, space dropped
	{"username=nobody-2&username%00x=alice", map[string]any{"username": "alice"}}, // NUL ends the name
	{"user.name=x&a+b=y", map[string]any{"user_name": "x", "a_b": "y"}},
	{"login[username]=a&login[password]=b", map[string]any{"login": map[string]any{"username": "a", "password": "b"}}},
	{"login[username]=a&login[username]x=b", map[string]any{"login": map[string]any{"username": "b"}}}, // text after ']' ignored
	{"a[]=1&a[]=2&a[ ]=3", map[string]any{"a": map[string]any{"0": "1", "1": "2", "2": "3"}}},
	{"a=1&a=2", map[string]any{"a": "2"}},
	{"%5Bx=1&=2&x", map[string]any{"x": ""}}, // an empty name is dropped
	{"a[b][c]=1", map[string]any{"a": map[string]any{"b": map[string]any{"c": "1"}}}},
	{"v=%41+B", map[string]any{"v": "A B"}},
	{"a[b=1", map[string]any{"a_b": "1"}},
}

func TestPHPCookieParsing(t *testing.T) {
	for _, tc := range phpCookieCases {
		got := phpCookies([]string{tc.in}).toMap()
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("cookie %q: got %v, want %v", tc.in, got, tc.want)
		}
	}
	// Several Cookie headers are read as one.
	got := phpCookies([]string{"a=1", "a=2; b=3"}).toMap()
	if !reflect.DeepEqual(got, map[string]any{"a": "1", "b": "3"}) {
		t.Errorf("two headers: %v", got)
	}
	// No limit on the number of cookies (Go's parser stops at 3000).
	var parts []string
	for i := range 5000 {
		parts = append(parts, fmt.Sprintf("c%d=x", i))
	}
	parts = append(parts, "PHP_SESSID=last")
	if v, _ := phpCookies([]string{strings.Join(parts, "; ")}).str("PHP_SESSID"); v != "last" {
		t.Errorf("5001st cookie: %q", v)
	}
}

func TestPHPFormParsing(t *testing.T) {
	for _, tc := range phpFormCases {
		got := phpForm(tc.in).toMap()
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("form %q: got %v, want %v", tc.in, got, tc.want)
		}
	}
	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	mw.WriteField("username", "nobody")
	mw.WriteField(" username", "alice")
	mw.WriteField("login[username]", "carol")
	mw.Close()
	vars, err := phpMultipart(mp.Bytes(), mw.Boundary())
	if err != nil {
		t.Fatal(err)
	}
	if got := vars.toMap(); !reflect.DeepEqual(got, map[string]any{"username": "alice", "login": map[string]any{"username": "carol"}}) {
		t.Errorf("multipart: %v", got)
	}
}

// TestPHPParsingAgainstRealPHP runs the same cases through a real php-cgi
// when one is on PATH.
func TestPHPParsingAgainstRealPHP(t *testing.T) {
	bin, err := exec.LookPath("php-cgi")
	if err != nil {
		t.Skip("php-cgi not on PATH")
	}
	script := filepath.Join(t.TempDir(), "dump.php")
	if err := os.WriteFile(script, []byte(`<?php echo json_encode(["c" => $_COOKIE, "p" => $_POST]);`), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(cookie, body string) (map[string]any, map[string]any) {
		cmd := exec.Command(bin, "-d", "max_input_vars=100000", "-q")
		cmd.Env = []string{
			"REDIRECT_STATUS=200", "GATEWAY_INTERFACE=CGI/1.1", "SCRIPT_FILENAME=" + script,
			"REQUEST_METHOD=POST", "CONTENT_TYPE=application/x-www-form-urlencoded",
			fmt.Sprintf("CONTENT_LENGTH=%d", len(body)), "HTTP_COOKIE=" + cookie,
		}
		cmd.Stdin = strings.NewReader(body)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("php-cgi: %v", err)
		}
		var m struct{ C, P any }
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatalf("php-cgi output %q: %v", out, err)
		}
		return phpJSONToMap(m.C), phpJSONToMap(m.P)
	}
	for _, tc := range phpCookieCases {
		if got, _ := run(tc.in, ""); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("php $_COOKIE for %q: %v, want (as the demo) %v", tc.in, got, tc.want)
		}
	}
	for _, tc := range phpFormCases {
		if _, got := run("", tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("php $_POST for %q: %v, want (as the demo) %v", tc.in, got, tc.want)
		}
	}
}

// phpJSONToMap turns PHP's json_encode of an array (a list when its keys
// are 0..n-1) into the map form of phpArray.toMap.
func phpJSONToMap(v any) map[string]any {
	conv := func(x any) any { return x }
	var walk func(any) any
	walk = func(x any) any {
		switch x := x.(type) {
		case []any:
			m := map[string]any{}
			for i, e := range x {
				m[strconv.Itoa(i)] = walk(e)
			}
			return m
		case map[string]any:
			m := map[string]any{}
			for k, e := range x {
				m[k] = walk(e)
			}
			return m
		}
		return conv(x)
	}
	m, _ := walk(v).(map[string]any)
	if m == nil {
		m = map[string]any{}
	}
	return m
}

// --- modes --------------------------------------------------------------

var reCSRFInput = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

func csrfIn(t *testing.T, body string) string {
	t.Helper()
	m := reCSRFInput.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no csrf input in:\n%s", body)
	}
	return m[1]
}

func TestFrontController(t *testing.T) {
	c := newClient(t, Options{FrontController: true})
	r := c.get("/index.php?page=account")
	wantRedirect(t, r, "/index.php?page=login&next=%2Findex.php%3Fpage%3Daccount")
	r = c.get("/index.php?page=login")
	if r.status != http.StatusOK || !strings.Contains(r.body, `action="/index.php?page=login"`) || !strings.Contains(r.body, `name="username"`) {
		t.Fatalf("login form: %d\n%s", r.status, r.body)
	}
	for _, p := range []string{"/login", "/account", "/api/me", "/index.php/x"} {
		if r := c.get(p); r.status != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", p, r.status)
		}
	}
	r = c.postForm("/index.php?page=login", url.Values{"username": {"alice"}, "password": {"wonderland"}})
	wantRedirect(t, r, "/index.php?page=home")
	id := checkSessionSetCookie(t, r, DefaultCookieName)
	if r := c.get("/index.php"); !strings.Contains(r.body, "Hello, alice") || !strings.Contains(r.body, `href="/index.php?page=account"`) {
		t.Fatalf("home: %d\n%s", r.status, r.body)
	}
	if r := c.get("/"); !strings.Contains(r.body, "Hello, alice") {
		t.Fatalf("/: %d", r.status)
	}
	if r := c.get("/index.php?page=account"); !strings.Contains(r.body, "Account settings for alice") {
		t.Fatalf("account: %d", r.status)
	}
	if r := c.get("/index.php?page=api_me"); strings.TrimSpace(r.body) != `{"user":"alice"}` {
		t.Fatalf("api_me: %q", r.body)
	}
	// The account form, through the script (page= or do=).
	if r := c.postForm("/index.php?page=account", url.Values{"email": {"a@one"}}); r.status != http.StatusOK || !strings.Contains(r.body, "Saved.") || c.app.EmailOf("alice") != "a@one" {
		t.Fatalf("account form: %d %q", r.status, c.app.EmailOf("alice"))
	}
	if r := c.postForm("/index.php", url.Values{"do": {"save_email"}, "email": {"a@two"}}); r.status != http.StatusOK || c.app.EmailOf("alice") != "a@two" {
		t.Fatalf("account form do=: %d %q", r.status, c.app.EmailOf("alice"))
	}
	r = c.get("/index.php?page=rotate")
	wantRedirect(t, r, "/index.php?page=account")
	if nid := c.jarSession(); nid == id || nid == "" {
		t.Fatal("rotate kept the ID")
	}
	wantRedirect(t, c.get("/index.php?page=logout"), "/index.php?page=login")
	if c.app.SessionCount() != 0 {
		t.Fatal("logout left a session")
	}
	// do=login in the body of a POST to the bare script.
	r = c.postForm("/index.php", url.Values{"do": {"login"}, "username": {"bob"}, "password": {"builder"}})
	wantRedirect(t, r, "/index.php?page=home")
	// A POST without do= is no login.
	r = c.postForm("/index.php", url.Values{"username": {"bob"}, "password": {"builder"}})
	if r.status != http.StatusMethodNotAllowed {
		t.Fatalf("POST without do: %d", r.status)
	}
	if c.app.ActedAs("bob") < 1 || c.app.ActedAs("alice") != 8 {
		t.Fatalf("ActedAs alice %d bob %d", c.app.ActedAs("alice"), c.app.ActedAs("bob"))
	}
}

func TestPreLoginSessionAndCSRF(t *testing.T) {
	for _, keep := range []bool{false, true} {
		c := newClient(t, Options{PreLoginSession: true, KeepSessionIDAtLogin: keep, FailedLoginStatus: 0})
		r := c.get("/login")
		anon := checkSessionSetCookie(t, r, DefaultCookieName)
		if !c.app.IsAnonymousSession(anon) || c.app.SessionCount() != 0 {
			t.Fatal("no anonymous session")
		}
		token := csrfIn(t, r.body)
		// The same session on the next request: no new cookie.
		if r := c.get("/login"); r.sessionCookie(DefaultCookieName) != nil || csrfIn(t, r.body) != token {
			t.Fatal("anonymous session not kept")
		}
		// Without the token: a failed login (200) with a fresh session.
		r = c.postForm("/login", url.Values{"username": {"alice"}, "password": {"wonderland"}})
		if r.status != http.StatusOK || !strings.Contains(r.body, "session expired") {
			t.Fatalf("login without token: %d\n%s", r.status, r.body)
		}
		fresh := checkSessionSetCookie(t, r, DefaultCookieName)
		if fresh == anon || c.app.IsAnonymousSession(anon) || !c.app.IsAnonymousSession(fresh) {
			t.Fatal("failed login did not start a fresh anonymous session")
		}
		// Wrong password: 200, fresh session again.
		token = csrfIn(t, r.body)
		r = c.postForm("/login", url.Values{"username": {"alice"}, "password": {"nope"}, "csrf": {token}})
		if r.status != http.StatusOK || !strings.Contains(r.body, "Invalid username") {
			t.Fatalf("wrong password: %d", r.status)
		}
		anon = checkSessionSetCookie(t, r, DefaultCookieName)
		token = csrfIn(t, r.body)
		r = c.postForm("/login", url.Values{"username": {"alice"}, "password": {"wonderland"}, "csrf": {token}})
		wantRedirect(t, r, "/")
		if keep {
			wantNoSetCookie(t, r)
			if u, _ := c.app.UserOf(anon); u != "alice" {
				t.Fatal("kept session not logged in")
			}
		} else {
			id := checkSessionSetCookie(t, r, DefaultCookieName)
			if id == anon || c.app.IsAnonymousSession(anon) {
				t.Fatal("pre-login session survived the login")
			}
		}
		// The account form needs the token.
		r = c.get("/account")
		token = csrfIn(t, r.body)
		if r := c.postForm("/account", url.Values{"email": {"x@evil"}}); r.status != http.StatusForbidden {
			t.Fatalf("account form without token: %d", r.status)
		}
		if r := c.postForm("/account", url.Values{"email": {"a@new"}, "csrf": {token}}); r.status != http.StatusOK || !strings.Contains(r.body, "Saved.") {
			t.Fatalf("account form: %d", r.status)
		}
		if c.app.EmailOf("alice") != "a@new" || c.app.EmailOf("bob") != "bob@example.com" {
			t.Fatal("e-mail not saved")
		}
	}
	// A login POST with no cookie at all (what an attacker sends): 200
	// and a fresh cookie, the case that tricked the gate into binding.
	c := newClient(t, Options{PreLoginSession: true, FailedLoginStatus: http.StatusUnauthorized})
	r := c.postForm("/login", url.Values{"username": {"alice"}, "password": {"x"}})
	if r.status != http.StatusUnauthorized {
		t.Fatalf("FailedLoginStatus: %d", r.status)
	}
	checkSessionSetCookie(t, r, DefaultCookieName)

	// A 3xx FailedLoginStatus redirects back to the login page, with a
	// fresh cookie too.
	c = newClient(t, Options{PreLoginSession: true, FrontController: true, FailedLoginStatus: http.StatusFound})
	r = c.postForm("/index.php?page=login", url.Values{"username": {"alice"}, "password": {"x"}})
	wantRedirect(t, r, "/index.php?page=login&error=1")
	if id := checkSessionSetCookie(t, r, DefaultCookieName); !c.app.IsAnonymousSession(id) {
		t.Fatal("failed login's redirect did not carry a fresh anonymous session")
	}
}

func TestPHPCookiesMode(t *testing.T) {
	app := New(Options{PHPCookies: true, CookieName: "PHP_SESSID", FrontController: true, PreLoginSession: true, ArrayLoginForm: true})
	srv := httptest.NewServer(app)
	t.Cleanup(srv.Close)
	c := clientFor(t, srv, app)
	r := c.get("/index.php?page=login")
	if !strings.Contains(r.body, `name="login[username]"`) || !strings.Contains(r.body, `name="login[password]"`) {
		t.Fatalf("array login form:\n%s", r.body)
	}
	token := csrfIn(t, r.body)
	r = c.postForm("/index.php?page=login", url.Values{"login[username]": {"alice"}, "login[password]": {"wonderland"}, "csrf": {token}})
	wantRedirect(t, r, "/index.php?page=home")
	id := c.jarSession()
	// PHP reads look-alike names as the session cookie, first one wins.
	for _, hdr := range []string{"PHP.SESSID=" + id, "PHP SESSID=" + id, "PHP[SESSID=" + id, " PHP_SESSID=" + id, "PHP_SESSID=" + id + "; PHP_SESSID=other", "PHP.SESSID=" + id + "; PHP_SESSID=other"} {
		req := c.req("GET", "/index.php?page=api_me", nil, "")
		req.Header.Set("Cookie", hdr)
		if r := (&client{t: t, c: http.DefaultClient}).do(req); strings.TrimSpace(r.body) != `{"user":"alice"}` {
			t.Errorf("Cookie %q: %q", hdr, r.body)
		}
	}
	for _, hdr := range []string{"php_sessid=" + id, "PHP_SESSID[x]=" + id, "PHP_SESSID=other; PHP.SESSID=" + id} {
		req := c.req("GET", "/index.php?page=api_me", nil, "")
		req.Header.Set("Cookie", hdr)
		if r := (&client{t: t, c: http.DefaultClient}).do(req); r.status != http.StatusUnauthorized {
			t.Errorf("Cookie %q: %d %q", hdr, r.status, r.body)
		}
	}
	// PHP form parsing: the mangled duplicate wins.
	b := clientFor(t, srv, app)
	token = csrfIn(t, b.get("/index.php?page=login").body)
	body := "login%5Busername%5D=nobody&%20login%5Busername%5D=bob&login%5Bpassword%5D=builder&csrf=" + token
	r = b.do(b.req("POST", "/index.php?page=login", strings.NewReader(body), "application/x-www-form-urlencoded"))
	wantRedirect(t, r, "/index.php?page=home")
	if u, _ := app.UserOf(b.jarSession()); u != "bob" {
		t.Fatalf("mangled field: logged in %q", u)
	}
}

func TestLastCookieWinsAndGoJSONFolding(t *testing.T) {
	c := newClient(t, Options{LastCookieWins: true, CookieName: "sessionid"})
	r := c.postForm("/login", url.Values{"username": {"alice"}, "password": {"wonderland"}})
	id := checkSessionSetCookie(t, r, "sessionid")
	req := c.req("GET", "/api/me", nil, "")
	req.Header.Set("Cookie", "sessionid=other; sessionid="+id)
	if r := (&client{t: t, c: http.DefaultClient}).do(req); strings.TrimSpace(r.body) != `{"user":"alice"}` {
		t.Fatalf("last duplicate not read: %q", r.body)
	}
	req = c.req("GET", "/api/me", nil, "")
	req.Header.Set("Cookie", "sessionid="+id+"; sessionid=other")
	if r := (&client{t: t, c: http.DefaultClient}).do(req); r.status != http.StatusUnauthorized {
		t.Fatalf("first duplicate read: %q", r.body)
	}

	// Go's encoding/json matches keys case-insensitively, with Unicode
	// folding, last one wins: the premise of the JSON login attacks.
	for _, body := range []string{
		`{"username":"nobody-1","USERNAME":"alice","password":"wonderland"}`,
		`{"username":"nobody-1","u\u017fername":"alice","password":"wonderland"}`,
	} {
		d := newClient(t, Options{})
		r := d.do(d.req("POST", "/login", strings.NewReader(body), "application/json"))
		if r.status != http.StatusOK || !strings.Contains(r.body, `"user":"alice"`) {
			t.Errorf("%s: %d %s", body, r.status, r.body)
		}
	}
}

func TestCaddyfileOptions(t *testing.T) {
	var h Handler
	in := "legacy_demo_app {\n front_controller\n pre_login_session\n keep_session_id_at_login\n php_cookies\n array_login_form\n last_cookie_wins\n failed_login_status 401\n cookie_name PHPSESSID\n}"
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(in)); err != nil {
		t.Fatal(err)
	}
	want := Options{CookieName: "PHPSESSID", FrontController: true, PreLoginSession: true, KeepSessionIDAtLogin: true, FailedLoginStatus: 401, PHPCookies: true, LastCookieWins: true, ArrayLoginForm: true}
	if got := h.options(); !reflect.DeepEqual(got, want) {
		t.Fatalf("options %+v", got)
	}
	// Two lookups with the same options return the same app.
	if first, second := sharedFor(want), sharedFor(want); first != second || first == Shared() || sharedFor(Options{}) != Shared() {
		t.Fatal("apps not shared by options")
	}
	for _, tc := range []struct{ in, want string }{
		{"legacy_demo_app {\n front_controller yes\n}", `front_controller takes no arguments, got "yes"`},
		{"legacy_demo_app {\n failed_login_status\n}", "failed_login_status needs a status code"},
		{"legacy_demo_app {\n failed_login_status 99\n}", `failed_login_status must be an HTTP status (200-599), got "99"`},
		{"legacy_demo_app {\n cookie_name \"a b\"\n}", `cookie_name "a b" is not a valid cookie name`},
		{"legacy_demo_app {\n cookie_name a b\n}", `cookie_name takes one argument, got another: "b"`},
		{"legacy_demo_app {\n keep_session_id_at_login\n}", "keep_session_id_at_login needs pre_login_session"},
		{"legacy_demo_app {\n php_cookies\n php_cookies\n}", "php_cookies given twice"},
	} {
		var h Handler
		if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.in)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.in, err, tc.want)
		}
	}
}
