package redisstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-2fa/caddy-2fa/internal/redistest"
	"github.com/caddy-2fa/caddy-2fa/sessions"
	"github.com/caddy-2fa/caddy-2fa/sessions/storetest"
)

// quietLogger drops go-redis's log lines (dial failures while a test has
// stopped the server).
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

func TestMain(m *testing.M) {
	redis.SetLogger(quietLogger{})
	os.Exit(m.Run())
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// socketClient returns a client of srv over its unix socket, closed when
// the test ends.
func socketClient(t testing.TB, srv *redistest.Server) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Network: "unix", Addr: srv.Socket})
	t.Cleanup(func() { c.Close() })
	return c
}

// configClient returns a client of srv over TCP built the way the gate
// builds it: from a URL, through Config.UniversalOptions.
func configClient(t testing.TB, srv *redistest.Server, db int) redis.UniversalClient {
	t.Helper()
	cfg, err := ParseURLs(fmt.Sprintf("redis://%s/%d", srv.Addr, db))
	must(t, err)
	c := redis.NewUniversalClient(cfg.UniversalOptions())
	t.Cleanup(func() { c.Close() })
	return c
}

// prefixes gives every store of a test binary its own key prefix, so that
// stores on one server start empty.
var prefixes atomic.Int64

func freshPrefix(base string) string {
	return fmt.Sprintf("%s%d", base, prefixes.Add(1))
}

// TestContract runs the contract suite over a unix socket, each subtest
// with a fresh key prefix on one server.
func TestContract(t *testing.T) {
	srv := redistest.Start(t)
	client := socketClient(t, srv)
	storetest.Run(t, func(t *testing.T) sessions.Store {
		return New(client, Options{KeyPrefix: freshPrefix("contract")})
	})
}

// TestContractConfig runs the suite over TCP with a client built from a
// URL (database 3) and a prefix that needs escaping, flushing the
// database before each subtest.
func TestContractConfig(t *testing.T) {
	srv := redistest.Start(t)
	client := configClient(t, srv, 3)
	storetest.Run(t, func(t *testing.T) sessions.Store {
		must(t, client.FlushDB(t.Context()).Err())
		return New(client, Options{KeyPrefix: "2fa{x}:%"})
	})
}

// startCluster starts a one-node Redis Cluster that serves all 16384
// slots. A cluster node refuses multi-key commands and scripts whose keys
// are in different slots, even when it serves them all, so the contract
// suite run against it proves the store cluster-safe.
func startCluster(t *testing.T) (*redistest.Server, *redis.ClusterClient) {
	t.Helper()
	srv := redistest.Start(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf")
	admin := socketClient(t, srv)
	ctx := t.Context()
	must(t, admin.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", 0, 16383).Err())
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err := admin.ClusterInfo(ctx).Result()
		must(t, err)
		if strings.Contains(info, "cluster_state:ok") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster not ready: %s", info)
		}
		time.Sleep(20 * time.Millisecond)
	}
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{srv.Addr}})
	t.Cleanup(func() { c.Close() })
	return srv, c
}

// TestCluster runs, on one one-node cluster: a check that the node does
// refuse cross-slot commands (so that the rest means something), a check
// of keySlot against CLUSTER KEYSLOT, and the contract suite through a
// ClusterClient.
func TestCluster(t *testing.T) {
	srv, client := startCluster(t)
	node := socketClient(t, srv)
	t.Run("RefusesCrossSlot", func(t *testing.T) {
		ctx := t.Context()
		if err := node.Del(ctx, "a", "b").Err(); err == nil || !strings.Contains(err.Error(), "CROSSSLOT") {
			t.Errorf("DEL of two slots on the node: %v, want CROSSSLOT", err)
		}
		if err := node.Eval(ctx, "return 1", []string{"a", "b"}).Err(); err == nil || !strings.Contains(err.Error(), "CROSSSLOT") {
			t.Errorf("EVAL with keys in two slots: %v, want CROSSSLOT", err)
		}
		// A node that serves every slot does not notice a script reading
		// an undeclared key of another slot: the scripts only use their
		// KEYS, and TestSlots checks that those share a slot.
	})
	t.Run("KeySlot", func(t *testing.T) {
		testKeySlot(t, node)
	})
	t.Run("Contract", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) sessions.Store {
			return New(client, Options{KeyPrefix: freshPrefix("cluster")})
		})
	})
}

// fill gives alice in realm r one of every record, with a second failure
// counter, a token and a profile.
func fill(t testing.TB, s *Store) {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	must(t, s.Enroll(ctx, "r", "alice", sessions.Enrollment{SealedSecret: []byte("x"), Algorithm: "SHA1", Digits: 6, Period: 30, Created: now}, []string{"h1", "h2"}))
	must(t, s.PutPendingEnrollment(ctx, "r", "alice", sessions.PendingEnrollment{SealedSecret: []byte("p"), Created: now, Expires: now.Add(10 * time.Minute)}))
	if ok, err := s.AcceptStep(ctx, "r", "alice", now.Unix()/30, now.Add(90*time.Second)); err != nil || !ok {
		t.Fatalf("AcceptStep = %v, %v", ok, err)
	}
	must(t, s.PutSession(ctx, "r", "sess-1", realisticSession("alice", now)))
	must(t, s.PutDevice(ctx, "r", "dev-1", sessions.Device{User: "alice", Created: now, Expires: now.Add(30 * 24 * time.Hour), LastUsed: now}))
	lim := sessions.Limit{Max: 5, Window: 15 * time.Minute, Lockout: time.Hour}
	_, err := s.AddFailure(ctx, "r", "user:alice", now, lim)
	must(t, err)
	_, err = s.AddFailure(ctx, "r", "ip:192.0.2.1", now, lim)
	must(t, err)
	must(t, s.PutToken(ctx, "r", "csrf", "tok-1", []byte("v"), now.Add(time.Hour)))
	_, err = s.SeeUser(ctx, "r", "alice", now)
	must(t, err)
	must(t, s.RecordVerification(ctx, "r", "alice", "totp", now))
}

// sessionKey is the key of the session stored under id by a store with
// the key prefix prefix, in realm.
func sessionKey(prefix, realm, id string) string {
	return prefix + ":" + realm + ":" + tagSession + ":" + sessionKeyID(id)
}

// permanent reports whether key is one of those that have no TTL:
// enrollments, recovery codes, profiles and users sets.
func permanent(key string) bool {
	for _, suf := range []string{":" + sufEnrollment, ":" + sufRecovery, ":" + sufProfile, ":" + tagUsers} {
		if strings.HasSuffix(key, suf) {
			return true
		}
	}
	return false
}

