package filestore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/caddy-2fa/caddy-2fa/sessions"
	"github.com/caddy-2fa/caddy-2fa/sessions/storetest"
)

func open(t testing.TB, path string, opts Options) *Store {
	t.Helper()
	s, err := Open(path, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) sessions.Store {
		return open(t, filepath.Join(t.TempDir(), "2fa.db"), Options{})
	})
}

// TestContractSweeping runs the suite with a sweeper running all the time,
// which must not change what callers see.
func TestContractSweeping(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	storetest.Run(t, func(t *testing.T) sessions.Store {
		return open(t, filepath.Join(t.TempDir(), "2fa.db"), Options{SweepInterval: time.Millisecond})
	})
}

// clock is a settable Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestReopen(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "2fa.db")
	exp := time.Now().Add(time.Hour).Round(0)
	s, err := Open(path, Options{})
	must(t, err)
	must(t, s.Enroll(ctx, "r", "alice", sessions.Enrollment{SealedSecret: []byte("sealed"), Digits: 6}, []string{"h1", "h2"}))
	must(t, s.PutSession(ctx, "r", "s1", sessions.Session{User: "alice", Expires: exp}))
	must(t, s.PutDevice(ctx, "r", "d1", sessions.Device{User: "alice", Expires: exp}))
	must(t, s.PutToken(ctx, "r", "k", "t", []byte("v"), exp))
	ok, err := s.AcceptStep(ctx, "r", "alice", 100, exp)
	if err != nil || !ok {
		t.Fatalf("AcceptStep = %v, %v", ok, err)
	}
	firstSeen := time.Date(2020, 1, 2, 3, 4, 5, 6, time.UTC)
	_, err = s.SeeUser(ctx, "r", "bob", firstSeen)
	must(t, err)
	must(t, s.Close())
	must(t, s.Close()) // idempotent

	s = open(t, path, Options{})
	e, err := s.Enrollment(ctx, "r", "alice")
	must(t, err)
	if string(e.SealedSecret) != "sealed" || e.Digits != 6 || e.RecoveryCodes != 2 {
		t.Fatalf("Enrollment after reopen = %+v", e)
	}
	sess, err := s.Session(ctx, "r", "s1")
	must(t, err)
	if sess.User != "alice" || !sess.Expires.Equal(exp) {
		t.Fatalf("Session after reopen = %+v", sess)
	}
	if n, err := s.UserSessions(ctx, "r", "alice"); err != nil || n != 1 {
		t.Fatalf("UserSessions after reopen = %d, %v", n, err)
	}
	if list, err := s.UserDevices(ctx, "r", "alice"); err != nil || len(list) != 1 || list[0].ID != "d1" {
		t.Fatalf("UserDevices after reopen = %+v, %v", list, err)
	}
	if ok, err := s.AcceptStep(ctx, "r", "alice", 100, exp); err != nil || ok {
		t.Fatalf("AcceptStep of the same step after reopen = %v, %v; want false", ok, err)
	}
	if v, err := s.ConsumeToken(ctx, "r", "k", "t"); err != nil || string(v) != "v" {
		t.Fatalf("ConsumeToken after reopen = %q, %v", v, err)
	}
	if p, err := s.Profile(ctx, "r", "bob"); err != nil || !p.FirstSeen.Equal(firstSeen) {
		t.Fatalf("Profile after reopen = %+v, %v", p, err)
	}
	if u, err := s.Users(ctx, "r"); err != nil || len(u) != 2 || u[0] != "alice" || u[1] != "bob" {
		t.Fatalf("Users after reopen = %q, %v", u, err)
	}
}

// TestNoProfilesBucket checks a realm written before the profiles bucket
// existed: reads see no profiles, and the first profile write adds the
// bucket.
func TestNoProfilesBucket(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "2fa.db")
	s, err := Open(path, Options{SweepInterval: -1})
	must(t, err)
	must(t, s.Enroll(ctx, "r", "alice", sessions.Enrollment{SealedSecret: []byte("x")}, nil))
	must(t, s.db.Update(func(tx *bolt.Tx) error {
		return realmBucket(tx, "r").DeleteBucket(bProfiles)
	}))
	must(t, s.Close())

	s = open(t, path, Options{SweepInterval: -1})
	if _, err := s.Profile(ctx, "r", "alice"); !errors.Is(err, sessions.ErrNotFound) {
		t.Fatalf("Profile without a profiles bucket: %v", err)
	}
	if u, err := s.Users(ctx, "r"); err != nil || len(u) != 1 || u[0] != "alice" {
		t.Fatalf("Users without a profiles bucket = %q, %v", u, err)
	}
	must(t, s.ResetUser(ctx, "r", "bob"))
	t0 := time.Date(2020, 1, 2, 3, 4, 5, 6, time.UTC)
	if p, err := s.SeeUser(ctx, "r", "bob", t0); err != nil || !p.FirstSeen.Equal(t0) {
		t.Fatalf("SeeUser = %+v, %v", p, err)
	}
	if u, err := s.Users(ctx, "r"); err != nil || len(u) != 2 || u[1] != "bob" {
		t.Fatalf("Users = %q, %v", u, err)
	}
}

