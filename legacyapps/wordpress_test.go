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

// wordpressRecipe is the app_login block the README documents for
// WordPress on plain http (wordpress_sec_* replaces wordpress_<hash> on
// https; listing both keeps one recipe for both).
const wordpressRecipe = `path /wp-login.php
username_field log
session_cookie wordpress_logged_in_* wordpress_sec_* wordpress_[0-9a-f]*`

// wordpress holds what the WordPress suite needs to know about its site.
type wordpress struct {
	s       *site
	alicePW string
	bobPW   string
	keys    map[string]*totpKey
	verdict verdict
}

// wordpressApp is WordPress on MariaDB, admin alice and editor bob.
func wordpressApp() *app {
	wp := &wordpress{alicePW: "alice-" + randomHex(6), bobPW: "bob-" + randomHex(6), keys: map[string]*totpKey{}}
	wp.verdict = verdict{loggedIn: wpLoggedIn, anonymous: wpAnonymous, someone: wpSomeone}
	return &app{
		name:        "wordpress",
		files:       []string{"/usr/share/wordpress/wp-login.php", "/usr/share/php/getid3/getid3.php"},
		aptPackages: "wordpress php-fpm php-cli php-mysql mariadb-server",
		mariadb:     true,
		setup:       wp.setup,
		suite:       wp.suite,
	}
}

