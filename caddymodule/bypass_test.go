package caddymodule

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestNoMagicBypasses: no user agent (crawlers, health checkers, curl), no
// debug or routing header, and no claim of a local or internal address
// lets a request without a verified session through (checklist item 52;
// the advisories against other proxies in SECURITY.md §6). The test
// client itself is on loopback, so a loopback exception would show too.
func TestNoMagicBypasses(t *testing.T) {
	s := startSite(t, siteOptions{})
	s.browser("alice").enroll()

	headers := map[string]http.Header{
		"no headers":               {},
		"Googlebot":                {"User-Agent": {"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"}},
		"kube-probe":               {"User-Agent": {"kube-probe/1.30"}},
		"ELB health checker":       {"User-Agent": {"ELB-HealthChecker/2.0"}},
		"curl":                     {"User-Agent": {"curl/8.5.0"}},
		"empty User-Agent":         {"User-Agent": {""}},
		"X-Debug":                  {"X-Debug": {"1"}, "Debug": {"true"}},
		"X-Forwarded-For loopback": {"X-Forwarded-For": {"127.0.0.1"}},
		"X-Real-IP loopback":       {"X-Real-Ip": {"127.0.0.1"}},
		"Forwarded loopback":       {"Forwarded": {"for=127.0.0.1;proto=https"}},
		"X-Original-URL gate page": {"X-Original-Url": {"/.2fa/logout"}},
		"X-Rewrite-URL gate page":  {"X-Rewrite-Url": {"/.2fa/enroll"}},
		"X-Forwarded-Uri gate":     {"X-Forwarded-Uri": {"/.2fa/challenge"}},
		"X-Forwarded-Prefix":       {"X-Forwarded-Prefix": {"/.2fa"}},
		"X-Forwarded-Host other":   {"X-Forwarded-Host": {"internal.example"}},
		"X-Forwarded-Proto":        {"X-Forwarded-Proto": {"https"}},
		"bypass-looking headers":   {"X-Two-Factor": {"ok"}, "X-2fa-Verified": {"1"}, "X-Auth-Bypass": {"1"}, "X-Two-Factor-User": {"alice"}, "X-Two-Factor-Method": {"trusted_device"}},
		"identity headers":         {"Remote-User": {"alice"}, "X-Remote-User": {"alice"}, "X-Forwarded-User": {"alice"}},
		"empty gate cookies":       {"Cookie": {"2fa_session=; 2fa_device=; __Host-2fa_session="}},
		"garbage gate cookies":     {"Cookie": {"2fa_session=true; 2fa_device=1; 2fa_later=1"}},
		"Upgrade h2c":              {"Upgrade": {"h2c"}, "Connection": {"Upgrade, HTTP2-Settings"}, "Http2-Settings": {"AAMAAABkAARAAAAAAAIAAAAA"}},
	}
	for name, h := range headers {
		for _, accept := range []string{"text/html", "application/json"} {
			b := s.browser("alice")
			h := h.Clone()
			h.Set("Accept", accept)
			for _, p := range []string{"/app", "/app/.2fa", "/healthz", "/.well-known/acme-challenge/x/../../app"} {
				r := b.do("GET", p, nil, h)
				if strings.Contains(r.body, "app user=") {
					t.Errorf("%s, Accept %s, %s: reached the app (%d)", name, accept, p, r.StatusCode)
				}
				switch {
				case r.StatusCode == http.StatusSeeOther && strings.HasPrefix(r.location(), "/.2fa/challenge"):
				case r.StatusCode == http.StatusUnauthorized && strings.Contains(r.body, "two_factor_required"):
				default:
					t.Errorf("%s, Accept %s, %s: %d %s %q, want the gate's challenge", name, accept, p, r.StatusCode, r.location(), trim(r.body))
				}
			}
		}
	}
}

// hostileReturns are return targets that must never leave the site
// (checklist item 46): protocol-relative, backslash, encoded slashes,
// control characters, other schemes, userinfo tricks.
var hostileReturns = []string{
	"//evil.example/x",
	"///evil.example",
	"/\\evil.example",
	"\\\\evil.example",
	"/%2F%2Fevil.example",
	"%2F%2Fevil.example",
	"/%5Cevil.example",
	"/\t/evil.example",
	"/%09/evil.example",
	"/\r\nLocation: https://evil.example",
	"/%0d%0aSet-Cookie:%20x=1",
	"https:evil.example",
	"https://evil.example",
	"http:/\\evil.example",
	"javascript:alert(1)",
	"data:text/html,<script>alert(1)</script>",
	"//user:pass@evil.example",
	"/@evil.example",
	"https://localhost@evil.example/",
	"/.2fa/..//evil.example",
	" //evil.example",
	"\x00//evil.example",
}

