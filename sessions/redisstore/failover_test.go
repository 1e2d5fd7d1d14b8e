package redisstore

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-2fa/caddy-2fa/internal/redistest"
	"github.com/caddy-2fa/caddy-2fa/sessions"
)

// TestSentinelFailover: a store on a Sentinel-managed master keeps
// working after the master dies and Sentinel promotes the replica
// (checklist item 59). While there is no master, every operation fails
// (fail closed: never a session, never an accepted code); afterwards the
// enrollment, the session and the replay marker written before the
// failover are there (they were replicated, which the test waits for with
// WAIT), so a code used before the failover is still refused.
func TestSentinelFailover(t *testing.T) {
	master := redistest.Start(t)
	replica := redistest.Start(t, "--replicaof", "127.0.0.1", strings.Split(master.Addr, ":")[1])
	sentinel := redistest.StartSentinel(t, master, "gate")

	cfg := Config{Addrs: []string{sentinel.Addr}, MasterName: "gate", DialTimeout: 300 * time.Millisecond, ReadTimeout: 300 * time.Millisecond}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	client := redis.NewUniversalClient(cfg.UniversalOptions())
	t.Cleanup(func() { client.Close() })
	s := New(client, Options{KeyPrefix: "failover"})
	ctx := t.Context()

	// Wait until the Sentinel knows the replica (it learns it from the
	// master's INFO), else it has nobody to promote.
	sc := redis.NewSentinelClient(&redis.Options{Addr: sentinel.Addr})
	t.Cleanup(func() { sc.Close() })
	waitFor(t, 30*time.Second, "the Sentinel to see the replica", func() error {
		rs, err := sc.Replicas(ctx, "gate").Result()
		if err != nil {
			return err
		}
		if len(rs) == 0 {
			return errors.New("no replica yet")
		}
		return nil
	})

	now := time.Now()
	step := now.Unix() / 30
	must(t, s.Enroll(ctx, "r", "alice", sessions.Enrollment{SealedSecret: []byte("sealed"), Algorithm: "SHA1", Digits: 6, Period: 30, Created: now}, []string{"h1"}))
	must(t, s.PutSession(ctx, "r", "sess-1", sessions.Session{User: "alice", Method: "totp", Created: now, Expires: now.Add(time.Hour), LastSeen: now}))
	if ok, err := s.AcceptStep(ctx, "r", "alice", step, now.Add(2*time.Minute)); !ok || err != nil {
		t.Fatalf("AcceptStep before failover = %v, %v", ok, err)
	}
	// Everything written so far reached the replica.
	m := redis.NewClient(&redis.Options{Network: "unix", Addr: master.Socket})
	if n, err := m.Do(ctx, "WAIT", 1, 5000).Int(); err != nil || n != 1 {
		t.Fatalf("WAIT = %d, %v: the replica did not acknowledge", n, err)
	}
	m.Close()

	master.Kill()

	// Until a replica is promoted, operations fail; none succeeds wrongly.
	promoted := false
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		c, cancel := context.WithTimeout(ctx, 2*time.Second)
		sess, err := s.Session(c, "r", "sess-1")
		cancel()
		if err == nil {
			if sess.User != "alice" {
				t.Fatalf("after failover the session belongs to %q", sess.User)
			}
			promoted = true
			break
		}
		if errors.Is(err, sessions.ErrNotFound) {
			t.Fatal("during failover the session read as absent, not as a store error")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !promoted {
		t.Fatalf("no master after 60 s; sentinel log:\n%s", tail(sentinel))
	}
	addr, err := sc.GetMasterAddrByName(ctx, "gate").Result()
	if err != nil || addr[0]+":"+addr[1] != replica.Addr {
		t.Fatalf("Sentinel's master = %v, %v; want the replica %s", addr, err, replica.Addr)
	}

	// The replay marker survived: the same step is refused, the next one
	// accepted. Writes go to the new master.
	if ok, err := s.AcceptStep(ctx, "r", "alice", step, now.Add(2*time.Minute)); ok || err != nil {
		t.Fatalf("replayed step after failover = %v, %v; want refused", ok, err)
	}
	if ok, err := s.AcceptStep(ctx, "r", "alice", step+1, now.Add(2*time.Minute)); !ok || err != nil {
		t.Fatalf("next step after failover = %v, %v; want accepted", ok, err)
	}
	if e, err := s.Enrollment(ctx, "r", "alice"); err != nil || string(e.SealedSecret) != "sealed" {
		t.Fatalf("enrollment after failover = %+v, %v", e, err)
	}
	if n, err := s.UseRecoveryCode(ctx, "r", "alice", "h1"); err != nil || n != 0 {
		t.Fatalf("recovery code after failover: %d left, %v", n, err)
	}
	must(t, s.PutSession(ctx, "r", "sess-2", sessions.Session{User: "alice", Method: "totp", Created: now, Expires: now.Add(time.Hour), LastSeen: now}))
	if n, err := s.UserSessions(ctx, "r", "alice"); err != nil || n != 2 {
		t.Fatalf("UserSessions after failover = %d, %v; want 2", n, err)
	}
}

// waitFor polls f until it returns nil, failing the test after limit.
func waitFor(t *testing.T, limit time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// tail is the end of a server's log.
func tail(s *redistest.Server) string {
	b, _ := os.ReadFile(s.Dir + "/redis.log")
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}
