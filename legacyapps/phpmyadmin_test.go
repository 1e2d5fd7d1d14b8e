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

// phpmyadminRecipe is the app_login block the README documents for
// phpMyAdmin with cookie authentication. index.php is a front controller
// (route=...) and reads pma_username on every route, so every POST that
// reaches it is watched. The session cookie and pmaAuth-<server> (the
// encrypted password) authenticate; pmaUser-<server> only fills in the
// user name on the form.
//
// A successful login redirects to the very index.php?route=/ it was posted
// to, which the default signal takes for the login page again; the
// pmaAuth cookie is set only by a successful login, so it is the signal.
const phpmyadminRecipe = `path / /index.php
username_field pma_username
session_cookie phpMyAdmin phpMyAdmin_https pmaAuth-*
success cookie pmaAuth-*`

type phpmyadmin struct {
	s       *site
	users   map[string]string // MariaDB user name: password
	alice   string
	bob     string
	keys    map[string]*totpKey
	verdict verdict
}

// phpmyadminApp is phpMyAdmin with cookie authentication against two
// MariaDB accounts (alice and bob, uniquely named per run).
func phpmyadminApp() *app {
	p := &phpmyadmin{users: map[string]string{}, keys: map[string]*totpKey{}}
	p.verdict = verdict{loggedIn: pmaLoggedIn, anonymous: pmaAnonymous, someone: pmaSomeone}
	return &app{
		name:        "phpmyadmin",
		files:       []string{"/usr/share/phpmyadmin/index.php", "/usr/share/phpmyadmin/libraries/vendor_config.php"},
		aptPackages: "phpmyadmin php-fpm php-mysql mariadb-server",
		mariadb:     true,
		setup:       p.setup,
		suite:       p.suite,
	}
}

// setup copies the tree with a vendor_config.php that points at a
// config.inc.php and temporary directory of the test's own.
func (p *phpmyadmin) setup(t *testing.T, dir string, port int, fpm func(string) string) (string, string) {
	root := filepath.Join(dir, "www")
	shadowTree(t, "/usr/share/phpmyadmin", root, "libraries/vendor_config.php")
	// Two MariaDB accounts: the phpMyAdmin users alice and bob.
	_, p.alice, p.users[""] = mysqlUser(t, "pma")
	p.users[p.alice] = p.users[""]
	delete(p.users, "")
	_, p.bob, p.users["x"] = mysqlUser(t, "pmb")
	p.users[p.bob] = p.users["x"]
	delete(p.users, "x")

	tmp := filepath.Join(dir, "pmatmp")
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	vendor, err := os.ReadFile("/usr/share/phpmyadmin/libraries/vendor_config.php")
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "config.inc.php")
	vc := strings.ReplaceAll(string(vendor), "'/etc/phpmyadmin/config.inc.php'", fmt.Sprintf("%q", conf))
	vc = strings.ReplaceAll(vc, "'/var/lib/phpmyadmin/tmp/'", fmt.Sprintf("%q", tmp+"/"))
	if !strings.Contains(vc, conf) {
		t.Fatal("vendor_config.php: configFile not found")
	}
	if err := os.WriteFile(filepath.Join(root, "libraries/vendor_config.php"), []byte(vc), 0o644); err != nil {
		t.Fatal(err)
	}
	config := fmt.Sprintf(`<?php
$cfg['blowfish_secret'] = '%s';
$cfg['TempDir'] = '%s';
$cfg['VersionCheck'] = false;
$cfg['SendErrorReports'] = 'never';
$cfg['LoginCookieValidity'] = 3600;
$i = 1;
$cfg['Servers'][$i]['auth_type'] = 'cookie';
$cfg['Servers'][$i]['host'] = 'localhost';
$cfg['Servers'][$i]['connect_type'] = 'socket';
$cfg['Servers'][$i]['AllowNoPassword'] = false;
`, randomHex(16), tmp)
	if err := os.WriteFile(conf, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	sock := fpm("")
	body := fmt.Sprintf(`root * %s
php_fastcgi unix/%s {
	try_files {path} {path}/index.php
}
file_server`, root, sock)
	return phpmyadminRecipe, body
}

