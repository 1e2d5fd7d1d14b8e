package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/caddy-2fa/caddy-2fa/sessions"
)

var enrollmentTests = []test{
	{"Absent", func(t *testing.T, s sessions.Store) {
		_, err := s.Enrollment(t.Context(), "r", "alice")
		notFound(t, err, "Enrollment of a user never enrolled")
	}},
	{"ReadBack", func(t *testing.T, s sessions.Store) {
		e := newEnrollment("alice")
		e.RecoveryCodes = 99 // filled in by the store: ignored on write
		enroll(t, s, "r", "alice", e, "h1", "h2", "h3")
		e.RecoveryCodes = 3
		wantEnrollment(t, s, "r", "alice", e)
		_, err := s.Enrollment(t.Context(), "r", "bob")
		notFound(t, err, "Enrollment of another user")
	}},
	{"NoRecoveryCodes", func(t *testing.T, s sessions.Store) {
		e := newEnrollment("alice")
		enroll(t, s, "r", "alice", e)
		wantEnrollment(t, s, "r", "alice", e)
		codeGone(t, s, "r", "alice", "h1")
	}},
	{"Exists", func(t *testing.T, s sessions.Store) {
		first := newEnrollment("first")
		enroll(t, s, "r", "alice", first, "h1", "h2", "h3")
		second := newEnrollment("second")
		second.Algorithm, second.Digits, second.Period = "SHA1", 6, 30
		err := s.Enroll(t.Context(), "r", "alice", second, []string{"x1"})
		if !errors.Is(err, sessions.ErrExists) {
			t.Fatalf("second Enroll: got error %v, want sessions.ErrExists", err)
		}
		first.RecoveryCodes = 3
		wantEnrollment(t, s, "r", "alice", first)
		codeGone(t, s, "r", "alice", "x1")
		useCode(t, s, "r", "alice", "h1", 2)
	}},
	{"RemovesPending", func(t *testing.T, s sessions.Store) {
		ctx := t.Context()
		p := sessions.PendingEnrollment{SealedSecret: []byte("p"), Created: base(), Expires: future()}
		ok(t, s.PutPendingEnrollment(ctx, "r", "alice", p), "PutPendingEnrollment")
		ok(t, s.PutPendingEnrollment(ctx, "r", "bob", p), "PutPendingEnrollment")
		enroll(t, s, "r", "alice", newEnrollment("alice"), "h1")
		_, err := s.PendingEnrollment(ctx, "r", "alice")
		notFound(t, err, "PendingEnrollment after Enroll")
		_, err = s.PendingEnrollment(ctx, "r", "bob")
		ok(t, err, "PendingEnrollment of another user")
	}},
}

var recoveryTests = []test{
	{"ConsumeOnce", func(t *testing.T, s sessions.Store) {
		enroll(t, s, "r", "alice", newEnrollment("alice"), "h1", "h2", "h3")
		useCode(t, s, "r", "alice", "h2", 2)
		codeGone(t, s, "r", "alice", "h2")
		wantRecoveryCodes(t, s, "r", "alice", 2)
		useCode(t, s, "r", "alice", "h3", 1)
		useCode(t, s, "r", "alice", "h1", 0)
		codeGone(t, s, "r", "alice", "h1")
		wantRecoveryCodes(t, s, "r", "alice", 0)
	}},
	{"Unknown", func(t *testing.T, s sessions.Store) {
		enroll(t, s, "r", "alice", newEnrollment("alice"), "h1", "h2", "h3")
		enroll(t, s, "r", "bob", newEnrollment("bob"), "b1")
		codeGone(t, s, "r", "alice", "nope")
		codeGone(t, s, "r", "alice", "")
		codeGone(t, s, "r", "alice", "b1") // bob's code
		codeGone(t, s, "r", "carol", "h1") // not enrolled
		wantRecoveryCodes(t, s, "r", "alice", 3)
		wantRecoveryCodes(t, s, "r", "bob", 1)
	}},
	{"SetReplaces", func(t *testing.T, s sessions.Store) {
		e := newEnrollment("alice")
		enroll(t, s, "r", "alice", e, "h1", "h2", "h3")
		useCode(t, s, "r", "alice", "h1", 2)
		ok(t, s.SetRecoveryCodes(t.Context(), "r", "alice", []string{"n1", "n2", "n3", "n4"}), "SetRecoveryCodes")
		e.RecoveryCodes = 4
		wantEnrollment(t, s, "r", "alice", e)
		codeGone(t, s, "r", "alice", "h2")
		codeGone(t, s, "r", "alice", "h3")
		useCode(t, s, "r", "alice", "n3", 3)
		codeGone(t, s, "r", "alice", "n3")
	}},
	{"SetEmpty", func(t *testing.T, s sessions.Store) {
		enroll(t, s, "r", "alice", newEnrollment("alice"), "h1", "h2")
		ok(t, s.SetRecoveryCodes(t.Context(), "r", "alice", nil), "SetRecoveryCodes(nil)")
		wantRecoveryCodes(t, s, "r", "alice", 0)
		codeGone(t, s, "r", "alice", "h1")
	}},
	{"SetNotEnrolled", func(t *testing.T, s sessions.Store) {
		ctx := t.Context()
		err := s.SetRecoveryCodes(ctx, "r", "alice", []string{"n1"})
		notFound(t, err, "SetRecoveryCodes for a user not enrolled")
		_, err = s.Enrollment(ctx, "r", "alice")
		notFound(t, err, "Enrollment after a refused SetRecoveryCodes")
		codeGone(t, s, "r", "alice", "n1")
		// The refused call left nothing behind that Enroll would see.
		enroll(t, s, "r", "alice", newEnrollment("alice"), "h1")
		codeGone(t, s, "r", "alice", "n1")
		wantRecoveryCodes(t, s, "r", "alice", 1)
	}},
	{"ConcurrentUse", func(t *testing.T, s sessions.Store) {
		enroll(t, s, "r", "alice", newEnrollment("alice"), "h1", "h2", "h3")
		errs := make([]error, concurrency)
		remaining := make([]int, concurrency)
		race(concurrency, func(i int) {
			remaining[i], errs[i] = s.UseRecoveryCode(t.Context(), "r", "alice", "h2")
		})
		wins := 0
		for i, err := range errs {
			switch {
			case err == nil:
				wins++
				if remaining[i] != 2 {
					t.Errorf("winner's remaining = %d, want 2", remaining[i])
				}
			case !errors.Is(err, sessions.ErrNotFound):
				t.Errorf("goroutine %d: unexpected error %v", i, err)
			}
		}
		if wins != 1 {
			t.Fatalf("%d concurrent uses of one code succeeded, want exactly 1", wins)
		}
		wantRecoveryCodes(t, s, "r", "alice", 2)
	}},
}

