package caddymodule

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/fcgi"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-2fa/caddy-2fa/internal/demoapp"
)

// startAppSite runs the demo legacy app (its own password login, cookie
// DEMOSESSID) behind reverse_proxy with two_factor in app_login mode.
func startAppSite(t *testing.T, gate, appLoginExtra string) *site {
	t.Helper()
	port, appPort := freePort(t), freePort(t)
	store := t.TempDir() + "/store.db"
	cfg := fmt.Sprintf(`{
	admin off
	storage file_system %s
	persist_config off
}
http://localhost:%d {
	two_factor {
		store file %s
		issuer "Example Corp"
		app_login {
			path /login
			username_field username
			session_cookie DEMOSESSID
			logout_path /logout
%s
		}
%s
	}
	reverse_proxy 127.0.0.1:%d {
		header_up X-2FA-User {http.two_factor.user}
		header_up X-2FA-Method {http.two_factor.method}
	}
}
http://:%d {
	bind 127.0.0.1
	legacy_demo_app
}
`, caddyStorage, port, store, appLoginExtra, gate, appPort, appPort)
	loadCaddyfile(t, cfg)
	t.Cleanup(func() { caddy.Stop() })
	return &site{t: t, base: fmt.Sprintf("http://localhost:%d", port), store: store}
}

// appLogin posts the demo app's login form.
func (b *browser) appLogin(user, password string) response {
	b.t.Helper()
	return b.post("/login", url.Values{"username": {user}, "password": {password}})
}

// TestAppLoginEnrollAndPass: the app's own login, then enrollment, then
// the app; a wrong password changes nothing.
func TestAppLoginEnrollAndPass(t *testing.T) {
	s := startAppSite(t, "", "")
	b := s.browser("")
	// Not logged in to the app: the app's business (its redirect to /login).
	r := b.get("/").expect(t, http.StatusFound)
	if r.location() != "/login" {
		t.Fatalf("app redirect = %q", r.location())
	}
	b.get("/login").expect(t, http.StatusOK).contains(t, `name="password"`)
	// Gate pages need an application session first.
	b.get("/.2fa/enroll").expect(t, http.StatusForbidden).contains(t, "Sign in first")

	// Wrong password: no cookie, no binding.
	b.appLogin("alice", "wrong").expect(t, http.StatusOK)
	if b.cookie("DEMOSESSID") != "" {
		t.Fatal("app set a session on a wrong password")
	}
	b.get("/").expect(t, http.StatusFound)

	// Right password: the app's cookie is set, the browser goes to enroll
	// and, after that, where the app wanted to go.
	r = b.appLogin("alice", "wonderland").expectRedirect(t, "/.2fa/enroll")
	if b.cookie("DEMOSESSID") == "" {
		t.Fatal("app cookie not passed to the browser")
	}
	// Pending: the app is out of reach until the second factor.
	b.get("/account").expectRedirect(t, "/.2fa/enroll")
	page := b.get(r.location()).expect(t, http.StatusOK).contains(t, "alice")
	key := secretOf(t, enrollmentURI(t, page))
	if u := enrollmentURI(t, page); !strings.HasSuffix(u.Path, ":alice") {
		t.Fatalf("enrolling %q, want alice", u.Path)
	}
	b.post("/.2fa/enroll", url.Values{"csrf_token": {csrfOf(t, page)}, "code": {totp(key, testNow())}, "rd": {"/"}}).expect(t, http.StatusOK)
	home := b.get("/").expect(t, http.StatusOK).contains(t, "alice")
	if !strings.Contains(home.body, "totp") {
		t.Errorf("app did not receive the 2FA method header: %s", trim(home.body))
	}
	b.get("/account").expect(t, http.StatusOK)
}

// appEnroll logs user in on a fresh browser and enrolls; it returns the
// browser and the TOTP key.
func appEnroll(t *testing.T, s *site, user, password string) (*browser, []byte) {
	t.Helper()
	b := s.browser("")
	r := b.appLogin(user, password).expectRedirect(t, "/.2fa/enroll")
	page := b.get(r.location()).expect(t, http.StatusOK)
	key := secretOf(t, enrollmentURI(t, page))
	b.post("/.2fa/enroll", url.Values{"csrf_token": {csrfOf(t, page)}, "code": {totp(key, testNow())}}).expect(t, http.StatusOK)
	b.get("/").expect(t, http.StatusOK)
	return b, key
}

