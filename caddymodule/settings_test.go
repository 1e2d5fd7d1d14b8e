package caddymodule

import (
	"html"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddy-2fa/caddy-2fa/challenge"
)

// Real User-Agent headers of two browsers that trust a device.
const (
	uaChromeWindows = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
	uaFirefoxLinux  = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"
)

// settingsGet opens the settings page and expects it to be shown.
func settingsGet(t *testing.T, b *browser) response {
	t.Helper()
	return b.get("/.2fa/settings").expect(t, http.StatusOK)
}

// settingsAction submits one of the settings page's forms (action, with
// more fields) using the CSRF token of page, as a browser would.
func settingsAction(t *testing.T, b *browser, page response, action string, more url.Values) response {
	t.Helper()
	form := url.Values{"csrf_token": {csrfOf(t, page)}, "action": {action}}
	for k, v := range more {
		form[k] = v
	}
	return b.post("/.2fa/settings", form)
}

// hasForm reports whether a page offers the settings form for action.
func hasForm(r response, action string) bool {
	return strings.Contains(r.body, `<input type="hidden" name="action" value="`+action+`">`)
}

// deviceID returns the store ID the page's remove button sends for the
// device labelled label ("Chrome on Windows").
func deviceID(t *testing.T, r response, label string) string {
	t.Helper()
	m := regexp.MustCompile(`(?s)<strong>` + regexp.QuoteMeta(label) + `</strong>.*?name="device" value="([^"]+)"`).FindStringSubmatch(r.body)
	if m == nil {
		t.Fatalf("no device %q on the settings page:\n%s", label, trim(r.body))
	}
	return html.UnescapeString(m[1])
}

// trustAs answers the challenge of a fresh browser of user with a code,
// ticking "remember this device", from a browser with User-Agent ua. It
// returns the browser and the value of its device cookie.
func trustAs(t *testing.T, s *site, user string, key []byte, ua string) (*browser, string) {
	t.Helper()
	b := s.browser(user)
	page := b.get("/.2fa/challenge").expect(t, http.StatusOK)
	form := url.Values{"csrf_token": {csrfOf(t, page)}, "code": {totp(key, testNow())}, "trust_device": {"1"}}
	b.do("POST", "/.2fa/challenge", strings.NewReader(form.Encode()), http.Header{
		"Content-Type":   {"application/x-www-form-urlencoded"},
		"Origin":         {s.base},
		"Sec-Fetch-Site": {"same-origin"},
		"User-Agent":     {ua},
	}).expectRedirect(t, "/")
	device := b.cookie("2fa_device")
	if device == "" {
		t.Fatal("no device cookie after trusting")
	}
	return b, device
}

// withDevice is a fresh browser of user carrying only a device cookie.
func withDevice(s *site, user, device string) *browser {
	b := s.browser(user)
	b.setCookie("2fa_device", device)
	return b
}

// TestSettingsNeedsSession: the page needs a verified session of the
// user; without one, the browser is sent to the challenge and actions are
// not carried out. A user without 2FA is offered to set it up.
func TestSettingsNeedsSession(t *testing.T) {
	s := startSite(t, siteOptions{})
	// Not enrolled: an offer to set it up, no forms.
	r := settingsGet(t, s.browser("alice")).contains(t, "<strong>off</strong>", `href="/.2fa/enroll"`)
	if strings.Contains(r.body, "<form") {
		t.Fatal("forms offered to a user who is not enrolled")
	}

	b := s.browser("alice")
	b.enroll()
	// Enrolled, but this browser has no session.
	c := s.browser("alice")
	c.get("/.2fa/settings").expectRedirect(t, "/.2fa/challenge?rd=%2F.2fa%2Fsettings")
	page := c.get("/.2fa/challenge").expect(t, http.StatusOK) // sets c's CSRF cookie
	settingsAction(t, c, page, "sign_out_others", nil).expectRedirect(t, "/.2fa/challenge")
	b.get("/app").expect(t, http.StatusOK).contains(t, "method=totp")
	// Another user's session is not alice's.
	bob := s.browser("bob")
	bob.enroll()
	bob.get("/.2fa/settings").expect(t, http.StatusOK).contains(t, "Signed in as <strong>bob</strong>")
	sess := bob.cookie("2fa_session")
	mallory := s.browser("alice")
	mallory.setCookie("2fa_session", sess)
	mallory.get("/.2fa/settings").expectRedirect(t, "/.2fa/challenge")

	// With the session: the status.
	settingsGet(t, b).contains(t,
		"Signed in as <strong>alice</strong>",
		"has been <strong>on</strong> since "+testNow().UTC().Format("2 January 2006"),
		"10 of 10 recovery codes left",
		"verified with a code from your authenticator app",
		"No trusted devices.",
		`autocomplete="one-time-code"`,
	)
}

