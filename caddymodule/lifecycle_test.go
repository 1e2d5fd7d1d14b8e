package caddymodule

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// TestSessionSurvivesReloadAndRestart: a verified session stays valid
// across a config reload (the store stays open through the usage pool)
// and across a full stop and start (the store and the generated secret
// are on disk).
func TestSessionSurvivesReloadAndRestart(t *testing.T) {
	port := freePort(t)
	store := t.TempDir() + "/store.db"
	s := startSite(t, siteOptions{port: port, store: store})
	b := s.browser("alice")
	b.enroll()
	b.get("/app").expect(t, http.StatusOK)

	// Reload: a changed config replaces the running one.
	startSite(t, siteOptions{port: port, store: store, gate: `title "Reloaded"`})
	// The old server closes its idle keep-alive connections as it hands
	// over; a browser opens a new one (Go's client may instead read EOF
	// on a connection closed just as it reused it).
	b.client.CloseIdleConnections()
	b.get("/app").expect(t, http.StatusOK).contains(t, "user=alice")
	b.get("/.2fa/logout").contains(t, "Reloaded")

	// Restart: everything stopped, then started again.
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	if n, ok := stores.References("file:" + store); ok || n != 0 {
		t.Fatalf("store still referenced after stop: %d", n)
	}
	startSite(t, siteOptions{port: port, store: store})
	b.get("/app").expect(t, http.StatusOK).contains(t, "user=alice")
}

// TestCaddyfileExample loads the README's demo config (on free ports) so
// it never rots, and goes through both of its sites as the demo users.
func TestCaddyfileExample(t *testing.T) {
	raw, err := os.ReadFile("../Caddyfile.example")
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(raw)
	ports := map[string]int{}
	for _, p := range []string{"8080", "8081", "8082"} {
		ports[p] = freePort(t)
		if !strings.Contains(cfg, ":"+p) {
			t.Fatalf("Caddyfile.example no longer uses port %s (update the README and this test)", p)
		}
		cfg = strings.ReplaceAll(cfg, ":"+p, fmt.Sprintf(":%d", ports[p]))
	}
	// The example uses the default store in Caddy's data directory: a
	// fresh one for each run.
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	loadCaddyfile(t, cfg)
	t.Cleanup(func() { caddy.Stop() })

	// The legacy app with its own login.
	app := &site{t: t, base: fmt.Sprintf("http://localhost:%d", ports["8080"])}
	b, _ := appEnroll(t, app, "alice", "wonderland")
	b.get("/").expect(t, http.StatusOK).contains(t, "alice", "totp")

	// Basic auth in front.
	basic := &site{t: t, base: fmt.Sprintf("http://localhost:%d", ports["8082"])}
	passwords["alice"], passwords["saved"] = "wonderland", passwords["alice"]
	defer func() { passwords["alice"] = passwords["saved"]; delete(passwords, "saved") }()
	c := basic.browser("alice")
	c.do("GET", "/", nil, http.Header{"Authorization": {"Basic YWxpY2U6d3Jvbmc="}}).expect(t, http.StatusUnauthorized)
	c.get("/").expectRedirect(t, "/.2fa/enroll")
	r := c.get("/.2fa/enroll").expect(t, http.StatusOK).contains(t, "caddy-2fa demo")
	key := secretOf(t, enrollmentURI(t, r))
	c.post("/.2fa/enroll", map[string][]string{"csrf_token": {csrfOf(t, r)}, "code": {totp(key, testNow())}}).expect(t, http.StatusOK)
	c.get("/").expect(t, http.StatusOK).contains(t, "Welcome, alice", "totp")
	// Its carve-out is public, and only by its exact path.
	anon := basic.browser("")
	anon.get("/health").expect(t, http.StatusOK).contains(t, "ok")
	for _, p := range []string{"/health/", "/health;/../x", "/health/..;/x", "/health%2f..%2fx", "/health/x"} {
		anon.get(p).expect(t, http.StatusUnauthorized)
	}
	fresh := basic.browser("alice")
	fresh.accept = ""
	fresh.get("/health/..;/x").expect(t, http.StatusUnauthorized).contains(t, "two_factor_required")
}

