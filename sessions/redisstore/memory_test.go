package redisstore

import (
	"crypto/rand"
	"fmt"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-2fa/caddy-2fa/internal/redistest"
	"github.com/caddy-2fa/caddy-2fa/sessions"
)

// sessionID returns a random session ID like the gate's: rand.Text(),
// 26 base32 characters (128 bits).
func sessionID() string { return rand.Text() }

// realisticSession is a session as the gate stores it, with a common
// desktop browser's user agent.
func realisticSession(user string, now time.Time) sessions.Session {
	return sessions.Session{
		User:      user,
		Method:    "totp",
		Created:   now,
		Expires:   now.Add(12 * time.Hour),
		LastSeen:  now,
		ClientIP:  "203.0.113.54",
		UserAgent: "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0",
		MAC:       []byte("0123456789abcdef"), // the gate's 16-byte record tag
	}
}

var usedMemoryRE = regexp.MustCompile(`(?m)^used_memory:(\d+)\r?$`)

func usedMemory(t testing.TB, c *redis.Client) int64 {
	t.Helper()
	info, err := c.Info(t.Context(), "memory").Result()
	must(t, err)
	m := usedMemoryRE.FindStringSubmatch(info)
	if m == nil {
		t.Fatalf("no used_memory in INFO memory")
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	must(t, err)
	return n
}

// parallel runs f(i) for i in [0, n) on a few goroutines, and stops at
// the first error.
func parallel(t testing.TB, n int, f func(i int) error) {
	t.Helper()
	var (
		next atomic.Int64
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for range 8 {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					next.Store(int64(n))
					return
				}
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatal(errs[0])
	}
}

// TestMemoryPerSession checks the spec's bar of less than 300 bytes of
// Redis memory per session: the growth of INFO used_memory over 20,000
// sessions, for users with one session each and with five each. The
// users exist already, as every user with a verified session does: they
// are enrolled and have a profile (the gate records each verification),
// which is where their sessions are indexed. Also logged, not checked:
// MEMORY USAGE of one session key, and the cost per session when the
// users have no profile yet (the session then creates the hash that
// indexes it).
func TestMemoryPerSession(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	srv := redistest.Start(t)
	c := socketClient(t, srv)
	ctx := t.Context()
	now := time.Now()
	const n = 20_000
	for _, tc := range []struct {
		perUser int
		users   bool // enrolled, with a profile
	}{{1, true}, {5, true}, {1, false}, {5, false}} {
		name := fmt.Sprintf("%dPerUser", tc.perUser)
		if !tc.users {
			name += "NoProfile"
		}
		t.Run(name, func(t *testing.T) {
			must(t, c.FlushAll(ctx).Err())
			s := New(c, Options{})
			user := func(i int) string { return fmt.Sprintf("user%06d@example.com", i) }
			if tc.users {
				e := sessions.Enrollment{SealedSecret: make([]byte, 48), Algorithm: "SHA1", Digits: 6, Period: 30, Created: now}
				parallel(t, n/tc.perUser, func(i int) error {
					if err := s.Enroll(ctx, "default", user(i), e, nil); err != nil {
						return err
					}
					return s.RecordVerification(ctx, "default", user(i), "totp", now)
				})
			}
			// Load the scripts, so that the script cache is not counted.
			must(t, s.PutSession(ctx, "default", "warm-up", realisticSession("warm-up", now)))
			must(t, s.ResetUser(ctx, "default", "warm-up"))
			before := usedMemory(t, c)
			ids := make([]string, n)
			parallel(t, n, func(i int) error {
				ids[i] = sessionID()
				return s.PutSession(ctx, "default", ids[i], realisticSession(user(i/tc.perUser), now))
			})
			after := usedMemory(t, c)
			perSession := float64(after-before) / n
			key := s.keys.byID("default", tagSession, sessionKeyID(ids[0]))
			sk, err := c.MemoryUsage(ctx, key, 0).Result()
			must(t, err)
			v, err := c.Get(ctx, key).Bytes()
			must(t, err)
			// The index entries, and first, verified and method.
			want := int64(tc.perUser)
			if tc.users {
				want += 3
			}
			if k := c.HLen(ctx, s.keys.user("default", user(0), sufProfile)).Val(); k != want {
				t.Errorf("profile hash of %s has %d fields, want %d", user(0), k, want)
			}
			t.Logf("session key %q (%d bytes), value %d bytes, MEMORY USAGE %d", key, len(key), len(v), sk)
			t.Logf("%d session(s) per user: INFO used_memory grows by %.0f bytes per session over %d sessions", tc.perUser, perSession, n)
			if tc.users && perSession >= 300 {
				t.Errorf("%.0f bytes per session, want < 300", perSession)
			}
			if len(v) > 80 {
				t.Errorf("session value %d bytes, want at most 80", len(v))
			}
		})
	}
}

// BenchmarkSession reads one session among 10,000 over the unix socket:
// the store's part of the hot path of every proxied request with a
// verified session (one GET and a decode).
func BenchmarkSession(b *testing.B) {
	srv := redistest.Start(b)
	c := socketClient(b, srv)
	s := New(c, Options{})
	ctx := b.Context()
	now := time.Now()
	const n = 10_000
	var id string
	for i := range n {
		id = sessionID()
		must(b, s.PutSession(ctx, "default", id, realisticSession(fmt.Sprintf("user%05d@example.com", i), now)))
	}
	if _, err := s.Session(ctx, "default", id); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Session(ctx, "default", id); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSessionTCP is BenchmarkSession over loopback TCP, with a client
// built from a Config.
func BenchmarkSessionTCP(b *testing.B) {
	srv := redistest.Start(b)
	cfg, err := ParseURLs("redis://" + srv.Addr)
	must(b, err)
	c := redis.NewUniversalClient(cfg.UniversalOptions())
	b.Cleanup(func() { c.Close() })
	s := New(c, Options{})
	ctx := b.Context()
	id := sessionID()
	must(b, s.PutSession(ctx, "default", id, realisticSession("user00042@example.com", time.Now())))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Session(ctx, "default", id); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSessionDecode is the decoding part of BenchmarkSession alone.
func BenchmarkSessionDecode(b *testing.B) {
	v := encodeSession(realisticSession("user00042@example.com", time.Now()))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeSession(v); err != nil {
			b.Fatal(err)
		}
	}
}