// TestSettingsCSRF: every action needs the page's CSRF token and a
// same-origin request; an unknown action is a bad request.
func TestSettingsCSRF(t *testing.T) {
	s := startSite(t, siteOptions{})
	b := s.browser("alice")
	key, _ := b.enroll()
	advance(30 * time.Second)
	other := s.browser("alice")
	other.challenge(totp(key, testNow()), false).expectRedirect(t, "/app")

	page := settingsGet(t, b).contains(t, "1 other browser")
	// No token.
	b.post("/.2fa/settings", url.Values{"action": {"sign_out_others"}}).expect(t, http.StatusForbidden).contains(t, "This form expired, so nothing was changed")
	// Wrong token.
	b.post("/.2fa/settings", url.Values{"action": {"sign_out_others"}, "csrf_token": {"forged"}}).expect(t, http.StatusForbidden)
	// The right token, from another site.
	form := url.Values{"action": {"sign_out_others"}, "csrf_token": {csrfOf(t, page)}}
	b.do("POST", "/.2fa/settings", strings.NewReader(form.Encode()), http.Header{
		"Content-Type":   {"application/x-www-form-urlencoded"},
		"Origin":         {"https://evil.example"},
		"Sec-Fetch-Site": {"cross-site"},
	}).expect(t, http.StatusForbidden)
	other.get("/app").expect(t, http.StatusOK).contains(t, "method=totp")

	settingsAction(t, b, page, "format_disk", nil).expect(t, http.StatusBadRequest)
	settingsAction(t, b, page, "", nil).expect(t, http.StatusBadRequest)
	other.get("/app").expect(t, http.StatusOK)
}

// TestSettingsTrustedDevices: the page lists the user's trusted devices
// by browser and system; removing one makes its cookie worthless; another
// user's device cannot be removed.
func TestSettingsTrustedDevices(t *testing.T) {
	s := startSite(t, siteOptions{gate: "trust_device 7d"})
	b := s.browser("alice")
	key, _ := b.enroll()
	advance(30 * time.Second)
	chrome, chromeDevice := trustAs(t, s, "alice", key, uaChromeWindows)
	advance(30 * time.Second)
	_, firefoxDevice := trustAs(t, s, "alice", key, uaFirefoxLinux)
	withDevice(s, "alice", chromeDevice).get("/app").expect(t, http.StatusOK).contains(t, "method=trusted_device")

	// On the trusted browser itself, it is "this device".
	settingsGet(t, chrome).contains(t, "<strong>Chrome on Windows</strong> (this device)", "<strong>Firefox on Linux</strong>", "Remove all trusted devices", "verified with a code from your authenticator app")
	page := settingsGet(t, b).contains(t, "<strong>Chrome on Windows</strong>", "<strong>Firefox on Linux</strong>")
	if strings.Contains(page.body, "(this device)") {
		t.Fatal("a browser that is not trusted is marked as this device")
	}
	if !regexp.MustCompile(`Trusted \d+ \w+ \d{4}, \d\d:\d\d UTC from (127\.0\.0\.1|::1)\.`).MatchString(page.body) {
		t.Fatalf("device's time and address not shown:\n%s", trim(page.body))
	}

	// Bob cannot remove alice's device, even with its ID.
	bob := s.browser("bob")
	bob.enroll()
	firefoxID := deviceID(t, page, "Firefox on Linux")
	bobPage := settingsGet(t, bob)
	settingsAction(t, bob, bobPage, "remove_device", url.Values{"device": {firefoxID}}).expect(t, http.StatusNotFound).contains(t, "not on your list")
	settingsAction(t, bob, bobPage, "remove_device", nil).expect(t, http.StatusNotFound)
	withDevice(s, "alice", firefoxDevice).get("/app").expect(t, http.StatusOK).contains(t, "method=trusted_device")

	// Alice removes the Chrome device: its cookie no longer skips the
	// challenge; the Firefox one still does.
	r := settingsAction(t, b, page, "remove_device", url.Values{"device": {deviceID(t, page, "Chrome on Windows")}}).expect(t, http.StatusOK).contains(t, "Device removed.", "<strong>Firefox on Linux</strong>")
	if strings.Contains(r.body, "Chrome on Windows") {
		t.Fatal("removed device still listed")
	}
	withDevice(s, "alice", chromeDevice).get("/app").expectRedirect(t, "/.2fa/challenge")
	withDevice(s, "alice", firefoxDevice).get("/app").expect(t, http.StatusOK).contains(t, "method=trusted_device")

	// Removing the device this browser trusts also drops its cookie.
	advance(30 * time.Second)
	ff, _ := trustAs(t, s, "alice", key, uaFirefoxLinux)
	ffPage := settingsGet(t, ff).contains(t, "<strong>Firefox on Linux</strong> (this device)")
	settingsAction(t, ff, ffPage, "remove_device", url.Values{"device": {deviceID(t, ffPage, "Firefox on Linux")}}).expect(t, http.StatusOK).contains(t, "This device is no longer trusted")
	if ff.cookie("2fa_device") != "" {
		t.Fatal("device cookie kept after removing this device")
	}

	// Remove all: the remaining device asks for a code again.
	settingsAction(t, b, page, "remove_all_devices", nil).expect(t, http.StatusOK).contains(t, "1 trusted device removed.", "No trusted devices.")
	withDevice(s, "alice", firefoxDevice).get("/app").expectRedirect(t, "/.2fa/challenge")
}