// TestKeyTTLs checks the key layout: every key the store writes has a TTL
// except the enrollment, the recovery codes, the profile and the realm's
// users set.
func TestKeyTTLs(t *testing.T) {
	srv := redistest.Start(t)
	c := socketClient(t, srv)
	s := New(c, Options{KeyPrefix: "ttl"})
	fill(t, s)
	ctx := t.Context()
	keys, err := c.Keys(ctx, "ttl:*").Result()
	must(t, err)
	slices.Sort(keys)
	sess := sessionKey("ttl", "r", "sess-1")
	want := []string{
		"ttl:r:d:dev-1",
		sess,
		"ttl:r:t:csrf:tok-1",
		"ttl:r:users",
		"ttl:{r:alice}:dev",
		"ttl:{r:alice}:enr",
		"ttl:{r}:fail:user%3Aalice",
		"ttl:{r:alice}:pend",
		"ttl:{r:alice}:prof",
		"ttl:{r:alice}:rc",
		"ttl:{r:alice}:step",
		"ttl:{r}:fail:ip%3A192.0.2.1",
	}
	slices.Sort(want)
	if !slices.Equal(keys, want) {
		t.Fatalf("keys:\n%s\nwant:\n%s", strings.Join(keys, "\n"), strings.Join(want, "\n"))
	}
	for _, k := range keys {
		d, err := c.PTTL(ctx, k).Result()
		must(t, err)
		typ, err := c.Type(ctx, k).Result()
		must(t, err)
		t.Logf("%-28s %-6s TTL %v", k, typ, d)
		switch {
		case permanent(k) && d != -1:
			t.Errorf("%s has TTL %v, want none", k, d)
		case !permanent(k) && d <= 0:
			t.Errorf("%s has no TTL (%v)", k, d)
		}
	}
	// The step, failure counter and token TTLs follow their records.
	for k, max := range map[string]time.Duration{
		"ttl:{r:alice}:step":        90 * time.Second,
		"ttl:{r}:fail:user%3Aalice": 15 * time.Minute,
		"ttl:{r:alice}:pend":        10 * time.Minute,
		"ttl:{r:alice}:dev":         30 * 24 * time.Hour,
		sess:                        12 * time.Hour,
	} {
		d, err := c.PTTL(ctx, k).Result()
		must(t, err)
		if d > max+time.Second || d < max-time.Minute {
			t.Errorf("%s TTL %v, want about %v", k, d, max)
		}
	}
	// The session is indexed in alice's profile hash, by its key ID, with
	// its expiry in Unix seconds.
	if e := c.HGet(ctx, "ttl:{r:alice}:prof", sessionKeyID("sess-1")).Val(); e == "" {
		t.Errorf("no index entry of sess-1 in the profile: %v", c.HGetAll(ctx, "ttl:{r:alice}:prof").Val())
	}
	// A lockout extends the counter's TTL to the lockout's end.
	now := time.Now()
	for range 5 {
		_, err := s.AddFailure(ctx, "r", "bob", now, sessions.Limit{Max: 5, Window: time.Minute, Lockout: 2 * time.Hour})
		must(t, err)
	}
	if d := c.PTTL(ctx, "ttl:{r}:fail:bob").Val(); d < 2*time.Hour-time.Minute || d > 2*time.Hour+time.Second {
		t.Errorf("locked counter TTL %v, want about 2h", d)
	}
	// Profile writes never set a TTL, however old their times.
	long := now.Add(-10 * 365 * 24 * time.Hour)
	must(t, s.SetDisabled(ctx, "r", "carol", long))
	must(t, s.RecordVerification(ctx, "r", "carol", "totp", long))
	_, err = s.SeeUser(ctx, "r", "carol", long)
	must(t, err)
	must(t, s.ResetUser(ctx, "r", "alice"))
	for _, k := range []string{"ttl:{r:carol}:prof", "ttl:{r:alice}:prof", "ttl:r:users"} {
		if d := c.PTTL(ctx, k).Val(); d != -1 {
			t.Errorf("%s TTL %v, want none", k, d)
		}
	}
	// The profile is a hash, readable in redis-cli.
	m := c.HGetAll(ctx, "ttl:{r:alice}:prof").Val()
	if len(m) != 1 || m["first"] == "" {
		t.Errorf("profile after ResetUser = %v, want only first", m)
	}
	t.Logf("profile of carol: %v", c.HGetAll(ctx, "ttl:{r:carol}:prof").Val())
	if u := c.SMembers(ctx, "ttl:r:users").Val(); len(u) != 2 {
		t.Errorf("users set = %q, want alice and carol", u)
	}
}