var stepTests = []test{
	{"Monotonic", func(t *testing.T, s sessions.Store) {
		exp := future()
		wantAccept(t, s, "r", "alice", 1000, exp, true)
		wantAccept(t, s, "r", "alice", 1000, exp, false)
		wantAccept(t, s, "r", "alice", 999, exp, false)
		wantAccept(t, s, "r", "alice", 1001, exp, true)
		wantAccept(t, s, "r", "alice", 1000, exp, false)
		wantAccept(t, s, "r", "alice", 1001, exp, false)
		wantAccept(t, s, "r", "alice", 1005, exp, true)
	}},
	{"PerUser", func(t *testing.T, s sessions.Store) {
		exp := future()
		wantAccept(t, s, "r", "alice", 1000, exp, true)
		wantAccept(t, s, "r", "bob", 1000, exp, true)
		wantAccept(t, s, "r", "bob", 10, exp, false)
		wantAccept(t, s, "r", "carol", 10, exp, true)
	}},
	{"Concurrent", func(t *testing.T, s sessions.Store) {
		exp := future()
		wantAccept(t, s, "r", "alice", 41, exp, true)
		accepted := make([]bool, concurrency)
		errs := make([]error, concurrency)
		race(concurrency, func(i int) {
			accepted[i], errs[i] = s.AcceptStep(t.Context(), "r", "alice", 42, exp)
		})
		n := 0
		for i := range concurrency {
			if errs[i] != nil {
				t.Errorf("goroutine %d: %v", i, errs[i])
			}
			if accepted[i] {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("%d concurrent AcceptStep calls with one step returned true, want exactly 1", n)
		}
		wantAccept(t, s, "r", "alice", 42, exp, false)
	}},
	{"Expired", func(t *testing.T, s sessions.Store) {
		wantAccept(t, s, "r", "alice", 1000, past(), true)
		// The record has expired: a lower step is accepted again.
		wantAccept(t, s, "r", "alice", 500, future(), true)
		wantAccept(t, s, "r", "alice", 500, future(), false)
		wantAccept(t, s, "r", "alice", 499, future(), false)
	}},
}

// filledProfile is the profile fillUser gives every user.
var filledProfile = sessions.Profile{FirstSeen: t2020, LastVerified: t2021, LastMethod: "recovery", DisabledUntil: t2100}

// fillUser gives user in realm one of everything ResetUser forgets, and
// a profile (filledProfile).
func fillUser(t *testing.T, s sessions.Store, realm, user string) {
	t.Helper()
	ctx := t.Context()
	enroll(t, s, realm, user, newEnrollment(user), user+"-h1", user+"-h2")
	seeUser(t, s, realm, user, t2020, sessions.Profile{FirstSeen: t2020})
	recordVerification(t, s, realm, user, "recovery", t2021)
	setDisabled(t, s, realm, user, t2100)
	wantAccept(t, s, realm, user, 1000, future(), true)
	p := sessions.PendingEnrollment{SealedSecret: []byte(user), Created: base(), Expires: future()}
	ok(t, s.PutPendingEnrollment(ctx, realm, user, p), "PutPendingEnrollment")
	ok(t, s.PutSession(ctx, realm, user+"-s1", newSession(user)), "PutSession")
	ok(t, s.PutSession(ctx, realm, user+"-s2", newSession(user)), "PutSession")
	ok(t, s.PutDevice(ctx, realm, user+"-d1", newDevice(user, base())), "PutDevice")
	_, err := s.AddFailure(ctx, realm, user, base(), limits)
	ok(t, err, "AddFailure")
}

// wantFilled checks that everything fillUser wrote is there.
func wantFilled(t *testing.T, s sessions.Store, realm, user string) {
	t.Helper()
	ctx := t.Context()
	wantRecoveryCodes(t, s, realm, user, 2)
	wantAccept(t, s, realm, user, 999, future(), false)
	_, err := s.PendingEnrollment(ctx, realm, user)
	ok(t, err, "PendingEnrollment")
	for _, id := range []string{user + "-s1", user + "-s2"} {
		got, err := s.Session(ctx, realm, id)
		ok(t, err, fmt.Sprintf("Session(%q, %q)", realm, id))
		if got.User != user {
			t.Fatalf("Session(%q, %q).User = %q, want %q", realm, id, got.User, user)
		}
	}
	wantUserSessions(t, s, realm, user, 2)
	_, err = s.Device(ctx, realm, user+"-d1")
	ok(t, err, "Device")
	wantDeviceIDs(t, s, realm, user, user+"-d1")
	a, err := s.Attempts(ctx, realm, user, base())
	ok(t, err, "Attempts")
	if a.Failures != 1 {
		t.Fatalf("Attempts(%q, %q).Failures = %d, want 1", realm, user, a.Failures)
	}
	wantProfile(t, s, realm, user, filledProfile)
}

var resetTests = []test{
	{"ForgetsEverything", func(t *testing.T, s sessions.Store) {
		ctx := t.Context()
		fillUser(t, s, "r1", "alice")
		fillUser(t, s, "r1", "bob")
		fillUser(t, s, "r2", "alice")
		_, err := s.AddFailure(ctx, "r1", "ip:192.0.2.1", base(), limits)
		ok(t, err, "AddFailure")
		ok(t, s.PutToken(ctx, "r1", "invite", "alice", []byte("tok"), future()), "PutToken")

		ok(t, s.ResetUser(ctx, "r1", "alice"), "ResetUser")

		_, err = s.Enrollment(ctx, "r1", "alice")
		notFound(t, err, "Enrollment after ResetUser")
		codeGone(t, s, "r1", "alice", "alice-h1")
		wantAccept(t, s, "r1", "alice", 999, future(), true) // last step forgotten
		_, err = s.PendingEnrollment(ctx, "r1", "alice")
		notFound(t, err, "PendingEnrollment after ResetUser")
		_, err = s.Session(ctx, "r1", "alice-s1")
		notFound(t, err, "Session after ResetUser")
		_, err = s.Session(ctx, "r1", "alice-s2")
		notFound(t, err, "Session after ResetUser")
		wantUserSessions(t, s, "r1", "alice", 0)
		_, err = s.Device(ctx, "r1", "alice-d1")
		notFound(t, err, "Device after ResetUser")
		wantDeviceIDs(t, s, "r1", "alice")
		// Counters are not the user's records: the one fillUser wrote
		// under the key "alice" is untouched (the gate clears a user's
		// counters by their own keys).
		if a, err := s.Attempts(ctx, "r1", "alice", base()); err != nil || a.Failures != 1 {
			t.Fatalf("counter \"alice\" after ResetUser = %+v, %v; want 1 failure", a, err)
		}
		// The profile keeps only FirstSeen.
		wantProfile(t, s, "r1", "alice", sessions.Profile{FirstSeen: filledProfile.FirstSeen})
		wantUsers(t, s, "r1", "alice", "bob")

		// Others are untouched.
		wantFilled(t, s, "r1", "bob")
		wantFilled(t, s, "r2", "alice")
		a, err := s.Attempts(ctx, "r1", "ip:192.0.2.1", base())
		ok(t, err, "Attempts")
		if a.Failures != 1 {
			t.Fatalf("other counter: Failures = %d, want 1", a.Failures)
		}
		wantToken(t, s, "r1", "invite", "alice", []byte("tok"))

		// The user can enroll afresh; the grace period does not restart.
		enroll(t, s, "r1", "alice", newEnrollment("new"), "n1")
		wantRecoveryCodes(t, s, "r1", "alice", 1)
		seeUser(t, s, "r1", "alice", t2022, sessions.Profile{FirstSeen: filledProfile.FirstSeen})
		recordVerification(t, s, "r1", "alice", "totp", t2022)
		wantProfile(t, s, "r1", "alice", sessions.Profile{FirstSeen: filledProfile.FirstSeen, LastVerified: t2022, LastMethod: "totp"})
	}},
	{"NeverTouchesCounters", func(t *testing.T, s sessions.Store) {
		// A user named like a counter key resets their own 2FA, never
		// another user's lockout or a client address's budget.
		ctx := t.Context()
		t0 := base()
		counters := []string{"user:alice", "user-day:alice", "ip:1.2.3.4", "alice"}
		for _, k := range counters {
			for range limits.Max {
				_, err := s.AddFailure(ctx, "r", k, t0, limits)
				ok(t, err, "AddFailure")
			}
		}
		for _, name := range append(counters, "user:", "ip:", "user-day:") {
			fillUser(t, s, "r", name)
			ok(t, s.ResetUser(ctx, "r", name), "ResetUser "+name)
		}
		for _, k := range counters {
			want := limits.Max + 1 // fillUser counts one under the user's name
			a, err := s.Attempts(ctx, "r", k, t0)
			ok(t, err, "Attempts")
			if a.Failures != want || !a.Locked(t0) {
				t.Fatalf("counter %q after ResetUser of users named like it = %+v, want %d failures, locked", k, a, want)
			}
		}
	}},
	{"ProfileOnly", func(t *testing.T, s sessions.Store) {
		ctx := t.Context()
		setDisabled(t, s, "r", "alice", t2100)
		recordVerification(t, s, "r", "alice", "totp", t2021)
		first, err := s.Profile(ctx, "r", "alice")
		ok(t, err, "Profile")
		ok(t, s.ResetUser(ctx, "r", "alice"), "ResetUser")
		wantProfile(t, s, "r", "alice", sessions.Profile{FirstSeen: first.FirstSeen})
		ok(t, s.ResetUser(ctx, "r", "alice"), "ResetUser again")
		wantProfile(t, s, "r", "alice", sessions.Profile{FirstSeen: first.FirstSeen})
		wantUsers(t, s, "r", "alice")
	}},
	{"NoProfile", func(t *testing.T, s sessions.Store) {
		// Resetting a user without a profile does not create one.
		ctx := t.Context()
		enroll(t, s, "r", "alice", newEnrollment("alice"), "h1")
		ok(t, s.ResetUser(ctx, "r", "alice"), "ResetUser")
		noProfile(t, s, "r", "alice")
		ok(t, s.ResetUser(ctx, "r", "nobody"), "ResetUser")
		noProfile(t, s, "r", "nobody")
		wantUsers(t, s, "r")
	}},
	{"Unknown", func(t *testing.T, s sessions.Store) {
		ok(t, s.ResetUser(t.Context(), "r", "nobody"), "ResetUser of an unknown user")
	}},
}

var pendingTests = []test{
	{"Absent", func(t *testing.T, s sessions.Store) {
		_, err := s.PendingEnrollment(t.Context(), "r", "alice")
		notFound(t, err, "PendingEnrollment")
	}},
	{"PutGetReplace", func(t *testing.T, s sessions.Store) {
		ctx := t.Context()
		p1 := sessions.PendingEnrollment{SealedSecret: []byte{0, 1, 2, 255}, Created: base().Add(-time.Minute), Expires: future(), MAC: []byte("pending tag \x00\xff"), Browser: "b1"}
		ok(t, s.PutPendingEnrollment(ctx, "r", "alice", p1), "PutPendingEnrollment")
		got, err := s.PendingEnrollment(ctx, "r", "alice")
		ok(t, err, "PendingEnrollment")
		if d := pendingDiff(got, p1); d != "" {
			t.Fatalf("PendingEnrollment: %s", d)
		}
		_, err = s.PendingEnrollment(ctx, "r", "bob")
		notFound(t, err, "PendingEnrollment of another user")

		p2 := sessions.PendingEnrollment{SealedSecret: []byte("second"), Created: base(), Expires: future().Add(time.Minute)}
		ok(t, s.PutPendingEnrollment(ctx, "r", "alice", p2), "PutPendingEnrollment (replace)")
		got, err = s.PendingEnrollment(ctx, "r", "alice")
		ok(t, err, "PendingEnrollment")
		if d := pendingDiff(got, p2); d != "" {
			t.Fatalf("PendingEnrollment after replace: %s", d)
		}
	}},
	{"Expired", func(t *testing.T, s sessions.Store) {
		ctx := t.Context()
		p := sessions.PendingEnrollment{SealedSecret: []byte("x"), Created: past().Add(-time.Minute), Expires: past()}
		ok(t, s.PutPendingEnrollment(ctx, "r", "alice", p), "PutPendingEnrollment")
		_, err := s.PendingEnrollment(ctx, "r", "alice")
		notFound(t, err, "expired PendingEnrollment")

		// A live one replaces a live one with an expired one.
		live := sessions.PendingEnrollment{SealedSecret: []byte("y"), Created: base(), Expires: future()}
		ok(t, s.PutPendingEnrollment(ctx, "r", "bob", live), "PutPendingEnrollment")
		ok(t, s.PutPendingEnrollment(ctx, "r", "bob", p), "PutPendingEnrollment (expired)")
		_, err = s.PendingEnrollment(ctx, "r", "bob")
		notFound(t, err, "PendingEnrollment replaced by an expired one")
		ok(t, s.PutPendingEnrollment(ctx, "r", "bob", live), "PutPendingEnrollment")
		_, err = s.PendingEnrollment(ctx, "r", "bob")
		ok(t, err, "PendingEnrollment")
	}},
	{"AddOnlyIfAbsent", func(t *testing.T, s sessions.Store) {
		ctx := t.Context()
		p1 := sessions.PendingEnrollment{SealedSecret: []byte("first"), Created: base(), Expires: future(), Browser: "b1"}
		wantAddPending(t, s, "r", "alice", p1, true)
		p2 := sessions.PendingEnrollment{SealedSecret: []byte("second"), Created: base(), Expires: future(), Browser: "b2"}
		wantAddPending(t, s, "r", "alice", p2, false)
		wantPending(t, s, "r", "alice", p1)
		// Another user and another realm are not "present".
		wantAddPending(t, s, "r", "bob", p2, true)
		wantAddPending(t, s, "r2", "alice", p2, true)
		wantPending(t, s, "r", "alice", p1)

		// An expired pending enrollment is absent.
		gone := sessions.PendingEnrollment{SealedSecret: []byte("old"), Created: past().Add(-time.Minute), Expires: past()}
		ok(t, s.PutPendingEnrollment(ctx, "r", "carol", gone), "PutPendingEnrollment (expired)")
		wantAddPending(t, s, "r", "carol", p2, true)
		wantPending(t, s, "r", "carol", p2)
		// An expired p is never saved.
		wantAddPending(t, s, "r", "dave", gone, false)
		_, err := s.PendingEnrollment(ctx, "r", "dave")
		notFound(t, err, "PendingEnrollment after adding an expired one")
		// Confirmed: absent again.
		ok(t, s.EnrollPending(ctx, "r", "alice", p1.SealedSecret, newEnrollment("alice"), nil), "EnrollPending")
		wantAddPending(t, s, "r", "alice", p2, true)
	}},
	{"AddRace", func(t *testing.T, s sessions.Store) {
		var mu sync.Mutex
		var winners []int
		race(concurrency, func(i int) {
			p := sessions.PendingEnrollment{SealedSecret: fmt.Appendf(nil, "secret-%d", i), Created: base(), Expires: future(), Browser: fmt.Sprint(i)}
			added, err := s.AddPendingEnrollment(context.Background(), "r", "alice", p)
			if err != nil {
				t.Errorf("AddPendingEnrollment %d: %v", i, err)
				return
			}
			if added {
				mu.Lock()
				winners = append(winners, i)
				mu.Unlock()
			}
		})
		if len(winners) != 1 {
			t.Fatalf("%d concurrent AddPendingEnrollment calls saved %v, want exactly one", concurrency, winners)
		}
		got, err := s.PendingEnrollment(t.Context(), "r", "alice")
		ok(t, err, "PendingEnrollment")
		if want := fmt.Sprintf("secret-%d", winners[0]); string(got.SealedSecret) != want || got.Browser != fmt.Sprint(winners[0]) {
			t.Fatalf("stored pending enrollment %q (browser %q), want the winner's %q", got.SealedSecret, got.Browser, want)
		}
	}},
}

// enrollPendingTests: Enroll conditional on the pending enrollment whose
// code was checked.
var enrollPendingTests = []test{
	{"Confirms", func(t *testing.T, s sessions.Store) {
		ctx := t.Context()
		p := sessions.PendingEnrollment{SealedSecret: []byte("pending"), Created: base(), Expires: future(), Browser: "b"}
		ok(t, s.PutPendingEnrollment(ctx, "r", "alice", p), "PutPendingEnrollment")
		ok(t, s.PutPendingEnrollment(ctx, "r", "bob", p), "PutPendingEnrollment")
		e := newEnrollment("alice")
		ok(t, s.EnrollPending(ctx, "r", "alice", p.SealedSecret, e, []string{"h1", "h2"}), "EnrollPending")
		e.RecoveryCodes = 2
		wantEnrollment(t, s, "r", "alice", e)
		useCode(t, s, "r", "alice", "h1", 1)
		_, err := s.PendingEnrollment(ctx, "r", "alice")
		notFound(t, err, "PendingEnrollment after EnrollPending")
		wantPending(t, s, "r", "bob", p)
		if users, err := s.Users(ctx, "r"); err != nil || !slices.Contains(users, "alice") {
			t.Fatalf("Users = %v, %v; want alice listed", users, err)
		}
	}},
	{"NoPending", func(t *testing.T, s sessions.Store) {
		err := s.EnrollPending(t.Context(), "r", "alice", []byte("pending"), newEnrollment("alice"), []string{"h1"})
		notFound(t, err, "EnrollPending without a pending enrollment")
		_, err = s.Enrollment(t.Context(), "r", "alice")
		notFound(t, err, "Enrollment")
		codeGone(t, s, "r", "alice", "h1")
	}},
	{"OtherPending", func(t *testing.T, s sessions.Store) {
		// Started over (another browser) after this one's code was
		// checked: the checked secret is not the pending one any more.
		ctx := t.Context()
		first := sessions.PendingEnrollment{SealedSecret: []byte("first"), Created: base(), Expires: future(), Browser: "a"}
		ok(t, s.PutPendingEnrollment(ctx, "r", "alice", first), "PutPendingEnrollment")
		second := sessions.PendingEnrollment{SealedSecret: []byte("second"), Created: base(), Expires: future(), Browser: "b"}
		ok(t, s.PutPendingEnrollment(ctx, "r", "alice", second), "PutPendingEnrollment (start over)")
		for _, sealed := range [][]byte{first.SealedSecret, nil, []byte("secon"), []byte("second\x00")} {
			err := s.EnrollPending(ctx, "r", "alice", sealed, newEnrollment("alice"), []string{"h1"})
			notFound(t, err, fmt.Sprintf("EnrollPending with %q", sealed))
		}
		_, err := s.Enrollment(ctx, "r", "alice")
		notFound(t, err, "Enrollment")
		wantPending(t, s, "r", "alice", second)
		ok(t, s.EnrollPending(ctx, "r", "alice", second.SealedSecret, newEnrollment("second"), []string{"h2"}), "EnrollPending")
		codeGone(t, s, "r", "alice", "h1")
		useCode(t, s, "r", "alice", "h2", 0)
	}},
	{"Expired", func(t *testing.T, s sessions.Store) {
		ctx := t.Context()
		p := sessions.PendingEnrollment{SealedSecret: []byte("pending"), Created: past().Add(-time.Minute), Expires: past()}
		ok(t, s.PutPendingEnrollment(ctx, "r", "alice", p), "PutPendingEnrollment")
		notFound(t, s.EnrollPending(ctx, "r", "alice", p.SealedSecret, newEnrollment("alice"), nil), "EnrollPending of an expired pending enrollment")
		_, err := s.Enrollment(ctx, "r", "alice")
		notFound(t, err, "Enrollment")
	}},
	{"Exists", func(t *testing.T, s sessions.Store) {
		ctx := t.Context()
		first := newEnrollment("first")
		enroll(t, s, "r", "alice", first, "h1")
		p := sessions.PendingEnrollment{SealedSecret: []byte("pending"), Created: base(), Expires: future()}
		ok(t, s.PutPendingEnrollment(ctx, "r", "alice", p), "PutPendingEnrollment")
		err := s.EnrollPending(ctx, "r", "alice", p.SealedSecret, newEnrollment("second"), []string{"x1"})
		if !errors.Is(err, sessions.ErrExists) {
			t.Fatalf("EnrollPending of an enrolled user: got error %v, want sessions.ErrExists", err)
		}
		first.RecoveryCodes = 1
		wantEnrollment(t, s, "r", "alice", first)
		codeGone(t, s, "r", "alice", "x1")
	}},
	{"Race", func(t *testing.T, s sessions.Store) {
		// Confirmations of the same pending enrollment and start-overs
		// racing: exactly one enrollment, with a secret that was
		// pending, and every confirmation that did not enroll says why.
		ctx := t.Context()
		p := sessions.PendingEnrollment{SealedSecret: []byte("pending"), Created: base(), Expires: future()}
		ok(t, s.PutPendingEnrollment(ctx, "r", "alice", p), "PutPendingEnrollment")
		var mu sync.Mutex
		var enrolled []int
		race(concurrency, func(i int) {
			if i%2 == 1 {
				np := sessions.PendingEnrollment{SealedSecret: fmt.Appendf(nil, "restart-%d", i), Created: base(), Expires: future()}
				if err := s.PutPendingEnrollment(context.Background(), "r", "alice", np); err != nil {
					t.Errorf("PutPendingEnrollment: %v", err)
				}
				return
			}
			err := s.EnrollPending(context.Background(), "r", "alice", p.SealedSecret, newEnrollment(fmt.Sprint(i)), nil)
			switch {
			case err == nil:
				mu.Lock()
				enrolled = append(enrolled, i)
				mu.Unlock()
			case errors.Is(err, sessions.ErrExists), errors.Is(err, sessions.ErrNotFound):
			default:
				t.Errorf("EnrollPending %d: %v", i, err)
			}
		})
		if len(enrolled) > 1 {
			t.Fatalf("EnrollPending succeeded %d times (%v), want at most once", len(enrolled), enrolled)
		}
		e, err := s.Enrollment(ctx, "r", "alice")
		if len(enrolled) == 1 {
			ok(t, err, "Enrollment")
			if want := newEnrollment(fmt.Sprint(enrolled[0])); !bytes.Equal(e.SealedSecret, want.SealedSecret) {
				t.Fatalf("enrolled %q, want the winner's %q", e.SealedSecret, want.SealedSecret)
			}
		} else {
			notFound(t, err, "Enrollment when every confirmation lost")
		}
	}},
}

func wantAddPending(t *testing.T, s sessions.Store, realm, user string, p sessions.PendingEnrollment, want bool) {
	t.Helper()
	got, err := s.AddPendingEnrollment(t.Context(), realm, user, p)
	ok(t, err, "AddPendingEnrollment")
	if got != want {
		t.Fatalf("AddPendingEnrollment(%q, %q, %q) = %v, want %v", realm, user, p.SealedSecret, got, want)
	}
}

func wantPending(t *testing.T, s sessions.Store, realm, user string, want sessions.PendingEnrollment) {
	t.Helper()
	got, err := s.PendingEnrollment(t.Context(), realm, user)
	ok(t, err, "PendingEnrollment")
	if d := pendingDiff(got, want); d != "" {
		t.Fatalf("PendingEnrollment(%q, %q): %s", realm, user, d)
	}
}

var attemptTests = []test{
	{"Unknown", func(t *testing.T, s sessions.Store) {
		wantAttempts(t, s, "r", "nobody", base(), sessions.Attempts{})
		ok(t, s.ClearFailures(t.Context(), "r", "nobody"), "ClearFailures of an unknown key")
	}},
	{"CountAndLock", func(t *testing.T, s sessions.Store) {
		ctx := t.Context()
		t0 := base()
		windowEnds := t0.Add(limits.Window)
		a, err := s.AddFailure(ctx, "r", "alice", t0, limits)
		ok(t, err, "AddFailure")
		if d := attemptsDiff(a, sessions.Attempts{Failures: 1, WindowEnds: windowEnds}); d != "" {
			t.Fatalf("first AddFailure: %s", d)
		}
		if a.Locked(t0) {
			t.Fatal("locked after one failure")
		}
		a, err = s.AddFailure(ctx, "r", "alice", t0.Add(time.Minute), limits)
		ok(t, err, "AddFailure")
		if d := attemptsDiff(a, sessions.Attempts{Failures: 2, WindowEnds: windowEnds}); d != "" {
			t.Fatalf("second AddFailure: %s", d)
		}
		wantAttempts(t, s, "r", "alice", t0.Add(2*time.Minute), sessions.Attempts{Failures: 2, WindowEnds: windowEnds})

		t3 := t0.Add(3 * time.Minute)
		lockedUntil := t3.Add(limits.Lockout)
		a, err = s.AddFailure(ctx, "r", "alice", t3, limits)
		ok(t, err, "AddFailure")
		if d := attemptsDiff(a, sessions.Attempts{Failures: 3, WindowEnds: windowEnds, LockedUntil: lockedUntil}); d != "" {
			t.Fatalf("AddFailure reaching Max: %s", d)
		}
		if !a.Locked(t3) {
			t.Fatal("not locked after reaching Max")
		}
		got, err := s.Attempts(ctx, "r", "alice", t3.Add(time.Minute))
		ok(t, err, "Attempts")
		if !got.Locked(t3.Add(time.Minute)) || got.Failures != 3 || !got.LockedUntil.Equal(lockedUntil) {
			t.Fatalf("Attempts during lockout = %+v, want 3 failures locked until %v", got, lockedUntil)
		}
		// Still locked after the window closed.
		got, err = s.Attempts(ctx, "r", "alice", windowEnds.Add(time.Minute))
		ok(t, err, "Attempts")
		if !got.Locked(windowEnds.Add(time.Minute)) {
			t.Fatalf("Attempts after the window, before the lockout ends = %+v, want locked", got)
		}
		// After the lockout.
		after := lockedUntil.Add(time.Second)
		got, err = s.Attempts(ctx, "r", "alice", after)
		ok(t, err, "Attempts")
		if got.Locked(after) {
			t.Fatalf("Attempts after the lockout = %+v, want unlocked", got)
		}
		a, err = s.AddFailure(ctx, "r", "alice", after, limits)
		ok(t, err, "AddFailure")
		if d := attemptsDiff(a, sessions.Attempts{Failures: 1, WindowEnds: after.Add(limits.Window)}); d != "" {
			t.Fatalf("AddFailure after window and lockout: %s", d)
		}
		// Other keys are separate.
		wantAttempts(t, s, "r", "bob", t3, sessions.Attempts{})
	}},
	{"WindowRestart", func(t *testing.T, s sessions.Store) {
		ctx := t.Context()
		t0 := base()
		for i := range 2 {
			_, err := s.AddFailure(ctx, "r", "alice", t0.Add(time.Duration(i)*time.Minute), limits)
			ok(t, err, "AddFailure")
		}
		next := t0.Add(limits.Window).Add(time.Second)
		// The window has closed: the count starts again from zero.
		wantAttempts(t, s, "r", "alice", next, sessions.Attempts{})
		a, err := s.AddFailure(ctx, "r", "alice", next, limits)
		ok(t, err, "AddFailure")
		if d := attemptsDiff(a, sessions.Attempts{Failures: 1, WindowEnds: next.Add(limits.Window)}); d != "" {
			t.Fatalf("AddFailure in a new window: %s", d)
		}
		wantAttempts(t, s, "r", "alice", next, sessions.Attempts{Failures: 1, WindowEnds: next.Add(limits.Window)})
	}},
	{"Clear", func(t *testing.T, s sessions.Store) {
		ctx := t.Context()
		t0 := base()
		for range limits.Max {
			_, err := s.AddFailure(ctx, "r", "alice", t0, limits)
			ok(t, err, "AddFailure")
		}
		_, err := s.AddFailure(ctx, "r", "bob", t0, limits)
		ok(t, err, "AddFailure")
		a, err := s.Attempts(ctx, "r", "alice", t0)
		ok(t, err, "Attempts")
		if !a.Locked(t0) {
			t.Fatalf("Attempts = %+v, want locked", a)
		}
		ok(t, s.ClearFailures(ctx, "r", "alice"), "ClearFailures")
		wantAttempts(t, s, "r", "alice", t0, sessions.Attempts{})
		a, err = s.AddFailure(ctx, "r", "alice", t0, limits)
		ok(t, err, "AddFailure")
		if a.Failures != 1 || a.Locked(t0) {
			t.Fatalf("AddFailure after ClearFailures = %+v, want 1 failure, unlocked", a)
		}
		wantAttempts(t, s, "r", "bob", t0, sessions.Attempts{Failures: 1, WindowEnds: t0.Add(limits.Window)})
	}},
	{"Concurrent", func(t *testing.T, s sessions.Store) {
		t0 := base()
		lim := sessions.Limit{Max: 1000, Window: time.Hour, Lockout: time.Hour}
		counts := make([]int, concurrency)
		errs := make([]error, concurrency)
		race(concurrency, func(i int) {
			var a sessions.Attempts
			a, errs[i] = s.AddFailure(t.Context(), "r", "alice", t0, lim)
			counts[i] = a.Failures
		})
		seen := make(map[int]bool)
		for i := range concurrency {
			if errs[i] != nil {
				t.Fatalf("goroutine %d: %v", i, errs[i])
			}
			seen[counts[i]] = true
		}
		// Atomic increments return each count from 1 to n exactly once.
		for n := 1; n <= concurrency; n++ {
			if !seen[n] {
				t.Fatalf("concurrent AddFailure returned counts %v, want each of 1..%d once", counts, concurrency)
			}
		}
		wantAttempts(t, s, "r", "alice", t0, sessions.Attempts{Failures: concurrency, WindowEnds: t0.Add(lim.Window)})
	}},
}

var resealTests = []test{
	{"Swaps", func(t *testing.T, s sessions.Store) {
		e := newEnrollment("alice")
		enroll(t, s, "r", "alice", e, "h1", "h2")
		sealed := []byte("resealed\x00\xfe/+=alice")
		swapped, err := s.ReplaceSealedSecret(t.Context(), "r", "alice", e.SealedSecret, sealed)
		ok(t, err, "ReplaceSealedSecret")
		if !swapped {
			t.Fatal("ReplaceSealedSecret with the stored bytes did not swap")
		}
		// Only the sealed secret changed: parameters, creation time and
		// recovery codes are as they were.
		want := e
		want.SealedSecret, want.RecoveryCodes = sealed, 2
		wantEnrollment(t, s, "r", "alice", want)
		got, err := s.Enrollment(t.Context(), "r", "alice")
		ok(t, err, "Enrollment")
		if got.Algorithm != e.Algorithm || got.Digits != e.Digits || got.Period != e.Period || !got.Created.Equal(e.Created) {
			t.Fatalf("ReplaceSealedSecret changed the enrollment: %+v, want %+v", got, want)
		}
		useCode(t, s, "r", "alice", "h2", 1)
	}},
	{"Stale", func(t *testing.T, s sessions.Store) {
		e := newEnrollment("alice")
		enroll(t, s, "r", "alice", e, "h1")
		for name, old := range map[string][]byte{
			"other bytes": []byte("sealed\x00\xffbob"),
			"prefix":      e.SealedSecret[:len(e.SealedSecret)-1],
			"empty":       nil,
		} {
			swapped, err := s.ReplaceSealedSecret(t.Context(), "r", "alice", old, []byte("new"))
			ok(t, err, "ReplaceSealedSecret "+name)
			if swapped {
				t.Fatalf("ReplaceSealedSecret with %s swapped", name)
			}
		}
		e.RecoveryCodes = 1
		wantEnrollment(t, s, "r", "alice", e)
		// Another user's or realm's enrollment is not touched.
		enroll(t, s, "r2", "alice", newEnrollment("x"), "h1")
		_, err := s.ReplaceSealedSecret(t.Context(), "r2", "alice", e.SealedSecret, []byte("new"))
		ok(t, err, "ReplaceSealedSecret in another realm")
		wantEnrollment(t, s, "r", "alice", e)
	}},
	{"NotEnrolled", func(t *testing.T, s sessions.Store) {
		ctx := t.Context()
		_, err := s.ReplaceSealedSecret(ctx, "r", "alice", []byte("a"), []byte("b"))
		notFound(t, err, "ReplaceSealedSecret for a user not enrolled")
		_, err = s.Enrollment(ctx, "r", "alice")
		notFound(t, err, "Enrollment after a refused ReplaceSealedSecret")
	}},
	{"AfterReset", func(t *testing.T, s sessions.Store) {
		// A re-seal computed from the old enrollment must not overwrite a
		// new one made after a reset.
		ctx := t.Context()
		old := newEnrollment("first")
		enroll(t, s, "r", "alice", old)
		ok(t, s.ResetUser(ctx, "r", "alice"), "ResetUser")
		e := newEnrollment("second")
		enroll(t, s, "r", "alice", e)
		swapped, err := s.ReplaceSealedSecret(ctx, "r", "alice", old.SealedSecret, []byte("resealed first"))
		ok(t, err, "ReplaceSealedSecret")
		if swapped {
			t.Fatal("ReplaceSealedSecret overwrote a newer enrollment")
		}
		wantEnrollment(t, s, "r", "alice", e)
	}},
	{"Concurrent", func(t *testing.T, s sessions.Store) {
		e := newEnrollment("alice")
		enroll(t, s, "r", "alice", e)
		var mu sync.Mutex
		var winners []int
		race(concurrency, func(i int) {
			swapped, err := s.ReplaceSealedSecret(context.Background(), "r", "alice", e.SealedSecret, fmt.Appendf(nil, "resealed-%d", i))
			if err != nil {
				t.Errorf("ReplaceSealedSecret: %v", err)
				return
			}
			if swapped {
				mu.Lock()
				winners = append(winners, i)
				mu.Unlock()
			}
		})
		if len(winners) != 1 {
			t.Fatalf("%d concurrent swaps from the same bytes succeeded, want 1", len(winners))
		}
		e.SealedSecret = fmt.Appendf(nil, "resealed-%d", winners[0])
		wantEnrollment(t, s, "r", "alice", e)
	}},
}