// pmaLoggedIn reports whether phpMyAdmin answered as user.
func pmaLoggedIn(r response, user string) bool {
	return strings.Contains(r.body, user+"@localhost") || strings.Contains(r.body, `"user":"`+user+`"`)
}

// pmaAnonymous reports whether phpMyAdmin answered as to a visitor who is
// not logged in.
func pmaAnonymous(r response) bool {
	switch {
	case strings.Contains(r.body, `name="pma_username"`):
		return true
	case strings.Contains(r.body, `"redirect_flag":"1"`) || strings.Contains(r.body, `"reload_flag":"1"`):
		// An AJAX request whose session has no login: phpMyAdmin tells
		// the page to reload to its login form.
		return true
	case strings.Contains(r.body, "Token mismatch"):
		// The token is the victim's session's: phpMyAdmin did not see
		// her session.
		return true
	}
	return false
}

// pmaSomeone reports whether phpMyAdmin answered as to a logged-in user:
// only they get the logout link.
func pmaSomeone(r response) bool {
	return strings.Contains(r.body, "route=/logout") || strings.Contains(r.body, `route=\/logout`)
}

// login loads the login page (the token lives in the pre-login session)
// and posts the form.
func (p *phpmyadmin) login(b *browser, user, password string) response {
	b.t.Helper()
	page := b.get("/index.php").expect(b.t, http.StatusOK)
	action, form := loginForm(b.t, page, "pma_username")
	if action == "" {
		action = "/index.php?route=/"
	}
	if !strings.HasPrefix(action, "/") {
		action = "/" + action
	}
	form.Set("pma_username", user)
	form.Set("pma_password", password)
	return b.post(action, form)
}

var rePMAToken = regexp.MustCompile(`"token":"([0-9a-f]+)"|name="token" value="([0-9a-f]+)"|token=([0-9a-f]{32})`)

// pmaToken is the session's CSRF token from a phpMyAdmin page.
func pmaToken(r response) string {
	m := rePMAToken.FindStringSubmatch(r.body)
	if m == nil {
		return ""
	}
	return m[1] + m[2] + m[3]
}

// probes are phpMyAdmin's URL shapes: routes of the front controller as
// pages and as AJAX form posts (SQL), with the victim's token.
func (p *phpmyadmin) probes(token string) []probe {
	ajax := http.Header{"X-Requested-With": {"XMLHttpRequest"}}
	return []probe{
		{method: "GET", path: "/index.php?route=/"},
		{method: "GET", path: "/"},
		{method: "GET", path: "/index.php?route=/server/privileges"},
		{method: "GET", path: "/index.php?route=/server/sql"},
		{method: "POST", path: "/index.php?route=/sql", body: "ajax_request=true&sql_query=" + url.QueryEscape("SELECT CURRENT_USER()") + "&token=" + token, header: ajax},
		{method: "POST", path: "/index.php?route=/navigation&ajax_request=1", body: "server=1&token=" + token, header: ajax},
		{method: "POST", path: "/", body: "route=/server/sql&token=" + token},
	}
}