// TestExpiredWritesDelete checks that writing a record whose expiry has
// passed deletes the key rather than keeping it without a TTL.
func TestExpiredWritesDelete(t *testing.T) {
	srv := redistest.Start(t)
	c := socketClient(t, srv)
	s := New(c, Options{KeyPrefix: "exp"})
	fill(t, s)
	ctx := t.Context()
	past := time.Now().Add(-time.Second)
	must(t, s.PutSession(ctx, "r", "sess-1", sessions.Session{User: "alice", Expires: past}))
	must(t, s.PutDevice(ctx, "r", "dev-1", sessions.Device{User: "alice", Expires: past}))
	must(t, s.PutPendingEnrollment(ctx, "r", "alice", sessions.PendingEnrollment{Expires: past}))
	must(t, s.PutToken(ctx, "r", "csrf", "tok-1", nil, past))
	if _, err := s.AcceptStep(ctx, "r", "alice", 1<<40, past); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddFailure(ctx, "r", "carol", past.Add(-time.Hour), sessions.Limit{Max: 3, Window: time.Minute, Lockout: time.Minute}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{sessionKey("exp", "r", "sess-1"), "exp:r:d:dev-1", "exp:{r:alice}:pend", "exp:r:t:csrf:tok-1", "exp:{r:alice}:step"} {
		if n := c.Exists(ctx, k).Val(); n != 0 {
			t.Errorf("%s still exists after an expired write", k)
		}
	}
	// The counter's window is over at the now it was counted with: its
	// key was deleted, not kept forever.
	keys := c.Keys(ctx, "exp:*").Val()
	for _, k := range keys {
		if d := c.PTTL(ctx, k).Val(); d == -1 && !permanent(k) {
			t.Errorf("%s has no TTL", k)
		}
	}
	if c.HExists(ctx, "exp:{r:alice}:prof", sessionKeyID("sess-1")).Val() || c.ZCard(ctx, "exp:{r:alice}:dev").Val() != 0 {
		t.Errorf("index entries left after deleting the records: %v", keys)
	}
}

// wantFailure checks that err is a store failure: not nil, not
// ErrNotFound or ErrExists, and says which package it comes from.
func wantFailure(t *testing.T, what string, err error) {
	t.Helper()
	switch {
	case err == nil:
		t.Errorf("%s: no error", what)
	case errors.Is(err, sessions.ErrNotFound), errors.Is(err, sessions.ErrExists):
		t.Errorf("%s: %v, want a store failure", what, err)
	case !strings.HasPrefix(err.Error(), "redisstore: "):
		t.Errorf("%s: error %q lacks the redisstore prefix", what, err)
	}
}

// everyMethod calls every method of s and returns their errors by name.
func everyMethod(s *Store) map[string]error {
	errs, _ := everyMethodTimed(s)
	return errs
}

// everyMethodTimed is everyMethod that also returns how long each call
// took.
func everyMethodTimed(s *Store) (map[string]error, map[string]time.Duration) {
	ctx := context.Background()
	now := time.Now()
	exp := now.Add(time.Hour)
	errs := map[string]error{}
	took := map[string]time.Duration{}
	last := time.Now()
	// timed is called after each call: it charges the time since the
	// previous one to the calls whose errors appeared since.
	timed := func() {
		t := time.Now()
		for name := range errs {
			if _, ok := took[name]; !ok {
				took[name] = t.Sub(last)
			}
		}
		last = t
	}
	_, errs["Enrollment"] = s.Enrollment(ctx, "r", "alice")
	timed()
	errs["Enroll"] = s.Enroll(ctx, "r", "zed", sessions.Enrollment{}, []string{"h"})
	timed()
	errs["SetRecoveryCodes"] = s.SetRecoveryCodes(ctx, "r", "alice", []string{"n"})
	timed()
	_, errs["UseRecoveryCode"] = s.UseRecoveryCode(ctx, "r", "alice", "h1")
	timed()
	_, errs["AcceptStep"] = s.AcceptStep(ctx, "r", "alice", 1<<45, exp)
	timed()
	errs["ResetUser"] = s.ResetUser(ctx, "r", "bob")
	timed()
	errs["PutPendingEnrollment"] = s.PutPendingEnrollment(ctx, "r", "alice", sessions.PendingEnrollment{Expires: exp})
	timed()
	_, errs["PendingEnrollment"] = s.PendingEnrollment(ctx, "r", "alice")
	timed()
	_, errs["AddFailure"] = s.AddFailure(ctx, "r", "alice", now, sessions.Limit{Max: 5, Window: time.Minute})
	timed()
	_, errs["Attempts"] = s.Attempts(ctx, "r", "alice", now)
	timed()
	errs["ClearFailures"] = s.ClearFailures(ctx, "r", "alice")
	_, _, errs["ReserveAttempt"] = s.ReserveAttempt(ctx, "r", now, sessions.Counter{Key: "alice", Limit: sessions.Limit{Max: 5, Window: time.Minute}})
	errs["ReleaseAttempt"] = s.ReleaseAttempt(ctx, "r", "alice", now, sessions.Limit{Max: 5, Window: time.Minute})
	_, errs["ServerTime"] = s.ServerTime(ctx)
	timed()
	errs["PutSession"] = s.PutSession(ctx, "r", "sess-2", sessions.Session{User: "alice", Expires: exp})
	timed()
	_, errs["Session"] = s.Session(ctx, "r", "sess-1")
	timed()
	errs["TouchSession"] = s.TouchSession(ctx, "r", "sess-1", now)
	timed()
	errs["DeleteSession"] = s.DeleteSession(ctx, "r", "sess-2")
	timed()
	_, errs["UserSessions"] = s.UserSessions(ctx, "r", "alice")
	timed()
	_, errs["DeleteUserSessions"] = s.DeleteUserSessions(ctx, "r", "alice", "sess-1")
	timed()
	errs["PutDevice"] = s.PutDevice(ctx, "r", "dev-2", sessions.Device{User: "alice", Expires: exp})
	timed()
	_, errs["Device"] = s.Device(ctx, "r", "dev-1")
	timed()
	errs["TouchDevice"] = s.TouchDevice(ctx, "r", "dev-1", now)
	timed()
	errs["DeleteDevice"] = s.DeleteDevice(ctx, "r", "dev-2")
	timed()
	_, errs["UserDevices"] = s.UserDevices(ctx, "r", "alice")
	timed()
	_, errs["DeleteUserDevices"] = s.DeleteUserDevices(ctx, "r", "bob")
	timed()
	errs["PutToken"] = s.PutToken(ctx, "r", "csrf", "tok-2", []byte("v"), exp)
	timed()
	_, errs["ConsumeToken"] = s.ConsumeToken(ctx, "r", "csrf", "tok-1")
	timed()
	_, errs["Users"] = s.Users(ctx, "r")
	timed()
	_, errs["Profile"] = s.Profile(ctx, "r", "alice")
	timed()
	_, errs["SeeUser"] = s.SeeUser(ctx, "r", "alice", now)
	timed()
	errs["RecordVerification"] = s.RecordVerification(ctx, "r", "alice", "totp", now)
	timed()
	errs["SetDisabled"] = s.SetDisabled(ctx, "r", "alice", exp)
	timed()
	errs["Ping"] = s.Ping(ctx)
	timed()
	_, _, errs["EvictionPolicy"] = s.EvictionPolicy(ctx)
	timed()
	return errs, took
}

// TestServerDown stops the server under a working store: every method
// fails (never "not found"), quickly; once the server is back, the same
// store and client work again without any action (go-redis redials).
func TestServerDown(t *testing.T) {
	for name, client := range map[string]func(t testing.TB, srv *redistest.Server) redis.UniversalClient{
		"socket": func(t testing.TB, srv *redistest.Server) redis.UniversalClient { return socketClient(t, srv) },
		"tcp":    func(t testing.TB, srv *redistest.Server) redis.UniversalClient { return configClient(t, srv, 0) },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := redistest.Start(t)
			client := client(t, srv)
			const timeout = 100 * time.Millisecond
			s := New(client, Options{KeyPrefix: "down-" + name})
			quick := New(client, Options{KeyPrefix: "down-" + name, Timeout: timeout})
			fill(t, s)
			for name, err := range everyMethod(s) {
				if err != nil && !errors.Is(err, sessions.ErrExists) && !errors.Is(err, sessions.ErrNotFound) {
					t.Fatalf("%s with the server up: %v", name, err)
				}
			}

			srv.Stop()
			errs, took := everyMethodTimed(quick)
			var slowest time.Duration
			for name, err := range errs {
				wantFailure(t, name+" with the server down", err)
				// The bound only tells "ended by the deadline" from "hung
				// until a dial or read timeout" (seconds); a busy CI
				// machine may add a few hundred milliseconds.
				if took[name] > timeout+time.Second {
					t.Errorf("%s with the server down took %v (timeout %v)", name, took[name], timeout)
				}
				slowest = max(slowest, took[name])
			}
			t.Logf("slowest call with the server down: %v", slowest)

			srv.Restart()
			deadline := time.Now().Add(5 * time.Second)
			for s.Ping(t.Context()) != nil {
				if time.Now().After(deadline) {
					t.Fatal("Ping still fails 5 s after the restart")
				}
				time.Sleep(10 * time.Millisecond)
			}
			t.Logf("recovered %v after the restart", time.Since(deadline.Add(-5*time.Second)))
			// No persistence: the server came back empty.
			fill(t, s)
			for name, err := range everyMethod(s) {
				if err != nil && !errors.Is(err, sessions.ErrExists) && !errors.Is(err, sessions.ErrNotFound) {
					t.Errorf("%s after the restart: %v", name, err)
				}
			}
		})
	}
}