// TestSettingsSignOutOthers: other browsers' sessions end; this one goes
// on.
func TestSettingsSignOutOthers(t *testing.T) {
	s := startSite(t, siteOptions{})
	b := s.browser("alice")
	key, _ := b.enroll()
	advance(30 * time.Second)
	other := s.browser("alice")
	other.challenge(totp(key, testNow()), false).expectRedirect(t, "/app")
	other.get("/app").expect(t, http.StatusOK).contains(t, "method=totp")
	bob := s.browser("bob")
	bob.enroll()

	page := settingsGet(t, b).contains(t, "1 other browser")
	settingsAction(t, b, page, "sign_out_others", nil).expect(t, http.StatusOK).contains(t, "Signed out of 1 other browser.", "not signed in with two-factor in any other browser")
	other.get("/app").expectRedirect(t, "/.2fa/challenge")
	b.get("/app").expect(t, http.StatusOK).contains(t, "method=totp")
	bob.get("/app").expect(t, http.StatusOK).contains(t, "user=bob method=totp")
}

// TestSettingsNewRecoveryCodes: new codes need a fresh TOTP code (not a
// wrong one, not a recovery code); the old set stops working at once.
func TestSettingsNewRecoveryCodes(t *testing.T) {
	s := startSite(t, siteOptions{})
	b := s.browser("alice")
	key, old := b.enroll()
	advance(30 * time.Second)
	page := settingsGet(t, b)
	if !hasForm(page, "new_recovery_codes") {
		t.Fatal("no new_recovery_codes form")
	}

	r := settingsAction(t, b, page, "new_recovery_codes", url.Values{"code": {wrongCode(key)}}).expect(t, http.StatusUnauthorized).contains(t, "did not match", "<details open>")
	if strings.Contains(r.body, "Save your recovery codes") {
		t.Fatal("new codes for a wrong code")
	}
	r = settingsAction(t, b, page, "new_recovery_codes", url.Values{"code": {old[0]}}).expect(t, http.StatusUnauthorized).contains(t, "Recovery codes do not work here")
	if strings.Contains(r.body, "Save your recovery codes") {
		t.Fatal("new codes for a recovery code")
	}
	r = settingsAction(t, b, page, "new_recovery_codes", nil).expect(t, http.StatusBadRequest)
	if strings.Contains(r.body, "Save your recovery codes") {
		t.Fatal("new codes without a code")
	}

	r = settingsAction(t, b, page, "new_recovery_codes", url.Values{"code": {totp(key, testNow())}}).expect(t, http.StatusOK).contains(t, "Save your recovery codes", `href="/.2fa/settings"`)
	fresh := uniq(reRecovery.FindAllString(r.body, -1))
	if len(fresh) != DefaultRecoveryCodes {
		t.Fatalf("%d new codes, want %d: %v", len(fresh), DefaultRecoveryCodes, fresh)
	}
	for _, c := range fresh {
		if slices.Contains(old, c) {
			t.Fatalf("new code %s was an old one", c)
		}
	}
	// The same TOTP code does not buy a second set.
	settingsAction(t, b, page, "new_recovery_codes", url.Values{"code": {totp(key, testNow())}}).expect(t, http.StatusUnauthorized).contains(t, "already used")

	settingsGet(t, b).contains(t, "10 of 10 recovery codes left")
	c := s.browser("alice")
	c.challenge(old[1], false).expect(t, http.StatusUnauthorized)
	c.challenge(fresh[0], false).expectRedirect(t, "/app")
	settingsGet(t, c).contains(t, "9 of 10 recovery codes left", "verified with a recovery code")

	// Recovery codes disabled: no form, and the action is refused.
	s2 := startSite(t, siteOptions{gate: "recovery_codes 0"})
	d := s2.browser("alice")
	d.get("/app")
	enrollPage := d.get("/.2fa/enroll").expect(t, http.StatusOK)
	key2 := secretOf(t, enrollmentURI(t, enrollPage))
	d.post("/.2fa/enroll", url.Values{"csrf_token": {csrfOf(t, enrollPage)}, "code": {totp(key2, testNow())}}).expectRedirect(t, "/")
	advance(30 * time.Second)
	page = settingsGet(t, d)
	if hasForm(page, "new_recovery_codes") || strings.Contains(page.body, "recovery codes left") {
		t.Fatal("recovery codes offered although disabled")
	}
	r = settingsAction(t, d, page, "new_recovery_codes", url.Values{"code": {totp(key2, testNow())}}).expect(t, http.StatusForbidden).contains(t, "Recovery codes are turned off")
	if reRecovery.MatchString(r.body) {
		t.Fatal("recovery codes shown although disabled")
	}
}