// TestAppLoginNewDeviceAndStolenCookie: a new device is challenged; a
// stolen application cookie alone gets nowhere.
func TestAppLoginNewDeviceAndStolenCookie(t *testing.T) {
	s := startAppSite(t, "", "")
	victim, key := appEnroll(t, s, "alice", "wonderland")

	thief := s.browser("")
	thief.setCookie("DEMOSESSID", victim.cookie("DEMOSESSID"))
	r := thief.get("/account")
	if r.StatusCode == http.StatusOK {
		t.Fatal("stolen app cookie alone reached the app")
	}
	r.expectRedirect(t, "/.2fa/challenge")
	// Bob's verified gate session does not make alice's cookie his.
	bob, _ := appEnroll(t, s, "bob", "builder")
	bob.setCookie("DEMOSESSID", victim.cookie("DEMOSESSID"))
	bob.get("/account").expectRedirect(t, "/.2fa/challenge")

	advance(30 * time.Second)
	phone := s.browser("")
	if r := phone.appLogin("alice", "wonderland").expectRedirect(t, "/.2fa/challenge"); r.location() != "/.2fa/challenge" {
		t.Fatalf("after login to / the challenge returns to %q", r.location())
	}
	phone.challenge(totp(key, testNow()), false).expectRedirect(t, "/app")
	phone.get("/").expect(t, http.StatusOK).contains(t, "alice")
}

// TestAppLoginTrustedDeviceRotationLogout: a trusted device logs in
// without a prompt; session rotation keeps the user in; the app's logout
// ends the binding, so the old cookie is useless.
func TestAppLoginTrustedDeviceRotationLogout(t *testing.T) {
	s := startAppSite(t, "", "")
	_, key := appEnroll(t, s, "alice", "wonderland")
	advance(30 * time.Second)

	b := s.browser("")
	b.appLogin("alice", "wonderland").expectRedirect(t, "/.2fa/challenge")
	b.challenge(totp(key, testNow()), true).expectRedirect(t, "/")
	b.get("/").expect(t, http.StatusOK)

	// Rotation: a new app cookie inherits the verification.
	before := b.cookie("DEMOSESSID")
	r := b.get("/rotate").expect(t, http.StatusFound)
	after := b.cookie("DEMOSESSID")
	if after == "" || after == before {
		t.Fatalf("app did not rotate its cookie (%q → %q)", before, after)
	}
	_ = r
	b.get("/account").expect(t, http.StatusOK).contains(t, "alice")

	// App logout: binding ends; the old cookie replayed with the gate's
	// cookies gets nowhere.
	gateSession := b.cookie("2fa_session")
	device := b.cookie("2fa_device")
	b.get("/logout").expect(t, http.StatusFound)
	replay := s.browser("")
	replay.setCookie("DEMOSESSID", after)
	replay.setCookie("2fa_session", gateSession)
	r = replay.get("/account")
	if r.StatusCode == http.StatusOK {
		t.Fatal("old app cookie worked after logout")
	}
	r.expectRedirect(t, "/login")

	// The trusted device logs in again without a prompt.
	b.appLogin("alice", "wonderland").expect(t, http.StatusFound)
	if b.cookie("2fa_device") != device {
		t.Fatal("device cookie changed")
	}
	b.get("/").expect(t, http.StatusOK).contains(t, "trusted_device")
}

// TestAppLoginUnknownSession: an application cookie the gate never saw
// created is expired and the browser sent to log in (relogin), or refused
// (deny).
func TestAppLoginUnknownSession(t *testing.T) {
	s := startAppSite(t, "", "")
	b := s.browser("")
	b.setCookie("DEMOSESSID", "made-before-the-gate-was-installed")
	r := b.get("/account").expectRedirect(t, "/login")
	if sc := strings.Join(r.Header.Values("Set-Cookie"), "\n"); !strings.Contains(sc, "DEMOSESSID=;") || !strings.Contains(sc, "Max-Age=0") {
		t.Errorf("unknown app cookie not expired: %q", sc)
	}
	if b.cookie("DEMOSESSID") != "" {
		t.Error("browser kept the unknown cookie")
	}
	// The login page itself stays reachable with such a cookie.
	c := s.browser("")
	c.setCookie("DEMOSESSID", "stale")
	c.get("/login").expect(t, http.StatusOK)

	s2 := startAppSite(t, "", "\t\t\tunknown_session deny")
	d := s2.browser("")
	d.setCookie("DEMOSESSID", "made-before-the-gate-was-installed")
	if r := d.get("/account").expect(t, http.StatusForbidden); strings.Contains(r.body, "Account") {
		t.Fatal("unknown session reached the app")
	}
	// The login page stays reachable under deny too, without the cookie.
	d.get("/login").expect(t, http.StatusOK).contains(t, `name="password"`)
}

