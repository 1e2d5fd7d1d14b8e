package caddymodule

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// Tests of app_login's rule (issue 13): own cookie parsing, bindings by
// name and value, anonymous pre-login sessions, the in-flight login race,
// success recognition and front controllers.

func TestParseCookieHeader(t *testing.T) {
	parts, err := parseCookieHeader([]string{" a=1 ;b = 2;; c ;\td=\"q\"", "e=5"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range parts {
		got = append(got, p.String())
	}
	if want := []string{"a=1", "b=2", "c", `d="q"`, "e=5"}; !slices.Equal(got, want) {
		t.Fatalf("parts = %q, want %q", got, want)
	}
	if parts[2].hasEq {
		t.Error("a part without '=' has one")
	}
	// Go's parser returns nothing past 3000 parts; the gate refuses far
	// earlier, and never drops a part below its limit.
	many := strings.Repeat("x=1; ", 3001)
	if _, err := parseCookieHeader([]string{many}); err == nil {
		t.Fatal("3001 cookies accepted")
	}
	ok := strings.Repeat("x=1; ", maxCookieParts-1) + "last=2"
	if parts, err := parseCookieHeader([]string{ok}); err != nil || len(parts) != maxCookieParts || parts[len(parts)-1].value != "2" {
		t.Fatalf("%d cookies: %d parts, %v", maxCookieParts, len(parts), err)
	}
	if _, err := parseCookieHeader([]string{ok, "one=more"}); err == nil {
		t.Fatal("a second header line lets the count past the limit")
	}
}

func TestPHPCookieNames(t *testing.T) {
	globs := lowerAll([]string{"wordpress_logged_in_*", "PHPSESSID"})
	for _, tc := range []struct {
		name  string
		could bool
	}{
		{"PHPSESSID", true},
		{"phpsessid", true},
		{" PHPSESSID", true},
		{"PHPSESS%49D", true},
		{"PHPSESSID%00junk", true},
		{"PHPSESSID[x]", true},
		{"PHPSESSID[", false}, // PHP files it as PHPSESSID_
		{"wordpress.logged_in_x", true},
		{"wordpress[logged_in_x", true},
		{"wordpress logged_in_x", true},
		{"wordpress+logged_in_x", true},
		{"wordpress%2Elogged_in_x", true},
		{"wordpress_logged_in_x[a.b", true},
		{"wordpress_test_cookie", false},
		{"other", false},
	} {
		if got := couldBeSessionCookie(globs, tc.name); got != tc.could {
			t.Errorf("couldBeSessionCookie(%q) = %v, want %v", tc.name, got, tc.could)
		}
	}
	for _, tc := range []struct {
		path, query string
		in          bool
	}{
		{"/app/page;jsessionid=X", "", false}, // not a configured name
		{"/app/page;PHPSESSID=X", "", true},
		{"/app;phpsessid=X/page", "", true},
		{"/app/page", "PHPSESSID=X", true},
		{"/app/page", "a=1&PHPSESS%49D=X", true},
		{"/app/page", "wordpress.logged_in_x=1", true},
		{"/app/page;v=2", "page=PHPSESSID", false},
	} {
		if got := sessionIDInURL(globs, tc.path, tc.query); got != tc.in {
			t.Errorf("sessionIDInURL(%q, %q) = %v, want %v", tc.path, tc.query, got, tc.in)
		}
	}
	for _, tc := range []struct {
		value string
		in    bool
	}{
		{"1", false},
		{"1, PHPSESSID=x", true},
		{"a,b,c", false},
		{"1,phpsessid", true},
		{"1, other=2", false},
	} {
		if got := commaSessionCookie(globs, tc.value); got != tc.in {
			t.Errorf("commaSessionCookie(%q) = %v, want %v", tc.value, got, tc.in)
		}
	}
	for _, tc := range []struct {
		a, b string
		same bool
	}{
		{"SID", "SID", true},
		{"a.b", "a_b", true},
		{"a[b", "a_b", true},
		{"SID", "sid", true},
		{"SID[x]", "SID", true},
		{"SESSa", "SESSb", false},
		{"wordpress_logged_in_x", "wordpress_sec_x", false},
	} {
		if got := sameFiledName(tc.a, tc.b); got != tc.same {
			t.Errorf("sameFiledName(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.same)
		}
	}
}

// ruleApp is a small legacy application in the shape of a PHP one: a
// session (anonymous at first) on every request, a login POST that logs
// the session in, and pages that echo the user and the Cookie header
// they received.
type ruleApp struct {
	name      string // session cookie
	extra     string // a second session cookie set at login ("" none)
	keepID    bool   // a login keeps the pre-login session ID
	loginLoc  string // Location after a successful login
	flag      string // a cookie set only after a successful login ("" none)
	perUser   bool   // a login sets name+user instead of name
	block     chan struct{}
	started   chan struct{}
	slow      chan struct{}
	seen      chan string
	mu        sync.Mutex
	sessions  map[string]string // session ID → user ("" anonymous)
	passwords map[string]string
}

func newRuleApp(t *testing.T, a *ruleApp) *httptest.Server {
	a.sessions = map[string]string{}
	a.passwords = map[string]string{"alice": "wonderland", "bob": "builder"}
	a.seen = make(chan string, 1000)
	if a.loginLoc == "" {
		a.loginLoc = "/home"
	}
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	return srv
}

func (a *ruleApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.seen <- r.Header.Get("Cookie")
	if r.URL.Path == "/slow" && a.slow != nil {
		<-a.slow
	}
	newID := func() string {
		id := rand.Text()
		a.mu.Lock()
		a.sessions[id] = ""
		a.mu.Unlock()
		http.SetCookie(w, &http.Cookie{Name: a.name, Value: id, Path: "/"})
		return id
	}
	var id, user string
	ok := false
	if c, err := r.Cookie(a.name); err == nil {
		a.mu.Lock()
		user, ok = a.sessions[c.Value]
		a.mu.Unlock()
		id = c.Value
	}
	if !ok {
		id = newID()
	}
	if r.Method == http.MethodPost && r.PostFormValue("username") != "" {
		if a.started != nil {
			a.started <- struct{}{}
		}
		if a.block != nil {
			<-a.block
		}
		u, p := r.PostFormValue("username"), r.PostFormValue("password")
		if want, known := a.passwords[u]; !known || want != p {
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprint(w, "<form>login failed</form>")
			return
		}
		if a.perUser {
			id = rand.Text()
			http.SetCookie(w, &http.Cookie{Name: a.name + u, Value: id, Path: "/"})
		} else if !a.keepID {
			id = newID()
		}
		a.mu.Lock()
		a.sessions[id] = u
		a.mu.Unlock()
		if a.extra != "" {
			http.SetCookie(w, &http.Cookie{Name: a.extra, Value: "x" + id, Path: "/"})
		}
		a.mu.Lock()
		flag, loc := a.flag, a.loginLoc
		a.mu.Unlock()
		if flag != "" {
			http.SetCookie(w, &http.Cookie{Name: flag, Value: "1", Path: "/"})
		}
		http.Redirect(w, r, loc, http.StatusFound)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	fmt.Fprintf(w, "user=%s path=%s cookie=[%s]", user, r.URL.RequestURI(), r.Header.Get("Cookie"))
}

// drain forgets what the app has seen so far.
func (a *ruleApp) drain() {
	for len(a.seen) > 0 {
		<-a.seen
	}
}

// startRuleSite runs app behind two_factor in app_login mode.
func startRuleSite(t *testing.T, a *ruleApp, appLogin string) *site {
	t.Helper()
	srv := newRuleApp(t, a)
	return startCustomSite(t, "", fmt.Sprintf(`	two_factor {
		store file %s
		app_login {
%s
		}
	}
	reverse_proxy %s`, t.TempDir()+"/s.db", appLogin, strings.TrimPrefix(srv.URL, "http://")))
}

// ruleEnroll logs user in on b (which may hold a pre-login session) and
// enrolls.
func ruleEnroll(t *testing.T, b *browser, user string) []byte {
	t.Helper()
	r := b.post("/login", url.Values{"username": {user}, "password": {map[string]string{"alice": "wonderland", "bob": "builder"}[user]}}).expectRedirect(t, "/.2fa/enroll")
	page := b.get(r.location()).expect(t, http.StatusOK)
	key := secretOf(t, enrollmentURI(t, page))
	b.post("/.2fa/enroll", url.Values{"csrf_token": {csrfOf(t, page)}, "code": {totp(key, testNow())}}).expect(t, http.StatusOK)
	return key
}

// TestAppRuleCookieDisagreements: the cookie spellings an application
// could read as its session cookie, but the gate once read differently
// (issue 13, items 1-3), never carry a session past the gate.
func TestAppRuleCookieDisagreements(t *testing.T) {
	app := &ruleApp{name: "wordpress_logged_in_abc"}
	s := startRuleSite(t, app, "\t\t\tpath /login\n\t\t\tusername_field username\n\t\t\tsession_cookie wordpress_logged_in_*")
	alice := s.browser("")
	ruleEnroll(t, alice, "alice")
	stolen := alice.cookie(app.name)
	if r := alice.get("/home").expect(t, http.StatusOK); !strings.Contains(r.body, "user=alice") {
		t.Fatalf("alice does not reach the app: %s", r.body)
	}
	bob := s.browser("")
	ruleEnroll(t, bob, "bob")
	bob.get("/home").expect(t, http.StatusOK).contains(t, "user=bob")
	bobs := bob.cookie(app.name)

	raw := &browser{t: t, s: s, client: &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}, accept: "text/html"}
	send := func(cookie string) response {
		t.Helper()
		app.drain()
		return raw.do("GET", "/home", nil, http.Header{"Cookie": {cookie}})
	}
	noStolen := func(what string) {
		t.Helper()
		for len(app.seen) > 0 {
			if h := <-app.seen; strings.Contains(h, stolen) {
				t.Errorf("%s: the app received alice's session: %q", what, h)
			}
		}
	}
	// 1. Past Go's 3000-part limit: refused, never forwarded.
	r := send(strings.Repeat("p;", 3001) + app.name + "=" + stolen)
	if r.StatusCode != http.StatusBadRequest || len(app.seen) != 0 {
		t.Errorf("3001 cookies: status %d, %d forwarded", r.StatusCode, len(app.seen))
	}
	// The session ID in the URL instead of a cookie (Tomcat's
	// ;jsessionid=, PHP without use_only_cookies): refused.
	for _, u := range []string{"/home;wordpress_logged_in_abc=" + stolen, "/home?wordpress_logged_in_abc=" + stolen} {
		app.drain()
		if r := raw.get(u); r.StatusCode != http.StatusBadRequest || len(app.seen) != 0 {
			t.Errorf("%s: status %d, %d forwarded", u, r.StatusCode, len(app.seen))
		}
	}
	// 2. PHP's name mangling: withheld (never forwarded under any name).
	for _, name := range []string{"wordpress.logged_in_abc", "wordpress[logged_in_abc", "wordpress logged_in_abc", "%20wordpress_logged_in_abc", "WORDPRESS_LOGGED_IN_ABC", "wordpress_logged_in_abc[0]"} {
		r := send(name + "=" + stolen)
		if r.StatusCode == http.StatusOK && strings.Contains(r.body, "user=alice") {
			t.Errorf("%s: reached alice's account", name)
		}
		noStolen(name)
	}
	// 3. Duplicates, first or last: refused even for a verified insider.
	_ = bobs
	own := bob.jarHeader() // bob's verified 2FA session and his app session
	for _, c := range []string{
		own + "; " + app.name + "=" + stolen,
		app.name + "=" + stolen + "; " + own,
		own + "; wordpress.logged_in_abc=" + stolen,
		own + "; " + app.name,
		own + "; x=1, " + app.name + "=" + stolen,
	} {
		r := send(c)
		if r.StatusCode != http.StatusBadRequest || !strings.Contains(r.body, "could not be read safely") {
			t.Errorf("%q: status %d, want 400", c, r.StatusCode)
		}
		noStolen(c)
	}
	raw.accept = "application/json"
	r = send(own + "; " + app.name + "=" + stolen)
	if m := decodeJSON(t, r.expect(t, http.StatusBadRequest)); m["error"] != "ambiguous_request" {
		t.Errorf("JSON = %v", m)
	}
}

// TestAppRuleBindingByNameAndValue: a binding is for a cookie's name and
// value; the same value under another matching name is not authorised,
// even for a user with a verified session of her own.
func TestAppRuleBindingByNameAndValue(t *testing.T) {
	app := &ruleApp{name: "SESSd41d"}
	s := startRuleSite(t, app, "\t\t\tpath /login\n\t\t\tusername_field username\n\t\t\tsession_cookie SESS*")
	alice := s.browser("")
	ruleEnroll(t, alice, "alice")
	stolen := alice.cookie(app.name)
	bob := s.browser("")
	ruleEnroll(t, bob, "bob")
	app.drain()
	// Bob's own session plus alice's value under another SESS* name.
	raw := &browser{t: t, s: s, client: &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}, accept: "text/html"}
	r := raw.do("GET", "/home", nil, http.Header{"Cookie": {bob.jarHeader() + "; SESSmallory=" + stolen}})
	r.expect(t, http.StatusOK).contains(t, "user=bob")
	if h := <-app.seen; strings.Contains(h, stolen) {
		t.Errorf("the app received alice's value under another name: %q", h)
	}
	// Alice's value under her cookie's name, with bob's 2FA session:
	// bound to alice, so bob is sent to the challenge for alice... and
	// the cookie goes nowhere.
	thief := s.browser("")
	thief.setCookie("SESSmallory", stolen)
	app.drain()
	if r := thief.get("/home"); r.StatusCode == http.StatusOK && strings.Contains(r.body, stolen) {
		t.Fatal("the value under another name reached the app")
	}
}

// jarHeader is the Cookie header the browser's jar would send.
func (b *browser) jarHeader() string {
	u, _ := url.Parse(b.s.base)
	var parts []string
	for _, c := range b.client.Jar.Cookies(u) {
		parts = append(parts, c.Name+"="+c.Value)
	}
	return strings.Join(parts, "; ")
}

// TestAppRuleMultiName: a login binds every session cookie it sets; each
// is worth nothing without the verified browser.
func TestAppRuleMultiName(t *testing.T) {
	app := &ruleApp{name: "wordpress_logged_in_x", extra: "wordpress_sec_x"}
	s := startRuleSite(t, app, "\t\t\tpath /login\n\t\t\tusername_field username\n\t\t\tsession_cookie wordpress_logged_in_* wordpress_sec_*")
	alice := s.browser("")
	ruleEnroll(t, alice, "alice")
	app.drain()
	alice.get("/home").expect(t, http.StatusOK).contains(t, "user=alice")
	h := <-app.seen
	for _, n := range []string{app.name, app.extra} {
		if v := alice.cookie(n); v == "" || !strings.Contains(h, n+"="+v) {
			t.Errorf("%s not passed to the app for the verified browser: %q", n, h)
		}
	}
	for _, n := range []string{app.name, app.extra} {
		thief := s.browser("")
		thief.setCookie(n, alice.cookie(n))
		thief.get("/home").expectRedirect(t, "/.2fa/challenge")
	}
}

// TestAppRuleAnonymousSession: a session the app issued to this browser
// before login passes (CSRF tokens in pre-login sessions keep working);
// after a login that keeps its ID it is bound, pending until the code,
// and never anonymous again, not even with a replayed companion cookie.
func TestAppRuleAnonymousSession(t *testing.T) {
	app := &ruleApp{name: "PHPSESSID", keepID: true}
	s := startRuleSite(t, app, "\t\t\tpath /login\n\t\t\tusername_field username\n\t\t\tsession_cookie PHPSESSID")
	b := s.browser("")
	b.get("/login").expect(t, http.StatusOK)
	pre := b.cookie(app.name)
	companion := b.cookie(anonCookie)
	if pre == "" || companion == "" {
		t.Fatalf("no anonymous session recorded (app %q, companion %q)", pre, companion)
	}
	app.drain()
	r := b.get("/form").expect(t, http.StatusOK)
	if !strings.Contains(r.body, app.name+"="+pre) {
		t.Fatalf("anonymous session withheld: %s", r.body)
	}
	if strings.Contains(r.body, "2fa_") {
		t.Fatalf("gate cookies reached the app: %s", r.body)
	}
	// A failed login keeps the pre-login session anonymous.
	b.post("/login", url.Values{"username": {"alice"}, "password": {"wrong"}}).expect(t, http.StatusOK).contains(t, "login failed")
	b.get("/form").expect(t, http.StatusOK).contains(t, app.name+"="+pre)
	// A login that keeps the ID and leads away succeeds (the default
	// signal) and binds the pre-login session.
	b.post("/login", url.Values{"username": {"alice"}, "password": {"wonderland"}}).expectRedirect(t, "/.2fa/enroll")
	if b.cookie(app.name) != pre {
		t.Fatal("the app changed the session ID")
	}
	app.drain()
	b.get("/home").expectRedirect(t, "/.2fa/enroll")
	b.post("/home", url.Values{"x": {"1"}}).expectRedirect(t, "/.2fa/enroll")
	b.get("/login").expectRedirect(t, "/.2fa/enroll")
	if len(app.seen) != 0 {
		t.Fatalf("%d requests with the logged-in session reached the app before the code", len(app.seen))
	}
	// A replayed companion cookie from before the login does not make
	// it anonymous again: not now, not after the pending binding expired.
	for _, wait := range []time.Duration{0, pendingBindingTTL + time.Minute, anonSessionTTL - pendingBindingTTL - 2*time.Minute} {
		advance(wait)
		thief := s.browser("")
		thief.setCookie(app.name, pre)
		thief.setCookie(anonCookie, companion)
		app.drain()
		r := thief.get("/home")
		for len(app.seen) > 0 {
			if h := <-app.seen; strings.Contains(h, pre) {
				t.Fatalf("after %v: the logged-in session reached the app as anonymous (%d): %q", wait, r.StatusCode, h)
			}
		}
	}
}

// TestAppRuleLoginInFlight: while a login with an anonymous session is in
// flight, requests with that session do not reach the app; a login waits
// for the requests already forwarded with it.
func TestAppRuleLoginInFlight(t *testing.T) {
	app := &ruleApp{name: "PHPSESSID", keepID: true, block: make(chan struct{}), started: make(chan struct{}, 1), slow: make(chan struct{})}
	s := startRuleSite(t, app, "\t\t\tpath /login\n\t\t\tusername_field username\n\t\t\tsession_cookie PHPSESSID")
	b := s.browser("")
	b.get("/login").expect(t, http.StatusOK)
	pre := b.cookie(app.name)

	// A slow request with the anonymous session is on its way to the
	// app; the login must wait for it.
	slowDone := make(chan error, 1)
	go func() {
		resp, err := b.client.Get(s.base + "/slow")
		if err == nil {
			resp.Body.Close()
		}
		slowDone <- err
	}()
	waitFor(t, func() bool { return len(app.seen) > 1 })
	app.drain()
	loginDone := make(chan *http.Response, 1)
	go func() {
		form := url.Values{"username": {"alice"}, "password": {"wonderland"}}
		req, _ := http.NewRequest("POST", s.base+"/login", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Accept", "text/html")
		resp, err := b.client.Do(req)
		if err != nil {
			loginDone <- nil
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		loginDone <- resp
	}()
	select {
	case <-app.started:
		t.Fatal("the login reached the app while a request with its session was still in flight")
	case <-time.After(300 * time.Millisecond):
	}
	close(app.slow)
	if err := <-slowDone; err != nil {
		t.Fatal(err)
	}
	select {
	case <-app.started:
	case <-time.After(5 * time.Second):
		t.Fatal("the login never reached the app")
	}
	app.drain()
	// The login is in flight (blocked in the app): a request with the
	// session does not reach the app with it.
	other := s.browser("")
	for _, c := range b.client.Jar.Cookies(mustURL(s.base)) {
		other.setCookie(c.Name, c.Value)
	}
	other.get("/page")
	for len(app.seen) > 0 {
		if h := <-app.seen; strings.Contains(h, pre) {
			t.Fatalf("a request with the session reached the app during the login: %q", h)
		}
	}
	close(app.block)
	resp := <-loginDone
	if resp == nil || resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/.2fa/enroll") {
		t.Fatalf("login: %v", resp)
	}
	third := s.browser("")
	third.setCookie(app.name, pre)
	third.get("/page").expectRedirect(t, "/.2fa/enroll")
}

// TestAppRuleRacingLogins: two logins sent at once with one pre-login
// session, one with the right password and one wrong: the failed one must
// not make the session anonymous again (it would pass once the pending
// binding expired, logged in as alice, without her second factor).
func TestAppRuleRacingLogins(t *testing.T) {
	app := &ruleApp{name: "PHPSESSID", keepID: true}
	s := startRuleSite(t, app, "\t\t\tpath /login\n\t\t\tusername_field username\n\t\t\tsession_cookie PHPSESSID")
	b := s.browser("")
	b.get("/login").expect(t, http.StatusOK)
	pre, companion := b.cookie(app.name), b.cookie(anonCookie)
	// Both attempts have read the session as anonymous before either
	// writes its marker.
	var arrived sync.WaitGroup
	arrived.Add(2)
	lined := make(chan struct{})
	go func() { arrived.Wait(); close(lined) }()
	hook := func() {
		arrived.Done()
		select {
		case <-lined:
		case <-time.After(10 * time.Second): // the test fails below
		}
	}
	loginMarkerHook.Store(&hook)
	t.Cleanup(func() { loginMarkerHook.Store(nil) })
	var done sync.WaitGroup
	status := make([]int, 2)
	for i, pw := range []string{"wonderland", "wrong"} {
		done.Add(1)
		go func() {
			defer done.Done()
			form := url.Values{"username": {"alice"}, "password": {pw}}
			req, _ := http.NewRequest("POST", s.base+"/login", strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Accept", "text/html")
			req.Header.Set("Cookie", app.name+"="+pre+"; "+anonCookie+"="+companion)
			resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				status[i] = resp.StatusCode
			}
		}()
	}
	done.Wait()
	loginMarkerHook.Store(nil)
	if status[0] != http.StatusSeeOther || status[1] != http.StatusOK {
		t.Fatalf("logins answered %v, want [303 200]", status)
	}
	advance(pendingBindingTTL + time.Minute)
	thief := s.browser("")
	thief.setCookie(app.name, pre)
	thief.setCookie(anonCookie, companion)
	app.drain()
	r := thief.get("/home")
	for len(app.seen) > 0 {
		if h := <-app.seen; strings.Contains(h, pre) {
			t.Fatalf("alice's session reached the app as anonymous (%d %s): %q", r.StatusCode, trim(r.body), h)
		}
	}
}

// TestAppRuleTwoUsersRefusedCleanly: session cookies bound to two users
// in one request are a 400, and the anonymous session counted in flight
// on the way is released (a later login with it does not wait).
func TestAppRuleTwoUsersRefusedCleanly(t *testing.T) {
	app := &ruleApp{name: "SESS", perUser: true}
	s := startRuleSite(t, app, "\t\t\tpath /login\n\t\t\tusername_field username\n\t\t\tsession_cookie SESS*")
	alice, bob := s.browser(""), s.browser("")
	alice.post("/login", url.Values{"username": {"alice"}, "password": {"wonderland"}}).expectRedirect(t, "/.2fa/enroll")
	bob.post("/login", url.Values{"username": {"bob"}, "password": {"builder"}}).expectRedirect(t, "/.2fa/enroll")
	c := s.browser("")
	c.get("/login").expect(t, http.StatusOK)
	anon, companion := c.cookie("SESS"), c.cookie(anonCookie)
	if anon == "" || companion == "" {
		t.Fatal("no anonymous session")
	}
	raw := &browser{t: t, s: s, client: &http.Client{}, accept: "application/json"}
	hdr := "SESS=" + anon + "; SESSalice=" + alice.cookie("SESSalice") + "; SESSbob=" + bob.cookie("SESSbob") + "; " + anonCookie + "=" + companion
	if m := decodeJSON(t, raw.do("GET", "/home", nil, http.Header{"Cookie": {hdr}}).expect(t, http.StatusBadRequest)); m["error"] != "ambiguous_request" {
		t.Fatalf("JSON = %v", m)
	}
	start := time.Now()
	c.post("/login", url.Values{"username": {"alice"}, "password": {"wrong"}}).expect(t, http.StatusOK)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("a login with the session waited %v for a request that had ended", d)
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestAppRuleSuccessSignal: a 200 re-render with a fresh session never
// binds (issue 13, item 6: no password, a binding for alice); a 302 that
// keeps the pre-login ID binds only if it leads away from the login
// page; the success option names other signals.
func TestAppRuleSuccessSignal(t *testing.T) {
	app := &ruleApp{name: "PHPSESSID"}
	s := startRuleSite(t, app, "\t\t\tpath /login\n\t\t\tusername_field username\n\t\t\tsession_cookie PHPSESSID")
	mallory := s.browser("")
	r := mallory.post("/login", url.Values{"username": {"alice"}, "password": {""}})
	r.expect(t, http.StatusOK).contains(t, "login failed")
	if mallory.cookie(app.name) == "" {
		t.Fatal("the app set no session on the failed login (test broken)")
	}
	mallory.get("/.2fa/enroll").expect(t, http.StatusForbidden)
	mallory.get("/home").expect(t, http.StatusOK).contains(t, "user= ")

	// Kept ID, redirected back to the login page: not a success.
	back := &ruleApp{name: "PHPSESSID", keepID: true, loginLoc: "/login"}
	s = startRuleSite(t, back, "\t\t\tpath /login\n\t\t\tusername_field username\n\t\t\tsession_cookie PHPSESSID")
	b := s.browser("")
	b.get("/login")
	b.post("/login", url.Values{"username": {"alice"}, "password": {"wonderland"}}).expect(t, http.StatusFound)
	b.get("/.2fa/enroll").expect(t, http.StatusForbidden)

	// Kept ID, the login page with a parameter added: what a failed
	// login looks like ("/login?error=1"), so not a success by default.
	q := &ruleApp{name: "PHPSESSID", keepID: true, loginLoc: "/login?welcome=1"}
	s = startRuleSite(t, q, "\t\t\tpath /login\n\t\t\tusername_field username\n\t\t\tsession_cookie PHPSESSID")
	b = s.browser("")
	b.get("/login")
	b.post("/login", url.Values{"username": {"alice"}, "password": {"wonderland"}}).expect(t, http.StatusFound)
	b.get("/.2fa/enroll").expect(t, http.StatusForbidden)
	// ... unless the operator names it.
	s = startRuleSite(t, q, "\t\t\tpath /login\n\t\t\tusername_field username\n\t\t\tsession_cookie PHPSESSID\n\t\t\tsuccess location /login?welcome=*")
	b = s.browser("")
	b.get("/login")
	b.post("/login", url.Values{"username": {"alice"}, "password": {"wonderland"}}).expectRedirect(t, "/.2fa/enroll")
	// Kept ID, the same path with the login request's parameter changed:
	// a success (a front controller's "index.php?page=home").
	fc := &ruleApp{name: "PHPSESSID", keepID: true, loginLoc: "/login?page=home"}
	s = startRuleSite(t, fc, "\t\t\tpath /login\n\t\t\tusername_field username\n\t\t\tsession_cookie PHPSESSID")
	b = s.browser("")
	b.get("/login?page=login")
	b.do("POST", "/login?page=login", strings.NewReader("username=alice&password=wonderland"), http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}).expectRedirect(t, "/.2fa/enroll")

	// success location: only a redirect there binds.
	loc := &ruleApp{name: "PHPSESSID", loginLoc: "/admin/index"}
	s = startRuleSite(t, loc, "\t\t\tpath /login\n\t\t\tusername_field username\n\t\t\tsession_cookie PHPSESSID\n\t\t\tsuccess location /admin/*")
	s.browser("").post("/login", url.Values{"username": {"alice"}, "password": {"wonderland"}}).expectRedirect(t, "/.2fa/enroll?rd=%2Fadmin%2Findex")
	loc.mu.Lock()
	loc.loginLoc = "/elsewhere"
	loc.mu.Unlock()
	r = s.browser("").post("/login", url.Values{"username": {"alice"}, "password": {"wonderland"}})
	if r.StatusCode != http.StatusFound {
		t.Fatalf("a redirect the location signal does not match bound: %d %s", r.StatusCode, r.location())
	}

	// success cookie: a cookie only a successful login sets.
	flag := &ruleApp{name: "PHPSESSID", flag: "logged_in"}
	s = startRuleSite(t, flag, "\t\t\tpath /login\n\t\t\tusername_field username\n\t\t\tsession_cookie PHPSESSID\n\t\t\tsuccess cookie logged_in\n\t\t\tsuccess status 302")
	s.browser("").post("/login", url.Values{"username": {"alice"}, "password": {"wonderland"}}).expectRedirect(t, "/.2fa/enroll")
	flag.mu.Lock()
	flag.flag = ""
	flag.mu.Unlock()
	if r := s.browser("").post("/login", url.Values{"username": {"alice"}, "password": {"wonderland"}}); r.StatusCode != http.StatusFound {
		t.Fatalf("a login without the success cookie bound: %d", r.StatusCode)
	}
}

// TestAppRuleFrontController: with path on the script that serves the
// whole application, a password alone (the code prompt ignored) and a
// stolen cookie alone get nowhere on any URL shape; a POST there without
// the user field is an ordinary request; an ambiguous login is refused.
func TestAppRuleFrontController(t *testing.T) {
	app := &ruleApp{name: "PHPSESSID", loginLoc: "/index.php?page=home"}
	s := startRuleSite(t, app, "\t\t\tpath /index.php\n\t\t\tusername_field username\n\t\t\tsession_cookie PHPSESSID")
	// Anonymous visitors use the app (pre-login session, forms).
	b := s.browser("")
	b.get("/index.php?page=login").expect(t, http.StatusOK)
	b.post("/index.php?do=search", url.Values{"q": {"x"}}).expect(t, http.StatusOK).contains(t, "PHPSESSID=")
	// Password only: login, ignore the enrollment prompt.
	b.post("/index.php?do=login", url.Values{"username": {"alice"}, "password": {"wonderland"}}).expectRedirect(t, "/.2fa/enroll")
	app.drain()
	for _, p := range []string{"/index.php?page=home", "/index.php", "/index.php/x", "/?page=admin"} {
		b.get(p).expectRedirect(t, "/.2fa/enroll")
	}
	b.post("/index.php?do=save", url.Values{"text": {"defaced"}}).expectRedirect(t, "/.2fa/enroll")
	b.accept = "application/json"
	if m := decodeJSON(t, b.get("/index.php?api=1").expect(t, http.StatusUnauthorized)); m["error"] != "two_factor_required" {
		t.Fatalf("API: %v", m)
	}
	if len(app.seen) != 0 {
		t.Fatalf("%d requests with the password-only session reached the app", len(app.seen))
	}
	// Stolen cookie alone.
	thief := s.browser("")
	thief.setCookie(app.name, b.cookie(app.name))
	thief.get("/index.php?page=home").expectRedirect(t, "/.2fa/enroll")
	// An ambiguous login is refused and never forwarded.
	m := s.browser("")
	r := m.do("POST", "/index.php", strings.NewReader("username=nobody&username=alice&password=x"), http.Header{"Content-Type": {"application/x-www-form-urlencoded"}})
	if r.StatusCode != http.StatusBadRequest || len(app.seen) != 0 {
		t.Fatalf("ambiguous login: %d, %d forwarded", r.StatusCode, len(app.seen))
	}
}

// TestAppRuleUnknownOnLoginPage: a session cookie the gate never saw is
// withheld and expired on the login page (which stays usable), and sends
// browsers elsewhere to log in.
func TestAppRuleUnknownOnLoginPage(t *testing.T) {
	app := &ruleApp{name: "PHPSESSID"}
	s := startRuleSite(t, app, "\t\t\tpath /login\n\t\t\tusername_field username\n\t\t\tsession_cookie PHPSESSID")
	b := s.browser("")
	b.setCookie(app.name, "from-before-the-gate")
	app.drain()
	r := b.get("/login").expect(t, http.StatusOK)
	if strings.Contains(r.body, "from-before-the-gate") {
		t.Fatalf("unknown session reached the app: %s", r.body)
	}
	if v := b.cookie(app.name); v == "" || v == "from-before-the-gate" {
		t.Fatalf("browser's session after the login page: %q (want the app's new one)", v)
	}
	c := s.browser("")
	c.setCookie(app.name, "from-before-the-gate")
	if r := c.get("/home").expectRedirect(t, "/login"); !strings.Contains(strings.Join(r.Header.Values("Set-Cookie"), "\n"), app.name+"=;") {
		t.Errorf("unknown session not expired: %q", r.Header.Values("Set-Cookie"))
	}
}

// TestAppLoginOptions: session_cookie and path take several values and
// repeat, success lines combine; the earlier JSON strings still work.
func TestAppLoginOptions(t *testing.T) {
	var h Handler
	err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`two_factor {
		app_login {
			path /wp-login.php /login
			path /index.php
			username_field log
			session_cookie wordpress_logged_in_* wordpress_sec_*
			session_cookie PHPSESSID
			success status 302 303
			success location /wp-admin/*
			success cookie wordpress_logged_in_*
			success redirect
		}
	}`))
	if err != nil {
		t.Fatal(err)
	}
	a := h.AppLogin
	if !slices.Equal(a.Paths, []string{"/wp-login.php", "/login", "/index.php"}) || !slices.Equal(a.SessionCookies, []string{"wordpress_logged_in_*", "wordpress_sec_*", "PHPSESSID"}) {
		t.Fatalf("parsed %+v", a)
	}
	if s := a.Success; s == nil || !s.Redirect || !slices.Equal(s.Status, []int{302, 303}) || s.Location != "/wp-admin/*" || s.Cookie != "wordpress_logged_in_*" {
		t.Fatalf("success %+v", a.Success)
	}
	var old AppLogin
	if err := json.Unmarshal([]byte(`{"path":"/login","paths":["/api/login"],"username_field":"u","session_cookie":"SID","success":{"status":[200]}}`), &old); err != nil {
		t.Fatal(err)
	}
	if err := old.validate(); err != nil {
		t.Fatal(err)
	}
	old.provision()
	if !slices.Equal(old.loginPaths(), []string{"/api/login", "/login"}) || !slices.Equal(old.cookieNames(), []string{"SID"}) || !old.watches("/login") || old.watches("/other") {
		t.Fatalf("earlier JSON fields: paths %q, cookies %q", old.loginPaths(), old.cookieNames())
	}
	for _, tc := range []struct{ block, want string }{
		{"success", "app_login: success: expected redirect"},
		{"success maybe", `app_login: success: unknown kind "maybe"`},
		{"success status 2000", `app_login: success status 2000 is not an HTTP status code`}, // Validate's rule
		{"success status x", `app_login: success status: "x" is not an HTTP status code`},    // the parser's syntax
		{"success status", "app_login: success status: expected at least one status code"},
		{"success redirect\n success redirect", "app_login: success redirect specified more than once"},
		{"success location", "app_login: success location: expected exactly one value, got 0"},
		{"success location wp-admin", `app_login: success location must start with /, got "wp-admin"`},
		{"success cookie a=b", `app_login: success cookie "a=b" is not a valid cookie name or glob`},
		{"session_cookie", "app_login: session_cookie: expected at least one value"},
		{"session_cookie 2fa_session", `app_login: session_cookie "2fa_session" is a name of the gate's own cookies`},
		{"path /ok /[bad", `app_login: path "/[bad" is not a valid glob`},
	} {
		in := "two_factor {\n app_login {\n path /login\n username_field u\n session_cookie SID\n " + tc.block + "\n }\n}"
		var h Handler
		err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.block, err, tc.want)
		}
	}
}

