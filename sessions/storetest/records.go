package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/caddy-2fa/caddy-2fa/sessions"
)

var sessionTests = []test{
	{"PutGet", func(t *testing.T, s sessions.Store) {
		ctx := t.Context()
		_, err := s.Session(ctx, "r", "s1")
		notFound(t, err, "Session never stored")
		want := newSession("alice")
		ok(t, s.PutSession(ctx, "r", "s1", want), "PutSession")
		wantSession(t, s, "r", "s1", want)
		_, err = s.Session(ctx, "r", "s2")
		notFound(t, err, "Session under another id")

		want.Method = "recovery"
		want.Expires = want.Expires.Add(time.Minute)
		want.ClientIP = ""
		ok(t, s.PutSession(ctx, "r", "s1", want), "PutSession (replace)")
		wantSession(t, s, "r", "s1", want)
		wantUserSessions(t, s, "r", "alice", 1)
	}},
	{"Expired", func(t *testing.T, s sessions.Store) {
		ctx := t.Context()
		sess := newSession("alice")
		sess.Expires = past()
		ok(t, s.PutSession(ctx, "r", "old", sess), "PutSession")
		_, err := s.Session(ctx, "r", "old")
		notFound(t, err, "expired Session")
		wantUserSessions(t, s, "r", "alice", 0)
		err = s.TouchSession(ctx, "r", "old", base())
		notFound(t, err, "TouchSession of an expired session")
		_, err = s.Session(ctx, "r", "old")
		notFound(t, err, "expired Session after TouchSession")
	}},
	{"Touch", func(t *testing.T, s sessions.Store) {
		ctx := t.Context()
		want := newSession("alice")
		ok(t, s.PutSession(ctx, "r", "s1", want), "PutSession")
		other := newSession("alice")
		ok(t, s.PutSession(ctx, "r", "s2", other), "PutSession")
		want.LastSeen = base().Add(5 * time.Minute)
		ok(t, s.TouchSession(ctx, "r", "s1", want.LastSeen), "TouchSession")
		wantSession(t, s, "r", "s1", want)
		wantSession(t, s, "r", "s2", other)
		err := s.TouchSession(ctx, "r", "missing", base())
		notFound(t, err, "TouchSession of a missing session")
		_, err = s.Session(ctx, "r", "missing")
		notFound(t, err, "Session after TouchSession of a missing one")
	}},
	{"DeviceAndMAC", func(t *testing.T, s sessions.Store) {
		// The device that started a session and the gate's tag are kept
		// as they are, whatever their bytes, and a touch keeps them.
		ctx := t.Context()
		for i, dev := range []string{
			strings.Repeat("0123456789abcdef", 4), // a device key
			strings.Repeat("0123456789ABCDEF", 4), // not lowercase
			"short:device/key",
		} {
			id := fmt.Sprintf("s%d", i)
			want := newSession("alice")
			want.Method = "trusted_device"
			want.Device = dev
			want.MAC = []byte{byte(i), 0, 255, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13}
			ok(t, s.PutSession(ctx, "r", id, want), "PutSession")
			wantSession(t, s, "r", id, want)
			want.LastSeen = base().Add(time.Minute)
			ok(t, s.TouchSession(ctx, "r", id, want.LastSeen), "TouchSession")
			wantSession(t, s, "r", id, want)
		}
		d := newDevice("alice", base().Add(-time.Hour))
		ok(t, s.PutDevice(ctx, "r", "d1", d), "PutDevice")
		ok(t, s.TouchDevice(ctx, "r", "d1", base()), "TouchDevice")
		list := wantDeviceIDs(t, s, "r", "alice", "d1")
		if !bytes.Equal(list[0].MAC, d.MAC) {
			t.Fatalf("UserDevices: MAC %x, want %x", list[0].MAC, d.MAC)
		}
	}},
	{"Delete", func(t *testing.T, s sessions.Store) {
		ctx := t.Context()
		ok(t, s.DeleteSession(ctx, "r", "missing"), "DeleteSession of a missing session")
		ok(t, s.PutSession(ctx, "r", "s1", newSession("alice")), "PutSession")
		ok(t, s.PutSession(ctx, "r", "s2", newSession("alice")), "PutSession")
		ok(t, s.DeleteSession(ctx, "r", "s1"), "DeleteSession")
		_, err := s.Session(ctx, "r", "s1")
		notFound(t, err, "Session after DeleteSession")
		ok(t, s.DeleteSession(ctx, "r", "s1"), "DeleteSession again")
		wantUserSessions(t, s, "r", "alice", 1)
		_, err = s.Session(ctx, "r", "s2")
		ok(t, err, "other Session after DeleteSession")
	}},
	{"UserSessions", func(t *testing.T, s sessions.Store) {
		ctx := t.Context()
		for _, id := range []string{"a1", "a2", "a3"} {
			ok(t, s.PutSession(ctx, "r", id, newSession("alice")), "PutSession")
		}
		expired := newSession("alice")
		expired.Expires = past()
		ok(t, s.PutSession(ctx, "r", "a4", expired), "PutSession")
		for _, id := range []string{"b1", "b2"} {
			ok(t, s.PutSession(ctx, "r", id, newSession("bob")), "PutSession")
		}
		wantUserSessions(t, s, "r", "alice", 3)
		wantUserSessions(t, s, "r", "bob", 2)
		wantUserSessions(t, s, "r", "carol", 0)
		ok(t, s.DeleteSession(ctx, "r", "a2"), "DeleteSession")
		wantUserSessions(t, s, "r", "alice", 2)
	}},
	{"ChangeOwner", func(t *testing.T, s sessions.Store) {
		ctx := t.Context()
		ok(t, s.PutSession(ctx, "r", "x", newSession("alice")), "PutSession")
		ok(t, s.PutSession(ctx, "r", "x", newSession("bob")), "PutSession (replace, other user)")
		wantUserSessions(t, s, "r", "alice", 0)
		wantUserSessions(t, s, "r", "bob", 1)
		n, err := s.DeleteUserSessions(ctx, "r", "alice")
		ok(t, err, "DeleteUserSessions")
		if n != 0 {
			t.Fatalf("DeleteUserSessions of the previous owner = %d, want 0", n)
		}
		wantOwner(t, s, "r", "x", "bob")
	}},
	{"DeleteUserSessions", func(t *testing.T, s sessions.Store) {
		ctx := t.Context()
		for _, id := range []string{"a1", "a2", "a3"} {
			ok(t, s.PutSession(ctx, "r", id, newSession("alice")), "PutSession")
		}
		expired := newSession("alice")
		expired.Expires = past()
		ok(t, s.PutSession(ctx, "r", "a4", expired), "PutSession")
		for _, id := range []string{"b1", "b2"} {
			ok(t, s.PutSession(ctx, "r", id, newSession("bob")), "PutSession")
		}
		n, err := s.DeleteUserSessions(ctx, "r", "alice", "a1", "b1", "unknown")
		ok(t, err, "DeleteUserSessions")
		if n != 2 {
			t.Fatalf("DeleteUserSessions(alice, keep a1) = %d, want 2 (live sessions removed)", n)
		}
		_, err = s.Session(ctx, "r", "a1")
		ok(t, err, "kept Session")
		for _, id := range []string{"a2", "a3", "a4"} {
			_, err = s.Session(ctx, "r", id)
			notFound(t, err, "Session "+id+" after DeleteUserSessions")
		}
		wantUserSessions(t, s, "r", "alice", 1)
		wantUserSessions(t, s, "r", "bob", 2)
		for _, id := range []string{"b1", "b2"} {
			_, err = s.Session(ctx, "r", id)
			ok(t, err, "other user's Session "+id)
		}

		n, err = s.DeleteUserSessions(ctx, "r", "alice")
		ok(t, err, "DeleteUserSessions")
		if n != 1 {
			t.Fatalf("DeleteUserSessions(alice) = %d, want 1", n)
		}
		_, err = s.Session(ctx, "r", "a1")
		notFound(t, err, "Session after DeleteUserSessions without keep")
		wantUserSessions(t, s, "r", "alice", 0)
		wantUserSessions(t, s, "r", "bob", 2)

		n, err = s.DeleteUserSessions(ctx, "r", "nobody")
		ok(t, err, "DeleteUserSessions of an unknown user")
		if n != 0 {
			t.Fatalf("DeleteUserSessions(nobody) = %d, want 0", n)
		}
	}},
}