// TestServerTime checks that ServerTime reads the server's clock (the
// test server runs on this machine, so it agrees with time.Now).
func TestServerTime(t *testing.T) {
	srv := redistest.Start(t)
	s := New(socketClient(t, srv), Options{Now: func() time.Time { return time.Now().Add(time.Hour) }})
	got, err := s.ServerTime(t.Context())
	must(t, err)
	if d := time.Since(got); d > time.Second || d < -time.Second {
		t.Errorf("ServerTime = %v, %v from time.Now; want the server's clock, not Options.Now", got, d)
	}
}

// TestClosedClient checks that a closed client fails closed.
func TestClosedClient(t *testing.T) {
	srv := redistest.Start(t)
	c := redis.NewClient(&redis.Options{Network: "unix", Addr: srv.Socket})
	s := New(c, Options{})
	fill(t, s)
	must(t, c.Close())
	for name, err := range everyMethod(s) {
		wantFailure(t, name+" with a closed client", err)
	}
}

// TestTimeout checks that a server that stops answering (CLIENT PAUSE)
// makes calls fail after Options.Timeout, not hang, with a client built
// from a Config, and that a shorter context deadline wins.
func TestTimeout(t *testing.T) {
	srv := redistest.Start(t)
	admin := socketClient(t, srv)
	client := configClient(t, srv, 0)
	s := New(client, Options{Timeout: 200 * time.Millisecond})
	ctx := t.Context()
	fill(t, s)
	must(t, admin.Do(ctx, "CLIENT", "PAUSE", 1000, "ALL").Err())
	t.Cleanup(func() { admin.Do(context.Background(), "CLIENT", "UNPAUSE") })

	start := time.Now()
	_, err := s.Session(ctx, "r", "sess-1")
	d := time.Since(start)
	wantFailure(t, "Session with a paused server", err)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Logf("error: %v", err)
	}
	if d > time.Second {
		t.Errorf("Session took %v with a 200ms timeout", d)
	}

	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err = s.UseRecoveryCode(short, "r", "alice", "h1")
	d = time.Since(start)
	wantFailure(t, "UseRecoveryCode with a paused server", err)
	// The pause lasts 1000ms: anything well under it ended by the
	// deadline (with room for a busy CI machine).
	if d > 700*time.Millisecond {
		t.Errorf("UseRecoveryCode took %v with a 50ms context deadline", d)
	}
	must(t, admin.Do(ctx, "CLIENT", "UNPAUSE").Err())
	_, err = s.Session(ctx, "r", "sess-1")
	must(t, err)
	// The code was not used by the call that timed out... or was: the
	// command may have been queued before the deadline. Either way the
	// store answers consistently afterwards.
	if _, err := s.UseRecoveryCode(ctx, "r", "alice", "h2"); err != nil {
		t.Fatal(err)
	}
}

// TestTwoInstances races 20 goroutines through two separate clients (two
// gate instances, one on the unix socket and one on TCP) on one recovery
// code, one TOTP step and one token: exactly one wins each; failures are
// all counted.
func TestTwoInstances(t *testing.T) {
	srv := redistest.Start(t)
	a := New(socketClient(t, srv), Options{})
	b := New(configClient(t, srv, 0), Options{})
	ctx := t.Context()
	must(t, a.Enroll(ctx, "r", "alice", sessions.Enrollment{SealedSecret: []byte("x")}, []string{"h1", "h2", "h3"}))
	must(t, b.PutToken(ctx, "r", "login", "t", []byte("v"), time.Now().Add(time.Minute)))
	const n = 20
	step := time.Now().Unix() / 30
	var (
		wg                      sync.WaitGroup
		start                   = make(chan struct{})
		codeWins, stepWins, tok atomic.Int64
		failures                sync.Map
		firstSeen               [n]time.Time
	)
	lim := sessions.Limit{Max: 1000, Window: time.Hour, Lockout: time.Hour}
	now := time.Now()
	for i := range n {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Go(func() {
			<-start
			if rem, err := s.UseRecoveryCode(ctx, "r", "alice", "h2"); err == nil {
				codeWins.Add(1)
				if rem != 2 {
					t.Errorf("remaining = %d, want 2", rem)
				}
			} else if !errors.Is(err, sessions.ErrNotFound) {
				t.Error(err)
			}
			if ok, err := s.AcceptStep(ctx, "r", "alice", step, time.Now().Add(90*time.Second)); err != nil {
				t.Error(err)
			} else if ok {
				stepWins.Add(1)
			}
			if _, err := s.ConsumeToken(ctx, "r", "login", "t"); err == nil {
				tok.Add(1)
			} else if !errors.Is(err, sessions.ErrNotFound) {
				t.Error(err)
			}
			at, err := s.AddFailure(ctx, "r", "alice", now, lim)
			if err != nil {
				t.Error(err)
				return
			}
			if _, dup := failures.LoadOrStore(at.Failures, i); dup {
				t.Errorf("two AddFailure calls returned count %d", at.Failures)
			}
			p, err := s.SeeUser(ctx, "r", "bob", now.Add(time.Duration(i)*time.Second))
			if err != nil {
				t.Error(err)
				return
			}
			firstSeen[i] = p.FirstSeen
		})
	}
	close(start)
	wg.Wait()
	if codeWins.Load() != 1 || stepWins.Load() != 1 || tok.Load() != 1 {
		t.Fatalf("wins: recovery code %d, TOTP step %d, token %d; want 1 each", codeWins.Load(), stepWins.Load(), tok.Load())
	}
	for i := range n {
		if !firstSeen[i].Equal(firstSeen[0]) {
			t.Fatalf("SeeUser on two instances returned FirstSeen %v and %v", firstSeen[0], firstSeen[i])
		}
	}
	for _, s := range []*Store{a, b} {
		at, err := s.Attempts(ctx, "r", "alice", now)
		must(t, err)
		if at.Failures != n {
			t.Errorf("Attempts.Failures = %d, want %d", at.Failures, n)
		}
		e, err := s.Enrollment(ctx, "r", "alice")
		must(t, err)
		if e.RecoveryCodes != 2 {
			t.Errorf("RecoveryCodes = %d, want 2", e.RecoveryCodes)
		}
	}
	// A session created on one instance is revoked on the other.
	must(t, a.PutSession(ctx, "r", "s1", realisticSession("alice", time.Now())))
	if n, err := b.DeleteUserSessions(ctx, "r", "alice"); err != nil || n != 1 {
		t.Fatalf("DeleteUserSessions on the other instance = %d, %v", n, err)
	}
	if _, err := a.Session(ctx, "r", "s1"); !errors.Is(err, sessions.ErrNotFound) {
		t.Fatalf("Session after revocation elsewhere: %v", err)
	}
}

