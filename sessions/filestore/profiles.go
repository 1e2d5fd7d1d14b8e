package filestore

import (
	"bytes"
	"context"
	"encoding/json"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/caddy-2fa/caddy-2fa/sessions"
)

// Users lists the realm's users that have an enrollment or a profile,
// sorted by name (as bytes), from the keys of the realm's enrollments and
// profiles buckets.
func (s *Store) Users(ctx context.Context, realm string) ([]string, error) {
	var users []string
	err := s.view(ctx, realm, func(rb *bolt.Bucket) error {
		users = mergeKeys(sub(rb, bEnrollments), sub(rb, bProfiles))
		return nil
	})
	if err != nil {
		return nil, err
	}
	return users, nil
}

// mergeKeys merges the keys of buckets a and b (either may be nil), which
// bbolt keeps sorted, into one sorted list without duplicates.
func mergeKeys(a, b *bolt.Bucket) []string {
	next := func(c *bolt.Cursor, first bool) []byte {
		if c == nil {
			return nil
		}
		if first {
			k, _ := c.First()
			return k
		}
		k, _ := c.Next()
		return k
	}
	var ca, cb *bolt.Cursor
	if a != nil {
		ca = a.Cursor()
	}
	if b != nil {
		cb = b.Cursor()
	}
	users := []string{}
	ka, kb := next(ca, true), next(cb, true)
	for ka != nil || kb != nil {
		switch c := bytes.Compare(ka, kb); {
		case kb == nil || (ka != nil && c < 0):
			users = append(users, string(ka))
			ka = next(ca, false)
		case ka == nil || c > 0:
			users = append(users, string(kb))
			kb = next(cb, false)
		default:
			users = append(users, string(ka))
			ka, kb = next(ca, false), next(cb, false)
		}
	}
	return users
}

// Profile returns the user's profile, or sessions.ErrNotFound.
func (s *Store) Profile(ctx context.Context, realm, user string) (sessions.Profile, error) {
	var p sessions.Profile
	err := s.view(ctx, realm, func(rb *bolt.Bucket) error {
		v := get(rb, bProfiles, []byte(user))
		if v == nil {
			return sessions.ErrNotFound
		}
		if err := json.Unmarshal(v, &p); err != nil {
			return decodeError("profile", err)
		}
		return nil
	})
	if err != nil {
		return sessions.Profile{}, err
	}
	return p, nil
}

// updateProfile runs fn on the user's profile (the zero Profile if there
// is none) and saves the result, all in one transaction, and returns what
// it saved.
func (s *Store) updateProfile(ctx context.Context, realm, user string, fn func(p *sessions.Profile)) (sessions.Profile, error) {
	if user == "" {
		return sessions.Profile{}, emptyNameError("user")
	}
	var p sessions.Profile
	err := s.update(ctx, realm, func(w *writer) error {
		p = sessions.Profile{}
		b := w.b(bProfiles)
		if v := b.Get([]byte(user)); v != nil {
			if err := json.Unmarshal(v, &p); err != nil {
				return decodeError("profile", err)
			}
		}
		fn(&p)
		nv, err := json.Marshal(p)
		if err != nil {
			return err
		}
		return b.Put([]byte(user), nv)
	})
	if err != nil {
		return sessions.Profile{}, err
	}
	return p, nil
}

// setFirstSeen sets FirstSeen to t if the profile has none.
func setFirstSeen(p *sessions.Profile, t time.Time) {
	if p.FirstSeen.IsZero() {
		p.FirstSeen = t
	}
}

// SeeUser sets the user's FirstSeen to t unless one is set, in one
// transaction (so concurrent calls agree), and returns the profile.
func (s *Store) SeeUser(ctx context.Context, realm, user string, t time.Time) (sessions.Profile, error) {
	return s.updateProfile(ctx, realm, user, func(p *sessions.Profile) {
		setFirstSeen(p, t)
	})
}

// RecordVerification sets the user's LastVerified and LastMethod (and
// FirstSeen to t if the profile has none).
func (s *Store) RecordVerification(ctx context.Context, realm, user, method string, t time.Time) error {
	_, err := s.updateProfile(ctx, realm, user, func(p *sessions.Profile) {
		setFirstSeen(p, t)
		p.LastVerified, p.LastMethod = t, method
	})
	return err
}

// SetDisabled sets the user's DisabledUntil (the zero time clears it, and
// FirstSeen to the store's now if the profile has none).
func (s *Store) SetDisabled(ctx context.Context, realm, user string, until time.Time) error {
	now := s.now()
	_, err := s.updateProfile(ctx, realm, user, func(p *sessions.Profile) {
		setFirstSeen(p, now)
		p.DisabledUntil = until
	})
	return err
}

// resetProfile clears the LastVerified, LastMethod and DisabledUntil of
// the user's profile, if there is one, keeping FirstSeen. A profile that
// cannot be decoded is deleted (so that a reset always succeeds).
func (w *writer) resetProfile(user string) error {
	b := w.b(bProfiles)
	v := b.Get([]byte(user))
	if v == nil {
		return nil
	}
	var p sessions.Profile
	if err := json.Unmarshal(v, &p); err != nil {
		return b.Delete([]byte(user))
	}
	nv, err := json.Marshal(sessions.Profile{FirstSeen: p.FirstSeen})
	if err != nil {
		return err
	}
	return b.Put([]byte(user), nv)
}