// wantOwner checks that the session under id is live and user's.
func wantOwner(t *testing.T, s sessions.Store, realm, id, user string) {
	t.Helper()
	got, err := s.Session(t.Context(), realm, id)
	ok(t, err, "Session")
	if got.User != user {
		t.Fatalf("Session(%q, %q).User = %q, want %q", realm, id, got.User, user)
	}
}

var deviceTests = []test{
	{"PutGet", func(t *testing.T, s sessions.Store) {
		ctx := t.Context()
		_, err := s.Device(ctx, "r", "d1")
		notFound(t, err, "Device never stored")
		want := newDevice("alice", base().Add(-time.Hour))
		ok(t, s.PutDevice(ctx, "r", "d1", want), "PutDevice")
		wantDevice(t, s, "r", "d1", want)
		_, err = s.Device(ctx, "r", "d2")
		notFound(t, err, "Device under another id")
	}},
	{"Expired", func(t *testing.T, s sessions.Store) {
		ctx := t.Context()
		d := newDevice("alice", past().Add(-time.Hour))
		d.Expires = past()
		ok(t, s.PutDevice(ctx, "r", "old", d), "PutDevice")
		_, err := s.Device(ctx, "r", "old")
		notFound(t, err, "expired Device")
		wantDeviceIDs(t, s, "r", "alice")
		n, err := s.DeleteUserDevices(ctx, "r", "alice")
		ok(t, err, "DeleteUserDevices")
		if n != 0 {
			t.Fatalf("DeleteUserDevices with only an expired device = %d, want 0", n)
		}
	}},
	{"Touch", func(t *testing.T, s sessions.Store) {
		ctx := t.Context()
		want := newDevice("alice", base().Add(-time.Hour))
		ok(t, s.PutDevice(ctx, "r", "d1", want), "PutDevice")
		other := newDevice("alice", base().Add(-time.Hour))
		ok(t, s.PutDevice(ctx, "r", "d2", other), "PutDevice")
		// Use never extends Expires, whatever lastUsed is.
		want.LastUsed = want.Expires.Add(time.Hour)
		ok(t, s.TouchDevice(ctx, "r", "d1", want.LastUsed), "TouchDevice")
		wantDevice(t, s, "r", "d1", want)
		wantDevice(t, s, "r", "d2", other)
		err := s.TouchDevice(ctx, "r", "missing", base())
		notFound(t, err, "TouchDevice of a missing device")
		_, err = s.Device(ctx, "r", "missing")
		notFound(t, err, "Device after TouchDevice of a missing one")
	}},
	{"UserDevices", func(t *testing.T, s sessions.Store) {
		ctx := t.Context()
		now := base()
		devs := map[string]sessions.Device{
			"d2": newDevice("alice", now.Add(-1*time.Hour)),
			"d1": newDevice("alice", now.Add(-3*time.Hour)),
			"d3": newDevice("alice", now.Add(-2*time.Hour)),
			"b1": newDevice("bob", now.Add(-5*time.Hour)),
		}
		for _, id := range []string{"d2", "b1", "d1", "d3"} {
			ok(t, s.PutDevice(ctx, "r", id, devs[id]), "PutDevice")
		}
		expired := newDevice("alice", now.Add(-4*time.Hour))
		expired.Expires = past()
		ok(t, s.PutDevice(ctx, "r", "d0", expired), "PutDevice")

		list := wantDeviceIDs(t, s, "r", "alice", "d1", "d3", "d2")
		for _, d := range list {
			if diff := deviceDiff(d, devs[d.ID]); diff != "" {
				t.Fatalf("UserDevices entry %q: %s", d.ID, diff)
			}
		}
		wantDeviceIDs(t, s, "r", "bob", "b1")
		wantDeviceIDs(t, s, "r", "carol")

		ok(t, s.DeleteDevice(ctx, "r", "d3"), "DeleteDevice")
		_, err := s.Device(ctx, "r", "d3")
		notFound(t, err, "Device after DeleteDevice")
		ok(t, s.DeleteDevice(ctx, "r", "d3"), "DeleteDevice again")
		ok(t, s.DeleteDevice(ctx, "r", "never"), "DeleteDevice of a missing device")
		wantDeviceIDs(t, s, "r", "alice", "d1", "d2")
	}},
	{"DeleteUserDevices", func(t *testing.T, s sessions.Store) {
		ctx := t.Context()
		for i, id := range []string{"d1", "d2", "d3"} {
			ok(t, s.PutDevice(ctx, "r", id, newDevice("alice", base().Add(-time.Duration(i)*time.Hour))), "PutDevice")
		}
		expired := newDevice("alice", past())
		expired.Expires = past()
		ok(t, s.PutDevice(ctx, "r", "d4", expired), "PutDevice")
		ok(t, s.PutDevice(ctx, "r", "b1", newDevice("bob", base())), "PutDevice")
		n, err := s.DeleteUserDevices(ctx, "r", "alice")
		ok(t, err, "DeleteUserDevices")
		if n != 3 {
			t.Fatalf("DeleteUserDevices = %d, want 3", n)
		}
		wantDeviceIDs(t, s, "r", "alice")
		for _, id := range []string{"d1", "d2", "d3", "d4"} {
			_, err := s.Device(ctx, "r", id)
			notFound(t, err, "Device "+id+" after DeleteUserDevices")
		}
		wantDeviceIDs(t, s, "r", "bob", "b1")
		n, err = s.DeleteUserDevices(ctx, "r", "alice")
		ok(t, err, "DeleteUserDevices again")
		if n != 0 {
			t.Fatalf("second DeleteUserDevices = %d, want 0", n)
		}
	}},
	{"ChangeOwner", func(t *testing.T, s sessions.Store) {
		ctx := t.Context()
		ok(t, s.PutDevice(ctx, "r", "x", newDevice("alice", base())), "PutDevice")
		ok(t, s.PutDevice(ctx, "r", "x", newDevice("bob", base())), "PutDevice (replace, other user)")
		wantDeviceIDs(t, s, "r", "alice")
		wantDeviceIDs(t, s, "r", "bob", "x")
	}},
}

