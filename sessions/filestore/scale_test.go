package filestore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/caddy-2fa/caddy-2fa/sessions"
)

// seedBatch is how many users seedUsers writes per transaction.
const seedBatch = 10_000

// seeded is a store filled by seedUsers.
type seeded struct {
	s     *Store
	users []string // in a random order
	ids   []string // ids[i] is the session of users[i]
}

// seedUsers opens a store in a temporary directory with n users as the
// gate leaves them after enrollment and a first verification: an
// enrollment with ten recovery code hashes, a profile and one session
// each. It writes the records the way Enroll, RecordVerification and
// PutSession do, but many users per transaction, which takes seconds
// rather than minutes (each transaction is synced to disk).
func seedUsers(tb testing.TB, n int) seeded {
	tb.Helper()
	s := open(tb, filepath.Join(tb.TempDir(), "2fa.db"), Options{SweepInterval: -1})
	now := time.Now()
	enr, err := json.Marshal(sessions.Enrollment{SealedSecret: make([]byte, 48), Algorithm: "SHA1", Digits: 6, Period: 30, Created: now})
	must(tb, err)
	prof, err := json.Marshal(sessions.Profile{FirstSeen: now, LastVerified: now, LastMethod: "totp"})
	must(tb, err)
	codes := make([]string, 10)
	for i := range codes {
		b := make([]byte, 32)
		rand.Read(b)
		codes[i] = hex.EncodeToString(b)
	}
	sd := seeded{s: s, users: make([]string, n), ids: make([]string, n)}
	start := time.Now()
	for first := 0; first < n; first += seedBatch {
		must(tb, s.db.Update(func(tx *bolt.Tx) error {
			w, err := openWriter(tx, "default")
			if err != nil {
				return err
			}
			for i := first; i < min(n, first+seedBatch); i++ {
				u := fmt.Sprintf("user%07d@example.com", i)
				sd.users[i], sd.ids[i] = u, rand.Text()
				if err := w.b(bEnrollments).Put([]byte(u), enr); err != nil {
					return err
				}
				if err := w.putCodes(u, codes); err != nil {
					return err
				}
				if err := w.b(bProfiles).Put([]byte(u), prof); err != nil {
					return err
				}
				sess := sessions.Session{
					User: u, Method: "totp", Created: now, Expires: now.Add(12 * time.Hour), LastSeen: now,
					ClientIP: "203.0.113.54", UserAgent: "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0",
				}
				if err := w.putJSON(kSession, []byte(sd.ids[i]), u, sess.Expires, sess); err != nil {
					return err
				}
			}
			return nil
		}))
	}
	if fi, err := os.Stat(s.Path()); err == nil {
		tb.Logf("seeded %d users in %v: %.1f MB file", n, time.Since(start).Round(time.Millisecond), float64(fi.Size())/1e6)
	}
	// Look users up in a random order, so that a large store is not read
	// along its keys' order.
	mrand.Shuffle(n, func(i, j int) {
		sd.users[i], sd.users[j] = sd.users[j], sd.users[i]
		sd.ids[i], sd.ids[j] = sd.ids[j], sd.ids[i]
	})
	return sd
}

// BenchmarkScale compares the store reads of the gate's request path in a
// nearly empty store (10 users) and in one with 100,000 enrolled users
// (SPEC §9: their cost must not depend on how many users and sessions
// there are). Each lookup is of another user, in a random order:
//
//   - Session: a request with a verified session (the hot path, on a miss
//     of the gate's one-second session cache);
//   - Enrollment: a request without one (is the user enrolled?);
//   - Profile: read next to the enrollment (is 2FA disabled for the user?).
//
// Both stores are seeded once per run (seedUsers), and each lookup reads
// every user once before it is timed. Compare the ns/op of the two sizes
// of each lookup; docs/performance.md records the ratios. On a machine
// that other jobs keep busy, wall-clock ns/op include the time the
// benchmark waits for a CPU; cpu-ns/op (the process's CPU time, garbage
// collection included, per lookup, where the OS reports it) does not.
func BenchmarkScale(b *testing.B) {
	ctx := context.Background()
	stores := []struct {
		name string
		n    int
	}{{"users=10", 10}, {"users=10000", 10_000}, {"users=100000", 100_000}}
	seededStores := make([]seeded, len(stores))
	for i, st := range stores {
		seededStores[i] = seedUsers(b, st.n)
	}
	lookups := []struct {
		name string
		fn   func(s *Store, user, id string) error
	}{
		{"Session", func(s *Store, user, id string) error {
			sess, err := s.Session(ctx, "default", id)
			if err == nil && sess.User != user {
				err = fmt.Errorf("session of %s is %s's", user, sess.User)
			}
			return err
		}},
		{"Enrollment", func(s *Store, user, _ string) error {
			_, err := s.Enrollment(ctx, "default", user)
			return err
		}},
		{"Profile", func(s *Store, user, _ string) error {
			_, err := s.Profile(ctx, "default", user)
			return err
		}},
	}
	for _, l := range lookups {
		for i, st := range stores {
			sd := seededStores[i]
			b.Run(l.name+"/"+st.name, func(b *testing.B) {
				// Read every user once first, untimed: a store that
				// has been serving for a while has its pages mapped
				// (bbolt reads through mmap; the first read of a page
				// costs a page fault).
				for k := range sd.users {
					if err := l.fn(sd.s, sd.users[k], sd.ids[k]); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportAllocs()
				k, ops := 0, 0
				cpu0, cpuOK := processCPU()
				for b.Loop() {
					if err := l.fn(sd.s, sd.users[k], sd.ids[k]); err != nil {
						b.Fatal(err)
					}
					if k++; k == len(sd.users) {
						k = 0
					}
					ops++
				}
				if cpu1, ok := processCPU(); cpuOK && ok && ops > 0 {
					b.ReportMetric(float64(cpu1-cpu0)/float64(ops), "cpu-ns/op")
				}
			})
		}
	}
}