// TestSettingsLockout: wrong codes in the settings forms count towards
// the same limit as the challenge.
func TestSettingsLockout(t *testing.T) {
	s := startSite(t, siteOptions{gate: "max_attempts 3 5m 15m"})
	b := s.browser("alice")
	key, _ := b.enroll()
	advance(30 * time.Second)
	page := settingsGet(t, b)
	bad := wrongCode(key)
	settingsAction(t, b, page, "turn_off", url.Values{"code": {bad}}).expect(t, http.StatusForbidden) // policy first: no attempt counted
	settingsAction(t, b, page, "replace_authenticator", url.Values{"code": {bad}}).expect(t, http.StatusUnauthorized)
	settingsAction(t, b, page, "new_recovery_codes", url.Values{"code": {bad}}).expect(t, http.StatusUnauthorized)
	settingsAction(t, b, page, "replace_authenticator", url.Values{"code": {bad}}).expect(t, http.StatusTooManyRequests).contains(t, "Too many attempts")
	// Locked: even the right code is refused, everywhere.
	settingsAction(t, b, page, "replace_authenticator", url.Values{"code": {totp(key, testNow())}}).expect(t, http.StatusTooManyRequests)
	s.browser("alice").challenge(totp(key, testNow()), false).expect(t, http.StatusTooManyRequests)
	settingsGet(t, b).contains(t, "Replace authenticator app") // still enrolled, page still there
}