var tokenTests = []test{
	{"ConsumeOnce", func(t *testing.T, s sessions.Store) {
		ctx := t.Context()
		_, err := s.ConsumeToken(ctx, "r", "invite", "t1")
		notFound(t, err, "ConsumeToken never stored")
		value := []byte{0, 1, 2, 0xff, 'x'}
		ok(t, s.PutToken(ctx, "r", "invite", "t1", value, future()), "PutToken")
		ok(t, s.PutToken(ctx, "r", "invite", "t2", []byte("other"), future()), "PutToken")
		wantToken(t, s, "r", "invite", "t1", value)
		_, err = s.ConsumeToken(ctx, "r", "invite", "t1")
		notFound(t, err, "second ConsumeToken")
		wantToken(t, s, "r", "invite", "t2", []byte("other"))
	}},
	{"Replace", func(t *testing.T, s sessions.Store) {
		ctx := t.Context()
		ok(t, s.PutToken(ctx, "r", "k", "t", []byte("one"), future()), "PutToken")
		ok(t, s.PutToken(ctx, "r", "k", "t", []byte("two"), future()), "PutToken (replace)")
		wantToken(t, s, "r", "k", "t", []byte("two"))
		_, err := s.ConsumeToken(ctx, "r", "k", "t")
		notFound(t, err, "ConsumeToken after consuming the replacement")
	}},
	{"Expired", func(t *testing.T, s sessions.Store) {
		ctx := t.Context()
		ok(t, s.PutToken(ctx, "r", "k", "t", []byte("v"), past()), "PutToken")
		_, err := s.ConsumeToken(ctx, "r", "k", "t")
		notFound(t, err, "ConsumeToken of an expired token")
	}},
	{"Kinds", func(t *testing.T, s sessions.Store) {
		ctx := t.Context()
		put := map[[2]string]string{
			{"a", "x"}:   "a/x",
			{"b", "x"}:   "b/x",
			{"a:b", "c"}: "a:b/c",
			{"a", "b:c"}: "a/b:c",
			{"a/b", "c"}: "a/b/c",
			{"a", "b/c"}: "a/b/c (2)",
		}
		for k, v := range put {
			ok(t, s.PutToken(ctx, "r", k[0], k[1], []byte(v), future()), "PutToken")
		}
		for k, v := range put {
			wantToken(t, s, "r", k[0], k[1], []byte(v))
		}
	}},
	{"Concurrent", func(t *testing.T, s sessions.Store) {
		value := []byte("the value")
		ok(t, s.PutToken(t.Context(), "r", "k", "t", value, future()), "PutToken")
		got := make([][]byte, concurrency)
		errs := make([]error, concurrency)
		race(concurrency, func(i int) {
			got[i], errs[i] = s.ConsumeToken(t.Context(), "r", "k", "t")
		})
		wins := 0
		for i := range concurrency {
			switch {
			case errs[i] == nil:
				wins++
				if !bytes.Equal(got[i], value) {
					t.Errorf("winner got %q, want %q", got[i], value)
				}
			case !errors.Is(errs[i], sessions.ErrNotFound):
				t.Errorf("goroutine %d: unexpected error %v", i, errs[i])
			}
		}
		if wins != 1 {
			t.Fatalf("%d concurrent ConsumeToken calls got the value, want exactly 1", wins)
		}
	}},
}

