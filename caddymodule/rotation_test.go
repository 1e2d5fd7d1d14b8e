package caddymodule

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-2fa/caddy-2fa/keyring"
	"github.com/caddy-2fa/caddy-2fa/sessions"
)

// Secrets of the rotation tests: A is retired in favour of B; C is one no
// config lists.
const (
	rotA = "rotation-secret-A-0123456789abcdef0123"
	rotB = "rotation-secret-B-0123456789abcdef0123"
	rotC = "rotation-secret-C-0123456789abcdef0123"
)

// rotationSite is one site with the admin endpoint on, whose two_factor
// options can be replaced by a config reload (same ports, same store).
type rotationSite struct {
	*adminSite
	port, adminPort int
}

func startRotationSite(t *testing.T, gate string) *rotationSite {
	t.Helper()
	dir := t.TempDir()
	s := &rotationSite{port: freePort(t), adminPort: freePort(t)}
	s.adminSite = &adminSite{
		site:  &site{t: t, base: fmt.Sprintf("http://localhost:%d", s.port), store: dir + "/store.db"},
		admin: fmt.Sprintf("localhost:%d", s.adminPort),
		log:   dir + "/caddy.log",
	}
	s.reload(gate)
	t.Cleanup(func() { caddy.Stop() })
	return s
}

// reload loads the config again with the given two_factor options.
func (s *rotationSite) reload(gate string) {
	s.t.Helper()
	loadCaddyfile(s.t, fmt.Sprintf(`{
	admin localhost:%d
	storage file_system %s
	persist_config off
	log {
		output file %s
		format json
	}
}
http://localhost:%d {
	basic_auth {
%s	}
	two_factor {
		store file %s
%s
	}
	respond "app user={http.two_factor.user} method={http.two_factor.method}" 200
}
`, s.adminPort, caddyStorage, s.log, s.port, bcryptLines, s.store, gate))
}