// TestSettingsReplaceAuthenticator: a fresh code replaces the app's key:
// every session ends, the user enrolls a new key straight away, and the
// old key's codes stop working.
func TestSettingsReplaceAuthenticator(t *testing.T) {
	for _, gate := range []string{"trust_device 7d", "trust_device 7d\n\t\tenrollment invite"} {
		t.Run(gate, func(t *testing.T) {
			s := startSite(t, siteOptions{gate: gate})
			b := s.browser("alice")
			if strings.Contains(gate, "invite") {
				info, _ := runningRealm("default")
				link, _, err := createInvite(t.Context(), "default", info, "alice", 0)
				if err != nil {
					t.Fatal(err)
				}
				b.get(link).expectRedirect(t, "/.2fa/enroll")
			}
			oldKey, oldCodes := b.enroll()
			advance(30 * time.Second)
			_, device := trustAs(t, s, "alice", oldKey, uaChromeWindows)
			advance(30 * time.Second)
			other := s.browser("alice")
			other.challenge(totp(oldKey, testNow()), false).expectRedirect(t, "/app")
			advance(30 * time.Second)

			page := settingsGet(t, b)
			settingsAction(t, b, page, "replace_authenticator", url.Values{"code": {oldCodes[0]}}).expect(t, http.StatusUnauthorized).contains(t, "Recovery codes do not work here")
			other.get("/app").expect(t, http.StatusOK)
			settingsAction(t, b, page, "replace_authenticator", url.Values{"code": {totp(oldKey, testNow())}}).expectRedirect(t, "/.2fa/enroll?rd=%2F.2fa%2Fsettings")

			// Everything the old key vouched for is gone.
			other.get("/app").expectRedirect(t, "/.2fa/enroll")
			withDevice(s, "alice", device).get("/app").expectRedirect(t, "/.2fa/enroll")
			b.get("/app").expectRedirect(t, "/.2fa/enroll")

			// A new key, even under enrollment invite.
			page = b.get("/.2fa/enroll?rd=%2F.2fa%2Fsettings").expect(t, http.StatusOK)
			newKey := secretOf(t, enrollmentURI(t, page))
			if string(newKey) == string(oldKey) {
				t.Fatal("the same key again")
			}
			b.post("/.2fa/enroll", url.Values{"csrf_token": {csrfOf(t, page)}, "code": {totp(oldKey, testNow())}}).expect(t, http.StatusUnauthorized)
			advance(30 * time.Second)
			r := b.post("/.2fa/enroll", url.Values{"csrf_token": {csrfOf(t, page)}, "code": {totp(newKey, testNow())}}).expect(t, http.StatusOK).contains(t, "Save your recovery codes")
			newCodes := uniq(reRecovery.FindAllString(r.body, -1))
			if len(newCodes) == 0 || slices.Contains(newCodes, oldCodes[1]) {
				t.Fatalf("new recovery codes %v", newCodes)
			}
			b.get("/app").expect(t, http.StatusOK).contains(t, "method=totp")

			// The old key and the old recovery codes no longer work.
			advance(30 * time.Second)
			c := s.browser("alice")
			c.challenge(totp(oldKey, testNow()), false).expect(t, http.StatusUnauthorized)
			c.challenge(oldCodes[1], false).expect(t, http.StatusUnauthorized)
			c.challenge(totp(newKey, testNow()), false).expectRedirect(t, "/app")
		})
	}
}

