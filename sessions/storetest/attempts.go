package storetest

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-2fa/caddy-2fa/sessions"
)

// reserve calls ReserveAttempt and fails the test on an error.
func reserve(t *testing.T, s sessions.Store, realm string, now time.Time, counters ...sessions.Counter) (sessions.Attempts, bool) {
	t.Helper()
	a, granted, err := s.ReserveAttempt(t.Context(), realm, now, counters...)
	ok(t, err, "ReserveAttempt")
	return a, granted
}

var reserveTests = []test{
	{"CountsEveryCounter", func(t *testing.T, s sessions.Store) {
		t0 := base()
		user := sessions.Counter{Key: "user:alice", Limit: limits}
		ip := sessions.Counter{Key: "ip:192.0.2.1", Limit: sessions.Limit{Max: 10, Window: 2 * time.Hour, Lockout: time.Hour}}
		a, granted := reserve(t, s, "r", t0, user, ip)
		if !granted {
			t.Fatalf("first reservation refused: %+v", a)
		}
		if d := attemptsDiff(a, sessions.Attempts{Failures: 1, WindowEnds: t0.Add(limits.Window)}); d != "" {
			t.Fatalf("first reservation returned %s", d)
		}
		wantAttempts(t, s, "r", "user:alice", t0, sessions.Attempts{Failures: 1, WindowEnds: t0.Add(limits.Window)})
		wantAttempts(t, s, "r", "ip:192.0.2.1", t0, sessions.Attempts{Failures: 1, WindowEnds: t0.Add(2 * time.Hour)})
		// A reservation is a failure to every other reader: AddFailure
		// counts on from it.
		b, err := s.AddFailure(t.Context(), "r", "user:alice", t0, limits)
		ok(t, err, "AddFailure")
		if b.Failures != 2 {
			t.Fatalf("AddFailure after a reservation: Failures = %d, want 2", b.Failures)
		}
		// Other realms and keys are separate.
		wantAttempts(t, s, "r2", "user:alice", t0, sessions.Attempts{})
		wantAttempts(t, s, "r", "user:bob", t0, sessions.Attempts{})
	}},
	{"LocksAtMaxThenRefuses", func(t *testing.T, s sessions.Store) {
		t0 := base()
		user := sessions.Counter{Key: "user:alice", Limit: limits}
		ip := sessions.Counter{Key: "ip:192.0.2.1", Limit: sessions.Limit{Max: 100, Window: time.Hour, Lockout: time.Hour}}
		lockedUntil := t0.Add(limits.Lockout)
		for i := 1; i <= limits.Max; i++ {
			a, granted := reserve(t, s, "r", t0, user, ip)
			if !granted {
				t.Fatalf("reservation %d of %d refused: %+v", i, limits.Max, a)
			}
			// The reservation that reaches Max is granted (it is the
			// last attempt) and reports the lockout it started.
			if locked := a.Locked(t0); locked != (i == limits.Max) {
				t.Fatalf("reservation %d: locked = %v (%+v)", i, locked, a)
			}
		}
		for range 3 {
			a, granted := reserve(t, s, "r", t0.Add(time.Minute), ip, user)
			if granted {
				t.Fatal("a reservation past Max was granted")
			}
			if !a.Locked(t0.Add(time.Minute)) || !a.LockedUntil.Equal(lockedUntil) {
				t.Fatalf("refused reservation returned %+v, want locked until %v", a, lockedUntil)
			}
		}
		// Refused reservations count nothing, on any counter.
		wantAttempts(t, s, "r", "user:alice", t0, sessions.Attempts{Failures: limits.Max, WindowEnds: t0.Add(limits.Window), LockedUntil: lockedUntil})
		wantAttempts(t, s, "r", "ip:192.0.2.1", t0, sessions.Attempts{Failures: limits.Max, WindowEnds: t0.Add(time.Hour)})
		// After the lockout, a new window starts.
		after := lockedUntil.Add(time.Second)
		a, granted := reserve(t, s, "r", after, user, ip)
		if !granted || a.Failures != 1 || a.Locked(after) {
			t.Fatalf("reservation after the lockout = %+v, %v; want granted, 1 failure", a, granted)
		}
	}},
	{"AnyLockRefuses", func(t *testing.T, s sessions.Store) {
		// A locked client address refuses the attempt, returns the
		// longest lockout and leaves the user's counter alone.
		t0 := base()
		short := sessions.Limit{Max: 1, Window: time.Hour, Lockout: time.Hour}
		long := sessions.Limit{Max: 1, Window: time.Hour, Lockout: 3 * time.Hour}
		_, err := s.AddFailure(t.Context(), "r", "ip:192.0.2.1", t0, long)
		ok(t, err, "AddFailure")
		_, err = s.AddFailure(t.Context(), "r", "user-day:alice", t0, short)
		ok(t, err, "AddFailure")
		a, granted := reserve(t, s, "r", t0,
			sessions.Counter{Key: "user:alice", Limit: limits},
			sessions.Counter{Key: "user-day:alice", Limit: short},
			sessions.Counter{Key: "ip:192.0.2.1", Limit: long})
		if granted {
			t.Fatal("reservation granted while two counters are locked")
		}
		if !a.LockedUntil.Equal(t0.Add(3 * time.Hour)) {
			t.Fatalf("refused reservation returned %+v, want the 3h lockout", a)
		}
		wantAttempts(t, s, "r", "user:alice", t0, sessions.Attempts{})
	}},
	{"Release", func(t *testing.T, s sessions.Store) {
		ctx := t.Context()
		t0 := base()
		ip := sessions.Counter{Key: "ip:192.0.2.1", Limit: limits}
		for range limits.Max {
			reserve(t, s, "r", t0, ip)
		}
		if _, granted := reserve(t, s, "r", t0, ip); granted {
			t.Fatal("reservation past Max granted")
		}
		// Giving back the last attempt lifts the lockout it started.
		ok(t, s.ReleaseAttempt(ctx, "r", ip.Key, t0, limits), "ReleaseAttempt")
		wantAttempts(t, s, "r", ip.Key, t0, sessions.Attempts{Failures: limits.Max - 1, WindowEnds: t0.Add(limits.Window)})
		if a, granted := reserve(t, s, "r", t0, ip); !granted || !a.Locked(t0) {
			t.Fatalf("reservation after a release = %+v, %v; want granted, locked again", a, granted)
		}
		// Down to zero, then nothing more to give back.
		for range limits.Max + 2 {
			ok(t, s.ReleaseAttempt(ctx, "r", ip.Key, t0, limits), "ReleaseAttempt")
		}
		wantAttempts(t, s, "r", ip.Key, t0, sessions.Attempts{})
		ok(t, s.ReleaseAttempt(ctx, "r", "ip:unknown", t0, limits), "ReleaseAttempt of an unknown key")
		wantAttempts(t, s, "r", "ip:unknown", t0, sessions.Attempts{})
		// A release after the window closed does not touch a counter
		// that only a lockout keeps.
		for range limits.Max {
			reserve(t, s, "r", t0, ip)
		}
		late := t0.Add(limits.Window).Add(time.Second)
		ok(t, s.ReleaseAttempt(ctx, "r", ip.Key, late, limits), "ReleaseAttempt after the window")
		if a, err := s.Attempts(ctx, "r", ip.Key, late); err != nil || !a.Locked(late) || a.Failures != limits.Max {
			t.Fatalf("Attempts after a late release = %+v, %v; want still locked with %d", a, err, limits.Max)
		}
	}},
	{"ClearedByClearFailures", func(t *testing.T, s sessions.Store) {
		t0 := base()
		user := sessions.Counter{Key: "user:alice", Limit: limits}
		for range limits.Max {
			reserve(t, s, "r", t0, user)
		}
		ok(t, s.ClearFailures(t.Context(), "r", user.Key), "ClearFailures")
		if a, granted := reserve(t, s, "r", t0, user); !granted || a.Failures != 1 {
			t.Fatalf("reservation after ClearFailures = %+v, %v; want granted, 1", a, granted)
		}
	}},
	{"Concurrent", func(t *testing.T, s sessions.Store) {
		// However many race, exactly Max reservations are granted: the
		// number of codes checked never exceeds the budget.
		const n = 60
		t0 := base()
		user := sessions.Counter{Key: "user:alice", Limit: sessions.Limit{Max: 7, Window: time.Hour, Lockout: time.Hour}}
		day := sessions.Counter{Key: "user-day:alice", Limit: sessions.Limit{Max: 100, Window: 24 * time.Hour, Lockout: 24 * time.Hour}}
		ip := sessions.Counter{Key: "ip:192.0.2.1", Limit: sessions.Limit{Max: 1000, Window: time.Hour, Lockout: time.Hour}}
		var granted, failed atomic.Int32
		race(n, func(i int) {
			_, g, err := s.ReserveAttempt(t.Context(), "r", t0, user, day, ip)
			switch {
			case err != nil:
				failed.Add(1)
			case g:
				granted.Add(1)
			}
		})
		if failed.Load() != 0 {
			t.Fatalf("%d concurrent reservations failed", failed.Load())
		}
		if got := granted.Load(); got != 7 {
			t.Fatalf("%d of %d concurrent reservations granted, want exactly Max = 7", got, n)
		}
		for _, c := range []sessions.Counter{user, day, ip} {
			a, err := s.Attempts(t.Context(), "r", c.Key, t0)
			ok(t, err, "Attempts")
			if a.Failures != 7 {
				t.Fatalf("%s counted %d, want 7 (only granted reservations count)", c.Key, a.Failures)
			}
		}
	}},
	{"NoCounter", func(t *testing.T, s sessions.Store) {
		_, granted, err := s.ReserveAttempt(t.Context(), "r", base())
		if err == nil || granted {
			t.Fatalf("ReserveAttempt without counters = %v, %v; want an error", granted, err)
		}
	}},
}