var realmTests = []test{
	{"Isolation", func(t *testing.T, s sessions.Store) {
		ctx := t.Context()
		fillUser(t, s, "r1", "alice")
		ok(t, s.PutToken(ctx, "r1", "k", "t", []byte("v"), future()), "PutToken")

		// Nothing of r1 is visible in r2.
		_, err := s.Enrollment(ctx, "r2", "alice")
		notFound(t, err, "Enrollment in another realm")
		codeGone(t, s, "r2", "alice", "alice-h1")
		err = s.SetRecoveryCodes(ctx, "r2", "alice", []string{"x"})
		notFound(t, err, "SetRecoveryCodes in another realm")
		_, err = s.PendingEnrollment(ctx, "r2", "alice")
		notFound(t, err, "PendingEnrollment in another realm")
		_, err = s.Session(ctx, "r2", "alice-s1")
		notFound(t, err, "Session in another realm")
		err = s.TouchSession(ctx, "r2", "alice-s1", base())
		notFound(t, err, "TouchSession in another realm")
		wantUserSessions(t, s, "r2", "alice", 0)
		_, err = s.Device(ctx, "r2", "alice-d1")
		notFound(t, err, "Device in another realm")
		wantDeviceIDs(t, s, "r2", "alice")
		wantAttempts(t, s, "r2", "alice", base(), sessions.Attempts{})
		_, err = s.ConsumeToken(ctx, "r2", "k", "t")
		notFound(t, err, "ConsumeToken in another realm")
		noProfile(t, s, "r2", "alice")
		wantUsers(t, s, "r2")

		// Writes in r2 leave r1 alone.
		wantAccept(t, s, "r2", "alice", 1, future(), true)
		n, err := s.DeleteUserSessions(ctx, "r2", "alice")
		ok(t, err, "DeleteUserSessions")
		if n != 0 {
			t.Fatalf("DeleteUserSessions in another realm = %d, want 0", n)
		}
		n, err = s.DeleteUserDevices(ctx, "r2", "alice")
		ok(t, err, "DeleteUserDevices")
		if n != 0 {
			t.Fatalf("DeleteUserDevices in another realm = %d, want 0", n)
		}
		ok(t, s.DeleteSession(ctx, "r2", "alice-s1"), "DeleteSession")
		ok(t, s.DeleteDevice(ctx, "r2", "alice-d1"), "DeleteDevice")
		ok(t, s.ClearFailures(ctx, "r2", "alice"), "ClearFailures")
		ok(t, s.ResetUser(ctx, "r2", "alice"), "ResetUser")
		enroll(t, s, "r2", "alice", newEnrollment("r2"), "r2-h1")
		seeUser(t, s, "r2", "alice", t2022, sessions.Profile{FirstSeen: t2022})
		recordVerification(t, s, "r2", "alice", "totp", t2022)
		setDisabled(t, s, "r2", "alice", time.Time{})
		wantFilled(t, s, "r1", "alice")
		wantUsers(t, s, "r1", "alice")
		wantToken(t, s, "r1", "k", "t", []byte("v"))
	}},
	{"SameKeys", func(t *testing.T, s sessions.Store) {
		ctx := t.Context()
		sess := map[string]sessions.Session{}
		dev := map[string]sessions.Device{}
		for i, realm := range []string{"r1", "r2"} {
			e := newEnrollment(realm)
			enroll(t, s, realm, "alice", e, realm+"-h")
			sess[realm] = newSession("user-" + realm)
			ok(t, s.PutSession(ctx, realm, "id", sess[realm]), "PutSession")
			dev[realm] = newDevice("user-"+realm, base().Add(-time.Duration(i)*time.Hour))
			ok(t, s.PutDevice(ctx, realm, "id", dev[realm]), "PutDevice")
			ok(t, s.PutToken(ctx, realm, "k", "id", []byte(realm), future()), "PutToken")
			for range i + 1 {
				_, err := s.AddFailure(ctx, realm, "alice", base(), limits)
				ok(t, err, "AddFailure")
			}
		}
		for i, realm := range []string{"r1", "r2"} {
			e := newEnrollment(realm)
			e.RecoveryCodes = 1
			wantEnrollment(t, s, realm, "alice", e)
			wantSession(t, s, realm, "id", sess[realm])
			wantDevice(t, s, realm, "id", dev[realm])
			wantToken(t, s, realm, "k", "id", []byte(realm))
			a, err := s.Attempts(ctx, realm, "alice", base())
			ok(t, err, "Attempts")
			if a.Failures != i+1 {
				t.Fatalf("Attempts(%q).Failures = %d, want %d", realm, a.Failures, i+1)
			}
		}
		codeGone(t, s, "r1", "alice", "r2-h")
		useCode(t, s, "r2", "alice", "r2-h", 0)
		wantRecoveryCodes(t, s, "r1", "alice", 1)
		// The same step is accepted once per realm.
		wantAccept(t, s, "r1", "alice", 7, future(), true)
		wantAccept(t, s, "r2", "alice", 7, future(), true)
		wantAccept(t, s, "r1", "alice", 7, future(), false)
	}},
}