// TestDirectiveOrder: without an `order` option, two_factor runs after
// basic_auth and forward_auth and before the handlers that produce
// content, whatever order the Caddyfile lists them in.
func TestDirectiveOrder(t *testing.T) {
	for _, terminal := range []string{"respond \"hi\"", "reverse_proxy 127.0.0.1:9", "file_server", "php_fastcgi 127.0.0.1:9000"} {
		cfg := fmt.Sprintf(`:8080 {
	%s
	two_factor
	basic_auth {
		alice $2a$04$6PrJ3Gpo5Q/5ZzJ1V4a5q.9mQFq3p0B9XJfHEk3kHkq7ZK4l5Q3W2
	}
}`, terminal)
		js, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cfg), nil)
		if err != nil {
			t.Fatalf("%s: %v", terminal, err)
		}
		var names []string
		var walk func(v any)
		walk = func(v any) {
			switch x := v.(type) {
			case map[string]any:
				if h, ok := x["handler"].(string); ok {
					if h == "authentication" || h == "two_factor" || h == "static_response" || h == "reverse_proxy" || h == "file_server" {
						names = append(names, h)
					}
				}
				for _, k := range []string{"apps", "http", "servers", "srv0", "routes", "handle"} {
					if c, ok := x[k]; ok {
						walk(c)
					}
				}
			case []any:
				for _, e := range x {
					walk(e)
				}
			}
		}
		var doc any
		json.Unmarshal(js, &doc)
		walk(doc)
		order := strings.Join(names, ",")
		if !strings.HasPrefix(order, "authentication,two_factor,") {
			t.Errorf("with %s: handler order %s, want authentication,two_factor,...", terminal, order)
		}
	}
}

// TestIdentity: an empty identity is refused (403) unless anonymous allow;
// the identity placeholder is resolved per request.
func TestIdentity(t *testing.T) {
	s := startSite(t, siteOptions{noAuth: true, gate: "user {http.request.header.X-Test-User}"})
	b := s.browser("")
	r := b.get("/app").expect(t, http.StatusForbidden)
	r.contains(t, "administrator")
	if strings.Contains(r.body, "app user=") {
		t.Fatal("unidentified request reached the app")
	}
	b.accept = "application/json"
	b.get("/app").expect(t, http.StatusForbidden)
	b.accept = "text/html"
	b.do("GET", "/app", nil, http.Header{"X-Test-User": {"carol"}}).expectRedirect(t, "/.2fa/enroll")
	// The gate's pages need an identity too.
	b.get("/.2fa/enroll").expect(t, http.StatusForbidden)

	s2 := startSite(t, siteOptions{noAuth: true, gate: "user {http.request.header.X-Test-User}\n\t\tanonymous allow"})
	c := s2.browser("")
	c.get("/app").expect(t, http.StatusOK).contains(t, "method=anonymous")
	c.do("GET", "/app", nil, http.Header{"X-Test-User": {"carol"}}).expectRedirect(t, "/.2fa/enroll")
}

// TestHTTPSCookies: on HTTPS every gate cookie is __Host-, Secure,
// HttpOnly, SameSite=Lax, Path=/, without Domain.
func TestHTTPSCookies(t *testing.T) {
	s := startSite(t, siteOptions{https: true})
	b := s.browser("alice")
	var setCookies []string
	r := b.get("/app").expectRedirect(t, "/.2fa/enroll")
	r = b.get(r.location()).expect(t, http.StatusOK)
	setCookies = append(setCookies, r.Header.Values("Set-Cookie")...)
	key := secretOf(t, enrollmentURI(t, r))
	r = b.post("/.2fa/enroll", map[string][]string{"csrf_token": {csrfOf(t, r)}, "code": {totp(key, testNow())}}).expect(t, http.StatusOK)
	setCookies = append(setCookies, r.Header.Values("Set-Cookie")...)
	advance(30 * time.Second)
	c := s.browser("alice")
	r = c.get("/.2fa/challenge").expect(t, http.StatusOK)
	setCookies = append(setCookies, r.Header.Values("Set-Cookie")...)
	r = c.post("/.2fa/challenge", map[string][]string{"csrf_token": {csrfOf(t, r)}, "code": {totp(key, testNow())}, "trust_device": {"1"}}).expectRedirect(t, "/")
	setCookies = append(setCookies, r.Header.Values("Set-Cookie")...)
	seen := map[string]bool{}
	for _, sc := range setCookies {
		name := sc[:strings.Index(sc, "=")]
		seen[name] = true
		for _, attr := range []string{"Path=/", "HttpOnly", "Secure", "SameSite=Lax"} {
			if !strings.Contains(sc, attr) {
				t.Errorf("cookie %s lacks %s: %s", name, attr, sc)
			}
		}
		if !strings.HasPrefix(name, "__Host-") || strings.Contains(strings.ToLower(sc), "domain=") {
			t.Errorf("cookie %s is not a __Host- cookie: %s", name, sc)
		}
		if len(sc) > 4096 {
			t.Errorf("cookie %s is %d bytes", name, len(sc))
		}
	}
	for _, want := range []string{"__Host-2fa_session", "__Host-2fa_device", "__Host-2fa_csrf"} {
		if !seen[want] {
			t.Errorf("no %s cookie set (saw %v)", want, seen)
		}
	}
	c.get("/app").expect(t, http.StatusOK)
}

