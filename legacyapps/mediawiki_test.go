//go:build linux

package legacyapps

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// mediawikiRecipe is the app_login block the README documents for
// MediaWiki with $wgDBname "wikidb" (the cookie prefix). Every POST with
// wpName to index.php, in any URL shape that reaches it, is a login:
// index.php is a front controller (title=Special:UserLogin in the query
// or the body, or /index.php/Special:UserLogin). The session cookie, and
// the UserID/Token pair of "Keep me logged in", can each authenticate.
const mediawikiRecipe = `path / /index.php /index.php/*
username_field wpName
session_cookie wikidb_session wikidbUserID wikidbToken`

type mediawiki struct {
	s       *site
	alicePW string
	bobPW   string
	keys    map[string]*totpKey
	verdict verdict
}

// mediawikiApp is MediaWiki on SQLite, admin Alice and Bob.
func mediawikiApp() *app {
	mw := &mediawiki{alicePW: "alice-" + randomHex(8), bobPW: "bob-" + randomHex(8), keys: map[string]*totpKey{}}
	mw.verdict = verdict{loggedIn: mwLoggedIn, anonymous: mwAnonymous}
	return &app{
		name:        "mediawiki",
		files:       []string{"/usr/share/mediawiki/index.php", "/usr/share/mediawiki/maintenance/install.php"},
		aptPackages: "mediawiki php-fpm php-cli php-sqlite3 php-xml php-mbstring php-intl",
		setup:       mw.setup,
		suite:       mw.suite,
	}
}

