// Package storetest is the contract suite that every sessions.Store backend
// must pass. A backend's test calls Run with a function that opens a fresh,
// empty store:
//
//	func TestContract(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) sessions.Store {
//			s := openMyStore(t) // closed with t.Cleanup
//			return s
//		})
//	}
//
// The suite tests only the behaviour documented on sessions.Store, never a
// backend's internals. It never sleeps: expiry is tested with records whose
// expiry is already in the past (relative to the wall clock) and with
// explicit now values near the wall clock, so a backend may both rely on
// server-side TTLs and check expiry on read.
package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-2fa/caddy-2fa/sessions"
)

// Run runs the contract suite. Every subtest gets its own store from open,
// which must return a fresh, empty store (and register its cleanup with
// t.Cleanup). Subtests do not run in parallel, so backends that share a
// server may reuse one database if open empties it.
func Run(t *testing.T, open func(t *testing.T) sessions.Store) {
	t.Helper()
	groups := []struct {
		name  string
		tests []test
	}{
		{"Enrollment", enrollmentTests},
		{"RecoveryCodes", recoveryTests},
		{"ReplaceSealedSecret", resealTests},
		{"AcceptStep", stepTests},
		{"ResetUser", resetTests},
		{"PendingEnrollment", pendingTests},
		{"EnrollPending", enrollPendingTests},
		{"Factors", factorTests},
		{"Attempts", attemptTests},
		{"ReserveAttempt", reserveTests},
		{"Sessions", sessionTests},
		{"Devices", deviceTests},
		{"Tokens", tokenTests},
		{"Profiles", profileTests},
		{"Users", userListTests},
		{"Realms", realmTests},
		{"Names", nameTests},
		{"Ping", pingTests},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			for _, tc := range g.tests {
				t.Run(tc.name, func(t *testing.T) {
					s := open(t)
					if s == nil {
						t.Fatal("open returned a nil store")
					}
					tc.fn(t, s)
				})
			}
		})
	}
}

type test struct {
	name string
	fn   func(t *testing.T, s sessions.Store)
}

// concurrency is how many goroutines race in the atomicity tests.
const concurrency = 20

var (
	hour   = time.Hour
	limits = sessions.Limit{Max: 3, Window: time.Hour, Lockout: 2 * time.Hour}
)

// base is a wall-clock time without a monotonic reading, so that the
// suite's times compare equal after a round trip.
func base() time.Time { return time.Now().Round(0) }

// future and past are relative to the wall clock, which both the store's
// read-side checks and a server's TTLs use.
func future() time.Time { return base().Add(hour) }
func past() time.Time   { return base().Add(-hour) }

func ok(t *testing.T, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: unexpected error: %v", what, err)
	}
}

func notFound(t *testing.T, err error, what string) {
	t.Helper()
	if !errors.Is(err, sessions.ErrNotFound) {
		t.Fatalf("%s: got error %v, want sessions.ErrNotFound", what, err)
	}
}

// timeEqual compares instants (times come back from a store without a
// monotonic reading and possibly in another zone).
func timeEqual(a, b time.Time) bool { return a.Equal(b) }

// race runs fn(i) for i in [0, n) in n goroutines released at once.
func race(n int, fn func(i int)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			fn(i)
		})
	}
	close(start)
	wg.Wait()
}

func enrollmentDiff(got, want sessions.Enrollment) string {
	var d []string
	if !bytes.Equal(got.SealedSecret, want.SealedSecret) {
		d = append(d, fmt.Sprintf("SealedSecret %x, want %x", got.SealedSecret, want.SealedSecret))
	}
	if got.Algorithm != want.Algorithm {
		d = append(d, fmt.Sprintf("Algorithm %q, want %q", got.Algorithm, want.Algorithm))
	}
	if got.Digits != want.Digits {
		d = append(d, fmt.Sprintf("Digits %d, want %d", got.Digits, want.Digits))
	}
	if got.Period != want.Period {
		d = append(d, fmt.Sprintf("Period %d, want %d", got.Period, want.Period))
	}
	if !timeEqual(got.Created, want.Created) {
		d = append(d, fmt.Sprintf("Created %v, want %v", got.Created, want.Created))
	}
	if got.RecoveryCodes != want.RecoveryCodes {
		d = append(d, fmt.Sprintf("RecoveryCodes %d, want %d", got.RecoveryCodes, want.RecoveryCodes))
	}
	return strings.Join(d, "; ")
}

