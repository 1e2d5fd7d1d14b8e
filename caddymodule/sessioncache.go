package caddymodule

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/caddy-2fa/caddy-2fa/sessions"
)

// sessionCacheTTL bounds how long a session read from the store is
// trusted without asking the store again. It is also the longest a
// revocation made through another instance (logout, admin revoke or
// reset, "sign out everywhere else") can take to reach this one;
// revocations through this instance take effect at once.
const sessionCacheTTL = time.Second

// sessionCacheMax bounds the cache's size; when full it starts afresh.
const sessionCacheMax = 100_000

// cachedStore keeps recently read sessions in memory for at most
// sessionCacheTTL, so that a burst of requests of one verified user (a
// page and its assets) costs one store read, not one each. Writes through
// it invalidate what they change. Every other method is the wrapped
// store's.
type cachedStore struct {
	sessions.Store
	mu sync.RWMutex
	m  map[cacheKey]cacheEntry
}

type cacheKey struct{ realm, id string }

type cacheEntry struct {
	s       sessions.Session
	fetched time.Time
}

func newCachedStore(s sessions.Store) *cachedStore {
	return &cachedStore{Store: s, m: make(map[cacheKey]cacheEntry)}
}

// Session returns the cached session if it was read less than
// sessionCacheTTL ago, and reads it from the store otherwise.
func (c *cachedStore) Session(ctx context.Context, realm, id string) (sessions.Session, error) {
	k := cacheKey{realm, id}
	t := now()
	c.mu.RLock()
	e, ok := c.m[k]
	c.mu.RUnlock()
	if ok {
		if age := t.Sub(e.fetched); age >= 0 && age < sessionCacheTTL {
			return e.s, nil
		}
	}
	s, err := c.Store.Session(ctx, realm, id)
	c.mu.Lock()
	switch {
	case err == nil:
		if len(c.m) >= sessionCacheMax {
			clear(c.m)
		}
		c.m[k] = cacheEntry{s, t}
	case errors.Is(err, sessions.ErrNotFound), ok:
		delete(c.m, k)
	}
	c.mu.Unlock()
	return s, err
}

func (c *cachedStore) forget(realm, id string) {
	c.mu.Lock()
	delete(c.m, cacheKey{realm, id})
	c.mu.Unlock()
}

// forgetDevice drops the cached sessions that a trusted device started:
// the device with store key device, or any of user's when device is "".
func (c *cachedStore) forgetDevice(realm, user, device string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.m {
		if k.realm == realm && e.s.Device != "" && (e.s.Device == device || device == "" && e.s.User == user) {
			delete(c.m, k)
		}
	}
}

// DeleteDevice deletes in the store and drops the cached sessions the
// device started (on other instances they end within sessionCacheTTL,
// when the session is read again and its device is gone).
func (c *cachedStore) DeleteDevice(ctx context.Context, realm, id string) error {
	err := c.Store.DeleteDevice(ctx, realm, id)
	c.forgetDevice(realm, "", id)
	return err
}

// DeleteUserDevices deletes in the store and drops the cached sessions
// that the user's devices started.
func (c *cachedStore) DeleteUserDevices(ctx context.Context, realm, user string) (int, error) {
	n, err := c.Store.DeleteUserDevices(ctx, realm, user)
	c.forgetDevice(realm, user, "")
	return n, err
}

// forgetUser drops the cached sessions of user in realm, except keep.
func (c *cachedStore) forgetUser(realm, user string, keep ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
next:
	for k, e := range c.m {
		if k.realm != realm || e.s.User != user {
			continue
		}
		for _, id := range keep {
			if id == k.id {
				continue next
			}
		}
		delete(c.m, k)
	}
}

// PutSession writes through and drops the cached copy.
func (c *cachedStore) PutSession(ctx context.Context, realm, id string, s sessions.Session) error {
	err := c.Store.PutSession(ctx, realm, id, s)
	c.forget(realm, id)
	return err
}

// TouchSession writes through and drops the cached copy.
func (c *cachedStore) TouchSession(ctx context.Context, realm, id string, lastSeen time.Time) error {
	err := c.Store.TouchSession(ctx, realm, id, lastSeen)
	c.forget(realm, id)
	return err
}

// DeleteSession deletes in the store and the cache.
func (c *cachedStore) DeleteSession(ctx context.Context, realm, id string) error {
	c.forget(realm, id)
	err := c.Store.DeleteSession(ctx, realm, id)
	c.forget(realm, id)
	return err
}

// DeleteUserSessions deletes in the store and the cache.
func (c *cachedStore) DeleteUserSessions(ctx context.Context, realm, user string, keep ...string) (int, error) {
	c.forgetUser(realm, user, keep...)
	n, err := c.Store.DeleteUserSessions(ctx, realm, user, keep...)
	c.forgetUser(realm, user, keep...)
	return n, err
}

// ResetUser resets in the store and drops the user's cached sessions.
func (c *cachedStore) ResetUser(ctx context.Context, realm, user string) error {
	c.forgetUser(realm, user)
	err := c.Store.ResetUser(ctx, realm, user)
	c.forgetUser(realm, user)
	return err
}