// TestSettingsTurnOff: where policy requires 2FA the user cannot turn it
// off; with require enrolled they can, with a fresh code, and then pass
// without a second factor.
func TestSettingsTurnOff(t *testing.T) {
	t.Run("require all", func(t *testing.T) {
		s := startSite(t, siteOptions{})
		b := s.browser("alice")
		key, _ := b.enroll()
		advance(30 * time.Second)
		page := settingsGet(t, b).contains(t, "cannot be turned off")
		if hasForm(page, "turn_off") {
			t.Fatal("turn_off offered although policy requires 2FA")
		}
		settingsAction(t, b, page, "turn_off", url.Values{"code": {totp(key, testNow())}}).expect(t, http.StatusForbidden).contains(t, "required for your account")
		b.get("/app").expect(t, http.StatusOK).contains(t, "method=totp")
		s.browser("alice").get("/app").expectRedirect(t, "/.2fa/challenge")
	})
	t.Run("require enrolled", func(t *testing.T) {
		s := startSite(t, siteOptions{gate: "require enrolled"})
		b := s.browser("alice")
		settingsGet(t, b).contains(t, "<strong>off</strong>")
		b.get("/app").expect(t, http.StatusOK).contains(t, "method=not_required")
		page := b.get("/.2fa/enroll").expect(t, http.StatusOK)
		key := secretOf(t, enrollmentURI(t, page))
		b.post("/.2fa/enroll", url.Values{"csrf_token": {csrfOf(t, page)}, "code": {totp(key, testNow())}}).expect(t, http.StatusOK)
		advance(30 * time.Second)
		other := s.browser("alice")
		other.challenge(totp(key, testNow()), false).expectRedirect(t, "/app")
		advance(30 * time.Second)

		page = settingsGet(t, b)
		if !hasForm(page, "turn_off") {
			t.Fatal("no turn_off form under require enrolled")
		}
		settingsAction(t, b, page, "turn_off", url.Values{"code": {wrongCode(key)}}).expect(t, http.StatusUnauthorized).contains(t, "did not match")
		settingsAction(t, b, page, "turn_off", nil).expect(t, http.StatusBadRequest)
		s.browser("alice").get("/app").expectRedirect(t, "/.2fa/challenge")

		settingsAction(t, b, page, "turn_off", url.Values{"code": {totp(key, testNow())}}).expectRedirect(t, "/")
		b.get("/app").expect(t, http.StatusOK).contains(t, "method=not_required")
		other.get("/app").expect(t, http.StatusOK).contains(t, "method=not_required")
		s.browser("alice").get("/app").expect(t, http.StatusOK).contains(t, "method=not_required")
		settingsGet(t, b).contains(t, "<strong>off</strong>", `href="/.2fa/enroll"`)
	})
}

// TestSettingsUserAgentFamily: the device list's browser and system names.
func TestSettingsUserAgentFamily(t *testing.T) {
	for _, c := range []struct{ ua, browser, system string }{
		{uaChromeWindows, "Chrome", "Windows"},
		{uaFirefoxLinux, "Firefox", "Linux"},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.51", "Edge", "Windows"},
		{"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 OPR/109.0.0.0", "Opera", "macOS"},
		{"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15", "Safari", "macOS"},
		{"Mozilla/5.0 (Macintosh; Intel Mac OS X 14.4; rv:125.0) Gecko/20100101 Firefox/125.0", "Firefox", "macOS"},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1", "Safari", "iOS"},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/124.0.6367.88 Mobile/15E148 Safari/604.1", "Chrome", "iOS"},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) FxiOS/125.0 Mobile/15E148 Safari/605.1.15", "Firefox", "iOS"},
		{"Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1", "Safari", "iPadOS"},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148", "", "iOS"}, // an app's web view
		{"Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36", "Chrome", "Android"},
		{"Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36 EdgA/124.0.0.0", "Edge", "Android"},
		{"Mozilla/5.0 (Android 14; Mobile; rv:125.0) Gecko/125.0 Firefox/125.0", "Firefox", "Android"},
		{"Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/24.0 Chrome/117.0.0.0 Mobile Safari/537.36", "Samsung Internet", "Android"},
		{"Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/AP1A; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/124.0.0.0 Mobile Safari/537.36", "", "Android"},
		{"Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36", "Chrome", "ChromeOS"},
		{"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36", "Chrome", "Linux"},
		{"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/605.1.15", "", "Linux"}, // Safari does not run on Linux
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/70.0.3538.102 Safari/537.36 Edge/18.19045", "Edge", "Windows"},
		{"curl/8.5.0", "", ""},
		{"", "", ""},
	} {
		if b, sys := userAgentFamily(c.ua); b != c.browser || sys != c.system {
			t.Errorf("userAgentFamily(%q) = %q, %q; want %q, %q", c.ua, b, sys, c.browser, c.system)
		}
	}
}

// TestSettingsCodeKinds guards the assumption the settings forms rely on:
// a recovery code is classified as one, so it is refused as such.
func TestSettingsCodeKinds(t *testing.T) {
	codes, err := challenge.NewRecoveryCodes(1)
	if err != nil {
		t.Fatal(err)
	}
	if kind, _ := challenge.Classify(codes[0], challenge.DefaultParams()); kind != challenge.KindRecovery {
		t.Fatalf("recovery code %s classified as %v", codes[0], kind)
	}
}