// TestAppLoginBodies: JSON and multipart login bodies. An SPA login
// answers 200, which the default success signal (a redirect) never takes
// for a login: its session is withheld. With `success status 200` it
// binds, and the next API call is challenged with 401 JSON.
func TestAppLoginBodies(t *testing.T) {
	s := startAppSite(t, "", "")
	appEnroll(t, s, "alice", "wonderland")

	api := s.browser("")
	api.accept = "application/json"
	r := api.do("POST", "/login", strings.NewReader(`{"username":"alice","password":"wonderland"}`), http.Header{"Content-Type": {"application/json"}}).expect(t, http.StatusOK)
	r.contains(t, `"ok":true`)
	m := decodeJSON(t, api.get("/api/me").expect(t, http.StatusUnauthorized))
	if m["error"] != "app_session_unknown" {
		t.Fatalf("JSON = %v (an SPA login under the default signal must not reach the app)", m)
	}

	spa := startAppSite(t, "", "\t\t\tsuccess status 200")
	api = spa.browser("")
	api.accept = "application/json"
	api.do("POST", "/login", strings.NewReader(`{"username":"alice","password":"wonderland"}`), http.Header{"Content-Type": {"application/json"}}).expect(t, http.StatusOK)
	m = decodeJSON(t, api.get("/api/me").expect(t, http.StatusUnauthorized))
	if m["error"] != "two_factor_required" {
		t.Fatalf("JSON = %v", m)
	}
	s = startAppSite(t, "", "")

	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	mw.WriteField("username", "bob")
	mw.WriteField("password", "builder")
	mw.Close()
	mp := s.browser("")
	mp.do("POST", "/login", &body, http.Header{"Content-Type": {mw.FormDataContentType()}, "Sec-Fetch-Site": {"same-origin"}}).expectRedirect(t, "/.2fa/enroll")
	mp.get("/").expectRedirect(t, "/.2fa/enroll")
}

// TestAppLoginBodyReachesAppUnchanged: the login body is handed on byte
// for byte (chunked too); a login body over the bound is refused (400),
// never forwarded: the gate could not know who logs in.
func TestAppLoginBodyReachesAppUnchanged(t *testing.T) {
	port := freePort(t)
	cfg := fmt.Sprintf(`{
	admin off
	storage file_system %s
	persist_config off
}
http://localhost:%d {
	two_factor {
		store file %s
		app_login {
			path /login
			username_field username
			session_cookie SID
		}
	}
	header /login Set-Cookie "SID=abc123; Path=/"
	respond "{http.request.body}" 200
}
`, caddyStorage, port, t.TempDir()+"/s.db")
	loadCaddyfile(t, cfg)
	t.Cleanup(func() { caddy.Stop() })
	base := fmt.Sprintf("http://localhost:%d", port)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	for _, tc := range []struct {
		name    string
		body    string
		chunked bool
		learns  bool
	}{
		{"small", "username=alice&password=p%C3%A4ss&x=" + url.QueryEscape("\x00\xff"), false, true},
		{"chunked", "password=secret&username=alice", true, true},
		{"oversized", "username=alice&password=x&pad=" + strings.Repeat("A", maxLoginBody), false, false},
		{"oversized chunked", "username=alice&pad=" + strings.Repeat("B", 3*maxLoginBody), true, false},
	} {
		var rd io.Reader = strings.NewReader(tc.body)
		if tc.chunked {
			rd = io.MultiReader(rd) // hides the length: sent chunked
		}
		req, _ := http.NewRequest("POST", base+"/login", rd)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if tc.chunked && len(req.TransferEncoding) == 0 && req.ContentLength > 0 {
			t.Fatalf("%s: request was not chunked", tc.name)
		}
		if tc.learns {
			// The gate learned alice and turned the 200 into... a pass:
			// this respond is not HTML, so the SPA rule lets it through.
			if resp.StatusCode != http.StatusOK || string(got) != tc.body {
				t.Errorf("%s: app got %q (status %d), want the body unchanged", tc.name, trim(string(got)), resp.StatusCode)
			}
		} else if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(got), "ambiguous_request") {
			t.Errorf("%s: oversized login body not refused (status %d, %d bytes back)", tc.name, resp.StatusCode, len(got))
		}
	}
}