// TestOTPHeader: an API client may send a current code in otp_header; the
// header never reaches the application; a code works once; failures count.
func TestOTPHeader(t *testing.T) {
	s := startSite(t, siteOptions{gate: "otp_header X-OTP\n\t\tmax_attempts 2 5m 15m"})
	key, _ := s.browser("alice").enroll()
	advance(30 * time.Second)
	api := s.browser("alice")
	api.accept = "application/json"
	code := totp(key, testNow())
	r := api.do("GET", "/api", nil, http.Header{"X-Otp": {code}}).expect(t, http.StatusOK)
	r.contains(t, "method=totp")
	// The session cookie set on that response carries the client on.
	api.get("/api").expect(t, http.StatusOK)
	// The same code on a fresh client: refused (used once).
	other := s.browser("alice")
	other.accept = "application/json"
	if m := decodeJSON(t, other.do("GET", "/api", nil, http.Header{"X-Otp": {code}}).expect(t, http.StatusUnauthorized)); m["error"] != "two_factor_invalid" {
		t.Fatalf("JSON = %v", m)
	}
	// The second failure locks.
	r = other.do("GET", "/api", nil, http.Header{"X-Otp": {"12"}}).expect(t, http.StatusTooManyRequests)
	if m := decodeJSON(t, r); m["error"] != "two_factor_locked" {
		t.Fatalf("JSON = %v", m)
	}
}

// TestStoreFailureFailsClosed: when the store breaks, nothing passes; the
// gate answers 503 (HTML page or JSON), never the application.
func TestStoreFailureFailsClosed(t *testing.T) {
	s := startSite(t, siteOptions{})
	b := s.browser("alice")
	b.enroll()
	b.get("/app").expect(t, http.StatusOK)

	v, ok := stores.LoadOrStore("file:"+s.store, nil)
	if !ok {
		t.Fatal("store not in pool")
	}
	stores.Delete("file:" + s.store) // undo LoadOrStore's reference
	if err := v.(pooledStore).close(); err != nil {
		t.Fatal(err)
	}
	// A session read less than a second ago is served from memory
	// (sessionCacheTTL); past that, every request needs the store.
	advance(sessionCacheTTL + time.Millisecond)
	r := b.get("/app").expect(t, http.StatusServiceUnavailable)
	if strings.Contains(r.body, "app user=") {
		t.Fatal("request passed with a broken store")
	}
	b.accept = "application/json"
	if m := decodeJSON(t, b.get("/app").expect(t, http.StatusServiceUnavailable)); m["error"] != "two_factor_unavailable" {
		t.Fatalf("JSON = %v", m)
	}
	// Never routed to enrollment because "not found" and "broken" differ.
	b.accept = "text/html"
	s.browser("bob").get("/app").expect(t, http.StatusServiceUnavailable)
	s.browser("alice").get("/.2fa/enroll").expect(t, http.StatusServiceUnavailable)
}

// TestNothingSecretInLogs runs enrollment, a challenge with a trusted
// device, a recovery code, failures and a logout with debug logging, and
// checks that no TOTP secret, code, recovery code or cookie value appears
// in the logs.
func TestNothingSecretInLogs(t *testing.T) {
	logFile := t.TempDir() + "/caddy.log"
	s := startSite(t, siteOptions{global: fmt.Sprintf("\tlog {\n\t\toutput file %s\n\t\tlevel DEBUG\n\t}\n", logFile)})
	b := s.browser("alice")
	r := b.get("/app").expectRedirect(t, "/.2fa/enroll")
	r = b.get(r.location()).expect(t, http.StatusOK)
	uri := enrollmentURI(t, r)
	key := secretOf(t, uri)
	secrets := []string{uri.Query().Get("secret"), csrfOf(t, r)}
	code := totp(key, testNow())
	secrets = append(secrets, code)
	r = b.post("/.2fa/enroll", map[string][]string{"csrf_token": {csrfOf(t, r)}, "code": {code}}).expect(t, http.StatusOK)
	codes := uniq(reRecovery.FindAllString(r.body, -1))
	secrets = append(secrets, codes...)
	secrets = append(secrets, b.cookie("2fa_session"), b.cookie("2fa_csrf"))
	advance(30 * time.Second)
	c := s.browser("alice")
	code2 := totp(key, testNow())
	c.challenge(code2, true).expectRedirect(t, "/app")
	secrets = append(secrets, code2, c.cookie("2fa_device"), c.cookie("2fa_session"))
	d := s.browser("alice")
	d.challenge("000000", false)
	d.challenge(codes[0], false).expectRedirect(t, "/app")
	p := d.get("/.2fa/logout")
	d.post("/.2fa/logout", map[string][]string{"csrf_token": {csrfOf(t, p)}}).expect(t, http.StatusOK)
	caddy.Stop()

	logs, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(logs), `"event":"enroll"`) || !strings.Contains(string(logs), `"event":"logout"`) {
		t.Fatalf("expected audit events in the log:\n%s", logs)
	}
	for _, sec := range secrets {
		if sec == "" {
			t.Fatal("empty secret in list: test setup broken")
		}
		if strings.Contains(string(logs), sec) {
			t.Errorf("log contains a secret value %q", sec)
		}
		if len(sec) > 10 && strings.Contains(string(logs), strings.ReplaceAll(sec, "-", "")) {
			t.Errorf("log contains a secret value %q (without dash)", sec)
		}
	}
}
