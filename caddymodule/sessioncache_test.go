package caddymodule

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/caddy-2fa/caddy-2fa/sessions"
	"github.com/caddy-2fa/caddy-2fa/sessions/filestore"
)

// countingStore counts Session reads that reach the real store.
type countingStore struct {
	sessions.Store
	reads int
}

func (c *countingStore) Session(ctx context.Context, realm, id string) (sessions.Session, error) {
	c.reads++
	return c.Store.Session(ctx, realm, id)
}

func TestSessionCache(t *testing.T) {
	fs, err := filestore.Open(t.TempDir()+"/s.db", filestore.Options{SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fs.Close() })
	inner := &countingStore{Store: fs}
	c := newCachedStore(inner)
	ctx := context.Background()
	t0 := testNow()
	put := func(id, user string) {
		if err := c.PutSession(ctx, "r", id, sessions.Session{User: user, Method: MethodTOTP, Created: t0, Expires: t0.Add(time.Hour), LastSeen: t0}); err != nil {
			t.Fatal(err)
		}
	}
	read := func(id string) error { _, err := c.Session(ctx, "r", id); return err }
	put("a1", "alice")
	put("a2", "alice")
	put("b1", "bob")

	// Repeated reads within the TTL reach the store once.
	for range 5 {
		if err := read("a1"); err != nil {
			t.Fatal(err)
		}
	}
	if inner.reads != 1 {
		t.Fatalf("5 reads in a burst reached the store %d times, want 1", inner.reads)
	}
	// Past the TTL, the store is asked again.
	advance(sessionCacheTTL)
	read("a1")
	if inner.reads != 2 {
		t.Fatalf("read after the TTL did not reach the store (%d)", inner.reads)
	}
	// A delete through the cache takes effect at once.
	if err := c.DeleteSession(ctx, "r", "a1"); err != nil {
		t.Fatal(err)
	}
	if err := read("a1"); !errors.Is(err, sessions.ErrNotFound) {
		t.Fatalf("deleted session read as %v", err)
	}
	// Absent sessions are not cached: one created meanwhile is seen.
	before := inner.reads
	read("zz")
	put("zz", "carol")
	if err := read("zz"); err != nil || inner.reads != before+2 {
		t.Fatalf("new session after a miss: %v, reads %d", err, inner.reads-before)
	}
	// DeleteUserSessions keeps what it is told to keep, drops the rest.
	read("a2")
	read("b1")
	put("a3", "alice")
	read("a3")
	if _, err := c.DeleteUserSessions(ctx, "r", "alice", "a3"); err != nil {
		t.Fatal(err)
	}
	if err := read("a2"); !errors.Is(err, sessions.ErrNotFound) {
		t.Fatalf("revoked session read as %v", err)
	}
	if err := read("a3"); err != nil {
		t.Fatalf("kept session: %v", err)
	}
	if err := read("b1"); err != nil {
		t.Fatalf("other user's session: %v", err)
	}
	// ResetUser drops the user's cached sessions.
	if err := c.ResetUser(ctx, "r", "alice"); err != nil {
		t.Fatal(err)
	}
	if err := read("a3"); !errors.Is(err, sessions.ErrNotFound) {
		t.Fatalf("session after reset read as %v", err)
	}
	// A revocation made elsewhere (directly in the store, as another
	// instance would) is seen within the TTL.
	read("b1")
	if _, err := fs.DeleteUserSessions(ctx, "r", "bob"); err != nil {
		t.Fatal(err)
	}
	advance(sessionCacheTTL)
	if err := read("b1"); !errors.Is(err, sessions.ErrNotFound) {
		t.Fatalf("revocation elsewhere not seen after the TTL: %v", err)
	}
}