// suite runs the phpMyAdmin checks in order: later ones use alice's
// verified browser.
func (p *phpmyadmin) suite(t *testing.T, s *site) {
	p.s = s
	v := p.verdict
	var alice *browser
	var token string
	t.Run("login_enroll_app", func(t *testing.T) {
		b := s.browser(t)
		b.get("/index.php").expect(t, http.StatusOK).contains(t, `name="pma_username"`)
		if r := p.login(b, p.alice, "wrong"); r.toGate() {
			// Issue 13, attack 6: the failed login's fresh session
			// cookie was taken for a login.
			t.Errorf("wrong password went to the gate: %d %q", r.StatusCode, r.location())
			b = s.browser(t)
		}
		r := p.login(b, p.alice, p.users[p.alice])
		p.keys[p.alice] = b.enroll(r, p.alice)
		page := b.get("/index.php?route=/").expect(t, http.StatusOK)
		if !pmaLoggedIn(page, p.alice) {
			t.Fatalf("after enrollment phpMyAdmin is not alice's:\n%s", trim(page.body))
		}
		token = pmaToken(page)
		if token == "" {
			t.Fatal("no token on phpMyAdmin's page")
		}
		sql := b.send(p.probes(token)[4])
		if !pmaLoggedIn(sql, p.alice) {
			t.Fatalf("alice's SQL: %d\n%s", sql.StatusCode, trim(sql.body))
		}
		alice = b
	})
	if alice == nil {
		return // the rest needs alice's verified browser
	}
	probes := p.probes(token)

	t.Run("new_device_challenge", func(t *testing.T) {
		b := s.browser(t)
		b.follow(b.challenge(p.login(b, p.alice, p.users[p.alice]), p.keys[p.alice], false), 5)
		if !pmaLoggedIn(b.get("/index.php?route=/"), p.alice) {
			t.Fatal("not in after the challenge")
		}
	})

	t.Run("trusted_device_and_logout", func(t *testing.T) {
		b := s.browser(t)
		b.follow(b.challenge(p.login(b, p.alice, p.users[p.alice]), p.keys[p.alice], true), 5)
		page := b.get("/index.php?route=/")
		if !pmaLoggedIn(page, p.alice) {
			t.Fatal("trusted device not in")
		}
		before := b.stealAppCookies(t, "/")
		gate := b.gateSession()
		// phpMyAdmin's logout: a POST with the token.
		r := b.post("/index.php?route=/logout", url.Values{"token": {pmaToken(page)}})
		if r.StatusCode >= 400 {
			t.Fatalf("logout: %d", r.StatusCode)
		}
		if pmaLoggedIn(b.get("/index.php?route=/"), p.alice) {
			t.Fatal("still logged in after logout")
		}
		for _, c := range gate {
			before.setCookie(c.Name, c.Value, "/")
		}
		v.assertNotIn(t, "cookies from before logout", before, p.alice, probes)
		r = p.login(b, p.alice, p.users[p.alice])
		if r.toGate() {
			t.Fatalf("trusted device asked again: %d %q", r.StatusCode, r.location())
		}
		if !pmaLoggedIn(b.get("/index.php?route=/"), p.alice) {
			t.Fatal("trusted device not in after logging in again")
		}
	})

	t.Run("stolen_cookies", func(t *testing.T) {
		v.assertNotIn(t, "stolen cookies", alice.stealAppCookies(t, "/"), p.alice, probes)
		if !pmaLoggedIn(alice.get("/index.php?route=/"), p.alice) {
			t.Fatal("victim lost her session")
		}
	})

	t.Run("password_alone", func(t *testing.T) {
		b := s.browser(t)
		if r := p.login(b, p.alice, p.users[p.alice]); !r.toGate() {
			t.Fatalf("login answered %d %q", r.StatusCode, r.location())
		}
		v.assertNotIn(t, "alice's password alone", b, p.alice, probes)
		bob := s.browser(t)
		if r := p.login(bob, p.bob, p.users[p.bob]); !r.toGate() {
			t.Fatalf("bob's login answered %d %q", r.StatusCode, r.location())
		}
		v.assertNotIn(t, "bob's password alone", bob, p.bob, p.probes(""))
		// The login form posted to other routes and URL shapes.
		for _, target := range []string{"/index.php?route=/sql", "/", "/index.php/x", "/?route=/server/databases", "/nonexistent.php"} {
			m := s.browser(t)
			page := m.get("/index.php").expect(t, http.StatusOK)
			_, form := loginForm(t, page, "pma_username")
			form.Set("pma_username", p.bob)
			form.Set("pma_password", p.users[p.bob])
			m.post(target, form)
			v.assertNotIn(t, "login posted to "+target, m, p.bob, p.probes(""))
		}
	})

	t.Run("disagreements", func(t *testing.T) {
		p.disagreements(t, alice, probes)
	})
}

