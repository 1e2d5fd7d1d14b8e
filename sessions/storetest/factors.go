package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-2fa/caddy-2fa/sessions"
)

func factorDiff(got, want sessions.Factor) string {
	var d []string
	if got.ID != want.ID {
		d = append(d, fmt.Sprintf("ID %q, want %q", got.ID, want.ID))
	}
	if got.Kind != want.Kind {
		d = append(d, fmt.Sprintf("Kind %q, want %q", got.Kind, want.Kind))
	}
	if got.Name != want.Name {
		d = append(d, fmt.Sprintf("Name %q, want %q", got.Name, want.Name))
	}
	if !timeEqual(got.Added, want.Added) {
		d = append(d, fmt.Sprintf("Added %v, want %v", got.Added, want.Added))
	}
	if !timeEqual(got.LastUsed, want.LastUsed) {
		d = append(d, fmt.Sprintf("LastUsed %v, want %v", got.LastUsed, want.LastUsed))
	}
	if !bytes.Equal(got.Sealed, want.Sealed) {
		d = append(d, fmt.Sprintf("Sealed %x, want %x", got.Sealed, want.Sealed))
	}
	if !bytes.Equal(got.MAC, want.MAC) {
		d = append(d, fmt.Sprintf("MAC %x, want %x", got.MAC, want.MAC))
	}
	switch {
	case (got.TOTP == nil) != (want.TOTP == nil):
		d = append(d, fmt.Sprintf("TOTP %v, want %v", got.TOTP, want.TOTP))
	case got.TOTP != nil && *got.TOTP != *want.TOTP:
		d = append(d, fmt.Sprintf("TOTP %+v, want %+v", *got.TOTP, *want.TOTP))
	}
	return strings.Join(d, "; ")
}

// wantFactors checks the user's factors, in order.
func wantFactors(t *testing.T, s sessions.Store, realm, user string, want ...sessions.Factor) []sessions.Factor {
	t.Helper()
	got, err := s.Factors(t.Context(), realm, user)
	ok(t, err, fmt.Sprintf("Factors(%q, %q)", realm, user))
	if got == nil {
		t.Fatalf("Factors(%q, %q) = nil, want a (possibly empty) list", realm, user)
	}
	if len(got) != len(want) {
		ids := make([]string, len(got))
		for i, f := range got {
			ids[i] = f.ID
		}
		t.Fatalf("Factors(%q, %q) = %d factors %q, want %d", realm, user, len(got), ids, len(want))
	}
	for i := range want {
		if d := factorDiff(got[i], want[i]); d != "" {
			t.Fatalf("Factors(%q, %q)[%d]: %s", realm, user, i, d)
		}
	}
	return got
}

// legacyFactor is how the enrollment e appears among the factors.
func legacyFactor(e sessions.Enrollment) sessions.Factor {
	return sessions.Factor{
		ID:     sessions.LegacyTOTPFactorID,
		Kind:   sessions.FactorTOTP,
		Name:   sessions.LegacyTOTPFactorName,
		Added:  e.Created,
		Sealed: e.SealedSecret,
		TOTP:   &sessions.TOTPParams{Algorithm: e.Algorithm, Digits: e.Digits, Period: e.Period},
	}
}

// newFactor is a TOTP factor with distinct data.
func newFactor(id string, added time.Time) sessions.Factor {
	return sessions.Factor{
		ID:     id,
		Kind:   sessions.FactorTOTP,
		Name:   "phone " + id,
		Added:  added,
		Sealed: []byte("sealed\x00\xff" + id),
		TOTP:   &sessions.TOTPParams{Algorithm: "SHA1", Digits: 6, Period: 30},
		MAC:    []byte("mac\x00" + id),
	}
}

func addFactor(t *testing.T, s sessions.Store, realm, user string, f sessions.Factor) {
	t.Helper()
	ok(t, s.AddFactor(t.Context(), realm, user, f, sessions.DefaultMaxFactors), fmt.Sprintf("AddFactor(%q, %q, %q)", realm, user, f.ID))
}