// TestCorruptProfile checks that an undecodable profile is a failure on
// read and write, and that ResetUser drops it.
func TestCorruptProfile(t *testing.T) {
	ctx := t.Context()
	s := open(t, filepath.Join(t.TempDir(), "2fa.db"), Options{SweepInterval: -1})
	_, err := s.SeeUser(ctx, "r", "alice", time.Now())
	must(t, err)
	must(t, s.db.Update(func(tx *bolt.Tx) error {
		return realmBucket(tx, "r").Bucket(bProfiles).Put([]byte("alice"), []byte("{garbage"))
	}))
	checks := map[string]error{
		"RecordVerification": s.RecordVerification(ctx, "r", "alice", "totp", time.Now()),
		"SetDisabled":        s.SetDisabled(ctx, "r", "alice", time.Now()),
	}
	_, checks["Profile"] = s.Profile(ctx, "r", "alice")
	_, checks["SeeUser"] = s.SeeUser(ctx, "r", "alice", time.Now())
	for name, err := range checks {
		if err == nil || errors.Is(err, sessions.ErrNotFound) || !strings.HasPrefix(err.Error(), "filestore: ") {
			t.Errorf("%s of a corrupt profile: %v, want a store failure", name, err)
		}
	}
	must(t, s.ResetUser(ctx, "r", "alice"))
	if _, err := s.Profile(ctx, "r", "alice"); !errors.Is(err, sessions.ErrNotFound) {
		t.Errorf("Profile after ResetUser of a corrupt one: %v", err)
	}
}

// TestLocked checks what a second Open of a file in use does. bbolt takes
// an flock on its own file descriptor; on Linux flock locks belong to the
// open file description, so a second Open in the same process conflicts
// with the first exactly as another process would.
func TestLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "2fa.db")
	s, err := Open(path, Options{})
	must(t, err)
	start := time.Now()
	s2, err := Open(path, Options{})
	if err == nil {
		s2.Close()
		s.Close()
		t.Fatal("second Open of a file in use succeeded")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("second Open took %v to fail", d)
	}
	for _, want := range []string{path, "another process", "Caddy instance"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	// The first store still works, and the file opens once it is closed.
	must(t, s.Ping(t.Context()))
	must(t, s.Close())
	s = open(t, path, Options{})
	must(t, s.Ping(t.Context()))
}

func TestFileMode(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "two-factor")
	path := filepath.Join(dir, "2fa.db")
	s := open(t, path, Options{})
	fi, err := os.Stat(path)
	must(t, err)
	if m := fi.Mode().Perm(); m != 0o600 {
		t.Errorf("file mode = %v, want 0600", m)
	}
	di, err := os.Stat(dir)
	must(t, err)
	if m := di.Mode().Perm(); m != 0o700 {
		t.Errorf("directory mode = %v, want 0700", m)
	}
	must(t, s.Close())

	// A file that others can read is tightened on Open.
	must(t, os.Chmod(path, 0o644))
	open(t, path, Options{})
	fi, err = os.Stat(path)
	must(t, err)
	if m := fi.Mode().Perm(); m != 0o600 {
		t.Errorf("file mode after reopening a 0644 file = %v, want 0600", m)
	}
}

func TestLayoutVersion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "2fa.db")
	db, err := bolt.Open(path, 0o600, nil)
	must(t, err)
	must(t, db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket(bMeta)
		if err != nil {
			return err
		}
		return b.Put(kVersion, []byte("99"))
	}))
	must(t, db.Close())
	s, err := Open(path, Options{})
	if err == nil {
		s.Close()
		t.Fatal("Open of a file with another layout version succeeded")
	}
	if !strings.Contains(err.Error(), "layout version") {
		t.Errorf("error %q does not mention the layout version", err)
	}
}