// BenchmarkAppCookieScan is the per-request cost of the rule's cookie
// work without the store: parse a WordPress-like Cookie header of 16
// cookies, find the session-cookie candidates, and rebuild the header.
func BenchmarkAppCookieScan(b *testing.B) {
	globs := lowerAll([]string{"wordpress_logged_in_*", "wordpress_sec_*"})
	var parts []string
	for i := range 13 {
		parts = append(parts, fmt.Sprintf("wp-settings-%d=editor%%3Dtinymce%%26libraryContent%%3Dbrowse", i))
	}
	parts = append(parts, "wordpress_test_cookie=WP%20Cookie%20check", "wordpress_logged_in_0123456789abcdef=admin%7C1700000000%7Cabcdefghijklmnopqrstuvwxyz%7C0123456789", "2fa_session=MTcwMDAwMDAwMHxabcdef")
	hdr := []string{strings.Join(parts, "; ")}
	b.ReportAllocs()
	for b.Loop() {
		ps, err := parseCookieHeader(hdr)
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for _, p := range ps {
			if !isGateCookieName(p.name) && couldBeSessionCookie(globs, p.name) {
				n++
			}
		}
		if n != 1 {
			b.Fatalf("%d candidates", n)
		}
		_ = buildCookieHeader(ps, func(int) bool { return true })
	}
}