// disagreements are issue 13's six attacks, adapted to phpMyAdmin.
func (p *phpmyadmin) disagreements(t *testing.T, alice *browser, probes []probe) {
	s, v := p.s, p.verdict
	var parts []string
	sess := ""
	for _, c := range alice.cookies("/") {
		if !isGateCookie(c.Name) {
			parts = append(parts, c.Name+"="+c.Value)
		}
		if c.Name == "phpMyAdmin" {
			sess = c.Value
		}
	}
	all := strings.Join(parts, "; ")
	if sess == "" {
		t.Fatal("alice's browser lacks the phpMyAdmin cookie")
	}
	// 1. More than 3000 cookie parts.
	v.assertRawNotIn(t, "3000+ cookie parts", s, manyCookies(all), p.alice, probes)
	// 2. PHP name mangling: leading spaces are dropped; the other
	// mangled forms cannot produce "phpMyAdmin" but "pmaAuth-1" keeps its
	// shape; arrays are ignored by the session but must not pass.
	auth := strings.Replace(all, "phpMyAdmin=", " phpMyAdmin=", 1)
	v.assertRawNotIn(t, "leading space", s, auth, p.alice, probes)
	v.assertRawNotIn(t, "array name", s, strings.Replace(all, "phpMyAdmin=", "phpMyAdmin[x]=", 1), p.alice, probes)
	// 3. Duplicates: bob, verified with his own factor, adds alice's
	// session next to his own.
	bob := s.browser(t)
	p.keys[p.bob] = bob.enroll(p.login(bob, p.bob, p.users[p.bob]), p.bob)
	if !pmaLoggedIn(bob.get("/index.php?route=/"), p.bob) {
		t.Fatal("bob not in after enrolling")
	}
	var gate, bobApp []string
	for _, c := range bob.cookies("/") {
		if isGateCookie(c.Name) {
			gate = append(gate, c.Name+"="+c.Value)
		} else {
			bobApp = append(bobApp, c.Name+"="+c.Value)
		}
	}
	g, b := strings.Join(gate, "; "), strings.Join(bobApp, "; ")
	v.assertRawNotIn(t, "duplicate, alice's first", s, g+"; "+all+"; "+b, p.alice, probes)
	v.assertRawNotIn(t, "duplicate, alice's last", s, g+"; "+b+"; "+all, p.alice, probes)
	v.assertRawNotIn(t, "bob's gate, alice's cookies", s, g+"; "+all, p.alice, probes)
	v.assertRawNotIn(t, "spaced duplicate", s, g+"; "+strings.Replace(all, "phpMyAdmin=", " phpMyAdmin=", 1)+"; "+b, p.alice, probes)

	// 4. JSON: phpMyAdmin reads form posts only.
	m := s.browser(t)
	m.get("/index.php")
	m.do("POST", "/index.php?route=/", stringReader(`{"pma_username":"nobody","PMA_USERNAME":"`+p.alice+`","pma_password":"`+p.users[p.alice]+`"}`), m.sameOrigin("application/json"))
	v.assertNotIn(t, "after a JSON login", m, p.alice, probes[:2])

	// 5. Field names PHP reads differently.
	for _, trick := range []string{"%20pma_username", "pma_username%00x", "pma_username", "pma.username", "pma[username"} {
		m := s.browser(t)
		page := m.get("/index.php").expect(t, http.StatusOK)
		action, form := loginForm(t, page, "pma_username")
		if !strings.HasPrefix(action, "/") {
			action = "/" + action
		}
		form.Set("pma_username", "nobody")
		form.Set("pma_password", p.users[p.alice])
		r := m.postRaw(action, form.Encode()+"&"+trick+"="+url.QueryEscape(p.alice))
		if r.StatusCode >= 300 && r.StatusCode < 400 && strings.Contains(r.location(), "/.2fa/enroll") {
			t.Errorf("%s: the gate sent the attacker to enroll a decoy", trick)
			// The attacker enrolls his own authenticator for the decoy:
			// then alice's session, logged in by PHP, must still be out
			// of reach.
			m.enroll(r, "")
		}
		v.assertNotIn(t, "field-name trick "+trick, m, p.alice, probes)
	}

	// 6. A failed login is answered 200 with a session cookie: it never
	// binds, and the attacker gets no enrollment for alice.
	m = s.browser(t)
	r := p.login(m, p.alice, "no-such-password")
	if r.toGate() {
		t.Errorf("failed login went to the gate: %d %q", r.StatusCode, r.location())
	}
	if e := m.get("/.2fa/enroll"); e.StatusCode == http.StatusOK && strings.Contains(e.body, "otpauth://") {
		t.Error("a failed login opened enrollment for alice")
	}
}