// TestClosed checks that a closed store fails closed: errors, never
// ErrNotFound.
func TestClosed(t *testing.T) {
	ctx := t.Context()
	s, err := Open(filepath.Join(t.TempDir(), "2fa.db"), Options{})
	must(t, err)
	must(t, s.Close())
	checks := map[string]error{}
	_, checks["Session"] = s.Session(ctx, "r", "id")
	_, checks["Device"] = s.Device(ctx, "r", "id")
	_, checks["Enrollment"] = s.Enrollment(ctx, "r", "alice")
	_, checks["UseRecoveryCode"] = s.UseRecoveryCode(ctx, "r", "alice", "h")
	_, checks["AcceptStep"] = s.AcceptStep(ctx, "r", "alice", 1, time.Now().Add(time.Hour))
	_, checks["Attempts"] = s.Attempts(ctx, "r", "alice", time.Now())
	_, checks["ConsumeToken"] = s.ConsumeToken(ctx, "r", "k", "t")
	_, checks["Sweep"] = s.Sweep()
	_, checks["Users"] = s.Users(ctx, "r")
	_, checks["Profile"] = s.Profile(ctx, "r", "alice")
	_, checks["SeeUser"] = s.SeeUser(ctx, "r", "alice", time.Now())
	checks["RecordVerification"] = s.RecordVerification(ctx, "r", "alice", "totp", time.Now())
	checks["SetDisabled"] = s.SetDisabled(ctx, "r", "alice", time.Now())
	checks["Ping"] = s.Ping(ctx)
	for name, err := range checks {
		if err == nil || errors.Is(err, sessions.ErrNotFound) {
			t.Errorf("%s on a closed store: error %v, want a store failure", name, err)
		} else if !strings.HasPrefix(err.Error(), "filestore: ") {
			t.Errorf("%s on a closed store: error %q lacks the filestore prefix", name, err)
		}
	}
}

func TestCanceledContext(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "2fa.db"), Options{SweepInterval: -1})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.Session(ctx, "r", "id"); !errors.Is(err, context.Canceled) {
		t.Errorf("Session with a canceled context: %v", err)
	}
	if err := s.PutSession(ctx, "r", "id", sessions.Session{User: "u"}); !errors.Is(err, context.Canceled) {
		t.Errorf("PutSession with a canceled context: %v", err)
	}
	if err := s.Ping(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Ping with a canceled context: %v", err)
	}
}

// TestEmptyNames checks that writes with names the file layout cannot key
// fail as store errors rather than writing something ambiguous.
func TestEmptyNames(t *testing.T) {
	ctx := t.Context()
	s := open(t, filepath.Join(t.TempDir(), "2fa.db"), Options{SweepInterval: -1})
	exp := time.Now().Add(time.Hour)
	checks := map[string]error{
		"Enroll empty realm":      s.Enroll(ctx, "", "alice", sessions.Enrollment{}, nil),
		"Enroll empty user":       s.Enroll(ctx, "r", "", sessions.Enrollment{}, nil),
		"PutSession empty id":     s.PutSession(ctx, "r", "", sessions.Session{User: "u", Expires: exp}),
		"PutSession empty user":   s.PutSession(ctx, "r", "id", sessions.Session{Expires: exp}),
		"PutDevice empty id":      s.PutDevice(ctx, "r", "", sessions.Device{User: "u", Expires: exp}),
		"PutPending empty user":   s.PutPendingEnrollment(ctx, "r", "", sessions.PendingEnrollment{Expires: exp}),
		"ResetUser empty user":    s.ResetUser(ctx, "r", ""),
		"PutToken empty realm":    s.PutToken(ctx, "", "k", "t", nil, exp),
		"SetRecoveryCodes empty":  s.SetRecoveryCodes(ctx, "r", "", nil),
		"TouchSession empty real": s.TouchSession(ctx, "", "id", exp),
		"RecordVerification user": s.RecordVerification(ctx, "r", "", "totp", exp),
		"SetDisabled empty realm": s.SetDisabled(ctx, "", "alice", exp),
	}
	_, checks["SeeUser empty user"] = s.SeeUser(ctx, "r", "", exp)
	_, checks["SeeUser empty realm"] = s.SeeUser(ctx, "", "alice", exp)
	_, checks["AddFailure empty key"] = s.AddFailure(ctx, "r", "", time.Now(), sessions.Limit{Max: 1})
	_, checks["AcceptStep empty user"] = s.AcceptStep(ctx, "r", "", 1, exp)
	for name, err := range checks {
		if err == nil || errors.Is(err, sessions.ErrNotFound) || errors.Is(err, sessions.ErrExists) {
			t.Errorf("%s: error %v, want a store error", name, err)
		}
	}
	// Reads of empty names are simply absent.
	if _, err := s.Session(ctx, "", ""); !errors.Is(err, sessions.ErrNotFound) {
		t.Errorf("Session of empty names: %v", err)
	}
	if _, err := s.Profile(ctx, "", ""); !errors.Is(err, sessions.ErrNotFound) {
		t.Errorf("Profile of empty names: %v", err)
	}
	if u, err := s.Users(ctx, ""); err != nil || len(u) != 0 {
		t.Errorf("Users of the empty realm = %q, %v", u, err)
	}
	// An empty token kind and id are a valid key (they are length-prefixed).
	must(t, s.PutToken(ctx, "r", "", "", []byte("v"), exp))
	if v, err := s.ConsumeToken(ctx, "r", "", ""); err != nil || string(v) != "v" {
		t.Errorf("ConsumeToken with empty kind and id = %q, %v", v, err)
	}
}