func deriveKeys(t *testing.T, secret string) *keyring.Keys {
	t.Helper()
	k, err := keyring.Derive([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// realmStore is the running config's store of realm "default".
func realmStore(t *testing.T) sessions.Store {
	t.Helper()
	info, ok := runningRealm(DefaultRealm)
	if !ok {
		t.Fatal("realm default is not registered")
	}
	return info.Store
}

// sealedBy reports which of the secrets opens user's stored enrollment.
func sealedBy(t *testing.T, user string, secrets ...string) []string {
	t.Helper()
	e, err := realmStore(t).Enrollment(t.Context(), DefaultRealm, user)
	if err != nil {
		t.Fatalf("enrollment of %s: %v", user, err)
	}
	var by []string
	for _, sec := range secrets {
		if _, err := deriveKeys(t, sec).Open(DefaultRealm, user, e.SealedSecret); err == nil {
			by = append(by, sec)
		}
	}
	return by
}

// decodes reports whether value is cookie base signed with secret's key.
func decodes(t *testing.T, secret, base, value string) bool {
	t.Helper()
	k := deriveKeys(t, secret)
	key := map[string][]byte{sessionCookie: k.SessionMAC, deviceCookie: k.DeviceMAC}[base]
	var raw []byte
	return newCodec(key, DefaultTrustDevice).Decode(base, value, &raw) == nil
}

// reissued returns the value of cookie name set by r ("" if none).
func reissued(r response, name string) string {
	for _, c := range r.Cookies() {
		if c.Name == name && c.MaxAge > 0 {
			return c.Value
		}
	}
	return ""
}

// TestSecretRotation: with the old secret in previous_secrets, nobody is
// signed out and nothing stored becomes unreadable; what was made under
// the old secret is moved to the new one as it is used (or by rekey), and
// once the old secret is dropped only what was moved still works.
func TestSecretRotation(t *testing.T) {
	s := startRotationSite(t, "secret "+rotA)

	// Under secret A: alice enrolls (a live session and recovery codes)
	// and trusts a second browser; bob enrolls too.
	b := s.browser("alice")
	key, _ := b.enroll()
	advance(30 * time.Second)
	d := s.browser("alice")
	d.challenge(totp(key, testNow()), true).expectRedirect(t, "/app")
	_, bobCodes := s.browser("bob").enroll()
	oldSession, oldDevice := b.cookie("2fa_session"), d.cookie("2fa_device")
	if !decodes(t, rotA, sessionCookie, oldSession) || !decodes(t, rotA, deviceCookie, oldDevice) {
		t.Fatal("test setup: cookies not signed under A")
	}
	// carol's enrollment was sealed under a secret no config lists.
	sealed, err := deriveKeys(t, rotC).Seal(DefaultRealm, "carol", []byte("12345678901234567890"))
	if err != nil {
		t.Fatal(err)
	}
	carol := sessions.Enrollment{SealedSecret: sealed, Algorithm: "SHA1", Digits: 6, Period: 30, Created: testNow()}
	if err := realmStore(t).Enroll(t.Context(), DefaultRealm, "carol", carol, nil); err != nil {
		t.Fatal(err)
	}

	// Rotate: B is the secret, A is still accepted.
	s.reload("secret " + rotB + "\n\t\tprevious_secrets " + rotA)
	b.client.CloseIdleConnections() // the reload closed them

	// The session under A still passes (no mass logout), and the
	// response re-issues its cookie under B.
	r := b.get("/app").expect(t, http.StatusOK).contains(t, "method=totp")
	newSession := reissued(r, "2fa_session")
	if newSession == "" || !decodes(t, rotB, sessionCookie, newSession) || decodes(t, rotA, sessionCookie, newSession) {
		t.Fatalf("session cookie not re-issued under B: %v", r.Header["Set-Cookie"])
	}
	b.get("/app").expect(t, http.StatusOK) // with the re-issued cookie

	// The trusted device under A still skips the code; its cookie is
	// re-issued under B and its record moved to B's key.
	f := s.browser("alice")
	f.setCookie("2fa_device", oldDevice)
	r = f.get("/app").expect(t, http.StatusOK).contains(t, "method=trusted_device")
	newDevice := reissued(r, "2fa_device")
	if newDevice == "" || !decodes(t, rotB, deviceCookie, newDevice) {
		t.Fatalf("device cookie not re-issued under B: %v", r.Header["Set-Cookie"])
	}
	devices, err := realmStore(t).UserDevices(t.Context(), DefaultRealm, "alice")
	if err != nil || len(devices) != 1 {
		t.Fatalf("alice's devices: %v, %v; want one", devices, err)
	}
	var token []byte
	if err := newCodec(deriveKeys(t, rotB).DeviceMAC, DefaultTrustDevice).Decode("2fa_device", newDevice, &token); err != nil {
		t.Fatal(err)
	}
	if devices[0].ID != deriveKeys(t, rotB).DeviceKey(token) {
		t.Error("the trusted device was not moved to B's key")
	}

	// A TOTP code verifies, and the enrollment stays sealed under A: an
	// instance not yet given B (during a rolling rotation) must still
	// open it. Only rekey re-seals.
	if got := sealedBy(t, "alice", rotA, rotB); len(got) != 1 || got[0] != rotA {
		t.Fatalf("before a code: alice's enrollment opens with %v, want A only", got)
	}
	advance(30 * time.Second)
	s.browser("alice").challenge(totp(key, testNow()), false).expectRedirect(t, "/app")
	if got := sealedBy(t, "alice", rotA, rotB); len(got) != 1 || got[0] != rotA {
		t.Fatalf("after a code: alice's enrollment opens with %v, want A only (no re-seal outside rekey)", got)
	}

	// A recovery code issued under A works.
	s.browser("bob").challenge(bobCodes[0], false).expectRedirect(t, "/app")

	// rekey re-seals alice's and bob's enrollments; carol's is reported,
	// not deleted.
	var res rekeyResult
	s.ok("POST", "/two-factor/realms/default/rekey", "", &res)
	if res.Rekeyed != 2 || res.AlreadyCurrent != 0 || res.Unreadable != 1 || len(res.UnreadableUsers) != 1 || res.UnreadableUsers[0] != "carol" {
		t.Fatalf("rekey = %+v, want 2 rekeyed (alice, bob), 0 already current, 1 unreadable (carol)", res)
	}
	for _, u := range []string{"alice", "bob"} {
		if got := sealedBy(t, u, rotA, rotB); len(got) != 1 || got[0] != rotB {
			t.Fatalf("after rekey: %s's enrollment opens with %v, want B only", u, got)
		}
	}
	if got := sealedBy(t, "carol", rotC); len(got) != 1 {
		t.Fatal("rekey changed or removed the unreadable enrollment")
	}
	expectLogged(t, s.logEvent("admin_rekey", rotA, rotB), map[string]any{
		"realm": "default", "result": "success", "rekeyed": float64(2), "already_current": float64(0), "unreadable": float64(1),
	})
	s.ok("POST", "/two-factor/realms/default/rekey", "", &res)
	if res.Rekeyed != 0 || res.AlreadyCurrent != 2 || res.Unreadable != 1 {
		t.Fatalf("second rekey = %+v, want nothing left to re-seal", res)
	}
	out := cliOK(t, "rekey", "--address", s.admin)
	for _, want := range []string{`Realm "default": re-encrypted 0 enrollments with the current secret; 2 already were.`, "1 enrollment no listed secret opens", "carol"} {
		if !strings.Contains(out, want) {
			t.Errorf("caddy two-factor rekey printed %q, want it to contain %q", out, want)
		}
	}

	// Retire A.
	s.reload("secret " + rotB)
	b.client.CloseIdleConnections()
	b.get("/app").expect(t, http.StatusOK).contains(t, "method=totp")
	g := s.browser("alice")
	g.setCookie("2fa_device", newDevice)
	g.get("/app").expect(t, http.StatusOK).contains(t, "method=trusted_device")
	for name, v := range map[string]string{"2fa_session": oldSession, "2fa_device": oldDevice} {
		x := s.browser("alice")
		x.setCookie(name, v)
		x.get("/app").expectRedirect(t, "/.2fa/challenge")
	}
	advance(30 * time.Second)
	s.browser("alice").challenge(totp(key, testNow()), false).expectRedirect(t, "/app")
}

// TestSecretChangeSignsOut: without previous_secrets, a new secret refuses
// every cookie the old one signed, as before rotation existed.
func TestSecretChangeSignsOut(t *testing.T) {
	s := startRotationSite(t, "secret "+rotA)
	b := s.browser("alice")
	key, _ := b.enroll()
	advance(30 * time.Second)
	d := s.browser("alice")
	d.challenge(totp(key, testNow()), true).expectRedirect(t, "/app")
	b.get("/app").expect(t, http.StatusOK)

	s.reload("secret " + strconv.Quote(rotB))
	b.client.CloseIdleConnections()
	b.get("/app").expectRedirect(t, "/.2fa/challenge")
	x := s.browser("alice")
	x.setCookie("2fa_device", d.cookie("2fa_device"))
	x.get("/app").expectRedirect(t, "/.2fa/challenge")
}
