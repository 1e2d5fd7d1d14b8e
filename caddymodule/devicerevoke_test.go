package caddymodule

import (
	"html"
	"net/http"
	"net/url"
	"regexp"
	"testing"
	"time"
)

var reDeviceField = regexp.MustCompile(`name="device" value="([^"]+)"`)

// trustedReturn makes b, a browser whose device alice trusts, come back
// without its session (as after the browser was closed): the trusted
// device starts a new session, which then passes by itself.
func trustedReturn(t *testing.T, b *browser) {
	t.Helper()
	b.setCookie("2fa_session", "")
	b.get("/app").expect(t, http.StatusOK).contains(t, "method=trusted_device")
	if b.cookie("2fa_session") == "" {
		t.Fatal("the trusted device started no session")
	}
	b.get("/app").expect(t, http.StatusOK)
}

// onlyDevice returns the ID of the single trusted device b's settings
// page lists.
func onlyDevice(t *testing.T, b *browser) string {
	t.Helper()
	m := reDeviceField.FindAllStringSubmatch(settingsGet(t, b).body, -1)
	if len(m) != 1 {
		t.Fatalf("settings lists %d trusted devices, want 1", len(m))
	}
	return html.UnescapeString(m[0][1])
}

// TestRemovedDeviceEndsItsSessions: a session that a trusted device
// started ends with the device. Alice's laptop is trusted and comes back
// (a new session from its device cookie) on two instances sharing Redis;
// removing the device from another browser — "Remove", "Remove all
// trusted devices", or a recovery-code sign-in — sends the laptop to the
// challenge on the other instance within the revocation second, although
// that instance has just read the session into its cache, and on the
// first at once (issue 12 §5).
func TestRemovedDeviceEndsItsSessions(t *testing.T) {
	_, a, bInst := twoInstancesOnRedis(t, "")

	alice := a.browser("alice")
	alice.s = &a.site
	key, codes := alice.enroll()
	laptop := a.browser("alice")
	laptop.s = &a.site
	// The next time step (within skew), so no waiting.
	laptop.challenge(totp(key, time.Now().Add(30*time.Second)), true).expectRedirect(t, "/app")

	// check brings the trusted laptop back and makes sure both instances
	// pass its device's session (B has it cached), then runs remove on
	// alice's other browser and expects the laptop's session to end.
	check := func(what string, remove func()) {
		t.Helper()
		laptop.on(a)
		trustedReturn(t, laptop)
		laptop.on(bInst).get("/app").expect(t, http.StatusOK).contains(t, "method=trusted_device")
		remove()
		revokedWithin(t, what, laptop) // on B
		laptop.on(a).get("/app").expectRedirect(t, "/.2fa/challenge")
	}

	check("remove this device", func() {
		id := onlyDevice(t, alice)
		settingsAction(t, alice, settingsGet(t, alice), "remove_device", url.Values{"device": {id}}).expect(t, http.StatusOK)
	})

	// Trusted again (a recovery code: it forgets the user's devices,
	// then trusts this browser anew).
	retrust := func() {
		t.Helper()
		laptop.on(a).challenge(codes[0], true).expectRedirect(t, "/app")
		codes = codes[1:]
	}
	retrust()
	check("remove all trusted devices", func() {
		settingsAction(t, alice, settingsGet(t, alice), "remove_all_devices", nil).expect(t, http.StatusOK)
	})

	retrust()
	check("recovery-code sign-in elsewhere", func() {
		phone := a.browser("alice")
		phone.s = &a.site
		phone.challenge(codes[0], false).expectRedirect(t, "/app")
		codes = codes[1:]
	})

	// A session from a code stays: removing devices ends only what they
	// started.
	alice.get("/app").expect(t, http.StatusOK).contains(t, "method=totp")
}

// TestRemovedDeviceEndsItsSessionsAtOnce: on the instance where the
// device is removed, its sessions end at once, not after the cache's
// second (file store, one instance).
func TestRemovedDeviceEndsItsSessionsAtOnce(t *testing.T) {
	s := startSite(t, siteOptions{})
	alice := s.browser("alice")
	key, _ := alice.enroll()
	laptop := s.browser("alice")
	laptop.challenge(totp(key, testNow().Add(30*time.Second)), true).expectRedirect(t, "/app")
	trustedReturn(t, laptop)
	id := onlyDevice(t, alice)
	settingsAction(t, alice, settingsGet(t, alice), "remove_device", url.Values{"device": {id}}).expect(t, http.StatusOK)
	laptop.get("/app").expectRedirect(t, "/.2fa/challenge")
	alice.get("/app").expect(t, http.StatusOK)
}