// counts returns the number of keys in each bucket of realm and in the
// expiry index.
func counts(t *testing.T, s *Store, realm string) map[string]int {
	t.Helper()
	n := map[string]int{}
	count := func(b *bolt.Bucket) int {
		i := 0
		c := b.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			i++
		}
		return i
	}
	must(t, s.db.View(func(tx *bolt.Tx) error {
		rb := realmBucket(tx, realm)
		for _, name := range realmBuckets {
			if b := sub(rb, name); b != nil {
				n[string(name)] = count(b)
			}
		}
		n["expiry"] = count(tx.Bucket(bExpiry))
		return nil
	}))
	return n
}

func wantCounts(t *testing.T, got map[string]int, want map[string]int) {
	t.Helper()
	for name, w := range want {
		if got[name] != w {
			t.Errorf("bucket %s has %d keys, want %d (all: %v)", name, got[name], w, got)
		}
	}
}

func TestSweep(t *testing.T) {
	ctx := t.Context()
	t0 := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	clk := &clock{t: t0}
	s := open(t, filepath.Join(t.TempDir(), "2fa.db"), Options{Now: clk.Now, SweepInterval: -1})
	h1, h2, h10 := t0.Add(time.Hour), t0.Add(2*time.Hour), t0.Add(10*time.Hour)

	must(t, s.Enroll(ctx, "r", "alice", sessions.Enrollment{SealedSecret: []byte("x")}, []string{"h"}))
	must(t, s.PutSession(ctx, "r", "s-live", sessions.Session{User: "alice", Expires: h2}))
	must(t, s.PutSession(ctx, "r", "s-old1", sessions.Session{User: "alice", Expires: h1}))
	must(t, s.PutSession(ctx, "r", "s-old2", sessions.Session{User: "bob", Expires: h1}))
	must(t, s.PutSession(ctx, "r", "s-moved", sessions.Session{User: "bob", Expires: h1}))
	must(t, s.PutSession(ctx, "r", "s-moved", sessions.Session{User: "bob", Expires: h2}))
	must(t, s.PutDevice(ctx, "r", "d-live", sessions.Device{User: "alice", Expires: h2}))
	must(t, s.PutDevice(ctx, "r", "d-old", sessions.Device{User: "alice", Expires: h1}))
	must(t, s.PutPendingEnrollment(ctx, "r", "alice", sessions.PendingEnrollment{Expires: h1}))
	must(t, s.PutPendingEnrollment(ctx, "r", "bob", sessions.PendingEnrollment{Expires: h2}))
	must(t, s.PutToken(ctx, "r", "k", "t1", []byte("1"), h1))
	must(t, s.PutToken(ctx, "r", "k", "t2", []byte("2"), h2))
	for user, exp := range map[string]time.Time{"alice": h1, "bob": h2} {
		if ok, err := s.AcceptStep(ctx, "r", user, 5, exp); err != nil || !ok {
			t.Fatalf("AcceptStep = %v, %v", ok, err)
		}
	}
	_, err := s.AddFailure(ctx, "r", "window", t0, sessions.Limit{Max: 10, Window: time.Hour})
	must(t, err)
	_, err = s.AddFailure(ctx, "r", "locked", t0, sessions.Limit{Max: 1, Window: time.Hour, Lockout: 3 * time.Hour})
	must(t, err)
	// A profile, whose times are all long past, is never swept.
	long := t0.Add(-24 * 365 * time.Hour)
	_, err = s.SeeUser(ctx, "r", "carol", long)
	must(t, err)
	must(t, s.RecordVerification(ctx, "r", "carol", "totp", long))
	must(t, s.SetDisabled(ctx, "r", "carol", long))
	// A stale expiry entry pointing at a live session must not remove it.
	must(t, s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bExpiry).Put(expiryKey(t0, kSession.tag, "r", []byte("s-live")), []byte{})
	}))

	all := map[string]int{
		"enrollments": 1, "recovery": 1,
		"sessions": 4, "session_index": 4, "devices": 2, "device_index": 2,
		"pending": 2, "tokens": 2, "steps": 2, "attempts": 2, "profiles": 1,
		"expiry": 4 + 2 + 2 + 2 + 2 + 2 + 1,
	}
	wantCounts(t, counts(t, s, "r"), all)

	n, err := s.Sweep()
	must(t, err)
	if n != 0 {
		t.Errorf("Sweep before anything expired removed %d", n)
	}
	// The stale entry (due at t0) is gone, the session it named is not.
	all["expiry"]--
	wantCounts(t, counts(t, s, "r"), all)
	if _, err := s.Session(ctx, "r", "s-live"); err != nil {
		t.Errorf("Session named by a stale expiry entry: %v", err)
	}

	clk.Set(h1) // expiry is inclusive: records expiring at h1 are gone now
	if _, err := s.Session(ctx, "r", "s-old1"); !errors.Is(err, sessions.ErrNotFound) {
		t.Errorf("expired Session before the sweep: %v", err)
	}
	if _, err := s.Device(ctx, "r", "d-old"); !errors.Is(err, sessions.ErrNotFound) {
		t.Errorf("expired Device before the sweep: %v", err)
	}
	n, err = s.Sweep()
	must(t, err)
	// s-old1, s-old2, d-old, pending alice, token t1, step alice, counter
	// "window".
	if n != 7 {
		t.Errorf("Sweep removed %d records, want 7", n)
	}
	wantCounts(t, counts(t, s, "r"), map[string]int{
		"enrollments": 1, "recovery": 1,
		"sessions": 2, "session_index": 2, "devices": 1, "device_index": 1,
		"pending": 1, "tokens": 1, "steps": 1, "attempts": 1, "profiles": 1,
		"expiry": 2 + 1 + 1 + 1 + 1 + 1,
	})
	if _, err := s.Session(ctx, "r", "s-live"); err != nil {
		t.Errorf("live Session after the sweep: %v", err)
	}
	if n, err := s.UserSessions(ctx, "r", "bob"); err != nil || n != 1 {
		t.Errorf("UserSessions(bob) after the sweep = %d, %v; want 1", n, err)
	}
	if n, _ := s.Sweep(); n != 0 {
		t.Errorf("second Sweep removed %d", n)
	}

	clk.Set(h10)
	n, err = s.Sweep()
	must(t, err)
	if n != 7 {
		t.Errorf("final Sweep removed %d records, want 7", n)
	}
	wantCounts(t, counts(t, s, "r"), map[string]int{
		"enrollments": 1, "recovery": 1,
		"sessions": 0, "session_index": 0, "devices": 0, "device_index": 0,
		"pending": 0, "tokens": 0, "steps": 0, "attempts": 0, "expiry": 0,
		"profiles": 1,
	})
	if p, err := s.Profile(ctx, "r", "carol"); err != nil || !p.DisabledUntil.Equal(long) {
		t.Errorf("Profile after sweeping = %+v, %v", p, err)
	}
	if e, err := s.Enrollment(ctx, "r", "alice"); err != nil || e.RecoveryCodes != 1 {
		t.Errorf("Enrollment after sweeping = %+v, %v", e, err)
	}
}