// FuzzAppCookieWithholding: whatever the Cookie header, once the gate has
// withheld every part it takes for a possible session cookie, Go's own
// cookie parser finds no session cookie in what is left (in any case),
// and the rebuilt header parses back to the same parts.
func FuzzAppCookieWithholding(f *testing.F) {
	for _, seed := range []string{
		"SID=1", "a=1; SID=2", " SID =3", "sid=4", "SID", "S%49D=5", "SID[x]=6", "x=\"SID=7\"",
		"a=1;SID=2;;b", "SID=1; SID=2", "\tSID=\t8", strings.Repeat("p;", 10) + "SID=9",
	} {
		f.Add(seed)
	}
	globs := lowerAll([]string{"SID"})
	f.Fuzz(func(t *testing.T, header string) {
		parts, err := parseCookieHeader([]string{header})
		if err != nil {
			return
		}
		all := buildCookieHeader(parts, func(int) bool { return true })
		again, err := parseCookieHeader([]string{all})
		if err != nil || len(again) != len(parts) {
			t.Fatalf("rebuilt header %q parses to %d parts (%v), want %d", all, len(again), err, len(parts))
		}
		for i := range parts {
			if again[i] != parts[i] {
				t.Fatalf("part %d: %+v, rebuilt %+v", i, again[i], parts[i])
			}
		}
		kept := buildCookieHeader(parts, func(i int) bool { return !couldBeSessionCookie(globs, parts[i].name) })
		req := &http.Request{Header: http.Header{"Cookie": {kept}}}
		for _, c := range req.Cookies() {
			if strings.EqualFold(c.Name, "SID") {
				t.Fatalf("Go reads %q from the withheld header %q (from %q)", c.Name, kept, header)
			}
		}
	})
}