// safeLocation reports whether a Location header stays on the site: a
// path starting with one slash, no backslash, no control characters.
func safeLocation(loc string) bool {
	if loc == "" {
		return true
	}
	if !strings.HasPrefix(loc, "/") || strings.HasPrefix(loc, "//") || strings.ContainsAny(loc, "\\\r\n\t\x00") {
		return false
	}
	u, err := url.Parse(loc)
	return err == nil && u.Host == "" && u.Scheme == "" && u.User == nil
}

// TestHostileReturnTargetsEveryEndpoint: every gate endpoint that takes a
// return target (rd in the query or the form) keeps the browser on the
// site, for every hostile target, whether the request succeeds or not.
func TestHostileReturnTargetsEveryEndpoint(t *testing.T) {
	s := startSite(t, siteOptions{gate: "max_attempts 50 5m 15m"}) // room for the deliberate failures below
	key, _ := s.browser("alice").enroll()
	advance(30 * time.Second)

	check := func(where string, r response) {
		t.Helper()
		if loc := r.location(); !safeLocation(loc) {
			t.Errorf("%s: Location %q leaves the site", where, loc)
		}
		for _, bad := range []string{`href="//`, `href="https:`, `href="http:`, `href="javascript:`, `href="data:text`, `value="//`, `value="https:`, `value="javascript:`} {
			if strings.Contains(r.body, bad) {
				t.Errorf("%s: page contains %s", where, bad)
			}
		}
	}
	for _, rd := range hostileReturns {
		q := "?rd=" + url.QueryEscape(rd)
		// A browser with no 2FA session: GET pages, then a good code.
		b := s.browser("alice")
		for _, p := range []string{"/.2fa/challenge", "/.2fa/enroll", "/.2fa/logout", "/.2fa/settings", "/.2fa/unknown"} {
			check("GET "+p+q, b.get(p+q))
		}
		page := b.get("/.2fa/challenge" + q)
		tok := csrfOf(t, page)
		check("POST challenge wrong code", b.post("/.2fa/challenge", url.Values{"csrf_token": {tok}, "code": {wrongCode(key)}, "rd": {rd}}))
		check("POST challenge no token", b.post("/.2fa/challenge", url.Values{"code": {"123456"}, "rd": {rd}}))
		advance(30 * time.Second)
		r := b.post("/.2fa/challenge", url.Values{"csrf_token": {tok}, "code": {totp(key, testNow())}, "rd": {rd}})
		if r.StatusCode != http.StatusSeeOther {
			t.Fatalf("rd %q: good code answered %d", rd, r.StatusCode)
		}
		check("POST challenge good code", r)
		// Verified: settings and logout forms.
		for _, p := range []string{"/.2fa/challenge", "/.2fa/enroll", "/.2fa/settings", "/.2fa/logout"} {
			check("verified GET "+p+q, b.get(p+q))
		}
		set := b.get("/.2fa/settings" + q)
		tok = csrfOf(t, set)
		check("POST settings", b.post("/.2fa/settings", url.Values{"csrf_token": {tok}, "action": {"sign_out_others"}, "rd": {rd}}))
		check("POST settings bad action", b.post("/.2fa/settings", url.Values{"csrf_token": {tok}, "action": {"nope"}, "rd": {rd}}))
		out := b.get("/.2fa/logout" + q)
		check("POST logout", b.post("/.2fa/logout", url.Values{"csrf_token": {csrfOf(t, out)}, "rd": {rd}}))
		// Bob, not enrolled: the enrollment form.
		bob := s.browser("bob")
		en := bob.get("/.2fa/enroll" + q)
		check("GET enroll (bob)", en)
		check("POST enroll wrong code", bob.post("/.2fa/enroll", url.Values{"csrf_token": {csrfOf(t, en)}, "code": {"000000"}, "rd": {rd}}))
	}
}

