package caddymodule

import (
	"bytes"
	"encoding/base64"
	"image/png"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestEnrollmentFlow walks a first login: redirect to enrollment, the
// page's URI, QR and secret, a wrong code, a right code, the recovery
// codes, and the way back to the original URL.
func TestEnrollmentFlow(t *testing.T) {
	s := startSite(t, siteOptions{})
	b := s.browser("alice")

	r := b.get("/app?x=1").expectRedirect(t, "/.2fa/enroll?rd=")
	if got := r.location(); got != "/.2fa/enroll?rd="+url.QueryEscape("/app?x=1") {
		t.Fatalf("redirect = %q", got)
	}
	page := b.get(r.location()).expect(t, http.StatusOK)
	if cc := page.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("enroll page Cache-Control = %q, want no-store", cc)
	}
	if csp := page.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("enroll page CSP = %q", csp)
	}
	uri := enrollmentURI(t, page)
	if uri.Scheme != "otpauth" || uri.Host != "totp" {
		t.Fatalf("URI %s is not otpauth://totp", uri)
	}
	if uri.Path != "/Example Corp:alice" || uri.Query().Get("issuer") != "Example Corp" {
		t.Errorf("URI label/issuer = %q / %q", uri.Path, uri.Query().Get("issuer"))
	}
	key := secretOf(t, uri)
	if len(key) < 20 {
		t.Fatalf("secret is %d bytes, want >= 20", len(key))
	}
	// The secret in groups of four, as typed by hand.
	enc := uri.Query().Get("secret")
	if !strings.Contains(page.body, ">"+enc[:4]+"<") || !strings.Contains(page.body, ">"+enc[4:8]+"<") {
		t.Errorf("page does not show the secret in groups")
	}
	// The QR is an inline PNG of exactly the URI.
	m := reQR.FindStringSubmatch(page.body)
	if m == nil {
		t.Fatal("no inline PNG QR code")
	}
	pngBytes, err := base64.StdEncoding.DecodeString(html_unescape(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := png.Decode(bytes.NewReader(pngBytes)); err != nil {
		t.Fatalf("QR is not a PNG: %v", err)
	}
	linked := html_unescape(reURI.FindStringSubmatch(page.body)[1])
	if zbar, err := exec.LookPath("zbarimg"); err == nil {
		f := t.TempDir() + "/qr.png"
		os.WriteFile(f, pngBytes, 0o600)
		out, err := exec.Command(zbar, "--nodbus", "-q", "--raw", f).Output()
		if err != nil {
			t.Fatalf("zbarimg: %v", err)
		}
		if got := strings.TrimRight(string(out), "\n"); got != linked {
			t.Errorf("QR encodes %q, link is %q", got, linked)
		}
	} else if os.Getenv("CI") == "true" {
		t.Fatal("zbarimg missing under CI (install zbar-tools)")
	} else {
		t.Log("zbarimg not installed: QR content not decoded (CI installs zbar-tools)")
	}

	// A reload shows the same unconfirmed secret.
	again := b.get(r.location()).expect(t, http.StatusOK)
	if !bytes.Equal(secretOf(t, enrollmentURI(t, again)), key) {
		t.Error("reloading the enrollment page changed the secret")
	}

	// Not yet enrolled: the app is still out of reach.
	b.get("/app").expectRedirect(t, "/.2fa/enroll")

	// A POST without the CSRF token is refused and enrolls nothing.
	b.post("/.2fa/enroll", url.Values{"code": {totp(key, testNow())}}).expect(t, http.StatusForbidden)
	// A cross-site POST with the right token is refused too.
	tok := csrfOf(t, again)
	b.do("POST", "/.2fa/enroll", strings.NewReader(url.Values{"csrf_token": {tok}, "code": {totp(key, testNow())}}.Encode()), http.Header{
		"Content-Type": {"application/x-www-form-urlencoded"}, "Sec-Fetch-Site": {"cross-site"}, "Origin": {"https://evil.example"},
	}).expect(t, http.StatusForbidden)
	b.get("/app").expectRedirect(t, "/.2fa/enroll")

	// A wrong code: the page says so and mentions the phone's clock.
	wrong := wrongCode(key)
	b.post("/.2fa/enroll", url.Values{"csrf_token": {tok}, "code": {wrong}, "rd": {"/app?x=1"}}).expect(t, http.StatusUnauthorized).contains(t, "clock")

	// The right code: recovery codes, shown once, with a download.
	rc := b.post("/.2fa/enroll", url.Values{"csrf_token": {tok}, "code": {totp(key, testNow())}, "rd": {"/app?x=1"}}).expect(t, http.StatusOK)
	codes := uniq(reRecovery.FindAllString(rc.body, -1))
	if len(codes) != 10 {
		t.Fatalf("got %d recovery codes, want 10: %v", len(codes), codes)
	}
	if !strings.Contains(rc.body, "data:text/plain") || !strings.Contains(rc.body, "download=") {
		t.Error("recovery codes page has no plain-text download")
	}
	if rc.Header.Get("Cache-Control") != "no-store" {
		t.Error("recovery codes page may be cached")
	}
	if !strings.Contains(rc.body, `href="/app?x=1"`) {
		t.Error("recovery codes page does not continue to the original URL")
	}

	// Through the gate, with placeholders set and the gate's cookies
	// removed before the application.
	app := b.do("GET", "/app?x=1", nil, http.Header{"Cookie": {"theme=dark"}}).expect(t, http.StatusOK)
	if !strings.Contains(app.body, "user=alice method=totp") {
		t.Errorf("app saw %q", app.body)
	}
	if strings.Contains(app.body, "2fa_") || !strings.Contains(app.body, "theme=dark") {
		t.Errorf("app cookies = %q (gate cookies must be stripped, others kept)", app.body)
	}

	// The secret is never shown again.
	r = b.get("/.2fa/enroll").expectRedirect(t, "/.2fa/challenge")
	if strings.Contains(r.body, enc) {
		t.Error("secret shown after enrollment")
	}
	// Also not to another browser of the same user.
	b2 := s.browser("alice")
	b2.get("/.2fa/enroll").expectRedirect(t, "/.2fa/challenge")
	b2.get("/app").expectRedirect(t, "/.2fa/challenge")
}

func html_unescape(s string) string {
	return strings.NewReplacer("&amp;", "&", "&#43;", "+", "&#39;", "'", "&quot;", `"`).Replace(s)
}

// wrongCode is a six-digit code that is none of the codes accepted now.
func wrongCode(key []byte) string { return wrongCodeAt(key, testNow()) }

// TestChallengeOnNewDevice: an enrolled user on a new browser must enter a
// code; a code already used (same time step) is refused; the next step's
// code works and returns to the original URL.
func TestChallengeOnNewDevice(t *testing.T) {
	s := startSite(t, siteOptions{})
	key, _ := s.browser("alice").enroll()

	b := s.browser("alice")
	b.get("/app/page?q=1").expectRedirect(t, "/.2fa/challenge?rd="+url.QueryEscape("/app/page?q=1"))
	page := b.get("/.2fa/challenge?rd="+url.QueryEscape("/app/page?q=1")).expect(t, http.StatusOK)
	page.contains(t, `name="code"`, `autocomplete="one-time-code"`, `name="trust_device"`)

	// The enrollment's code (same step) again: replay refused.
	b.post("/.2fa/challenge", url.Values{"csrf_token": {csrfOf(t, page)}, "code": {totp(key, testNow())}, "rd": {"/app/page?q=1"}}).expect(t, http.StatusUnauthorized)
	b.get("/app/page?q=1").expectRedirect(t, "/.2fa/challenge")

	advance(30 * time.Second)
	r := b.post("/.2fa/challenge", url.Values{"csrf_token": {csrfOf(t, page)}, "code": {totp(key, testNow())}, "rd": {"/app/page?q=1"}})
	r.expectRedirect(t, "/app/page?q=1")
	if r.location() != "/app/page?q=1" {
		t.Fatalf("returned to %q", r.location())
	}
	b.get("/app/page?q=1").expect(t, http.StatusOK).contains(t, "user=alice method=totp")

	// The same code from a third browser, within its window: refused.
	c := s.browser("alice")
	c.challenge(totp(key, testNow()), false).expect(t, http.StatusUnauthorized)
	// An older step still inside the skew window: refused too.
	c.challenge(totp(key, testNow().Add(-30*time.Second)), false).expect(t, http.StatusUnauthorized)
	// A step two windows away: refused (skew 1).
	c.challenge(totp(key, testNow().Add(90*time.Second)), false).expect(t, http.StatusUnauthorized)
}

// TestRecoveryCode: a recovery code works once, typed in any case with or
// without the dash, and is then spent.
func TestRecoveryCode(t *testing.T) {
	s := startSite(t, siteOptions{})
	_, codes := s.browser("alice").enroll()

	b := s.browser("alice")
	typed := strings.ToUpper(strings.ReplaceAll(codes[3], "-", ""))
	b.challenge(typed, false).expectRedirect(t, "/app")
	b.get("/app").expect(t, http.StatusOK).contains(t, "method=recovery")

	c := s.browser("alice")
	c.challenge(codes[3], false).expect(t, http.StatusUnauthorized)
	c.get("/app").expectRedirect(t, "/.2fa/challenge")
	// Another user cannot use alice's codes.
	bob := s.browser("bob")
	bob.enroll()
	bob2 := s.browser("bob")
	bob2.challenge(codes[4], false).expect(t, http.StatusUnauthorized)
	// Alice's other codes still work.
	c.challenge(codes[4], false).expectRedirect(t, "/app")
}

// TestLockout: max_attempts failures lock the user out (TOTP and recovery
// codes alike, across browsers); the page says when to retry; the lock
// ends by itself.
func TestLockout(t *testing.T) {
	s := startSite(t, siteOptions{gate: "max_attempts 3 5m 10m"})
	key, _ := s.browser("alice").enroll()
	advance(30 * time.Second)

	b := s.browser("alice")
	b.challenge(wrongCode(key), false).expect(t, http.StatusUnauthorized)
	b.challenge("abcde-fghjk", false).expect(t, http.StatusUnauthorized)
	// The third failure, from another browser, locks the account.
	c := s.browser("alice")
	r := c.challenge(wrongCode(key), false).expect(t, http.StatusTooManyRequests)
	r.contains(t, "10 minutes")
	if r.Header.Get("Retry-After") == "" {
		t.Error("lockout has no Retry-After")
	}
	// Even the right code is refused while locked.
	b.challenge(totp(key, testNow()), false).expect(t, http.StatusTooManyRequests)
	b.get("/app").expectRedirect(t, "/.2fa/challenge")
	// Bob is not affected.
	s.browser("bob").enroll()

	advance(11 * time.Minute)
	b.challenge(totp(key, testNow()), false).expectRedirect(t, "/app")
	b.get("/app").expect(t, http.StatusOK)
}

// TestTrustedDevice: a trusted browser skips the challenge for that user
// only, until the trust expires (use does not extend it).
func TestTrustedDevice(t *testing.T) {
	s := startSite(t, siteOptions{gate: "trust_device 7d"})
	key, _ := s.browser("alice").enroll()
	advance(30 * time.Second)

	b := s.browser("alice")
	b.challenge(totp(key, testNow()), true).expectRedirect(t, "/app")
	device := b.cookie("2fa_device")
	if device == "" {
		t.Fatal("no device cookie after trust_device")
	}

	// A new session on the same browser (session cookie gone): no prompt.
	later := s.browser("alice")
	later.setCookie("2fa_device", device)
	later.get("/app").expect(t, http.StatusOK).contains(t, "method=trusted_device")

	// The device cookie does not help another user.
	bob := s.browser("bob")
	bob.enroll()
	mallory := s.browser("bob")
	mallory.setCookie("2fa_device", device)
	mallory.get("/app").expectRedirect(t, "/.2fa/challenge")

	// Forged or tampered device cookies do nothing.
	forged := s.browser("alice")
	forged.setCookie("2fa_device", device[:len(device)-2]+"AA")
	forged.get("/app").expectRedirect(t, "/.2fa/challenge")

	// Used every day, it still expires after 7 days.
	for range 6 {
		advance(24 * time.Hour)
		x := s.browser("alice")
		x.setCookie("2fa_device", device)
		x.get("/app").expect(t, http.StatusOK)
	}
	advance(25 * time.Hour)
	x := s.browser("alice")
	x.setCookie("2fa_device", device)
	x.get("/app").expectRedirect(t, "/.2fa/challenge")

	// trust_device 0 hides the checkbox.
	s2 := startSite(t, siteOptions{gate: "trust_device 0"})
	s2.browser("alice").enroll()
	advance(30 * time.Second)
	page := s2.browser("alice").get("/.2fa/challenge").expect(t, http.StatusOK)
	if strings.Contains(page.body, "trust_device") {
		t.Error("trust_device 0 still offers the checkbox")
	}
}

// TestLogout: logout asks for confirmation on GET, revokes the session on
// the server on POST; the old cookie is useless afterwards.
func TestLogout(t *testing.T) {
	s := startSite(t, siteOptions{})
	b := s.browser("alice")
	b.enroll()
	b.get("/app").expect(t, http.StatusOK)
	session := b.cookie("2fa_session")

	page := b.get("/.2fa/logout").expect(t, http.StatusOK)
	b.get("/app").expect(t, http.StatusOK) // GET changed nothing
	// Cross-site logout is refused.
	b.do("POST", "/.2fa/logout", strings.NewReader("csrf_token="+url.QueryEscape(csrfOf(t, page))), http.Header{
		"Content-Type": {"application/x-www-form-urlencoded"}, "Sec-Fetch-Site": {"cross-site"},
	}).expect(t, http.StatusForbidden)
	b.get("/app").expect(t, http.StatusOK)

	b.post("/.2fa/logout", url.Values{"csrf_token": {csrfOf(t, page)}}).expect(t, http.StatusOK)
	b.get("/app").expectRedirect(t, "/.2fa/challenge")

	// Replaying the old session cookie gets nowhere: revoked server-side.
	replay := s.browser("alice")
	replay.setCookie("2fa_session", session)
	replay.get("/app").expectRedirect(t, "/.2fa/challenge")
}

// TestNonBrowserClientsGetJSON: clients that do not accept HTML get 401
// JSON pointing at the challenge.
func TestNonBrowserClientsGetJSON(t *testing.T) {
	s := startSite(t, siteOptions{})
	b := s.browser("alice")
	b.accept = "application/json"
	r := b.get("/api/items?id=7").expect(t, http.StatusUnauthorized)
	m := decodeJSON(t, r)
	if m["error"] != "two_factor_required" || m["challenge"] != "/.2fa/enroll?rd="+url.QueryEscape("/api/items?id=7") {
		t.Fatalf("JSON = %v", m)
	}
	s.browser("alice").enroll()
	b.get("/api/items").expect(t, http.StatusUnauthorized)
	if m := decodeJSON(t, b.get("/api/items")); m["challenge"] != "/.2fa/challenge?rd=%2Fapi%2Fitems" {
		t.Fatalf("JSON = %v", m)
	}
}

// TestEveryMethodIsGated: HEAD, PUT, DELETE, OPTIONS, PATCH and a
// WebSocket upgrade never reach the application without a session.
func TestEveryMethodIsGated(t *testing.T) {
	s := startSite(t, siteOptions{})
	s.browser("alice").enroll()
	b := s.browser("alice")
	b.accept = ""
	for _, m := range []string{"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"} {
		r := b.do(m, "/app", strings.NewReader("x"), nil)
		if r.StatusCode != http.StatusUnauthorized || strings.Contains(r.body, "app user=") {
			t.Errorf("%s without session: %d %q", m, r.StatusCode, r.body)
		}
	}
	r := b.do("GET", "/ws", nil, http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}, "Sec-Websocket-Version": {"13"}, "Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}})
	if r.StatusCode != http.StatusUnauthorized {
		t.Errorf("websocket upgrade without session: %d", r.StatusCode)
	}
	// Gate pages reject other methods.
	b.do("DELETE", "/.2fa/challenge", nil, nil).expect(t, http.StatusMethodNotAllowed)
	// Paths under the prefix never reach the application.
	for _, p := range []string{"/.2fa/../app", "/.2fa/unknown", "/.2fa/challenge/../../app"} {
		r := b.get(p)
		if strings.Contains(r.body, "app user=") {
			t.Errorf("%s reached the app", p)
		}
	}
}

// TestCookiesNeverPassForged: garbage, truncated, tampered, other-key and
// other-user session cookies never pass.
func TestCookiesNeverPassForged(t *testing.T) {
	s := startSite(t, siteOptions{})
	a := s.browser("alice")
	a.enroll()
	good := a.cookie("2fa_session")
	a.get("/app").expect(t, http.StatusOK)

	bob := s.browser("bob")
	bob.enroll()
	bobSession := bob.cookie("2fa_session")

	for name, v := range map[string]string{
		"garbage":   "not-a-cookie",
		"empty":     "",
		"truncated": good[:len(good)/2],
		"tampered":  good[:len(good)-3] + "xyz",
		"huge":      strings.Repeat("A", 4000),
		"bob's":     bobSession,
	} {
		x := s.browser("alice")
		x.setCookie("2fa_session", v)
		r := x.get("/app")
		if r.StatusCode == http.StatusOK {
			t.Errorf("%s session cookie passed: %s", name, r.body)
		}
	}
	// A cookie signed with another secret (another gate) does not pass.
	s2 := startSite(t, siteOptions{gate: `secret "another-secret-that-is-at-least-32-bytes-long"`, store: t.TempDir() + "/other.db"})
	o := s2.browser("alice")
	o.enroll()
	foreign := o.cookie("2fa_session")
	s3 := startSite(t, siteOptions{gate: `secret "yet-another-secret-at-least-32-bytes-long!!"`, store: s2.store})
	x := s3.browser("alice")
	x.setCookie("2fa_session", foreign)
	x.get("/app").expectRedirect(t, "/.2fa/")
}

// TestSessionExpiry: the absolute lifetime and the idle timeout are
// enforced on the server.
func TestSessionExpiry(t *testing.T) {
	s := startSite(t, siteOptions{gate: "session_ttl 2h\n\t\tidle_timeout 30m"})
	b := s.browser("alice")
	key, _ := b.enroll()
	for range 5 { // active every 20 minutes: idle never trips
		advance(20 * time.Minute)
		b.get("/app").expect(t, http.StatusOK)
	}
	advance(25 * time.Minute) // 125 minutes: past the absolute lifetime
	b.get("/app").expectRedirect(t, "/.2fa/challenge")

	b.challenge(totp(key, testNow()), false).expectRedirect(t, "/app")
	b.get("/app").expect(t, http.StatusOK)
	advance(31 * time.Minute) // idle too long
	b.get("/app").expectRedirect(t, "/.2fa/challenge")
}