func wantFactorStep(t *testing.T, s sessions.Store, realm, user, id string, step int64, expires time.Time, want bool) {
	t.Helper()
	got, err := s.AcceptFactorStep(t.Context(), realm, user, id, step, expires)
	ok(t, err, fmt.Sprintf("AcceptFactorStep(%q, %q, %q, %d)", realm, user, id, step))
	if got != want {
		t.Fatalf("AcceptFactorStep(%q, %q, %q, %d) = %v, want %v", realm, user, id, step, got, want)
	}
}

var t2024 = time.Date(2024, 2, 3, 4, 5, 6, 7, time.UTC)

var factorTests = []test{
	{"NoneForUnknownUser", func(t *testing.T, s sessions.Store) {
		wantFactors(t, s, "r1", "alice")
	}},
	{"EnrollmentIsAFactor", func(t *testing.T, s sessions.Store) {
		// Written with the API of before factors: Enroll and
		// EnrollPending. Read back as one TOTP factor, without any
		// rewrite.
		ctx := t.Context()
		e := newEnrollment("alice")
		enroll(t, s, "r1", "alice", e, "h1")
		wantFactors(t, s, "r1", "alice", legacyFactor(e))
		p := sessions.PendingEnrollment{SealedSecret: []byte("bob-pending"), Created: base(), Expires: future()}
		ok(t, s.PutPendingEnrollment(ctx, "r1", "bob", p), "PutPendingEnrollment")
		eb := newEnrollment("bob")
		ok(t, s.EnrollPending(ctx, "r1", "bob", p.SealedSecret, eb, []string{"h2"}), "EnrollPending")
		wantFactors(t, s, "r1", "bob", legacyFactor(eb))
		// The ID is stable: reading again gives the same factor.
		wantFactors(t, s, "r1", "alice", legacyFactor(e))
		wantFactors(t, s, "r2", "alice")
	}},
	{"AddRenameMarkUsed", func(t *testing.T, s sessions.Store) {
		ctx := t.Context()
		e := newEnrollment("alice")
		enroll(t, s, "r1", "alice", e, "h1")
		f1, f2 := newFactor(sessions.NewFactorID(), t2020), newFactor(sessions.NewFactorID(), t2021)
		addFactor(t, s, "r1", "alice", f1)
		addFactor(t, s, "r1", "alice", f2)
		l := legacyFactor(e)
		wantFactors(t, s, "r1", "alice", l, f1, f2)
		ok(t, s.RenameFactor(ctx, "r1", "alice", f1.ID, "YubiKey 5 ✓"), "RenameFactor")
		ok(t, s.RenameFactor(ctx, "r1", "alice", l.ID, "old phone"), "RenameFactor(legacy)")
		used := base()
		ok(t, s.MarkFactorUsed(ctx, "r1", "alice", f2.ID, used), "MarkFactorUsed")
		ok(t, s.MarkFactorUsed(ctx, "r1", "alice", l.ID, t2024), "MarkFactorUsed(legacy)")
		f1.Name, l.Name, f2.LastUsed, l.LastUsed = "YubiKey 5 ✓", "old phone", used, t2024
		wantFactors(t, s, "r1", "alice", l, f1, f2)
		notFound(t, s.RenameFactor(ctx, "r1", "alice", "nope", "x"), "RenameFactor(unknown)")
		notFound(t, s.MarkFactorUsed(ctx, "r1", "alice", "nope", used), "MarkFactorUsed(unknown)")
		notFound(t, s.RenameFactor(ctx, "r2", "alice", f1.ID, "x"), "RenameFactor(other realm)")
		notFound(t, s.MarkFactorUsed(ctx, "r1", "bob", f1.ID, used), "MarkFactorUsed(other user)")
		// The enrollment itself is as it was.
		e.RecoveryCodes = 1
		wantEnrollment(t, s, "r1", "alice", e)
		// A user without an enrollment can hold factors too.
		addFactor(t, s, "r1", "carol", f1)
		wantFactors(t, s, "r1", "carol", f1)
	}},
	{"AddRefused", func(t *testing.T, s sessions.Store) {
		ctx := t.Context()
		e := newEnrollment("alice")
		enroll(t, s, "r1", "alice", e)
		f := newFactor("f1", t2020)
		addFactor(t, s, "r1", "alice", f)
		if err := s.AddFactor(ctx, "r1", "alice", newFactor("f1", t2021), 10); !errors.Is(err, sessions.ErrExists) {
			t.Fatalf("AddFactor(same ID) = %v, want sessions.ErrExists", err)
		}
		if err := s.AddFactor(ctx, "r1", "alice", newFactor(sessions.LegacyTOTPFactorID, t2021), 10); err == nil {
			t.Fatal("AddFactor(LegacyTOTPFactorID) succeeded")
		}
		if err := s.AddFactor(ctx, "r1", "alice", newFactor("", t2021), 10); err == nil {
			t.Fatal("AddFactor with an empty ID succeeded")
		}
		// The enrollment counts toward the cap: 2 of 3 are taken.
		ok(t, s.AddFactor(ctx, "r1", "alice", newFactor("f2", t2021), 3), "AddFactor(third of 3)")
		if err := s.AddFactor(ctx, "r1", "alice", newFactor("f3", t2021), 3); !errors.Is(err, sessions.ErrTooManyFactors) {
			t.Fatalf("AddFactor(fourth of 3) = %v, want sessions.ErrTooManyFactors", err)
		}
		wantFactors(t, s, "r1", "alice", legacyFactor(e), f, newFactor("f2", t2021))
	}},
	{"Remove", func(t *testing.T, s sessions.Store) {
		ctx := t.Context()
		f1, f2 := newFactor("f1", t2020), newFactor("f2", t2021)
		addFactor(t, s, "r1", "alice", f1)
		addFactor(t, s, "r1", "alice", f2)
		notFound(t, s.RemoveFactor(ctx, "r1", "alice", "nope", false), "RemoveFactor(unknown)")
		ok(t, s.RemoveFactor(ctx, "r1", "alice", f1.ID, true), "RemoveFactor(one of two, keepOne)")
		wantFactors(t, s, "r1", "alice", f2)
		if err := s.RemoveFactor(ctx, "r1", "alice", f2.ID, true); !errors.Is(err, sessions.ErrLastFactor) {
			t.Fatalf("RemoveFactor(last, keepOne) = %v, want sessions.ErrLastFactor", err)
		}
		wantFactors(t, s, "r1", "alice", f2)
		ok(t, s.RemoveFactor(ctx, "r1", "alice", f2.ID, false), "RemoveFactor(last)")
		wantFactors(t, s, "r1", "alice")
		notFound(t, s.RemoveFactor(ctx, "r1", "alice", f2.ID, false), "RemoveFactor(again)")
	}},
	{"RemoveEnrollmentFactor", func(t *testing.T, s sessions.Store) {
		ctx := t.Context()
		e := newEnrollment("alice")
		enroll(t, s, "r1", "alice", e, "h1")
		if err := s.RemoveFactor(ctx, "r1", "alice", sessions.LegacyTOTPFactorID, true); !errors.Is(err, sessions.ErrLastFactor) {
			t.Fatalf("RemoveFactor(only factor, the enrollment, keepOne) = %v, want sessions.ErrLastFactor", err)
		}
		f := newFactor("f1", t2021)
		addFactor(t, s, "r1", "alice", f)
		ok(t, s.RemoveFactor(ctx, "r1", "alice", sessions.LegacyTOTPFactorID, true), "RemoveFactor(enrollment)")
		wantFactors(t, s, "r1", "alice", f)
		_, err := s.Enrollment(ctx, "r1", "alice")
		notFound(t, err, "Enrollment after removing its factor")
		_, err = s.AcceptFactorStep(ctx, "r1", "alice", sessions.LegacyTOTPFactorID, 5, future())
		notFound(t, err, "AcceptFactorStep(removed enrollment)")
	}},
	{"ResealShows", func(t *testing.T, s sessions.Store) {
		ctx := t.Context()
		e := newEnrollment("alice")
		enroll(t, s, "r1", "alice", e)
		ok(t, s.RenameFactor(ctx, "r1", "alice", sessions.LegacyTOTPFactorID, "iPhone"), "RenameFactor")
		swapped, err := s.ReplaceSealedSecret(ctx, "r1", "alice", e.SealedSecret, []byte("resealed"))
		ok(t, err, "ReplaceSealedSecret")
		if !swapped {
			t.Fatal("ReplaceSealedSecret did not swap")
		}
		l := legacyFactor(e)
		l.Name, l.Sealed = "iPhone", []byte("resealed")
		wantFactors(t, s, "r1", "alice", l)
	}},
	{"StepPerFactor", func(t *testing.T, s sessions.Store) {
		ctx := t.Context()
		enroll(t, s, "r1", "alice", newEnrollment("alice"))
		addFactor(t, s, "r1", "alice", newFactor("f1", t2020))
		addFactor(t, s, "r1", "alice", newFactor("f2", t2020))
		exp := future()
		wantFactorStep(t, s, "r1", "alice", "f1", 100, exp, true)
		wantFactorStep(t, s, "r1", "alice", "f1", 100, exp, false)
		wantFactorStep(t, s, "r1", "alice", "f1", 99, exp, false)
		// Another factor's window is its own.
		wantFactorStep(t, s, "r1", "alice", "f2", 100, exp, true)
		// The enrollment's factor shares the window of AcceptStep.
		wantFactorStep(t, s, "r1", "alice", sessions.LegacyTOTPFactorID, 100, exp, true)
		wantAccept(t, s, "r1", "alice", 100, exp, false)
		wantAccept(t, s, "r1", "alice", 101, exp, true)
		wantFactorStep(t, s, "r1", "alice", sessions.LegacyTOTPFactorID, 101, exp, false)
		wantFactorStep(t, s, "r1", "alice", "f1", 101, exp, true)
		// An expired record accepts any step again.
		wantFactorStep(t, s, "r1", "alice", "f2", 200, past(), true)
		wantFactorStep(t, s, "r1", "alice", "f2", 150, exp, true)
		// Other users and realms are not affected.
		addFactor(t, s, "r2", "alice", newFactor("f1", t2020))
		wantFactorStep(t, s, "r2", "alice", "f1", 101, exp, true)
		_, err := s.AcceptFactorStep(ctx, "r1", "alice", "nope", 1, exp)
		notFound(t, err, "AcceptFactorStep(unknown)")
		_, err = s.AcceptFactorStep(ctx, "r1", "bob", sessions.LegacyTOTPFactorID, 1, exp)
		notFound(t, err, "AcceptFactorStep(enrollment of a user without one)")
		// Removing a factor forgets its window; metadata changes keep it.
		ok(t, s.RenameFactor(ctx, "r1", "alice", "f1", "x"), "RenameFactor")
		wantFactorStep(t, s, "r1", "alice", "f1", 101, exp, false)
		ok(t, s.RemoveFactor(ctx, "r1", "alice", "f1", true), "RemoveFactor")
		addFactor(t, s, "r1", "alice", newFactor("f1", t2020))
		wantFactorStep(t, s, "r1", "alice", "f1", 101, exp, true)
	}},
	{"ResetRemovesAll", func(t *testing.T, s sessions.Store) {
		ctx := t.Context()
		enroll(t, s, "r1", "alice", newEnrollment("alice"))
		addFactor(t, s, "r1", "alice", newFactor("f1", t2020))
		addFactor(t, s, "r1", "bob", newFactor("f1", t2020))
		wantFactorStep(t, s, "r1", "alice", "f1", 100, future(), true)
		ok(t, s.ResetUser(ctx, "r1", "alice"), "ResetUser")
		wantFactors(t, s, "r1", "alice")
		wantFactors(t, s, "r1", "bob", newFactor("f1", t2020))
		addFactor(t, s, "r1", "alice", newFactor("f1", t2020))
		wantFactorStep(t, s, "r1", "alice", "f1", 100, future(), true)
	}},
	{"ConcurrentAddsStopAtCap", func(t *testing.T, s sessions.Store) {
		ctx := t.Context()
		enroll(t, s, "r1", "alice", newEnrollment("alice"))
		const maxFactors = 5
		var added, full atomic.Int32
		race(concurrency, func(i int) {
			err := s.AddFactor(ctx, "r1", "alice", newFactor(fmt.Sprintf("f%d", i), t2020), maxFactors)
			switch {
			case err == nil:
				added.Add(1)
			case errors.Is(err, sessions.ErrTooManyFactors):
				full.Add(1)
			default:
				t.Errorf("AddFactor: %v", err)
			}
		})
		if added.Load() != maxFactors-1 || full.Load() != concurrency-(maxFactors-1) {
			t.Fatalf("%d concurrent AddFactor: %d added, %d refused; want %d added", concurrency, added.Load(), full.Load(), maxFactors-1)
		}
		got, err := s.Factors(ctx, "r1", "alice")
		ok(t, err, "Factors")
		if len(got) != maxFactors {
			t.Fatalf("after concurrent adds: %d factors, want %d", len(got), maxFactors)
		}
	}},
	{"ConcurrentRemoveKeepsOne", func(t *testing.T, s sessions.Store) {
		ctx := t.Context()
		for round := range 5 {
			user := fmt.Sprintf("u%d", round)
			enroll(t, s, "r1", user, newEnrollment(user))
			addFactor(t, s, "r1", user, newFactor("f1", t2020))
			ids := []string{sessions.LegacyTOTPFactorID, "f1"}
			var removed atomic.Int32
			race(concurrency, func(i int) {
				err := s.RemoveFactor(ctx, "r1", user, ids[i%2], true)
				switch {
				case err == nil:
					removed.Add(1)
				case errors.Is(err, sessions.ErrLastFactor), errors.Is(err, sessions.ErrNotFound):
				default:
					t.Errorf("RemoveFactor: %v", err)
				}
			})
			got, err := s.Factors(ctx, "r1", user)
			ok(t, err, "Factors")
			if removed.Load() != 1 || len(got) != 1 {
				t.Fatalf("concurrent RemoveFactor(keepOne) of two factors: %d removed, %d left; want 1 and 1", removed.Load(), len(got))
			}
			_, err = s.Enrollment(ctx, "r1", user)
			if hasEnr := err == nil; hasEnr != (got[0].ID == sessions.LegacyTOTPFactorID) {
				t.Fatalf("factor %q left but Enrollment error is %v", got[0].ID, err)
			}
		}
	}},
	{"ConcurrentUpdatesKeepEachOther", func(t *testing.T, s sessions.Store) {
		// Renames and uses of different factors racing: none is lost.
		ctx := t.Context()
		const n = 8
		var want []sessions.Factor
		for i := range n {
			f := newFactor(fmt.Sprintf("f%d", i), t2020)
			addFactor(t, s, "r1", "alice", f)
			f.Name, f.LastUsed = fmt.Sprintf("renamed %d", i), t2024.Add(time.Duration(i)*time.Second)
			want = append(want, f)
		}
		race(2*n, func(i int) {
			f := want[i/2]
			var err error
			if i%2 == 0 {
				err = s.RenameFactor(ctx, "r1", "alice", f.ID, f.Name)
			} else {
				err = s.MarkFactorUsed(ctx, "r1", "alice", f.ID, f.LastUsed)
			}
			if err != nil {
				t.Errorf("factor update: %v", err)
			}
		})
		wantFactors(t, s, "r1", "alice", want...)
	}},
	{"ConcurrentStepOnce", func(t *testing.T, s sessions.Store) {
		ctx := t.Context()
		addFactor(t, s, "r1", "alice", newFactor("f1", t2020))
		var accepted atomic.Int32
		race(concurrency, func(int) {
			ok, err := s.AcceptFactorStep(ctx, "r1", "alice", "f1", 777, future())
			if err != nil {
				t.Errorf("AcceptFactorStep: %v", err)
			}
			if ok {
				accepted.Add(1)
			}
		})
		if accepted.Load() != 1 {
			t.Fatalf("%d concurrent AcceptFactorStep of one step: %d accepted, want 1", concurrency, accepted.Load())
		}
	}},
}