func TestAppLoginConfigErrors(t *testing.T) {
	for _, tc := range []struct{ input, want string }{
		{"two_factor {\n app_login {\n path /login\n username_field u\n session_cookie SID\n }\n user {http.auth.user.id}\n}", "app_login: cannot be combined with user"},
		{"two_factor {\n app_login {\n path /login\n username_field u\n }\n}", "app_login: path, username_field and session_cookie are required"},
		{"two_factor {\n app_login {\n path login\n username_field u\n session_cookie SID\n }\n}", `app_login: path must start with /, got "login"`},
		{"two_factor {\n app_login {\n path /login\n username_field u\n session_cookie \"a b\"\n }\n}", `app_login: session_cookie "a b" is not a valid cookie name or glob`},
		{"two_factor {\n app_login {\n path /[login\n username_field u\n session_cookie SID\n }\n}", `app_login: path "/[login" is not a valid glob`},
		{"two_factor {\n app_login {\n path /login\n username_field u\n session_cookie SID\n unknown_session maybe\n }\n}", `app_login: unknown_session must be relogin or deny, got "maybe"`},
		{"two_factor {\n app_login {\n path /login\n username_field u\n session_cookie SID\n color red\n }\n}", `app_login: unrecognized option "color"`},
		{"two_factor {\n app_login /login\n}", `app_login: takes a block, not "/login"`},
	} {
		var h Handler
		err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.input))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.input, err, tc.want)
		}
	}
	var h Handler
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("two_factor {\n app_login {\n path /wp-login.php\n username_field log\n session_cookie wordpress_logged_in_*\n logout_path /wp-login.php?action=logout\n unknown_session deny\n }\n}")); err != nil {
		t.Fatal(err)
	}
	if h.AppLogin == nil || !slices.Equal(h.AppLogin.SessionCookies, []string{"wordpress_logged_in_*"}) || h.AppLogin.UnknownSession != "deny" || h.AppLogin.UsernameField != "log" {
		t.Fatalf("parsed %+v", h.AppLogin)
	}
}

func TestUsernameFrom(t *testing.T) {
	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	mw.WriteField("other", "x")
	mw.WriteField("user", " carol ")
	mw.Close()
	var mp2 bytes.Buffer
	mw2 := multipart.NewWriter(&mp2)
	mw2.WriteField("user", "nobody")
	mw2.WriteField("user", "alice")
	mw2.Close()
	mw2ct := mw2.FormDataContentType()
	for _, tc := range []struct {
		ct, body, field, want string
		fails                 bool
	}{
		{"application/x-www-form-urlencoded", "user=alice&password=x", "user", "alice", false},
		{"application/x-www-form-urlencoded; charset=UTF-8", "user=%C3%BCmlaut", "user", "ümlaut", false},
		{"", "user=bob", "user", "", true}, // no form type: PHP and Go read no form, a parser that sniffs would
		{"application/json", `{"user":"dave"}`, "user", "dave", false},
		{"application/json", `{"login":{"email":"e@x.org"}}`, "login.email", "e@x.org", false},
		{"application/vnd.api+json", `{"user":"frank"}`, "user", "frank", false},
		{mw.FormDataContentType(), mp.String(), "user", "carol", false},
		{"application/json", `{"user":42}`, "user", "", true},
		{"application/json", `{"user":`, "user", "", true},
		{"application/x-www-form-urlencoded", "password=x", "user", "", true},
		{"application/x-www-form-urlencoded", "user=%zz", "user", "", true},
		{"text/plain", "user=alice", "user", "", true},
		{"application/x-www-form-urlencoded", "user=" + strings.Repeat("a", 300), "user", "", true},
		{"application/x-www-form-urlencoded", "user=a%0Ab", "user", "", true},
		// Ambiguous bodies: the app might read another value than the gate.
		{"application/x-www-form-urlencoded", "user=nobody&user=alice", "user", "", true},
		{"application/x-www-form-urlencoded", "user=nobody&user.x=1&password=p", "user_x", "", true},
		{"application/x-www-form-urlencoded", "user_name=nobody&user.name=alice", "user_name", "", true},
		{"application/x-www-form-urlencoded", "user[]=alice", "user", "", true},
		{"application/x-www-form-urlencoded", "user=alice&user[0]=bob", "user", "", true},
		{"application/json", `{"user":"nobody","user":"alice"}`, "user", "", true},
		{"application/json", `{"login":{"email":"a@x","email":"b@x"}}`, "login.email", "", true},
		{"application/json", `{"login":"x","login":{"email":"b@x"}}`, "login.email", "", true},
		{"application/json", `{"other":{"user":"x"},"user":"dave"}`, "user", "dave", false},
		{mw2ct, mp2.String(), "user", "", true},
	} {
		got, present, err := parseLoginUser(tc.ct, []byte(tc.body), "", tc.field)
		if err == nil && !present {
			err = errors.New("no user field")
		}
		if err == nil {
			_, err = identify(got)
		}
		if tc.fails != (err != nil) || (!tc.fails && got != tc.want) {
			t.Errorf("parseLoginUser(%q, %q, %q) = %q, %v", tc.ct, trim(tc.body), tc.field, got, err)
		}
	}
}

