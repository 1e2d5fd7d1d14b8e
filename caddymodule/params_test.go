package caddymodule

import (
	"crypto/sha1"
	"crypto/sha256"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/caddy-2fa/caddy-2fa/sessions"
)

// totpSHA256 is an independent RFC 6238 code with HMAC-SHA256, digits
// digits and a period of period seconds.
func totpSHA256(key []byte, t time.Time, digits, period int) string {
	return totpWith(sha256.New, key, t, digits, period)
}

// TestStoredParametersAreUsed: an enrollment made with other TOTP
// parameters (SHA256, 8 digits, 60 seconds: a record written by another
// tool or a later version) is verified with its own parameters, not the
// site's defaults (checklist item 6).
func TestStoredParametersAreUsed(t *testing.T) {
	s := startSite(t, siteOptions{gate: "secret " + strconv.Quote(fuzzSecret)})
	s.browser("bob").enroll() // the site works with the defaults
	key := []byte("0123456789abcdef0123456789abcdef")
	sealed, err := fuzzCookieHandler(t).keys.Seal("default", "alice", key)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := runningRealm("default")
	if err := info.Store.Enroll(t.Context(), "default", "alice", sessions.Enrollment{
		SealedSecret: sealed, Algorithm: "SHA256", Digits: 8, Period: 60, Created: testNow(),
	}, nil); err != nil {
		t.Fatal(err)
	}
	advance(60 * time.Second)

	b := s.browser("alice")
	b.get("/app").expectRedirect(t, "/.2fa/challenge")
	// The default profile's code for the same key is refused (as
	// malformed: the enrollment wants 8 digits).
	b.challenge(totp(key, testNow()), false).expect(t, http.StatusBadRequest)
	// So is an 8-digit code made with SHA1.
	b.challenge(totpWith(sha1.New, key, testNow(), 8, 60), false).expect(t, http.StatusUnauthorized)
	// The 8-digit SHA256 code of the current 60-second step is accepted.
	b.challenge(totpSHA256(key, testNow(), 8, 60), false).expectRedirect(t, "/app")
	b.get("/app").expect(t, http.StatusOK)
	// 30 seconds later is the same 60-second step: a replay.
	advance(30 * time.Second)
	c := s.browser("alice")
	if r := c.challenge(totpSHA256(key, testNow().Add(-30*time.Second), 8, 60), false); r.StatusCode == http.StatusSeeOther {
		t.Error("the same 60-second step was accepted twice")
	}
}

// TestRevocationByRecoveryCodeAndLogout: a sign-in with a recovery code
// (the phone may be lost, and with it a trusted browser) ends the trust
// of every device of the user; logout ends the session on the server, so
// a copy of the old session cookie is refused, and forgets this browser's
// trust (checklist item 39).
func TestRevocationByRecoveryCodeAndLogout(t *testing.T) {
	s := startSite(t, siteOptions{})
	key, codes := s.browser("alice").enroll()
	advance(30 * time.Second)
	phone := s.browser("alice")
	phone.challenge(totp(key, testNow()), true).expectRedirect(t, "/app")
	device := phone.cookie("2fa_device")

	// The device works in a fresh session...
	fresh := s.browser("alice")
	fresh.setCookie("2fa_device", device)
	fresh.get("/app").expect(t, http.StatusOK)
	// ...until a recovery code is used elsewhere.
	s.browser("alice").challenge(codes[0], false).expectRedirect(t, "/app")
	again := s.browser("alice")
	again.setCookie("2fa_device", device)
	again.get("/app").expectRedirect(t, "/.2fa/challenge")

	// Logout: the old session cookie, replayed, is refused; the device
	// trusted in this browser is forgotten too.
	advance(30 * time.Second)
	b := s.browser("alice")
	b.challenge(totp(key, testNow()), true).expectRedirect(t, "/app")
	oldSession, oldDevice := b.cookie("2fa_session"), b.cookie("2fa_device")
	out := b.get("/.2fa/logout").expect(t, http.StatusOK)
	b.post("/.2fa/logout", map[string][]string{"csrf_token": {csrfOf(t, out)}}).expect(t, http.StatusOK)
	replay := s.browser("alice")
	replay.setCookie("2fa_session", oldSession)
	replay.get("/app").expectRedirect(t, "/.2fa/challenge")
	replay = s.browser("alice")
	replay.setCookie("2fa_device", oldDevice)
	replay.get("/app").expectRedirect(t, "/.2fa/challenge")
}