// TestPersistence checks that with AOF on, enrollments, recovery codes,
// lockouts and replay markers survive a restart, and that a kill -9 just
// after an enrollment loses nothing with appendfsync always and never
// leaves a half-written enrollment.
func TestPersistence(t *testing.T) {
	srv := redistest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
	s := New(socketClient(t, srv), Options{})
	ctx := t.Context()
	now := time.Now()
	lim := sessions.Limit{Max: 2, Window: time.Hour, Lockout: time.Hour}
	check := func(when string) {
		t.Helper()
		e, err := s.Enrollment(ctx, "r", "alice")
		if err != nil || e.RecoveryCodes != 2 || string(e.SealedSecret) != "sealed" {
			t.Fatalf("%s: Enrollment = %+v, %v", when, e, err)
		}
		if ok, err := s.AcceptStep(ctx, "r", "alice", 1000, now.Add(time.Hour)); err != nil || ok {
			t.Fatalf("%s: replayed step accepted: %v %v", when, ok, err)
		}
		a, err := s.Attempts(ctx, "r", "bob", now)
		if err != nil || !a.Locked(now) {
			t.Fatalf("%s: Attempts = %+v, %v; want locked", when, a, err)
		}
	}
	waitUp := func() {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for s.Ping(ctx) != nil {
			if time.Now().After(deadline) {
				t.Fatal("store not back 5 s after the restart")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	must(t, s.Enroll(ctx, "r", "alice", sessions.Enrollment{SealedSecret: []byte("sealed")}, []string{"h1", "h2"}))
	if ok, err := s.AcceptStep(ctx, "r", "alice", 1000, now.Add(time.Hour)); err != nil || !ok {
		t.Fatalf("AcceptStep = %v, %v", ok, err)
	}
	for range 2 {
		_, err := s.AddFailure(ctx, "r", "bob", now, lim)
		must(t, err)
	}
	srv.Restart()
	waitUp()
	check("after a restart")

	must(t, s.Enroll(ctx, "r", "carol", sessions.Enrollment{SealedSecret: []byte("c")}, []string{"c1", "c2", "c3"}))
	srv.Kill()
	srv.Restart()
	waitUp()
	check("after kill -9")
	e, err := s.Enrollment(ctx, "r", "carol")
	if err != nil || e.RecoveryCodes != 3 {
		t.Fatalf("enrollment made just before kill -9: %+v, %v", e, err)
	}
}

// TestEvictionPolicy reads the policy of servers started with a risky and
// a safe policy, and of a server that refuses CONFIG to the store's user
// (as managed services do).
func TestEvictionPolicy(t *testing.T) {
	for policy, risky := range map[string]bool{"allkeys-lru": true, "noeviction": false, "volatile-ttl": false} {
		srv := redistest.Start(t, "--maxmemory-policy", policy)
		got, gotRisky, err := New(socketClient(t, srv), Options{}).EvictionPolicy(t.Context())
		if err != nil || got != policy || gotRisky != risky {
			t.Errorf("EvictionPolicy = %q, %v, %v; want %q, %v", got, gotRisky, err, policy, risky)
		}
	}
	srv := redistest.Start(t)
	admin := socketClient(t, srv)
	must(t, admin.Do(t.Context(), "ACL", "SETUSER", "gate", "on", ">secret-pw", "~*", "+@all", "-config").Err())
	c := redis.NewClient(&redis.Options{Network: "unix", Addr: srv.Socket, Username: "gate", Password: "secret-pw"})
	t.Cleanup(func() { c.Close() })
	s := New(c, Options{})
	must(t, s.Ping(t.Context()))
	policy, risky, err := s.EvictionPolicy(t.Context())
	if err == nil || policy != "" || risky {
		t.Fatalf("EvictionPolicy without CONFIG = %q, %v, %v; want an error", policy, risky, err)
	}
	if strings.Contains(err.Error(), "secret-pw") {
		t.Fatalf("error contains the password: %v", err)
	}
	t.Logf("without CONFIG: %v", err)
}

// TestCorruptRecords checks that a record the store cannot read is a
// failure, never "not found" (which callers could take for "not
// enrolled").
func TestCorruptRecords(t *testing.T) {
	srv := redistest.Start(t)
	c := socketClient(t, srv)
	s := New(c, Options{KeyPrefix: "bad"})
	fill(t, s)
	ctx := t.Context()
	for _, k := range []string{
		sessionKey("bad", "r", "sess-1"), "bad:r:d:dev-1", "bad:r:t:csrf:tok-1",
		"bad:{r:alice}:enr", "bad:{r:alice}:pend", "bad:{r:alice}:step", "bad:{r}:fail:alice",
		"bad:{r:alice}:prof", // a string, not a hash
	} {
		must(t, c.Set(ctx, k, "\x09garbage", 0).Err())
	}
	// A hash with a malformed time.
	must(t, c.HSet(ctx, "bad:{r:bob}:prof", "first", "1 2", "verified", "yesterday").Err())
	must(t, c.SAdd(ctx, "bad:r:users", "bob").Err())
	now := time.Now()
	errs := map[string]error{}
	_, errs["Session"] = s.Session(ctx, "r", "sess-1")
	errs["TouchSession"] = s.TouchSession(ctx, "r", "sess-1", now)
	_, errs["UserSessions"] = s.UserSessions(ctx, "r", "alice")
	_, errs["Device"] = s.Device(ctx, "r", "dev-1")
	errs["TouchDevice"] = s.TouchDevice(ctx, "r", "dev-1", now)
	_, errs["UserDevices"] = s.UserDevices(ctx, "r", "alice")
	_, errs["ConsumeToken"] = s.ConsumeToken(ctx, "r", "csrf", "tok-1")
	_, errs["Enrollment"] = s.Enrollment(ctx, "r", "alice")
	_, errs["PendingEnrollment"] = s.PendingEnrollment(ctx, "r", "alice")
	_, errs["AcceptStep"] = s.AcceptStep(ctx, "r", "alice", 1<<45, now.Add(time.Minute))
	_, errs["AddFailure"] = s.AddFailure(ctx, "r", "alice", now, sessions.Limit{Max: 3, Window: time.Minute})
	_, errs["Attempts"] = s.Attempts(ctx, "r", "alice", now)
	_, _, errs["ReserveAttempt"] = s.ReserveAttempt(ctx, "r", now, sessions.Counter{Key: "ip:x", Limit: sessions.Limit{Max: 3, Window: time.Minute}}, sessions.Counter{Key: "alice", Limit: sessions.Limit{Max: 3, Window: time.Minute}})
	errs["ReleaseAttempt"] = s.ReleaseAttempt(ctx, "r", "alice", now, sessions.Limit{Max: 3, Window: time.Minute})
	_, errs["Profile"] = s.Profile(ctx, "r", "alice")
	_, errs["SeeUser"] = s.SeeUser(ctx, "r", "alice", now)
	errs["RecordVerification"] = s.RecordVerification(ctx, "r", "alice", "totp", now)
	errs["SetDisabled"] = s.SetDisabled(ctx, "r", "alice", now)
	_, errs["Profile of bob"] = s.Profile(ctx, "r", "bob")
	_, errs["SeeUser of bob"] = s.SeeUser(ctx, "r", "bob", now)
	for name, err := range errs {
		wantFailure(t, name+" of a corrupt record", err)
	}
	// A corrupt record stays deletable.
	must(t, s.DeleteSession(ctx, "r", "sess-1"))
	must(t, s.ResetUser(ctx, "r", "alice"))
	if _, err := s.Enrollment(ctx, "r", "alice"); !errors.Is(err, sessions.ErrNotFound) {
		t.Errorf("Enrollment after ResetUser: %v", err)
	}
	// ResetUser drops a profile that is not a hash, and clears the
	// malformed fields of one that is (its first field is fine).
	if _, err := s.Profile(ctx, "r", "alice"); !errors.Is(err, sessions.ErrNotFound) {
		t.Errorf("Profile after ResetUser of a corrupt one: %v", err)
	}
	must(t, s.ResetUser(ctx, "r", "bob"))
	if p, err := s.Profile(ctx, "r", "bob"); err != nil || p.FirstSeen.Unix() != 1 || p.FirstSeen.Nanosecond() != 2 {
		t.Errorf("Profile of bob after ResetUser = %+v, %v", p, err)
	}
	// A profile whose first field is malformed is dropped too.
	must(t, c.HSet(ctx, "bad:{r:carol}:prof", "first", "garbage").Err())
	must(t, s.ResetUser(ctx, "r", "carol"))
	if n := c.Exists(ctx, "bad:{r:carol}:prof").Val(); n != 0 {
		t.Errorf("profile with a malformed first survived ResetUser")
	}
	if u, err := s.Users(ctx, "r"); err != nil || !slices.Equal(u, []string{"bob"}) {
		t.Errorf("Users = %q, %v; want bob", u, err)
	}
}

// TestEmptyNames checks the same rules as the file store: writes with an
// empty name fail as store errors, reads of empty names are absent.
func TestEmptyNames(t *testing.T) {
	srv := redistest.Start(t)
	s := New(socketClient(t, srv), Options{})
	ctx := t.Context()
	exp := time.Now().Add(time.Hour)
	checks := map[string]error{
		"Enroll empty realm":        s.Enroll(ctx, "", "alice", sessions.Enrollment{}, nil),
		"Enroll empty user":         s.Enroll(ctx, "r", "", sessions.Enrollment{}, nil),
		"PutSession empty id":       s.PutSession(ctx, "r", "", sessions.Session{User: "u", Expires: exp}),
		"PutSession empty user":     s.PutSession(ctx, "r", "id", sessions.Session{Expires: exp}),
		"PutSession empty realm":    s.PutSession(ctx, "", "id", sessions.Session{User: "u", Expires: exp}),
		"PutDevice empty id":        s.PutDevice(ctx, "r", "", sessions.Device{User: "u", Expires: exp}),
		"PutPending empty user":     s.PutPendingEnrollment(ctx, "r", "", sessions.PendingEnrollment{Expires: exp}),
		"ResetUser empty user":      s.ResetUser(ctx, "r", ""),
		"PutToken empty realm":      s.PutToken(ctx, "", "k", "t", nil, exp),
		"SetRecoveryCodes empty":    s.SetRecoveryCodes(ctx, "r", "", nil),
		"TouchSession empty realm":  s.TouchSession(ctx, "", "id", exp),
		"DeleteSession empty realm": s.DeleteSession(ctx, "", "id"),
		"DeleteDevice empty realm":  s.DeleteDevice(ctx, "", "id"),
		"ClearFailures empty realm": s.ClearFailures(ctx, "", "k"),
		"RecordVerification user":   s.RecordVerification(ctx, "r", "", "totp", exp),
		"RecordVerification realm":  s.RecordVerification(ctx, "", "u", "totp", exp),
		"SetDisabled empty user":    s.SetDisabled(ctx, "r", "", exp),
		"SetDisabled empty realm":   s.SetDisabled(ctx, "", "u", exp),
	}
	_, checks["SeeUser empty user"] = s.SeeUser(ctx, "r", "", exp)
	_, checks["SeeUser empty realm"] = s.SeeUser(ctx, "", "u", exp)
	_, checks["ConsumeToken empty realm"] = s.ConsumeToken(ctx, "", "k", "t")
	_, checks["UseRecoveryCode empty realm"] = s.UseRecoveryCode(ctx, "", "u", "h")
	_, checks["AddFailure empty key"] = s.AddFailure(ctx, "r", "", time.Now(), sessions.Limit{Max: 1})
	_, checks["AcceptStep empty user"] = s.AcceptStep(ctx, "r", "", 1, exp)
	_, checks["AcceptStep huge step"] = s.AcceptStep(ctx, "r", "u", 1<<60, exp)
	_, checks["DeleteUserSessions empty user"] = s.DeleteUserSessions(ctx, "r", "")
	for name, err := range checks {
		wantFailure(t, name, err)
	}
	if _, err := s.Session(ctx, "", ""); !errors.Is(err, sessions.ErrNotFound) {
		t.Errorf("Session of empty names: %v", err)
	}
	if _, err := s.Profile(ctx, "", ""); !errors.Is(err, sessions.ErrNotFound) {
		t.Errorf("Profile of empty names: %v", err)
	}
	if u, err := s.Users(ctx, ""); err != nil || len(u) != 0 {
		t.Errorf("Users of the empty realm = %q, %v", u, err)
	}
	must(t, s.PutToken(ctx, "r", "", "", []byte("v"), exp))
	if v, err := s.ConsumeToken(ctx, "r", "", ""); err != nil || string(v) != "v" {
		t.Errorf("ConsumeToken with empty kind and id = %q, %v", v, err)
	}
	must(t, s.PutToken(ctx, "r", "k", "nil", nil, exp))
	if v, err := s.ConsumeToken(ctx, "r", "k", "nil"); err != nil || v == nil || len(v) != 0 {
		t.Errorf("ConsumeToken of a nil value = %#v, %v; want empty, non-nil", v, err)
	}
}

// TestFarFuture checks that records expiring beyond what a Duration holds
// are kept (with a long TTL), not dropped.
func TestFarFuture(t *testing.T) {
	srv := redistest.Start(t)
	s := New(socketClient(t, srv), Options{})
	ctx := t.Context()
	far := time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)
	must(t, s.PutSession(ctx, "r", "s", sessions.Session{User: "u", Expires: far}))
	must(t, s.PutDevice(ctx, "r", "d", sessions.Device{User: "u", Expires: far}))
	must(t, s.PutToken(ctx, "r", "k", "t", []byte("v"), far))
	must(t, s.PutPendingEnrollment(ctx, "r", "u", sessions.PendingEnrollment{Expires: far}))
	if ok, err := s.AcceptStep(ctx, "r", "u", 10, far); err != nil || !ok {
		t.Fatalf("AcceptStep = %v, %v", ok, err)
	}
	if ok, err := s.AcceptStep(ctx, "r", "u", 9, far); err != nil || ok {
		t.Fatalf("lower AcceptStep = %v, %v", ok, err)
	}
	if _, err := s.Session(ctx, "r", "s"); err != nil {
		t.Errorf("Session: %v", err)
	}
	if n, err := s.UserSessions(ctx, "r", "u"); err != nil || n != 1 {
		t.Errorf("UserSessions = %d, %v", n, err)
	}
	if _, err := s.Device(ctx, "r", "d"); err != nil {
		t.Errorf("Device: %v", err)
	}
	if _, err := s.PendingEnrollment(ctx, "r", "u"); err != nil {
		t.Errorf("PendingEnrollment: %v", err)
	}
	if _, err := s.ConsumeToken(ctx, "r", "k", "t"); err != nil {
		t.Errorf("ConsumeToken: %v", err)
	}
	a, err := s.AddFailure(ctx, "r", "u", time.Now(), sessions.Limit{Max: 1, Window: time.Hour, Lockout: time.Duration(math.MaxInt64)})
	if err != nil || a.Failures != 1 || !a.Locked(time.Now().Add(100*365*24*time.Hour)) {
		t.Errorf("AddFailure with an endless lockout = %+v, %v", a, err)
	}
}

// TestExplicitClock checks that Options.Now decides expiry on read, and
// that AddFailure uses the time it is given for the window and its TTL.
func TestExplicitClock(t *testing.T) {
	srv := redistest.Start(t)
	c := socketClient(t, srv)
	var mu sync.Mutex
	clock := time.Now()
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	set := func(t time.Time) { mu.Lock(); defer mu.Unlock(); clock = t }
	s := New(c, Options{KeyPrefix: "clock", Now: now})
	ctx := t.Context()
	t0 := now()
	must(t, s.PutSession(ctx, "r", "s", sessions.Session{User: "u", Expires: t0.Add(time.Minute)}))
	set(t0.Add(time.Minute))
	if _, err := s.Session(ctx, "r", "s"); !errors.Is(err, sessions.ErrNotFound) {
		t.Errorf("Session at its expiry: %v", err)
	}
	if n, err := s.UserSessions(ctx, "r", "u"); err != nil || n != 0 {
		t.Errorf("UserSessions at the expiry = %d, %v", n, err)
	}
	// The key is still there (its TTL runs on the server's clock), the
	// record reads as expired.
	if c.Exists(ctx, sessionKey("clock", "r", "s")).Val() != 1 {
		t.Error("key gone early")
	}
	// The step record expires by the store's clock too.
	set(t0)
	if ok, _ := s.AcceptStep(ctx, "r", "u", 100, t0.Add(time.Minute)); !ok {
		t.Fatal("first step refused")
	}
	if ok, _ := s.AcceptStep(ctx, "r", "u", 50, t0.Add(time.Minute)); ok {
		t.Fatal("lower step accepted")
	}
	set(t0.Add(time.Minute))
	if ok, _ := s.AcceptStep(ctx, "r", "u", 50, t0.Add(2*time.Minute)); !ok {
		t.Fatal("lower step refused after the record expired")
	}
}

// commandNames is a go-redis hook that records the names of the commands
// sent.
type commandNames struct {
	mu    sync.Mutex
	names map[string]int
}

func (h *commandNames) add(cmd redis.Cmder) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.names[cmd.Name()]++
}

func (h *commandNames) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *commandNames) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.add(cmd)
		return next(ctx, cmd)
	}
}