func pendingDiff(got, want sessions.PendingEnrollment) string {
	var d []string
	if !bytes.Equal(got.SealedSecret, want.SealedSecret) {
		d = append(d, fmt.Sprintf("SealedSecret %x, want %x", got.SealedSecret, want.SealedSecret))
	}
	if !timeEqual(got.Created, want.Created) {
		d = append(d, fmt.Sprintf("Created %v, want %v", got.Created, want.Created))
	}
	if !timeEqual(got.Expires, want.Expires) {
		d = append(d, fmt.Sprintf("Expires %v, want %v", got.Expires, want.Expires))
	}
	if !bytes.Equal(got.MAC, want.MAC) {
		d = append(d, fmt.Sprintf("MAC %x, want %x", got.MAC, want.MAC))
	}
	if got.Browser != want.Browser {
		d = append(d, fmt.Sprintf("Browser %q, want %q", got.Browser, want.Browser))
	}
	return strings.Join(d, "; ")
}

func sessionDiff(got, want sessions.Session) string {
	var d []string
	str := func(name, g, w string) {
		if g != w {
			d = append(d, fmt.Sprintf("%s %q, want %q", name, g, w))
		}
	}
	tm := func(name string, g, w time.Time) {
		if !timeEqual(g, w) {
			d = append(d, fmt.Sprintf("%s %v, want %v", name, g, w))
		}
	}
	str("User", got.User, want.User)
	str("Method", got.Method, want.Method)
	tm("Created", got.Created, want.Created)
	tm("Expires", got.Expires, want.Expires)
	tm("LastSeen", got.LastSeen, want.LastSeen)
	str("ClientIP", got.ClientIP, want.ClientIP)
	str("UserAgent", got.UserAgent, want.UserAgent)
	str("Device", got.Device, want.Device)
	if !bytes.Equal(got.MAC, want.MAC) {
		d = append(d, fmt.Sprintf("MAC %x, want %x", got.MAC, want.MAC))
	}
	return strings.Join(d, "; ")
}

// deviceDiff compares all fields but ID.
func deviceDiff(got, want sessions.Device) string {
	var d []string
	str := func(name, g, w string) {
		if g != w {
			d = append(d, fmt.Sprintf("%s %q, want %q", name, g, w))
		}
	}
	tm := func(name string, g, w time.Time) {
		if !timeEqual(g, w) {
			d = append(d, fmt.Sprintf("%s %v, want %v", name, g, w))
		}
	}
	str("User", got.User, want.User)
	tm("Created", got.Created, want.Created)
	tm("Expires", got.Expires, want.Expires)
	tm("LastUsed", got.LastUsed, want.LastUsed)
	str("ClientIP", got.ClientIP, want.ClientIP)
	str("UserAgent", got.UserAgent, want.UserAgent)
	if !bytes.Equal(got.MAC, want.MAC) {
		d = append(d, fmt.Sprintf("MAC %x, want %x", got.MAC, want.MAC))
	}
	return strings.Join(d, "; ")
}

func attemptsDiff(got, want sessions.Attempts) string {
	var d []string
	if got.Failures != want.Failures {
		d = append(d, fmt.Sprintf("Failures %d, want %d", got.Failures, want.Failures))
	}
	if !timeEqual(got.WindowEnds, want.WindowEnds) {
		d = append(d, fmt.Sprintf("WindowEnds %v, want %v", got.WindowEnds, want.WindowEnds))
	}
	if !timeEqual(got.LockedUntil, want.LockedUntil) {
		d = append(d, fmt.Sprintf("LockedUntil %v, want %v", got.LockedUntil, want.LockedUntil))
	}
	return strings.Join(d, "; ")
}

func newEnrollment(secret string) sessions.Enrollment {
	return sessions.Enrollment{
		SealedSecret: []byte("sealed\x00\xff" + secret),
		Algorithm:    "SHA256",
		Digits:       8,
		Period:       60,
		// A fixed time (enrollments do not expire), so that a test can
		// build the same enrollment again to compare; in a zone other
		// than UTC, with nanoseconds.
		Created: time.Date(2025, 6, 1, 12, 30, 45, 123456789, time.FixedZone("UTC+2", 2*3600)),
	}
}

func newSession(user string) sessions.Session {
	now := base()
	return sessions.Session{
		User:      user,
		Method:    "totp",
		Created:   now.Add(-time.Minute),
		Expires:   now.Add(hour),
		LastSeen:  now.Add(-time.Second),
		ClientIP:  "2001:db8::1",
		UserAgent: "Mozilla/5.0 (X11; Linux x86_64) \"quoted\"",
		MAC:       []byte("session tag \x00\xff" + user),
	}
}

func newDevice(user string, created time.Time) sessions.Device {
	return sessions.Device{
		User:      user,
		Created:   created,
		Expires:   base().Add(30 * 24 * hour),
		LastUsed:  created.Add(time.Second),
		ClientIP:  "192.0.2.7",
		UserAgent: "Firefox",
		MAC:       []byte("device tag \x00\xff" + user),
	}
}