// setup copies the tree, writes wp-config.php for a fresh database, and
// installs WordPress with its own installer (wp_install) from the CLI.
func (wp *wordpress) setup(t *testing.T, dir string, port int, fpm func(string) string) (string, string) {
	root := filepath.Join(dir, "www")
	shadowTree(t, "/usr/share/wordpress", root, "wp-config.php", ".htaccess")
	db, user, pw := mysqlUser(t, "wp")
	site := fmt.Sprintf("http://localhost:%d", port)
	var salts strings.Builder
	for _, k := range []string{"AUTH_KEY", "SECURE_AUTH_KEY", "LOGGED_IN_KEY", "NONCE_KEY", "AUTH_SALT", "SECURE_AUTH_SALT", "LOGGED_IN_SALT", "NONCE_SALT"} {
		fmt.Fprintf(&salts, "define('%s', '%s');\n", k, randomHex(32))
	}
	config := fmt.Sprintf(`<?php
define('DB_NAME', '%s');
define('DB_USER', '%s');
define('DB_PASSWORD', '%s');
define('DB_HOST', 'localhost');
define('DB_CHARSET', 'utf8mb4');
define('DB_COLLATE', '');
%s$table_prefix = 'wp_';
define('WP_HOME', '%s');
define('WP_SITEURL', '%s');
define('DISABLE_WP_CRON', true);
define('AUTOMATIC_UPDATER_DISABLED', true);
define('WP_HTTP_BLOCK_EXTERNAL', true);
define('WP_DEBUG', false);
if (!defined('ABSPATH')) define('ABSPATH', __DIR__ . '/');
require_once ABSPATH . 'wp-settings.php';
`, db, user, pw, salts.String(), site, site)
	if err := os.WriteFile(filepath.Join(root, "wp-config.php"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	install := fmt.Sprintf(`<?php
define('WP_INSTALLING', true);
$_SERVER['HTTP_HOST'] = 'localhost:%d';
$_SERVER['REQUEST_URI'] = '/';
$_SERVER['SERVER_PROTOCOL'] = 'HTTP/1.1';
require __DIR__ . '/wp-load.php';
require_once ABSPATH . 'wp-admin/includes/upgrade.php';
wp_install('Gate test blog', 'alice', 'alice@example.test', false, '', '%s');
$id = wp_create_user('bob', '%s', 'bob@example.test');
if (is_wp_error($id)) { fwrite(STDERR, $id->get_error_message()); exit(1); }
(new WP_User($id))->set_role('editor');
echo "installed\n";
`, port, wp.alicePW, wp.bobPW)
	if err := os.WriteFile(filepath.Join(root, "gate-test-install.php"), []byte(install), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := run(t, root, "php", "gate-test-install.php"); !strings.Contains(out, "installed") {
		t.Fatalf("WordPress install: %s", out)
	}
	os.Remove(filepath.Join(root, "gate-test-install.php"))
	sock := fpm("")
	body := fmt.Sprintf(`root * %s
# XML-RPC takes the password with every call: no second factor possible.
respond /xmlrpc.php 403
php_fastcgi unix/%s
file_server`, root, sock)
	return wordpressRecipe, body
}

var (
	reWPHeartbeatNonce = regexp.MustCompile(`heartbeatSettings = \{"nonce":"([0-9a-f]+)"`)
	reWPRestNonce      = regexp.MustCompile(`wpApiSettings = \{"root":"[^"]*","nonce":"([0-9a-f]+)"`)
)

// wpCookiePaths are the paths WordPress scopes its cookies to.
var wpCookiePaths = []string{"/", "/wp-admin/", "/wp-content/plugins/"}

// login posts WordPress's login form (after loading it, for the test
// cookie) and returns the response to the POST.
func (wp *wordpress) login(b *browser, user, password string) response {
	b.t.Helper()
	b.get("/wp-login.php").expect(b.t, http.StatusOK).contains(b.t, `name="log"`)
	return b.post("/wp-login.php", url.Values{
		"log": {user}, "pwd": {password}, "wp-submit": {"Log In"},
		"redirect_to": {wp.s.base + "/wp-admin/"}, "testcookie": {"1"},
	})
}

// wpLoggedIn reports whether a response is WordPress talking to user.
func wpLoggedIn(r response, user string) bool {
	return strings.Contains(r.body, `class="display-name">`+user+`<`) ||
		strings.Contains(r.body, `"wp-auth-check":true`) ||
		strings.Contains(r.body, `"slug":"`+user+`"`)
}

// wpAnonymous reports whether WordPress answered as to a visitor who is
// not logged in.
func wpAnonymous(r response) bool {
	switch {
	case r.StatusCode == http.StatusFound && strings.Contains(r.location(), "wp-login.php"):
		return true
	case strings.Contains(r.body, `"wp-auth-check":false`):
		return true
	case r.StatusCode == http.StatusUnauthorized && strings.Contains(r.body, "rest_not_logged_in"):
		return true
	case r.StatusCode == http.StatusForbidden && strings.Contains(r.body, "rest_cookie_invalid_nonce"):
		// The nonce is alice's: WordPress saw another user or none.
		return true
	case r.StatusCode == http.StatusOK && strings.Contains(r.body, "<html") && !strings.Contains(r.body, `id="wpadminbar"`):
		// A public page without the toolbar of logged-in users.
		return true
	case r.StatusCode == http.StatusOK && strings.Contains(r.body, `name="log"`) && strings.Contains(r.body, `name="pwd"`):
		return true
	case r.StatusCode == http.StatusBadRequest && (r.body == "0" || r.body == "-1"):
		// admin-ajax.php with no handler for a visitor.
		return true
	}
	return false
}

// probes are the URL shapes of WordPress a session would open: pages,
// form posts, the AJAX and REST APIs, the login script itself.
func (wp *wordpress) probes(heartbeat, rest string) []probe {
	return []probe{
		{method: "GET", path: "/wp-admin/"},
		{method: "GET", path: "/wp-admin/profile.php"},
		{method: "GET", path: "/wp-admin/index.php?page=x"},
		{method: "GET", path: "/wp-login.php"},
		{method: "GET", path: "/?p=1"},
		{method: "POST", path: "/wp-admin/admin-ajax.php", body: "action=heartbeat&screen_id=dashboard&has_focus=true&interval=60&_nonce=" + heartbeat},
		{method: "GET", path: "/index.php?rest_route=/wp/v2/users/me&_wpnonce=" + rest},
		{method: "GET", path: "/?rest_route=/wp/v2/users/me&_wpnonce=" + rest},
		{method: "POST", path: "/wp-admin/post.php", body: "action=editpost&post_ID=1&post_title=owned"},
		{method: "POST", path: "/wp-admin/profile.php", body: "from=profile&checkuser_id=1&nickname=owned"},
	}
}

// wpSomeone reports whether WordPress answered as to a logged-in user
// (whoever it is): a request that carries someone's valid session.
func wpSomeone(r response) bool {
	switch {
	case strings.Contains(r.body, `class="display-name">`):
		return true
	case strings.Contains(r.body, `"nonces_expired":true`):
		return true
	case r.StatusCode == http.StatusFound && strings.HasSuffix(r.location(), "/wp-admin/") && strings.Contains(r.Request.URL.Path, "wp-login.php"):
		return true
	case r.StatusCode == http.StatusForbidden && strings.Contains(r.body, "wp-die-message"):
		return true
	}
	return false
}

// suite runs the WordPress checks in order: later ones use alice's
// verified browser.
func (wp *wordpress) suite(t *testing.T, s *site) {
	wp.s = s
	var alice *browser
	var heartbeat, rest string
	t.Run("login_enroll_app", func(t *testing.T) {
		b := s.browser(t)
		// Not logged in: WordPress's own redirect to its login.
		if r := b.get("/wp-admin/"); !wpAnonymous(r) {
			t.Fatalf("before login /wp-admin/ answered %d %q", r.StatusCode, r.location())
		}
		// A wrong password: WordPress re-renders the form; no binding.
		wp.login(b, "alice", "wrong").expect(t, http.StatusOK).contains(t, "login_error")
		if b.get("/.2fa/enroll").StatusCode == http.StatusOK {
			t.Fatal("a failed login opened enrollment")
		}
		r := wp.login(b, "alice", wp.alicePW)
		wp.keys["alice"] = b.enroll(r, "alice")
		page := b.get("/wp-admin/").expect(t, http.StatusOK)
		if !wpLoggedIn(page, "alice") {
			t.Fatalf("after enrollment /wp-admin/ is not alice's dashboard:\n%s", trim(page.body))
		}
		b.get("/wp-admin/profile.php").expect(t, http.StatusOK).contains(t, `value="alice"`)
		heartbeat = reWPHeartbeatNonce.FindStringSubmatch(page.body)[1]
		rest = reWPRestNonce.FindStringSubmatch(page.body)[1]
		// The APIs answer alice too: the probes below can tell.
		for _, p := range wp.probes(heartbeat, rest)[5:8] {
			var r response
			if p.method == "GET" {
				r = b.get(p.path)
			} else {
				r = b.postRaw(p.path, p.body)
			}
			if !wpLoggedIn(r, "alice") {
				t.Fatalf("verified alice: %s %s: %d\n%s", p.method, p.path, r.StatusCode, trim(r.body))
			}
		}
		alice = b
	})
	if alice == nil {
		return // the rest needs alice's verified browser
	}

	t.Run("new_device_challenge", func(t *testing.T) {
		b := s.browser(t)
		r := wp.login(b, "alice", wp.alicePW)
		r = b.challenge(r, wp.keys["alice"], false)
		r = b.follow(r, 5)
		if !wpLoggedIn(r, "alice") {
			t.Fatalf("after the challenge: %d %s\n%s", r.StatusCode, r.Request.URL, trim(r.body))
		}
	})

	t.Run("trusted_device_and_logout", func(t *testing.T) {
		b := s.browser(t)
		r := wp.login(b, "alice", wp.alicePW)
		b.follow(b.challenge(r, wp.keys["alice"], true), 5)
		page := b.get("/wp-admin/").expect(t, http.StatusOK)
		if !wpLoggedIn(page, "alice") {
			t.Fatal("trusted device not in")
		}
		before := b.stealAppCookies(t, wpCookiePaths...)
		gate := b.gateSession()
		// WordPress's own logout (its nonce is on the page).
		m := regexp.MustCompile(`wp-login\.php\?action=logout&(?:amp;|#038;)_wpnonce=([0-9a-f]+)`).FindStringSubmatch(page.body)
		if m == nil {
			t.Fatal("no logout link")
		}
		r = b.get("/wp-login.php?action=logout&_wpnonce=" + m[1])
		if r.StatusCode != http.StatusFound || !strings.Contains(r.location(), "loggedout=true") {
			t.Fatalf("logout: %d %q", r.StatusCode, r.location())
		}
		// The old cookies, even with the old gate session, get nowhere.
		for _, c := range gate {
			before.setCookie(c.Name, c.Value, "/")
		}
		wp.verdict.assertNotIn(t, "cookies from before logout", before, "alice", wp.probes(heartbeat, rest))
		// The trusted device logs in again without a code.
		r = wp.login(b, "alice", wp.alicePW)
		if r.StatusCode != http.StatusFound || strings.Contains(r.location(), "/.2fa/") {
			t.Fatalf("trusted device asked again: %d %q", r.StatusCode, r.location())
		}
		if !wpLoggedIn(b.get("/wp-admin/"), "alice") {
			t.Fatal("trusted device not in after logging in again")
		}
	})

	t.Run("stolen_cookies", func(t *testing.T) {
		thief := alice.stealAppCookies(t, wpCookiePaths...)
		wp.verdict.assertNotIn(t, "stolen cookies", thief, "alice", wp.probes(heartbeat, rest))
		// The victim is still in.
		if !wpLoggedIn(alice.get("/wp-admin/"), "alice") {
			t.Fatal("victim lost her session")
		}
	})

	t.Run("password_alone", func(t *testing.T) {
		// Enrolled alice on a new device, code prompt ignored.
		b := s.browser(t)
		r := wp.login(b, "alice", wp.alicePW)
		if !r.toGate() {
			t.Fatalf("login answered %d %q", r.StatusCode, r.location())
		}
		wp.verdict.assertNotIn(t, "alice's password alone", b, "alice", wp.probes(heartbeat, rest))
		// Bob, never enrolled, ignores the enrollment prompt.
		bob := s.browser(t)
		r = wp.login(bob, "bob", wp.bobPW)
		if !r.toGate() {
			t.Fatalf("bob's login answered %d %q", r.StatusCode, r.location())
		}
		wp.verdict.assertNotIn(t, "bob's password alone", bob, "bob", wp.probes(heartbeat, rest))
		// XML-RPC would take the password alone: the recipe closes it.
		x := bob.do("POST", "/xmlrpc.php", strings.NewReader(`<?xml version="1.0"?><methodCall><methodName>wp.getProfile</methodName><params><param><value>1</value></param><param><value>bob</value></param><param><value>`+wp.bobPW+`</value></param></params></methodCall>`), http.Header{"Content-Type": {"text/xml"}})
		if strings.Contains(x.body, "bob@example.test") || x.StatusCode == http.StatusOK {
			t.Errorf("XML-RPC with bob's password: %d\n%s", x.StatusCode, trim(x.body))
		}
	})

	t.Run("disagreements", func(t *testing.T) {
		wp.disagreements(t, alice, heartbeat, rest)
	})
}

// disagreements are issue 13's six attacks, adapted to WordPress.
func (wp *wordpress) disagreements(t *testing.T, alice *browser, heartbeat, rest string) {
	s := wp.s
	var loggedInName, loggedInValue, authName, authValue string
	for _, c := range alice.cookies("/wp-admin/") {
		switch {
		case strings.HasPrefix(c.Name, "wordpress_logged_in_"):
			loggedInName, loggedInValue = c.Name, c.Value
		case strings.HasPrefix(c.Name, "wordpress_") && c.Name != "wordpress_test_cookie":
			authName, authValue = c.Name, c.Value
		}
	}
	if loggedInName == "" || authName == "" {
		t.Fatalf("alice's browser lacks WordPress's cookies: %v", alice.cookies("/wp-admin/"))
	}
	probes := wp.probes(heartbeat, rest)
	v := wp.verdict
	raw := func(label, cookie string) { t.Helper(); v.assertRawNotIn(t, label, s, cookie, "alice", probes) }
	rawBob := func(label, cookie string) {
		t.Helper()
		v.allowingOthers().assertRawNotIn(t, label, s, cookie, "alice", probes)
	}
	// 1. More than 3000 cookie parts: Go's parser gives up, PHP does not.
	raw("3000+ cookie parts", manyCookies(loggedInName+"="+loggedInValue+"; "+authName+"="+authValue))

	// 2. PHP name mangling: '.', ' ' and '[' become '_' in $_COOKIE.
	li, au := strings.TrimPrefix(loggedInName, "wordpress_"), strings.TrimPrefix(authName, "wordpress_")
	for _, sep := range []string{".", " ", "["} {
		raw("mangled name "+fmt.Sprintf("%q", sep),
			"wordpress"+sep+li+"="+loggedInValue+"; wordpress"+sep+au+"="+authValue)
	}
	raw("leading space", " "+loggedInName+"="+loggedInValue+";  "+authName+"="+authValue)
	raw("array name", loggedInName+"[x]="+loggedInValue+"; "+authName+"[x]="+authValue)

	// 3. Duplicate names: bob, verified with his own factor, sends alice's
	// cookie next to his own, in either order (PHP keeps the first).
	bob := s.browser(t)
	r := wp.login(bob, "bob", wp.bobPW)
	wp.keys["bob"] = bob.enroll(r, "bob")
	if !wpLoggedIn(bob.get("/wp-admin/"), "bob") {
		t.Fatal("bob not in after enrolling")
	}
	var bobLI, bobAuth string
	var gateCookies []string
	for _, c := range bob.cookies("/wp-admin/") {
		switch {
		case c.Name == loggedInName:
			bobLI = c.Value
		case c.Name == authName:
			bobAuth = c.Value
		case isGateCookie(c.Name):
			gateCookies = append(gateCookies, c.Name+"="+c.Value)
		}
	}
	if bobLI == "" || bobAuth == "" {
		t.Fatal("bob's browser lacks WordPress's cookies")
	}
	gate := strings.Join(gateCookies, "; ")
	rawBob("duplicate, alice's first", gate+"; "+loggedInName+"="+loggedInValue+"; "+loggedInName+"="+bobLI+"; "+authName+"="+authValue+"; "+authName+"="+bobAuth)
	rawBob("duplicate, alice's last", gate+"; "+loggedInName+"="+bobLI+"; "+loggedInName+"="+loggedInValue+"; "+authName+"="+bobAuth+"; "+authName+"="+authValue)
	rawBob("bob's gate, alice's cookies", gate+"; "+loggedInName+"="+loggedInValue+"; "+authName+"="+authValue)
	rawBob("mangled duplicate", gate+"; wordpress."+li+"="+loggedInValue+"; "+loggedInName+"="+bobLI+"; wordpress."+au+"="+authValue+"; "+authName+"="+bobAuth)

	// 4. JSON with case-folded keys: wp-login.php reads only form posts
	// and the REST API has no login, so a JSON login never logs anyone
	// in. Checked anyway: it must not bind a session either.
	mallory := s.browser(t)
	mallory.get("/wp-login.php")
	r = mallory.do("POST", "/wp-login.php", strings.NewReader(`{"log":"nobody-1","LOG":"alice","pwd":"`+wp.alicePW+`"}`), mallory.sameOrigin("application/json"))
	if wpLoggedIn(mallory.follow(r, 5), "alice") {
		t.Error("JSON login reached alice's account")
	}
	wp.verdict.assertNotIn(t, "after a JSON login", mallory, "alice", probes[:3])

	// 5. PHP drops leading spaces from field names and cuts them at NUL:
	// the gate must not learn a decoy user while PHP logs alice in.
	for _, body := range []string{
		"log=nobody-2&%20log=alice&pwd=" + url.QueryEscape(wp.alicePW) + "&testcookie=1",
		"log=nobody-3&log%00x=alice&pwd=" + url.QueryEscape(wp.alicePW) + "&testcookie=1",
		"log=nobody-4&log=alice&pwd=" + url.QueryEscape(wp.alicePW) + "&testcookie=1",
		"log.=nobody-5&log=alice&pwd=" + url.QueryEscape(wp.alicePW) + "&testcookie=1",
	} {
		m := s.browser(t)
		m.get("/wp-login.php")
		r := m.postRaw("/wp-login.php", body)
		if r.StatusCode >= 300 && r.StatusCode < 400 && strings.Contains(r.location(), "/.2fa/enroll") {
			t.Errorf("%q: the gate sent the attacker to enroll a decoy", body)
			// The attacker enrolls his own authenticator for the decoy:
			// then alice's session, logged in by PHP, must still be out
			// of reach.
			m.enroll(r, "")
		}
		if r.StatusCode != http.StatusBadRequest {
			// Whatever happened, alice's account must stay out of reach.
			wp.verdict.assertNotIn(t, "field-name trick "+fmt.Sprintf("%q", body), m, "alice", probes)
		}
	}

	// 6. A failed login never binds: an unknown user with no password
	// gets WordPress's error page and no enrollment.
	m := s.browser(t)
	r = wp.login(m, "carol", "no-such-password")
	if r.StatusCode != http.StatusOK || !strings.Contains(r.body, "login_error") {
		t.Errorf("failed login: %d %q", r.StatusCode, r.location())
	}
	if e := m.get("/.2fa/enroll"); e.StatusCode == http.StatusOK && strings.Contains(e.body, "otpauth://") {
		t.Error("a failed login opened enrollment")
	}
}