func (h *commandNames) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			h.add(c)
		}
		return next(ctx, cmds)
	}
}

// TestUsers checks how Users reads: the realm's users set and one script
// per member (EXISTS of the enrollment, HEXISTS of the profile's first
// field), never a scan of the keyspace, across several pipeline batches,
// skipping members that have neither an enrollment nor a profile. After a
// restart of the server (no script cached), the script is loaded once,
// not sent with each member.
func TestUsers(t *testing.T) {
	srv := redistest.Start(t)
	c := socketClient(t, srv)
	s := New(c, Options{KeyPrefix: "users"})
	ctx := t.Context()
	const n = 2*usersBatch + 7
	var want []string
	for i := range n {
		u := fmt.Sprintf("user%05d", i)
		if i%3 == 0 {
			must(t, s.Enroll(ctx, "r", u, sessions.Enrollment{SealedSecret: []byte("x")}, nil))
		} else {
			must(t, s.SetDisabled(ctx, "r", u, time.Now()))
		}
		want = append(want, u)
	}
	// Members without records: left by a failed write, or by ResetUser of
	// a user without a profile. A session does not make a profile.
	must(t, c.SAdd(ctx, "users:r:users", "ghost", "zombie").Err())
	must(t, s.ResetUser(ctx, "r", "user00000"))
	must(t, s.PutSession(ctx, "r", "s1", realisticSession("user00000", time.Now())))
	want = want[1:]
	must(t, c.ScriptFlush(ctx).Err())

	h := &commandNames{names: map[string]int{}}
	c.AddHook(h)
	for _, call := range []string{"first", "second"} {
		got, err := s.Users(ctx, "r")
		must(t, err)
		if !slices.Equal(got, want) {
			t.Fatalf("Users returned %d users (%q ...), want %d", len(got), got[:min(3, len(got))], len(want))
		}
		h.mu.Lock()
		// A new pooled connection sends HELLO and CLIENT SETINFO first.
		delete(h.names, "hello")
		delete(h.names, "client")
		t.Logf("%s call: %v", call, h.names)
		if call == "first" {
			// The first batch is refused (NOSCRIPT) and sent again.
			if len(h.names) != 3 || h.names["smembers"] != 1 || h.names["script"] != 1 || h.names["evalsha"] != n+2+usersBatch {
				t.Errorf("Users sent %v, want 1 smembers, 1 script load and %d evalsha", h.names, n+2+usersBatch)
			}
		} else if len(h.names) != 2 || h.names["smembers"] != 1 || h.names["evalsha"] != n+2 {
			t.Errorf("Users sent %v, want 1 smembers and %d evalsha", h.names, n+2)
		}
		clear(h.names)
		h.mu.Unlock()
	}
}