// awkwardNames are names a backend must store and keep apart.
var awkwardNames = []string{
	"plain",
	"b:c",
	"a/b",
	"with space",
	"ümlaut@例え.jp",
	"{hash}tag",
	"*",
	"?[]",
	"%2F..%2F",
	"tab\tnew\nline",
	"trailing:",
	":leading",
	strings.Repeat("x", 1024),
	strings.Repeat("x", 1023) + "y",
}

var nameTests = []test{
	{"RoundTrip", func(t *testing.T, s sessions.Store) {
		ctx := t.Context()
		// Each name as user, session and device id, token kind and id,
		// counter key, in a fixed realm and as the realm itself.
		type where struct{ realm, name string }
		var all []where
		for _, n := range awkwardNames {
			all = append(all, where{"r", n}, where{n, n})
		}
		for i, w := range all {
			tag := fmt.Sprint(i)
			enroll(t, s, w.realm, w.name, newEnrollment(tag), "h"+tag)
			ok(t, s.PutSession(ctx, w.realm, w.name, newSession(w.name)), "PutSession")
			ok(t, s.PutDevice(ctx, w.realm, w.name, newDevice(w.name, base())), "PutDevice")
			ok(t, s.PutToken(ctx, w.realm, w.name, w.name, []byte(tag), future()), "PutToken")
			p := sessions.PendingEnrollment{SealedSecret: []byte(tag), Created: base(), Expires: future()}
			ok(t, s.PutPendingEnrollment(ctx, w.realm, w.name, p), "PutPendingEnrollment")
			for range i%3 + 1 {
				_, err := s.AddFailure(ctx, w.realm, w.name, base(), sessions.Limit{Max: 100, Window: time.Hour, Lockout: time.Hour})
				ok(t, err, "AddFailure")
			}
			wantAccept(t, s, w.realm, w.name, int64(1000+i), future(), true)
		}
		for i, w := range all {
			tag := fmt.Sprint(i)
			what := fmt.Sprintf("realm %.40q name %.40q", w.realm, w.name)
			e := newEnrollment(tag)
			e.RecoveryCodes = 1
			got, err := s.Enrollment(ctx, w.realm, w.name)
			ok(t, err, what+": Enrollment")
			if d := enrollmentDiff(got, e); d != "" {
				t.Fatalf("%s: Enrollment: %s", what, d)
			}
			sess, err := s.Session(ctx, w.realm, w.name)
			ok(t, err, what+": Session")
			if sess.User != w.name {
				t.Fatalf("%s: Session.User = %.40q", what, sess.User)
			}
			wantUserSessions(t, s, w.realm, w.name, 1)
			list, err := s.UserDevices(ctx, w.realm, w.name)
			ok(t, err, what+": UserDevices")
			if len(list) != 1 || list[0].ID != w.name || list[0].User != w.name {
				t.Fatalf("%s: UserDevices = %+v, want the one device", what, list)
			}
			p, err := s.PendingEnrollment(ctx, w.realm, w.name)
			ok(t, err, what+": PendingEnrollment")
			if string(p.SealedSecret) != tag {
				t.Fatalf("%s: PendingEnrollment.SealedSecret = %q, want %q", what, p.SealedSecret, tag)
			}
			a, err := s.Attempts(ctx, w.realm, w.name, base())
			ok(t, err, what+": Attempts")
			if a.Failures != i%3+1 {
				t.Fatalf("%s: Attempts.Failures = %d, want %d", what, a.Failures, i%3+1)
			}
			wantAccept(t, s, w.realm, w.name, int64(1000+i), future(), false)
			useCode(t, s, w.realm, w.name, "h"+tag, 0)
			wantToken(t, s, w.realm, w.name, w.name, []byte(tag))
		}
	}},
	{"NoCollisions", func(t *testing.T, s sessions.Store) {
		ctx := t.Context()
		// Pairs that a key built by joining realm and name with a
		// separator would confuse.
		pairs := [][2]string{
			{"a", "b:c"},
			{"a:b", "c"},
			{"a", "b/c"},
			{"a/b", "c"},
			{"a", "b c"},
			{"a b", "c"},
			{"a", "b\x01c"},
			{"a\x01b", "c"},
			{"a", ":b"},
			{"a:", "b"},
		}
		for i, p := range pairs {
			tag := fmt.Sprint(i)
			enroll(t, s, p[0], p[1], newEnrollment(tag), "h"+tag)
			ok(t, s.PutSession(ctx, p[0], p[1], newSession("u"+tag)), "PutSession")
			ok(t, s.PutToken(ctx, p[0], "k", p[1], []byte(tag), future()), "PutToken")
		}
		for i, p := range pairs {
			tag := fmt.Sprint(i)
			what := fmt.Sprintf("realm %q name %q", p[0], p[1])
			e := newEnrollment(tag)
			e.RecoveryCodes = 1
			got, err := s.Enrollment(ctx, p[0], p[1])
			ok(t, err, what+": Enrollment")
			if d := enrollmentDiff(got, e); d != "" {
				t.Fatalf("%s: Enrollment: %s", what, d)
			}
			sess, err := s.Session(ctx, p[0], p[1])
			ok(t, err, what+": Session")
			if sess.User != "u"+tag {
				t.Fatalf("%s: Session.User = %q, want %q", what, sess.User, "u"+tag)
			}
			wantToken(t, s, p[0], "k", p[1], []byte(tag))
		}
	}},
	{"UserPrefixes", func(t *testing.T, s sessions.Store) {
		ctx := t.Context()
		// Users whose names are prefixes of each other.
		users := []string{"al", "alice", "al:ice", "al~", "a"}
		for i, u := range users {
			for j := range i + 1 {
				id := fmt.Sprintf("%d-%d", i, j)
				ok(t, s.PutSession(ctx, "r", id, newSession(u)), "PutSession")
				ok(t, s.PutDevice(ctx, "r", id, newDevice(u, base())), "PutDevice")
			}
		}
		for i, u := range users {
			wantUserSessions(t, s, "r", u, i+1)
			list, err := s.UserDevices(ctx, "r", u)
			ok(t, err, "UserDevices")
			if len(list) != i+1 {
				t.Fatalf("UserDevices(%q) has %d devices, want %d", u, len(list), i+1)
			}
		}
		n, err := s.DeleteUserSessions(ctx, "r", "al")
		ok(t, err, "DeleteUserSessions")
		if n != 1 {
			t.Fatalf("DeleteUserSessions(al) = %d, want 1", n)
		}
		n, err = s.DeleteUserDevices(ctx, "r", "a")
		ok(t, err, "DeleteUserDevices")
		if n != 5 {
			t.Fatalf("DeleteUserDevices(a) = %d, want 5", n)
		}
		for i, u := range users[1:4] {
			wantUserSessions(t, s, "r", u, i+2)
			list, err := s.UserDevices(ctx, "r", u)
			ok(t, err, "UserDevices")
			if len(list) != i+2 {
				t.Fatalf("UserDevices(%q) has %d devices, want %d", u, len(list), i+2)
			}
		}
	}},
}

var pingTests = []test{
	{"Healthy", func(t *testing.T, s sessions.Store) {
		ok(t, s.Ping(t.Context()), "Ping")
	}},
}