// TestSweepBatches checks a sweep of more records than one transaction
// handles, across realms.
func TestSweepBatches(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := &clock{t: t0}
	s := open(t, filepath.Join(t.TempDir(), "2fa.db"), Options{Now: clk.Now, SweepInterval: -1})
	const n = 2*sweepBatch + 17
	must(t, s.db.Update(func(tx *bolt.Tx) error {
		for i := range n {
			w, err := openWriter(tx, fmt.Sprint("realm", i%3))
			if err != nil {
				return err
			}
			exp := t0.Add(time.Duration(i) * time.Second)
			if err := w.putJSON(kSession, fmt.Appendf(nil, "s%d", i), "u", exp, sessions.Session{User: "u", Expires: exp}); err != nil {
				return err
			}
		}
		return nil
	}))
	clk.Set(t0.Add(time.Hour))
	removed, err := s.Sweep()
	must(t, err)
	if removed != n {
		t.Fatalf("Sweep removed %d, want %d", removed, n)
	}
	for i := range 3 {
		wantCounts(t, counts(t, s, fmt.Sprint("realm", i)), map[string]int{"sessions": 0, "session_index": 0, "expiry": 0})
	}
}

func TestBackgroundSweeper(t *testing.T) {
	ctx := t.Context()
	t0 := time.Now()
	clk := &clock{t: t0}
	s := open(t, filepath.Join(t.TempDir(), "2fa.db"), Options{Now: clk.Now, SweepInterval: time.Millisecond})
	must(t, s.PutSession(ctx, "r", "id", sessions.Session{User: "u", Expires: t0.Add(time.Minute)}))
	clk.Set(t0.Add(2 * time.Minute))
	deadline := time.Now().Add(10 * time.Second)
	for counts(t, s, "r")["sessions"] != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the background sweeper did not remove an expired session")
		}
		time.Sleep(time.Millisecond)
	}
	must(t, s.Close()) // stops the sweeper (Close waits for it)
}