func TestLeadsAway(t *testing.T) {
	r := httptest.NewRequest("POST", "http://example.com/app/login.php?x=1", nil)
	for _, tc := range []struct {
		loc  string
		away bool
	}{
		{"", false},
		{"/app/login.php?x=1", false},
		{"login.php?x=1", false},
		{"http://example.com/app/login.php?x=1", false},
		{"/app/login.php?x=2", true},
		{"/app/login.php", true},
		{"index.php", true},
		{"/app/../app/login.php?x=1", false},
		{"http://example.com/home", true},
		{"https://other.example/home", false},
		{"//other.example/home", false},
		{"/app/login.php?x=1&error=%zz", false},
	} {
		if got := leadsAway(r, tc.loc); got != tc.away {
			t.Errorf("leadsAway(%q) = %v, want %v", tc.loc, got, tc.away)
		}
	}
	for _, tc := range []struct {
		loc, glob string
		ok        bool
	}{
		{"/wp-admin/", "/wp-admin/*", true},
		{"/wp-admin/index.php", "/wp-admin/*", true},
		{"/wp-login.php?error=1", "/wp-admin/*", false},
		{"/index.php?page=home", "/index.php?page=*", true},
		{"/index.php?page=login&err=1", "/index.php?page=home*", false},
		{"https://other.example/wp-admin/", "/wp-admin/*", false},
	} {
		if got := locationMatches(r, tc.loc, tc.glob); got != tc.ok {
			t.Errorf("locationMatches(%q, %q) = %v, want %v", tc.loc, tc.glob, got, tc.ok)
		}
	}
}