func wantEnrollment(t *testing.T, s sessions.Store, realm, user string, want sessions.Enrollment) {
	t.Helper()
	got, err := s.Enrollment(t.Context(), realm, user)
	ok(t, err, "Enrollment")
	if d := enrollmentDiff(got, want); d != "" {
		t.Fatalf("Enrollment(%q, %q): %s", realm, user, d)
	}
}

func wantRecoveryCodes(t *testing.T, s sessions.Store, realm, user string, n int) {
	t.Helper()
	got, err := s.Enrollment(t.Context(), realm, user)
	ok(t, err, "Enrollment")
	if got.RecoveryCodes != n {
		t.Fatalf("Enrollment(%q, %q).RecoveryCodes = %d, want %d", realm, user, got.RecoveryCodes, n)
	}
}

func wantSession(t *testing.T, s sessions.Store, realm, id string, want sessions.Session) {
	t.Helper()
	got, err := s.Session(t.Context(), realm, id)
	ok(t, err, "Session")
	if d := sessionDiff(got, want); d != "" {
		t.Fatalf("Session(%q, %q): %s", realm, id, d)
	}
}

func wantUserSessions(t *testing.T, s sessions.Store, realm, user string, n int) {
	t.Helper()
	got, err := s.UserSessions(t.Context(), realm, user)
	ok(t, err, "UserSessions")
	if got != n {
		t.Fatalf("UserSessions(%q, %q) = %d, want %d", realm, user, got, n)
	}
}

func wantDevice(t *testing.T, s sessions.Store, realm, id string, want sessions.Device) {
	t.Helper()
	got, err := s.Device(t.Context(), realm, id)
	ok(t, err, "Device")
	if d := deviceDiff(got, want); d != "" {
		t.Fatalf("Device(%q, %q): %s", realm, id, d)
	}
}

// wantDeviceIDs checks UserDevices' IDs and order.
func wantDeviceIDs(t *testing.T, s sessions.Store, realm, user string, ids ...string) []sessions.Device {
	t.Helper()
	list, err := s.UserDevices(t.Context(), realm, user)
	ok(t, err, "UserDevices")
	got := make([]string, len(list))
	for i, d := range list {
		got[i] = d.ID
	}
	if !slices.Equal(got, ids) {
		t.Fatalf("UserDevices(%q, %q) IDs = %q, want %q", realm, user, got, ids)
	}
	return list
}

func wantAttempts(t *testing.T, s sessions.Store, realm, key string, now time.Time, want sessions.Attempts) {
	t.Helper()
	got, err := s.Attempts(t.Context(), realm, key, now)
	ok(t, err, "Attempts")
	if d := attemptsDiff(got, want); d != "" {
		t.Fatalf("Attempts(%q, %q): %s", realm, key, d)
	}
}

func wantToken(t *testing.T, s sessions.Store, realm, kind, id string, want []byte) {
	t.Helper()
	got, err := s.ConsumeToken(t.Context(), realm, kind, id)
	ok(t, err, "ConsumeToken")
	if !bytes.Equal(got, want) {
		t.Fatalf("ConsumeToken(%q, %q, %q) = %q, want %q", realm, kind, id, got, want)
	}
}

func wantAccept(t *testing.T, s sessions.Store, realm, user string, step int64, expires time.Time, want bool) {
	t.Helper()
	got, err := s.AcceptStep(t.Context(), realm, user, step, expires)
	ok(t, err, "AcceptStep")
	if got != want {
		t.Fatalf("AcceptStep(%q, %q, %d) = %v, want %v", realm, user, step, got, want)
	}
}

func enroll(t *testing.T, s sessions.Store, realm, user string, e sessions.Enrollment, hashes ...string) {
	t.Helper()
	ok(t, s.Enroll(t.Context(), realm, user, e, hashes), "Enroll")
}

func useCode(t *testing.T, s sessions.Store, realm, user, hash string, remaining int) {
	t.Helper()
	n, err := s.UseRecoveryCode(t.Context(), realm, user, hash)
	ok(t, err, "UseRecoveryCode")
	if n != remaining {
		t.Fatalf("UseRecoveryCode(%q, %q, %q) remaining = %d, want %d", realm, user, hash, n, remaining)
	}
}

func codeGone(t *testing.T, s sessions.Store, realm, user, hash string) {
	t.Helper()
	_, err := s.UseRecoveryCode(t.Context(), realm, user, hash)
	notFound(t, err, fmt.Sprintf("UseRecoveryCode(%q, %q, %q)", realm, user, hash))
}
