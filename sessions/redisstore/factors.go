package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/caddy-2fa/caddy-2fa/sessions"
	"github.com/caddy-2fa/caddy-2fa/sessions/internal/factorset"
)

// factorTries bounds how often a factor operation retries its
// compare-and-set when another one changed the user's factors meanwhile.
const factorTries = 20

// readFactors reads the user's factor list and enrollment (one MGET: the
// keys share the user's hash slot) and merges them (see
// factorset.Decode). It also returns the two values as read, "" for an
// absent key, for factorSwapScript.
func (s *Store) readFactors(ctx context.Context, realm, user string) (factorset.Set, [2]string, error) {
	var raw [2]string
	vals, err := s.rdb.MGet(ctx, s.keys.user(realm, user, sufFactors), s.keys.user(realm, user, sufEnrollment)).Result()
	if err != nil {
		return factorset.Set{}, raw, err
	}
	if len(vals) != 2 {
		return factorset.Set{}, raw, errors.New("unexpected MGET reply")
	}
	for i, v := range vals {
		if v == nil {
			continue
		}
		str, ok := v.(string)
		if !ok {
			return factorset.Set{}, raw, errors.New("unexpected MGET reply")
		}
		raw[i] = str
	}
	var stored []byte
	if raw[0] != "" {
		stored = []byte(raw[0])
	}
	var enr *sessions.Enrollment
	if raw[1] != "" {
		enr = new(sessions.Enrollment)
		if err := json.Unmarshal([]byte(raw[1]), enr); err != nil {
			return factorset.Set{}, raw, fmt.Errorf("%w: enrollment: %v", errCorrupt, err)
		}
	}
	set, err := factorset.Decode(stored, enr)
	if err != nil {
		return factorset.Set{}, raw, fmt.Errorf("%w: %v", errCorrupt, err)
	}
	return set, raw, nil
}

// updateFactors runs fn on the user's factors and saves what it leaves
// with factorSwapScript, only if neither the factor list nor the
// enrollment changed since they were read; otherwise it reads again and
// retries. If fn fails nothing is written and its error is returned.
func (s *Store) updateFactors(ctx context.Context, op, realm, user string, fn func(set *factorset.Set) error) error {
	switch {
	case realm == "":
		return emptyName(op, "realm")
	case user == "":
		return emptyName(op, "user")
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	keys := []string{s.keys.user(realm, user, sufFactors), s.keys.user(realm, user, sufEnrollment)}
	for range factorTries {
		set, raw, err := s.readFactors(ctx, realm, user)
		if err != nil {
			return fail(op, err)
		}
		if err := fn(&set); err != nil {
			if errors.Is(err, sessions.ErrNotFound) || errors.Is(err, sessions.ErrExists) ||
				errors.Is(err, sessions.ErrTooManyFactors) || errors.Is(err, sessions.ErrLastFactor) {
				return err
			}
			return fail(op, err)
		}
		v, err := set.Encode()
		if err != nil {
			return fail(op, err)
		}
		drop := "0"
		if set.DropEnrollment {
			drop = "1"
		}
		n, err := factorSwapScript.Run(ctx, s.rdb, keys, raw[0], raw[1], string(v), drop).Int()
		if err != nil {
			return fail(op, err)
		}
		if n == 1 {
			return nil
		}
	}
	return fail(op, errors.New("factors kept changing; gave up"))
}

// Factors lists the user's factors, the enrollment's first.
func (s *Store) Factors(ctx context.Context, realm, user string) ([]sessions.Factor, error) {
	const op = "reading factors"
	if realm == "" {
		return nil, emptyName(op, "realm")
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	set, _, err := s.readFactors(ctx, realm, user)
	if err != nil {
		return nil, fail(op, err)
	}
	return set.Factors(), nil
}

// AddFactor adds f atomically if the user has fewer than maxFactors factors and
// none with its ID. The user is listed in the realm's users set first.
func (s *Store) AddFactor(ctx context.Context, realm, user string, f sessions.Factor, maxFactors int) error {
	const op = "adding factor"
	if realm != "" && user != "" {
		ctx2, cancel := s.call(ctx)
		err := s.addUser(ctx2, realm, user)
		cancel()
		if err != nil {
			return fail(op, err)
		}
	}
	return s.updateFactors(ctx, op, realm, user, func(set *factorset.Set) error { return set.Add(f, maxFactors) })
}

// RenameFactor sets a factor's name atomically.
func (s *Store) RenameFactor(ctx context.Context, realm, user, id, name string) error {
	return s.updateFactors(ctx, "renaming factor", realm, user, func(set *factorset.Set) error { return set.Rename(id, name) })
}

// RemoveFactor removes a factor atomically (with keepOne, not the only
// one), and the enrollment with the enrollment's factor.
func (s *Store) RemoveFactor(ctx context.Context, realm, user, id string, keepOne bool) error {
	return s.updateFactors(ctx, "removing factor", realm, user, func(set *factorset.Set) error { return set.Remove(id, keepOne) })
}

// MarkFactorUsed sets a factor's LastUsed atomically.
func (s *Store) MarkFactorUsed(ctx context.Context, realm, user, id string, t time.Time) error {
	return s.updateFactors(ctx, "marking factor used", realm, user, func(set *factorset.Set) error { return set.MarkUsed(id, t) })
}

// AcceptFactorStep records step as the factor's last accepted TOTP step,
// atomically, if it is greater than the recorded one or that record has
// expired. The enrollment's factor uses AcceptStep, after checking that
// the enrollment exists (a removal racing with it can let one last code
// through, as a removal racing with a sign-in would anyway).
func (s *Store) AcceptFactorStep(ctx context.Context, realm, user, id string, step int64, expires time.Time) (bool, error) {
	const op = "accepting factor step"
	if id == sessions.LegacyTOTPFactorID {
		// The enrollment's factor shares AcceptStep's window; the script
		// checks the enrollment exists in the same step.
		switch {
		case realm == "":
			return false, emptyName(op, "realm")
		case user == "":
			return false, emptyName(op, "user")
		case step > maxStep || step < -maxStep:
			return false, fail(op, fmt.Errorf("step %d out of range", step))
		}
		return s.acceptStep(ctx, op, []string{s.keys.user(realm, user, sufStep), s.keys.user(realm, user, sufEnrollment)}, step, expires)
	}
	now := s.now()
	accepted := false
	err := s.updateFactors(ctx, op, realm, user, func(set *factorset.Set) error {
		var err error
		accepted, err = set.AcceptStep(id, step, expires, now)
		if err == nil && !accepted {
			return errUnchanged
		}
		return err
	})
	if errors.Is(err, errUnchanged) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return accepted, nil
}

// errUnchanged tells updateFactors' caller that fn decided not to write.
var errUnchanged = errors.New("unchanged")