// TestAppRuleReloginAsSelf: a login attempt carries the browser's bound
// session only when it is this browser's own, verified user logging in
// again (phpMyAdmin keeps its session ID across its logout); for another
// user, or with a stolen cookie and the password but no second factor, the
// bound cookie never reaches the application.
func TestAppRuleReloginAsSelf(t *testing.T) {
	app := &ruleApp{name: "PHPSESSID", keepID: true, loginLoc: "/home"}
	s := startRuleSite(t, app, "\t\t\tpath /login\n\t\t\tusername_field username\n\t\t\tsession_cookie PHPSESSID")
	alice := s.browser("")
	alice.get("/login")
	ruleEnroll(t, alice, "alice")
	sess := alice.cookie(app.name)
	login := func(b *browser, user, password string) string {
		t.Helper()
		app.drain()
		b.post("/login", url.Values{"username": {user}, "password": {password}})
		for len(app.seen) > 0 {
			if h := <-app.seen; strings.Contains(h, sess) {
				return h
			}
		}
		return ""
	}
	// Alice again, verified here: the app gets her session.
	if h := login(alice, "alice", "wonderland"); h == "" {
		t.Error("alice's own re-login did not carry her session")
	}
	// Alice's browser, logging in as bob: withheld.
	if h := login(alice, "bob", "builder"); h != "" {
		t.Errorf("a login as bob carried alice's session: %q", h)
	}
	// A thief with alice's cookie and password, no second factor: withheld.
	thief := s.browser("")
	thief.setCookie(app.name, sess)
	if h := login(thief, "alice", "wonderland"); h != "" {
		t.Errorf("a stolen cookie reached the app with a password login: %q", h)
	}
}
