package caddymodule

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestOtherRealmCookiesNeverReachTheApp: two realms on one host. The app
// behind realm staff never receives realm default's session, device or
// CSRF cookies (browsers send every cookie of a host to every path and
// port), and realm default's device cookie, replayed at realm staff under
// either name, does not pass there.
func TestOtherRealmCookiesNeverReachTheApp(t *testing.T) {
	dir := t.TempDir()
	body := fmt.Sprintf(`	basic_auth {
%s	}
	handle /staff/* {
		two_factor {
			realm staff
			path_prefix /staff/.2fa
			store file %s/store.db
			%%s
		}
		respond "staff app user={http.two_factor.user} method={http.two_factor.method} cookie=[{http.request.header.Cookie}]" 200
	}
	handle {
		two_factor {
			store file %s/store.db
		}
		respond "app user={http.two_factor.user} method={http.two_factor.method} cookie=[{http.request.header.Cookie}]" 200
	}`, bcryptLines, dir, dir)

	// Staff does not require alice: the request reaches its app, which
	// must see none of realm default's cookies.
	s := startCustomSite(t, "", fmt.Sprintf(body, "require enrolled"))
	b := s.browser("alice")
	key, _ := b.enroll()
	advance(30 * time.Second)
	b = s.browser("alice")
	b.challenge(totp(key, testNow()), true).expectRedirect(t, "/app")
	for _, c := range []string{"2fa_session", "2fa_device", "2fa_csrf"} {
		if b.cookie(c) == "" {
			t.Fatalf("realm default set no %s cookie", c)
		}
	}
	b.get("/app").expect(t, http.StatusOK).contains(t, "method=totp")
	r := b.do("GET", "/staff/x", nil, http.Header{"Cookie": {"app=1; 2FA_Session=x"}}).expect(t, http.StatusOK).contains(t, "staff app", "method=not_required")
	if strings.Contains(strings.ToLower(r.body), "2fa_") {
		t.Fatalf("the app behind realm staff received a gate cookie: %s", r.body)
	}
	if !strings.Contains(r.body, "app=1") {
		t.Fatalf("the app's own cookie was stripped too: %s", r.body)
	}
	device := b.cookie("2fa_device")

	// Staff requires everyone: realm default's device cookie, under its
	// own name or renamed to staff's, is no trusted device there.
	s = startCustomSite(t, "", fmt.Sprintf(body, ""))
	staff := s.browser("alice")
	r = staff.get("/staff/x").expectRedirect(t, "/staff/.2fa/enroll")
	page := staff.get(r.location()).expect(t, http.StatusOK)
	staffKey := secretOf(t, enrollmentURI(t, page))
	staff.post("/staff/.2fa/enroll", url.Values{"csrf_token": {csrfOf(t, page)}, "code": {totp(staffKey, testNow())}}).expect(t, http.StatusOK)
	for _, name := range []string{"2fa_device", "2fa_device_staff"} {
		c := s.browser("alice")
		c.setCookie(name, device)
		c.get("/staff/x").expectRedirect(t, "/staff/.2fa/challenge")
	}
	// The cookie is still good where it belongs.
	c := s.browser("alice")
	c.setCookie("2fa_device", device)
	c.get("/app").expect(t, http.StatusOK).contains(t, "method=trusted_device")
}

func TestIsGateCookie(t *testing.T) {
	var h Handler
	for _, n := range []string{"2fa_session", "2fa_device", "2fa_csrf", "2fa_later", "__Host-2fa_session", "2fa_session_staff", "__Host-2fa_device_x-2fy", "2FA_SESSION", "__host-2fa_Device_a"} {
		if !h.isGateCookie(n) {
			t.Errorf("%q not taken for a gate cookie", n)
		}
	}
	for _, n := range []string{"2fa_sessionx", "my2fa_session", "JSESSIONID", "2fa", "2fa_", "__Host-", "session"} {
		if h.isGateCookie(n) {
			t.Errorf("%q taken for a gate cookie", n)
		}
	}
}