// TestAppLoginBehindPHPFastCGI: the same flow when the app is served with
// php_fastcgi (a FastCGI server, here the demo app over net/http/fcgi)
// instead of reverse_proxy.
func TestAppLoginBehindPHPFastCGI(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go fcgi.Serve(l, demoapp.New(demoapp.Options{}))
	root := t.TempDir()
	// php_fastcgi sends what no file matches to index.php, like a PHP
	// front controller; the FastCGI app still sees the original URI.
	os.WriteFile(filepath.Join(root, "index.php"), nil, 0o600)
	port := freePort(t)
	cfg := fmt.Sprintf(`{
	admin off
	storage file_system %s
	persist_config off
}
http://localhost:%d {
	root * %s
	two_factor {
		store file %s
		app_login {
			path /login
			username_field username
			session_cookie DEMOSESSID
		}
	}
	php_fastcgi %s
}
`, caddyStorage, port, root, t.TempDir()+"/s.db", l.Addr().String())
	loadCaddyfile(t, cfg)
	t.Cleanup(func() { caddy.Stop() })
	s := &site{t: t, base: fmt.Sprintf("http://localhost:%d", port)}
	b, _ := appEnroll(t, s, "alice", "wonderland")
	b.get("/account").expect(t, http.StatusOK).contains(t, "alice")
	thief := s.browser("")
	thief.setCookie("DEMOSESSID", b.cookie("DEMOSESSID"))
	thief.get("/account").expectRedirect(t, "/.2fa/challenge")
}

// TestReadLoginUserCanonicalAndUnambiguous: the gate binds the session to
// the canonical form of the name (so a case variant cannot enroll a second
// authenticator for one account) and refuses a name that also appears in
// the query string; the body reaches the app unchanged either way.
func TestReadLoginUserCanonicalAndUnambiguous(t *testing.T) {
	h := &Handler{AppLogin: &AppLogin{UsernameField: "username"}}
	for _, tc := range []struct{ target, body, want string }{
		{"/login", "username=+ALICE+&password=x", "alice"},
		{"/login", "username=%EF%BD%81lice&password=x", "alice"}, // full-width a
		{"/login?username=alice", "username=nobody&password=x", ""},
		{"/login?user.name=x", "username=alice", "alice"},
	} {
		r := httptest.NewRequest("POST", tc.target, strings.NewReader(tc.body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		got, _, err := readLoginAttempt(r, h.AppLogin.UsernameField)
		if err == nil {
			got, err = identify(got)
		}
		if got != tc.want || (tc.want == "") != (err != nil) {
			t.Errorf("%s %q: user %q, err %v; want %q", tc.target, tc.body, got, err, tc.want)
		}
		rest, _ := io.ReadAll(r.Body)
		if string(rest) != tc.body {
			t.Errorf("%s: body passed on as %q", tc.target, rest)
		}
	}
}