func TestKeys(t *testing.T) {
	// Composite keys are injective.
	seen := map[string][2]string{}
	parts := []string{"", "a", "b", "a:b", "b:c", "c", ":", "a\x00", "\x01a", strings.Repeat("z", 300)}
	for _, a := range parts {
		for _, b := range parts {
			k := string(lpKey(a, []byte(b)))
			if prev, dup := seen[k]; dup {
				t.Fatalf("lpKey(%q, %q) == lpKey(%q, %q)", a, b, prev[0], prev[1])
			}
			seen[k] = [2]string{a, b}
			if !bytes.HasPrefix([]byte(k), lpPrefix(a)) {
				t.Fatalf("lpKey(%q, %q) does not start with lpPrefix(%q)", a, b, a)
			}
		}
	}
	// Expiry keys parse back and sort by time.
	t1 := time.Date(2030, 1, 1, 0, 0, 0, 1, time.UTC)
	k1 := expiryKey(t1, 's', "realm:x", []byte("id/1"))
	at, tag, realm, key, ok := parseExpiryKey(k1)
	if !ok || at != uint64(t1.UnixNano()) || tag != 's' || realm != "realm:x" || string(key) != "id/1" {
		t.Fatalf("parseExpiryKey = %d %c %q %q %v", at, tag, realm, key, ok)
	}
	k2 := expiryKey(t1.Add(time.Nanosecond), 'a', "", nil)
	if bytes.Compare(k1, k2) >= 0 {
		t.Fatal("expiry keys do not sort by time")
	}
	if _, _, _, _, ok := parseExpiryKey([]byte("short")); ok {
		t.Fatal("parseExpiryKey accepted a short key")
	}
	if _, _, _, _, ok := parseExpiryKey(append(appendTime(nil, t1), 's', 50, 'x')); ok {
		t.Fatal("parseExpiryKey accepted a truncated realm")
	}
	// Times outside 1970..2262 are clamped, in order.
	if timeKey(time.Time{}) != 0 || timeKey(time.Unix(-1, 0)) != 0 {
		t.Error("times before 1970 do not map to 0")
	}
	if timeKey(time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)) != ^uint64(0) {
		t.Error("times after 2262 do not map to the maximum")
	}
}

// BenchmarkSession reads one session among 100,000: the hot path of every
// proxied request with a verified session.
func BenchmarkSession(b *testing.B) {
	const n = 100_000
	s := open(b, filepath.Join(b.TempDir(), "2fa.db"), Options{SweepInterval: -1})
	exp := time.Now().Add(24 * time.Hour)
	must(b, s.db.Update(func(tx *bolt.Tx) error {
		w, err := openWriter(tx, "default")
		if err != nil {
			return err
		}
		for i := range n {
			sess := sessions.Session{
				User: fmt.Sprint("user", i), Method: "totp",
				Created: exp.Add(-24 * time.Hour), Expires: exp, LastSeen: exp.Add(-time.Hour),
				ClientIP: "192.0.2.1", UserAgent: "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0",
			}
			if err := w.putJSON(kSession, fmt.Appendf(nil, "%043d", i), sess.User, exp, sess); err != nil {
				return err
			}
		}
		return nil
	}))
	ctx := context.Background()
	id := fmt.Sprintf("%043d", n/2)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Session(ctx, "default", id); err != nil {
			b.Fatal(err)
		}
	}
}
