package filestore

import (
	"context"
	"encoding/json"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/caddy-2fa/caddy-2fa/sessions"
	"github.com/caddy-2fa/caddy-2fa/sessions/internal/factorset"
)

// readFactors merges the user's stored factor list with the enrollment
// (see factorset.Decode).
func readFactors(rb *bolt.Bucket, user string) (factorset.Set, error) {
	var enr *sessions.Enrollment
	if v := get(rb, bEnrollments, []byte(user)); v != nil {
		enr = new(sessions.Enrollment)
		if err := json.Unmarshal(v, enr); err != nil {
			return factorset.Set{}, decodeError("enrollment", err)
		}
	}
	set, err := factorset.Decode(get(rb, bFactors, []byte(user)), enr)
	if err != nil {
		return factorset.Set{}, decodeError("factors", err)
	}
	return set, nil
}

// updateFactors runs fn on the user's factors and saves what it leaves,
// in one transaction; if fn fails nothing is written.
func (s *Store) updateFactors(ctx context.Context, realm, user string, fn func(set *factorset.Set) error) error {
	if user == "" {
		return emptyNameError("user")
	}
	return s.update(ctx, realm, func(w *writer) error {
		set, err := readFactors(w.rb, user)
		if err != nil {
			return err
		}
		if err := fn(&set); err != nil {
			return err
		}
		v, err := set.Encode()
		if err != nil {
			return err
		}
		key := []byte(user)
		if v == nil {
			err = w.b(bFactors).Delete(key)
		} else {
			err = w.b(bFactors).Put(key, v)
		}
		if err != nil {
			return err
		}
		if set.DropEnrollment {
			return w.b(bEnrollments).Delete(key)
		}
		return nil
	})
}

// Factors lists the user's factors, the enrollment's first.
func (s *Store) Factors(ctx context.Context, realm, user string) ([]sessions.Factor, error) {
	var out []sessions.Factor
	err := s.view(ctx, realm, func(rb *bolt.Bucket) error {
		set, err := readFactors(rb, user)
		out = set.Factors()
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// AddFactor adds f in one transaction if the user has fewer than maxFactors
// factors and none with its ID.
func (s *Store) AddFactor(ctx context.Context, realm, user string, f sessions.Factor, maxFactors int) error {
	return s.updateFactors(ctx, realm, user, func(set *factorset.Set) error { return set.Add(f, maxFactors) })
}

// RenameFactor sets a factor's name in one transaction.
func (s *Store) RenameFactor(ctx context.Context, realm, user, id, name string) error {
	return s.updateFactors(ctx, realm, user, func(set *factorset.Set) error { return set.Rename(id, name) })
}

// RemoveFactor removes a factor in one transaction (with keepOne, not the
// only one), and the enrollment with the enrollment's factor.
func (s *Store) RemoveFactor(ctx context.Context, realm, user, id string, keepOne bool) error {
	return s.updateFactors(ctx, realm, user, func(set *factorset.Set) error { return set.Remove(id, keepOne) })
}

// MarkFactorUsed sets a factor's LastUsed in one transaction.
func (s *Store) MarkFactorUsed(ctx context.Context, realm, user, id string, t time.Time) error {
	return s.updateFactors(ctx, realm, user, func(set *factorset.Set) error { return set.MarkUsed(id, t) })
}

// AcceptFactorStep records step as the factor's last accepted TOTP step,
// in one transaction, if it is greater than the recorded one or that
// record has expired. The enrollment's factor uses AcceptStep.
func (s *Store) AcceptFactorStep(ctx context.Context, realm, user, id string, step int64, expires time.Time) (bool, error) {
	if id == sessions.LegacyTOTPFactorID {
		if user == "" {
			return false, emptyNameError("user")
		}
		now := s.now()
		accepted := false
		err := s.update(ctx, realm, func(w *writer) error {
			if w.b(bEnrollments).Get([]byte(user)) == nil {
				return sessions.ErrNotFound
			}
			var err error
			accepted, err = w.acceptStep(user, step, expires, now)
			return err
		})
		if err != nil {
			return false, err
		}
		return accepted, nil
	}
	now := s.now()
	accepted := false
	err := s.updateFactors(ctx, realm, user, func(set *factorset.Set) error {
		var err error
		accepted, err = set.AcceptStep(id, step, expires, now)
		return err
	})
	if err != nil {
		return false, err
	}
	return accepted, nil
}