// setup copies the tree and runs MediaWiki's CLI installer into a fresh
// SQLite database, then creates Bob.
func (mw *mediawiki) setup(t *testing.T, dir string, port int, fpm func(string) string) (string, string) {
	root := filepath.Join(dir, "www")
	shadowTree(t, "/usr/share/mediawiki", root, "LocalSettings.php", "images")
	for _, d := range []string{"db", "www/images"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	run(t, root, "php", "maintenance/install.php", "--quiet",
		"--dbtype", "sqlite", "--dbpath", filepath.Join(dir, "db"), "--dbname", "wikidb",
		"--server", fmt.Sprintf("http://localhost:%d", port), "--scriptpath", "",
		"--pass", mw.alicePW, "--confpath", root, "Gate Wiki", "Alice")
	ls, err := os.OpenFile(filepath.Join(root, "LocalSettings.php"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	// api.php's login modules stay on: the test shows that a login
	// through them (other field names, unwatched) does not get in.
	fmt.Fprint(ls, `
# Test site: no throttles between the many logins, no mail.
$wgPasswordAttemptThrottle = false;
$wgRateLimits = [];
$wgEnableEmail = false;
$wgCookieSecure = false;
$wgSessionCacheType = CACHE_DB;
`)
	ls.Close()
	run(t, root, "php", "maintenance/createAndPromote.php", "Bob", mw.bobPW)
	sock := fpm("")
	// try_files without the fallback to index.php: a POST to an unknown
	// path must not become an unwatched login.
	body := fmt.Sprintf(`root * %s
php_fastcgi unix/%s {
	try_files {path} {path}/index.php
}
file_server`, root, sock)
	return mediawikiRecipe, body
}

var reMWUserID = regexp.MustCompile(`"userinfo":\{"id":([0-9]+)`)

// mwLoggedIn reports whether MediaWiki answered as user (its page config
// or api.php's userinfo).
func mwLoggedIn(r response, user string) bool {
	if strings.Contains(r.body, `"wgUserName":"`+user+`"`) {
		return true
	}
	m := reMWUserID.FindStringSubmatch(r.body)
	return m != nil && m[1] != "0"
}

// mwAnonymous reports whether MediaWiki answered as to an anonymous visitor.
func mwAnonymous(r response) bool {
	switch {
	case strings.Contains(r.body, `"wgUserName":null`):
		return true
	case strings.Contains(r.body, `"userinfo":{"id":0`):
		return true
	case r.StatusCode >= 300 && r.StatusCode < 400 && strings.Contains(r.location(), "Special:UserLogin"):
		return true
	}
	return false
}

// login loads Special:UserLogin (the CSRF token lives in the pre-login
// session) and posts the form, as a browser would.
func (mw *mediawiki) login(b *browser, user, password string, remember bool) response {
	b.t.Helper()
	page := b.get("/index.php?title=Special:UserLogin&returnto=Special:Preferences").expect(b.t, http.StatusOK)
	action, form := loginForm(b.t, page, "wpName")
	form.Set("wpName", user)
	form.Set("wpPassword", password)
	form.Set("wploginattempt", "Log in")
	if remember {
		form.Set("wpRemember", "1")
	}
	return b.post(action, form)
}

// probes are MediaWiki's URL shapes: pages through the front controller
// in its query and path forms, a form post, and api.php.
func (mw *mediawiki) probes() []probe {
	return []probe{
		{method: "GET", path: "/index.php?title=Special:Preferences"},
		{method: "GET", path: "/index.php/Special:Watchlist"},
		{method: "GET", path: "/index.php?title=Main_Page"},
		{method: "GET", path: "/index.php?title=Special:UserLogin"},
		{method: "POST", path: "/index.php", body: "title=Special:Preferences"},
		{method: "GET", path: "/api.php?action=query&meta=userinfo&format=json"},
		{method: "POST", path: "/api.php", body: "action=query&meta=userinfo&format=json"},
	}
}

// suite runs the MediaWiki checks in order: later ones use Alice's
// verified browser.
func (mw *mediawiki) suite(t *testing.T, s *site) {
	mw.s = s
	v := mw.verdict
	var alice *browser
	t.Run("login_enroll_app", func(t *testing.T) {
		b := s.browser(t)
		if r := b.get("/api.php?action=query&meta=userinfo&format=json"); !mwAnonymous(r) {
			t.Fatalf("before login: %d\n%s", r.StatusCode, trim(r.body))
		}
		r := mw.login(b, "Alice", "wrong", false)
		if r.StatusCode != http.StatusOK || r.toGate() {
			t.Fatalf("wrong password: %d %q", r.StatusCode, r.location())
		}
		r = mw.login(b, "Alice", mw.alicePW, true)
		mw.keys["Alice"] = b.enroll(r, "Alice")
		page := b.get("/index.php?title=Special:Preferences").expect(t, http.StatusOK)
		if !mwLoggedIn(page, "Alice") {
			t.Fatalf("after enrollment Special:Preferences is not Alice's:\n%s", trim(page.body))
		}
		if r := b.get("/api.php?action=query&meta=userinfo&format=json"); !strings.Contains(r.body, `"name":"Alice"`) {
			t.Fatalf("api.php userinfo: %s", r.body)
		}
		alice = b
	})
	if alice == nil {
		return // the rest needs alice's verified browser
	}
	probes := mw.probes()

	t.Run("new_device_challenge", func(t *testing.T) {
		b := s.browser(t)
		r := b.follow(b.challenge(mw.login(b, "Alice", mw.alicePW, false), mw.keys["Alice"], false), 5)
		if !mwLoggedIn(b.get("/index.php?title=Special:Preferences"), "Alice") {
			t.Fatalf("after the challenge: %d %s\n%s", r.StatusCode, r.Request.URL, trim(r.body))
		}
	})

	t.Run("trusted_device_and_logout", func(t *testing.T) {
		b := s.browser(t)
		b.follow(b.challenge(mw.login(b, "Alice", mw.alicePW, false), mw.keys["Alice"], true), 5)
		if !mwLoggedIn(b.get("/index.php?title=Special:Preferences"), "Alice") {
			t.Fatal("trusted device not in")
		}
		before := b.stealAppCookies(t, "/")
		gate := b.gateSession()
		// MediaWiki's logout is a POST with the edit token.
		page := b.get("/index.php?title=Special:UserLogout").expect(t, http.StatusOK)
		action, form := loginForm(t, page, "wpEditToken")
		r := b.post(action, form)
		if r.StatusCode >= 400 {
			t.Fatalf("logout: %d", r.StatusCode)
		}
		if mwLoggedIn(b.get("/index.php?title=Special:Preferences"), "Alice") {
			t.Fatal("still logged in after logout")
		}
		for _, c := range gate {
			before.setCookie(c.Name, c.Value, "/")
		}
		v.assertNotIn(t, "cookies from before logout", before, "Alice", probes)
		r = mw.login(b, "Alice", mw.alicePW, false)
		if r.StatusCode != http.StatusFound || strings.Contains(r.location(), "/.2fa/") {
			t.Fatalf("trusted device asked again: %d %q", r.StatusCode, r.location())
		}
		if !mwLoggedIn(b.get("/index.php?title=Special:Preferences"), "Alice") {
			t.Fatal("trusted device not in after logging in again")
		}
	})

	t.Run("stolen_cookies", func(t *testing.T) {
		v.assertNotIn(t, "stolen cookies", alice.stealAppCookies(t, "/"), "Alice", probes)
		// "Keep me logged in": the UserID/Token pair alone.
		var remember []string
		for _, c := range alice.cookies("/") {
			if c.Name == "wikidbUserID" || c.Name == "wikidbToken" || c.Name == "wikidbUserName" {
				remember = append(remember, c.Name+"="+c.Value)
			}
		}
		if len(remember) != 3 {
			t.Fatalf("alice's browser lacks the remember-me cookies: %v", remember)
		}
		v.assertRawNotIn(t, "remember-me cookies alone", s, strings.Join(remember, "; "), "Alice", probes)
		if !mwLoggedIn(alice.get("/index.php?title=Special:Preferences"), "Alice") {
			t.Fatal("victim lost her session")
		}
	})

	t.Run("password_alone", func(t *testing.T) {
		b := s.browser(t)
		if r := mw.login(b, "Alice", mw.alicePW, true); !r.toGate() {
			t.Fatalf("login answered %d %q", r.StatusCode, r.location())
		}
		v.assertNotIn(t, "alice's password alone", b, "Alice", probes)
		bob := s.browser(t)
		if r := mw.login(bob, "Bob", mw.bobPW, false); !r.toGate() {
			t.Fatalf("bob's login answered %d %q", r.StatusCode, r.location())
		}
		v.assertNotIn(t, "bob's password alone", bob, "Bob", probes)
		// The same login form posted to other URL shapes of the front
		// controller.
		for _, target := range []string{"/index.php", "/", "/index.php/Special:UserLogin", "/nonexistent.php", "/no/such/page"} {
			m := s.browser(t)
			page := m.get("/index.php?title=Special:UserLogin").expect(t, http.StatusOK)
			_, form := loginForm(t, page, "wpName")
			form.Set("title", "Special:UserLogin")
			form.Set("wpName", "Bob")
			form.Set("wpPassword", mw.bobPW)
			m.post(target, form)
			v.assertNotIn(t, "login posted to "+target, m, "Bob", probes)
		}
	})

	t.Run("api_login", func(t *testing.T) {
		b := s.browser(t)
		tok := b.get("/api.php?action=query&meta=tokens&type=login&format=json")
		m := regexp.MustCompile(`"logintoken":"([^"]+)"`).FindStringSubmatch(tok.body)
		if m == nil {
			t.Fatalf("no login token: %s", tok.body)
		}
		token := strings.ReplaceAll(m[1], `\\`, `\`)
		// MediaWiki accepts the password and starts a logged-in session
		// in answer to a POST the gate cannot read as a login: the gate
		// must never take that session for an anonymous one.
		r := b.post("/api.php", url.Values{
			"action": {"clientlogin"}, "username": {"Bob"}, "password": {mw.bobPW},
			"logintoken": {token}, "loginreturnurl": {s.base + "/"}, "format": {"json"},
		})
		if !strings.Contains(r.body, `"status":"PASS"`) {
			t.Fatalf("api.php clientlogin did not log in, so this proves nothing: %d %s", r.StatusCode, trim(r.body))
		}
		v.assertNotIn(t, "after api.php clientlogin", b, "Bob", probes)
		b.post("/api.php", url.Values{
			"action": {"login"}, "lgname": {"Bob"}, "lgpassword": {mw.bobPW},
			"lgtoken": {token}, "format": {"json"},
		})
		v.assertNotIn(t, "after api.php login", b, "Bob", probes)
	})

	t.Run("disagreements", func(t *testing.T) {
		mw.disagreements(t, alice)
	})
}

// disagreements are issue 13's six attacks, adapted to MediaWiki.
func (mw *mediawiki) disagreements(t *testing.T, alice *browser) {
	s, v, probes := mw.s, mw.verdict, mw.probes()
	cookies := map[string]string{}
	for _, c := range alice.cookies("/") {
		cookies[c.Name] = c.Value
	}
	sess := cookies["wikidb_session"]
	if sess == "" {
		t.Fatal("alice's browser lacks wikidb_session")
	}
	all := "wikidb_session=" + sess + "; wikidbUserID=" + cookies["wikidbUserID"] + "; wikidbUserName=" + cookies["wikidbUserName"] + "; wikidbToken=" + cookies["wikidbToken"]

	// 1. More than 3000 cookie parts.
	v.assertRawNotIn(t, "3000+ cookie parts", s, manyCookies(all), "Alice", probes)
	// 2. PHP name mangling.
	for _, name := range []string{"wikidb.session", "wikidb session", "wikidb[session", " wikidb_session", "wikidb_session[x]"} {
		v.assertRawNotIn(t, fmt.Sprintf("mangled %q", name), s, name+"="+sess, "Alice", probes)
	}
	// 3. Duplicates: Bob, verified with his own factor, adds Alice's
	// session next to his own.
	bob := s.browser(t)
	mw.keys["Bob"] = bob.enroll(mw.login(bob, "Bob", mw.bobPW, false), "Bob")
	if !mwLoggedIn(bob.get("/index.php?title=Special:Preferences"), "Bob") {
		t.Fatal("bob not in after enrolling")
	}
	var gate []string
	bobSess := ""
	for _, c := range bob.cookies("/") {
		if isGateCookie(c.Name) {
			gate = append(gate, c.Name+"="+c.Value)
		}
		if c.Name == "wikidb_session" {
			bobSess = c.Value
		}
	}
	g := strings.Join(gate, "; ")
	v.assertRawNotIn(t, "duplicate, alice's first", s, g+"; wikidb_session="+sess+"; wikidb_session="+bobSess, "Alice", probes)
	v.assertRawNotIn(t, "duplicate, alice's last", s, g+"; wikidb_session="+bobSess+"; wikidb_session="+sess, "Alice", probes)
	v.assertRawNotIn(t, "bob's gate, alice's cookies", s, g+"; "+all, "Alice", probes)
	v.assertRawNotIn(t, "mangled duplicate", s, g+"; wikidb.session="+sess+"; wikidb_session="+bobSess, "Alice", probes)

	// 4. JSON: index.php reads form posts only; a JSON login logs no one
	// in and must not bind.
	m := s.browser(t)
	m.get("/index.php?title=Special:UserLogin")
	m.do("POST", "/index.php?title=Special:UserLogin", stringReader(`{"wpName":"Nobody","WPNAME":"Alice","wpPassword":"`+mw.alicePW+`"}`), m.sameOrigin("application/json"))
	v.assertNotIn(t, "after a JSON login", m, "Alice", probes[:2])

	// 5. Field names PHP reads differently from a naive parser.
	for _, trick := range []string{"%20wpName", "wpName%00x", "wpName", "wpName.", "wpName[x"} {
		m := s.browser(t)
		page := m.get("/index.php?title=Special:UserLogin").expect(t, http.StatusOK)
		action, form := loginForm(t, page, "wpName")
		form.Set("wpName", "Nobody")
		form.Set("wpPassword", mw.alicePW)
		r := m.postRaw(action, form.Encode()+"&"+trick+"=Alice")
		if r.StatusCode >= 300 && r.StatusCode < 400 && strings.Contains(r.location(), "/.2fa/enroll") {
			t.Errorf("%s=Alice: the gate sent the attacker to enroll a decoy", trick)
			// The attacker enrolls his own authenticator for the decoy:
			// then alice's session, logged in by PHP, must still be out
			// of reach.
			m.enroll(r, "")
		}
		v.assertNotIn(t, "field-name trick "+trick, m, "Alice", probes)
	}

	// 6. A failed login never binds.
	m = s.browser(t)
	r := mw.login(m, "Carol", "no-such-password", false)
	if r.toGate() {
		t.Errorf("failed login went to the gate: %d %q", r.StatusCode, r.location())
	}
	if e := m.get("/.2fa/enroll"); e.StatusCode == http.StatusOK && strings.Contains(e.body, "otpauth://") {
		t.Error("a failed login opened enrollment")
	}
}