// TestNoUserEnumerationBeforeTheFirstFactor: before the first factor
// succeeds, nothing the gate does depends on whether a user exists or is
// enrolled (checklist item 48). With app_login, a refused login for an
// enrolled user, a user who never enrolled and a user who does not exist
// reach the browser as the application sent them, with no gate cookie
// and no redirect to a gate page; with basic_auth, the gate is never
// reached.
func TestNoUserEnumerationBeforeTheFirstFactor(t *testing.T) {
	s := startAppSite(t, "", "")
	appEnroll(t, s, "alice", "wonderland")

	var first response
	var firstName string
	for _, name := range []string{"alice", "bob", "nobody", "ALICE"} {
		b := s.browser("")
		r := b.appLogin(name, "wrong password")
		if strings.HasPrefix(r.location(), "/.2fa") {
			t.Errorf("refused login for %q went to a gate page: %s", name, r.location())
		}
		for _, c := range r.Cookies() {
			if strings.Contains(c.Name, "2fa") {
				t.Errorf("refused login for %q set the gate cookie %s", name, c.Name)
			}
		}
		// The app echoes the typed name into its form: ignore values.
		body := reValueAttr.ReplaceAllString(r.body, `value=""`)
		if firstName == "" {
			first, firstName = response{r.Response, body}, name
			continue
		}
		if r.StatusCode != first.StatusCode || body != first.body || r.location() != first.location() {
			t.Errorf("refused login for %q (%d %s) differs from %q (%d %s):\n%s\n---\n%s", name, r.StatusCode, r.location(), firstName, first.StatusCode, first.location(), trim(body), trim(first.body))
		}
	}

	// basic_auth: a wrong password for an enrolled user and for an
	// unknown one get the same 401, from basic_auth, not the gate.
	b := startSite(t, siteOptions{})
	b.browser("alice").enroll()
	var bodies []string
	for _, name := range []string{"alice", "nobody"} {
		c := b.browser("")
		c.accept = "application/json"
		// A refused password costs a full bcrypt comparison (never
		// cached), which is slow under the race detector.
		c.client.Timeout = 2 * time.Minute
		req := c.do("GET", "/app", nil, http.Header{"Authorization": {"Basic " + basicAuth(name, "wrong")}})
		if req.StatusCode != http.StatusUnauthorized || strings.Contains(req.body, "two_factor") {
			t.Errorf("basic_auth failure for %q: %d %q", name, req.StatusCode, req.body)
		}
		bodies = append(bodies, req.body)
	}
	if bodies[0] != bodies[1] {
		t.Errorf("basic_auth failures differ: %q vs %q", bodies[0], bodies[1])
	}
}

var reValueAttr = regexp.MustCompile(`value="[^"]*"`)

func basicAuth(user, password string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
}

// TestAppLoginPathTricks: with app_login, only the login path itself
// passes for a browser whose application session is not verified;
// spellings that a lenient application might route elsewhere
// (dot-segments, encoded slashes, suffixes, case) are challenged, and
// path-override headers that frameworks route by never reach the
// application (checklist item 50).
func TestAppLoginPathTricks(t *testing.T) {
	seen := make(chan http.Header, 100)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Clone()
		if r.Method == http.MethodPost && r.URL.Path == "/login" {
			http.SetCookie(w, &http.Cookie{Name: "APPSID", Value: "s-" + r.FormValue("username"), Path: "/"})
			http.Redirect(w, r, "/account", http.StatusSeeOther)
			return
		}
		fmt.Fprintf(w, "app page %s", r.URL.RequestURI())
	}))
	t.Cleanup(app.Close)
	s := startCustomSite(t, "", fmt.Sprintf(`	two_factor {
		store file %s
		app_login {
			path /login
			username_field username
			session_cookie APPSID
		}
	}
	reverse_proxy %s`, t.TempDir()+"/s.db", strings.TrimPrefix(app.URL, "http://")))
	b := s.browser("")
	// Log in to the app: the binding is pending until the code.
	b.post("/login", url.Values{"username": {"alice"}, "password": {"x"}}).expectRedirect(t, "/.2fa/enroll")
	for len(seen) > 0 {
		<-seen
	}
	b.accept = "application/json"
	for _, p := range []string{"/account", "/login/../account", "/login/%2e%2e/account", "/login%2f..%2faccount", "/login/", "/login;x", "/LOGIN", "/login.php", "//login", "/./login/../account", "/login%00", "/login/x"} {
		r := b.get(p)
		if r.StatusCode != http.StatusUnauthorized || !strings.Contains(r.body, "two_factor_required") {
			t.Errorf("%s with a pending app session: %d %q, want the gate's 401", p, r.StatusCode, trim(r.body))
		}
	}
	if len(seen) != 0 {
		t.Errorf("%d of those requests reached the app", len(seen))
	}
	// The login path is no exemption either (issue 13: front controllers
	// serve the whole application from it): with the pending session it
	// is challenged too, and the cookie never reaches the app.
	if r := b.get("/login"); r.StatusCode != http.StatusUnauthorized || len(seen) != 0 {
		t.Fatalf("login page with a pending app session: %d, %d requests reached the app", r.StatusCode, len(seen))
	}
	// A browser without an application session reaches the login page,
	// and path-override headers are removed on the way.
	b = s.browser("")
	r := b.do("GET", "/login", nil, http.Header{"X-Original-Url": {"/account"}, "X-Rewrite-Url": {"/account"}})
	if r.StatusCode != http.StatusOK {
		t.Fatalf("login page: %d", r.StatusCode)
	}
	h := <-seen
	if h.Get("X-Original-Url") != "" || h.Get("X-Rewrite-Url") != "" {
		t.Errorf("the app received path-override headers: %v", h)
	}
}