// TestSessionIndex checks where sessions live: under a digest of their ID
// (the ID itself is nowhere in Redis), indexed in their owner's profile
// hash, which gets a TTL while it holds no profile and loses it when a
// profile is written; expired entries are pruned by later writes;
// ResetUser keeps the first visit and removes the entries; and keys of
// the earlier format (sessions under "s:<id>", a "sess" sorted set per
// user) are ignored.
func TestSessionIndex(t *testing.T) {
	srv := redistest.Start(t)
	c := socketClient(t, srv)
	var mu sync.Mutex
	clock := time.Now()
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	set := func(t time.Time) { mu.Lock(); defer mu.Unlock(); clock = t }
	s := New(c, Options{KeyPrefix: "idx", Now: now})
	ctx := t.Context()
	t0 := now()
	prof := "idx:{r:bob}:prof"
	sess := func(exp time.Time) sessions.Session {
		return sessions.Session{User: "bob", Method: "totp", Created: t0, LastSeen: t0, Expires: exp}
	}

	// A session of a user without a profile.
	const secretID = "SECRET7ID7THAT7ONLY7A7COOKIE7HAS"
	must(t, s.PutSession(ctx, "r", secretID, sess(t0.Add(time.Hour))))
	if m := c.HGetAll(ctx, prof).Val(); len(m) != 1 || m[sessionKeyID(secretID)] != fmt.Sprint(scoreSeconds(t0.Add(time.Hour))) {
		t.Fatalf("profile hash = %v, want one entry for the session", m)
	}
	if d := c.PTTL(ctx, prof).Val(); d < 59*time.Minute || d > time.Hour+time.Second {
		t.Errorf("profile hash without a profile: TTL %v, want about 1h", d)
	}
	if _, err := s.Profile(ctx, "r", "bob"); !errors.Is(err, sessions.ErrNotFound) {
		t.Errorf("Profile of a user with a session only: %v, want ErrNotFound", err)
	}
	for _, k := range c.Keys(ctx, "*").Val() {
		if strings.Contains(k, secretID) {
			t.Errorf("key %q holds the session ID", k)
		}
		if typ := c.Type(ctx, k).Val(); typ == "hash" {
			for f, v := range c.HGetAll(ctx, k).Val() {
				if strings.Contains(f+v, secretID) {
					t.Errorf("hash %q holds the session ID", k)
				}
			}
		} else if typ == "string" && strings.Contains(c.Get(ctx, k).Val(), secretID) {
			t.Errorf("value of %q holds the session ID", k)
		}
	}

	// A profile write makes the hash permanent.
	_, err := s.SeeUser(ctx, "r", "bob", t0)
	must(t, err)
	if d := c.PTTL(ctx, prof).Val(); d != -1 {
		t.Errorf("profile hash with a profile: TTL %v, want none", d)
	}
	if p, err := s.Profile(ctx, "r", "bob"); err != nil || !p.FirstSeen.Equal(t0) {
		t.Errorf("Profile = %+v, %v", p, err)
	}

	// Entries that expired are pruned by the next write.
	must(t, s.PutSession(ctx, "r", "short", sess(t0.Add(time.Minute))))
	set(t0.Add(2 * time.Minute))
	must(t, s.PutSession(ctx, "r", "later", sess(t0.Add(time.Hour))))
	if c.HExists(ctx, prof, sessionKeyID("short")).Val() {
		t.Error("expired entry not pruned by a later PutSession")
	}
	if n, err := s.UserSessions(ctx, "r", "bob"); err != nil || n != 2 {
		t.Errorf("UserSessions = %d, %v; want 2", n, err)
	}

	// Keys of the earlier format are ignored: a session under s:<id> and
	// an index sorted set.
	old := encodeSession(sess(t0.Add(time.Hour)))
	must(t, c.Set(ctx, "idx:r:s:old-id", old, time.Hour).Err())
	must(t, c.ZAdd(ctx, "idx:{r:bob}:sess", redis.Z{Score: float64(t0.Add(time.Hour).Unix()), Member: "old-id"}).Err())
	if _, err := s.Session(ctx, "r", "old-id"); !errors.Is(err, sessions.ErrNotFound) {
		t.Errorf("Session stored in the earlier format: %v, want ErrNotFound", err)
	}

	// Signing out the others prunes too, and leaves the old keys alone.
	must(t, s.PutSession(ctx, "r", "soon", sess(now().Add(time.Minute))))
	set(now().Add(2 * time.Minute))
	if n, err := s.DeleteUserSessions(ctx, "r", "bob", "later"); err != nil || n != 1 {
		t.Errorf("DeleteUserSessions = %d, %v; want 1 (the secret one)", n, err)
	}
	if m := c.HGetAll(ctx, prof).Val(); len(m) != 2 || m[sessionKeyID("later")] == "" {
		t.Errorf("profile hash after signing out the others = %v, want first and later", m)
	}
	if c.Exists(ctx, "idx:r:s:old-id", "idx:{r:bob}:sess").Val() != 2 {
		t.Error("keys of the earlier format touched")
	}

	// ResetUser keeps first and removes the entries with the sessions.
	must(t, s.ResetUser(ctx, "r", "bob"))
	if m := c.HGetAll(ctx, prof).Val(); len(m) != 1 || m["first"] == "" {
		t.Errorf("profile hash after ResetUser = %v, want first only", m)
	}
	if _, err := s.Session(ctx, "r", "later"); !errors.Is(err, sessions.ErrNotFound) {
		t.Errorf("Session after ResetUser: %v", err)
	}

	// With a malformed first, ResetUser drops it; the sessions go, and
	// what is left of the hash expires.
	must(t, c.HSet(ctx, "idx:{r:carol}:prof", "first", "garbage").Err())
	carol := sessions.Session{User: "carol", Expires: now().Add(time.Hour)}
	must(t, s.PutSession(ctx, "r", "c1", carol))
	must(t, s.ResetUser(ctx, "r", "carol"))
	if c.Exists(ctx, "idx:{r:carol}:prof").Val() != 0 {
		t.Errorf("carol's hash after ResetUser: %v (TTL %v)", c.HGetAll(ctx, "idx:{r:carol}:prof").Val(), c.PTTL(ctx, "idx:{r:carol}:prof").Val())
	}
}
