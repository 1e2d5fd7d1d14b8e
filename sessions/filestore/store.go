package filestore

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/caddy-2fa/caddy-2fa/sessions"
)

// Enrollment returns the user's confirmed enrollment with the number of
// unused recovery codes, or sessions.ErrNotFound.
func (s *Store) Enrollment(ctx context.Context, realm, user string) (sessions.Enrollment, error) {
	var e sessions.Enrollment
	err := s.view(ctx, realm, func(rb *bolt.Bucket) error {
		v := get(rb, bEnrollments, []byte(user))
		if v == nil {
			return sessions.ErrNotFound
		}
		if err := json.Unmarshal(v, &e); err != nil {
			return decodeError("enrollment", err)
		}
		codes, err := decodeCodes(get(rb, bRecovery, []byte(user)))
		e.RecoveryCodes = len(codes)
		return err
	})
	if err != nil {
		return sessions.Enrollment{}, err
	}
	return e, nil
}

// decodeCodes decodes a recovery code list (nil: none).
func decodeCodes(v []byte) ([]string, error) {
	if v == nil {
		return nil, nil
	}
	var codes []string
	if err := json.Unmarshal(v, &codes); err != nil {
		return nil, decodeError("recovery codes", err)
	}
	return codes, nil
}

// putCodes saves the user's recovery code list.
func (w *writer) putCodes(user string, codes []string) error {
	if codes == nil {
		codes = []string{}
	}
	v, err := json.Marshal(codes)
	if err != nil {
		return err
	}
	return w.b(bRecovery).Put([]byte(user), v)
}

// Enroll saves a confirmed enrollment and its recovery code hashes in one
// transaction if the user has none, and removes the pending enrollment.
func (s *Store) Enroll(ctx context.Context, realm, user string, e sessions.Enrollment, recoveryHashes []string) error {
	if user == "" {
		return emptyNameError("user")
	}
	v, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return s.update(ctx, realm, func(w *writer) error {
		enr := w.b(bEnrollments)
		if enr.Get([]byte(user)) != nil {
			return sessions.ErrExists
		}
		if err := enr.Put([]byte(user), v); err != nil {
			return err
		}
		if err := w.putCodes(user, recoveryHashes); err != nil {
			return err
		}
		_, _, err := w.remove(kPending, []byte(user), time.Time{})
		return err
	})
}

// SetRecoveryCodes replaces the user's recovery code hashes, or returns
// sessions.ErrNotFound if the user is not enrolled.
func (s *Store) SetRecoveryCodes(ctx context.Context, realm, user string, recoveryHashes []string) error {
	if user == "" {
		return emptyNameError("user")
	}
	return s.update(ctx, realm, func(w *writer) error {
		if w.b(bEnrollments).Get([]byte(user)) == nil {
			return sessions.ErrNotFound
		}
		return w.putCodes(user, recoveryHashes)
	})
}

// ReplaceSealedSecret swaps the enrollment's sealed secret in one
// transaction if it still holds old.
func (s *Store) ReplaceSealedSecret(ctx context.Context, realm, user string, old, sealed []byte) (bool, error) {
	if user == "" {
		return false, emptyNameError("user")
	}
	swapped := false
	err := s.update(ctx, realm, func(w *writer) error {
		enr := w.b(bEnrollments)
		v := enr.Get([]byte(user))
		if v == nil {
			return sessions.ErrNotFound
		}
		var e sessions.Enrollment
		if err := json.Unmarshal(v, &e); err != nil {
			return decodeError("enrollment", err)
		}
		if !bytes.Equal(e.SealedSecret, old) {
			return nil
		}
		e.SealedSecret = sealed
		nv, err := json.Marshal(e)
		if err != nil {
			return err
		}
		swapped = true
		return enr.Put([]byte(user), nv)
	})
	if err != nil {
		return false, err
	}
	return swapped, nil
}

// UseRecoveryCode consumes one recovery code hash in one transaction and
// returns how many remain, or sessions.ErrNotFound.
func (s *Store) UseRecoveryCode(ctx context.Context, realm, user, hash string) (int, error) {
	remaining := 0
	err := s.update(ctx, realm, func(w *writer) error {
		codes, err := decodeCodes(w.b(bRecovery).Get([]byte(user)))
		if err != nil {
			return err
		}
		// Look at every code (no early exit) with a constant-time
		// comparison.
		found := -1
		for i, c := range codes {
			if subtle.ConstantTimeCompare([]byte(c), []byte(hash)) == 1 && found < 0 {
				found = i
			}
		}
		if found < 0 {
			return sessions.ErrNotFound
		}
		codes = slices.Delete(codes, found, found+1)
		remaining = len(codes)
		return w.putCodes(user, codes)
	})
	if err != nil {
		return 0, err
	}
	return remaining, nil
}

// AcceptStep records step as the user's last accepted TOTP step if it is
// greater than the last one (or that one has expired), in one transaction.
func (s *Store) AcceptStep(ctx context.Context, realm, user string, step int64, expires time.Time) (bool, error) {
	if user == "" {
		return false, emptyNameError("user")
	}
	now := s.now()
	accepted := false
	err := s.update(ctx, realm, func(w *writer) error {
		var err error
		accepted, err = w.acceptStep(user, step, expires, now)
		return err
	})
	if err != nil {
		return false, err
	}
	return accepted, nil
}

// acceptStep is AcceptStep inside a transaction.
func (w *writer) acceptStep(user string, step int64, expires, now time.Time) (bool, error) {
	if v := w.b(bSteps).Get([]byte(user)); v != nil {
		var last stepRecord
		if err := json.Unmarshal(v, &last); err != nil {
			return false, decodeError("step", err)
		}
		if now.Before(last.Expires) && step <= last.Step {
			return false, nil
		}
	}
	return true, w.putJSON(kStep, []byte(user), "", expires, stepRecord{Step: step, Expires: expires})
}

// ResetUser removes, in one transaction, the user's enrollment, factors,
// recovery codes, last step, pending enrollment, sessions and trusted
// devices, and clears the profile's LastVerified, LastMethod and DisabledUntil
// (keeping FirstSeen). Attempt counters are keyed by counter keys, not by
// user names, so it leaves the attempts bucket alone: a user named like a
// counter ("user:alice", "ip:192.0.2.1") must not clear it.
func (s *Store) ResetUser(ctx context.Context, realm, user string) error {
	if user == "" {
		return emptyNameError("user")
	}
	now := s.now()
	return s.update(ctx, realm, func(w *writer) error {
		key := []byte(user)
		if err := w.b(bEnrollments).Delete(key); err != nil {
			return err
		}
		if err := w.b(bRecovery).Delete(key); err != nil {
			return err
		}
		if err := w.b(bFactors).Delete(key); err != nil {
			return err
		}
		for _, k := range []kind{kStep, kPending} {
			if _, _, err := w.remove(k, key, now); err != nil {
				return err
			}
		}
		for _, k := range []kind{kSession, kDevice} {
			if _, err := w.removeUser(k, user, now, nil); err != nil {
				return err
			}
		}
		return w.resetProfile(user)
	})
}

// PutPendingEnrollment saves or replaces the user's unconfirmed enrollment.
func (s *Store) PutPendingEnrollment(ctx context.Context, realm, user string, p sessions.PendingEnrollment) error {
	if user == "" {
		return emptyNameError("user")
	}
	return s.update(ctx, realm, func(w *writer) error {
		return w.putJSON(kPending, []byte(user), "", p.Expires, p)
	})
}

// livePending returns the user's pending enrollment if there is one that
// has not expired at now (nil, nil otherwise), inside a write transaction.
func (w *writer) livePending(user string, now time.Time) (*sessions.PendingEnrollment, error) {
	v := w.b(bPending).Get([]byte(user))
	if v == nil {
		return nil, nil
	}
	var p sessions.PendingEnrollment
	if err := json.Unmarshal(v, &p); err != nil {
		return nil, decodeError("pending enrollment", err)
	}
	if !now.Before(p.Expires) {
		return nil, nil
	}
	return &p, nil
}

// AddPendingEnrollment saves p in one transaction only if the user has no
// live pending enrollment.
func (s *Store) AddPendingEnrollment(ctx context.Context, realm, user string, p sessions.PendingEnrollment) (bool, error) {
	if user == "" {
		return false, emptyNameError("user")
	}
	now := s.now()
	if !now.Before(p.Expires) {
		return false, nil
	}
	added := false
	err := s.update(ctx, realm, func(w *writer) error {
		old, err := w.livePending(user, now)
		if err != nil || old != nil {
			return err
		}
		added = true
		return w.putJSON(kPending, []byte(user), "", p.Expires, p)
	})
	if err != nil {
		return false, err
	}
	return added, nil
}

// EnrollPending saves a confirmed enrollment and its recovery code hashes
// in one transaction if the user has none and the live pending enrollment
// still holds pendingSealed, and removes the pending enrollment.
func (s *Store) EnrollPending(ctx context.Context, realm, user string, pendingSealed []byte, e sessions.Enrollment, recoveryHashes []string) error {
	if user == "" {
		return emptyNameError("user")
	}
	v, err := json.Marshal(e)
	if err != nil {
		return err
	}
	now := s.now()
	return s.update(ctx, realm, func(w *writer) error {
		enr := w.b(bEnrollments)
		if enr.Get([]byte(user)) != nil {
			return sessions.ErrExists
		}
		p, err := w.livePending(user, now)
		if err != nil {
			return err
		}
		if p == nil || len(pendingSealed) == 0 || subtle.ConstantTimeCompare(p.SealedSecret, pendingSealed) != 1 {
			return sessions.ErrNotFound
		}
		if err := enr.Put([]byte(user), v); err != nil {
			return err
		}
		if err := w.putCodes(user, recoveryHashes); err != nil {
			return err
		}
		_, _, err = w.remove(kPending, []byte(user), time.Time{})
		return err
	})
}

// PendingEnrollment returns the user's unexpired unconfirmed enrollment, or
// sessions.ErrNotFound.
func (s *Store) PendingEnrollment(ctx context.Context, realm, user string) (sessions.PendingEnrollment, error) {
	var p sessions.PendingEnrollment
	err := s.view(ctx, realm, func(rb *bolt.Bucket) error {
		v := get(rb, bPending, []byte(user))
		if v == nil {
			return sessions.ErrNotFound
		}
		if err := json.Unmarshal(v, &p); err != nil {
			return decodeError("pending enrollment", err)
		}
		return nil
	})
	if err == nil && !s.now().Before(p.Expires) {
		err = sessions.ErrNotFound
	}
	if err != nil {
		return sessions.PendingEnrollment{}, err
	}
	return p, nil
}

// current returns the counter state a stored record has at now: zero once
// both its window and its lockout are over.
func current(a sessions.Attempts, now time.Time) sessions.Attempts {
	if !now.Before(a.WindowEnds) && !a.Locked(now) {
		return sessions.Attempts{}
	}
	return a
}

// AddFailure counts one failure for key at now, in one transaction. A
// counter whose window and lockout are over starts again at one. The
// lockout starts when the count reaches limit.Max (if positive) outside a
// lockout, and is not extended by failures counted during it.
func (s *Store) AddFailure(ctx context.Context, realm, key string, now time.Time, limit sessions.Limit) (sessions.Attempts, error) {
	if key == "" {
		return sessions.Attempts{}, emptyNameError("key")
	}
	var a sessions.Attempts
	err := s.update(ctx, realm, func(w *writer) error {
		var err error
		if a, err = w.attempts(key, now); err != nil {
			return err
		}
		a = countFailure(a, now, limit)
		return w.putAttempts(key, a)
	})
	if err != nil {
		return sessions.Attempts{}, err
	}
	return a, nil
}

// attempts reads key's counter at now (zero if none or over).
func (w *writer) attempts(key string, now time.Time) (sessions.Attempts, error) {
	var a sessions.Attempts
	if v := w.b(bAttempts).Get([]byte(key)); v != nil {
		if err := json.Unmarshal(v, &a); err != nil {
			return a, decodeError("attempts", err)
		}
	}
	return current(a, now), nil
}

// putAttempts saves key's counter until its window and lockout are over.
func (w *writer) putAttempts(key string, a sessions.Attempts) error {
	exp := recordMeta{WindowEnds: a.WindowEnds, LockedUntil: a.LockedUntil}.expiry()
	return w.putJSON(kAttempt, []byte(key), "", exp, a)
}

// countFailure is a counted one more time at now under limit: a new
// window starts at one, and reaching limit.Max (if positive) outside a
// lockout starts one.
func countFailure(a sessions.Attempts, now time.Time, limit sessions.Limit) sessions.Attempts {
	if a.Failures == 0 {
		a.WindowEnds = now.Add(limit.Window)
	}
	a.Failures++
	if limit.Max > 0 && a.Failures >= limit.Max && !a.Locked(now) {
		a.LockedUntil = now.Add(limit.Lockout)
	}
	return a
}

// longerLock is b if b is locked out for longer than a at now, else a.
func longerLock(a, b sessions.Attempts, now time.Time) sessions.Attempts {
	if b.Locked(now) && b.LockedUntil.After(a.LockedUntil) {
		return b
	}
	return a
}

// ReserveAttempt counts one attempt on every counter in one write
// transaction, unless one of them is locked out at now (then it writes
// nothing). bbolt runs one write transaction at a time, so concurrent
// reservations are counted one after the other and never see a stale
// count.
func (s *Store) ReserveAttempt(ctx context.Context, realm string, now time.Time, counters ...sessions.Counter) (sessions.Attempts, bool, error) {
	if len(counters) == 0 {
		return sessions.Attempts{}, false, storeError{errors.New("reserving an attempt: no counter")}
	}
	for _, c := range counters {
		if c.Key == "" {
			return sessions.Attempts{}, false, emptyNameError("key")
		}
	}
	var (
		res sessions.Attempts
		ok  bool
	)
	err := s.update(ctx, realm, func(w *writer) error {
		res, ok = sessions.Attempts{}, false
		states := make([]sessions.Attempts, len(counters))
		locked := false
		for i, c := range counters {
			a, err := w.attempts(c.Key, now)
			if err != nil {
				return err
			}
			states[i] = a
			if i == 0 {
				res = a
			} else {
				res = longerLock(res, a, now)
			}
			locked = locked || a.Locked(now)
		}
		if locked {
			return nil
		}
		for i, c := range counters {
			a := countFailure(states[i], now, c.Limit)
			if err := w.putAttempts(c.Key, a); err != nil {
				return err
			}
			if i == 0 {
				res = a
			} else {
				res = longerLock(res, a, now)
			}
		}
		ok = true
		return nil
	})
	if err != nil {
		return sessions.Attempts{}, false, err
	}
	return res, ok, nil
}

// ReleaseAttempt gives back one attempt on key in one write transaction,
// if its window is still open at now.
func (s *Store) ReleaseAttempt(ctx context.Context, realm, key string, now time.Time, limit sessions.Limit) error {
	if key == "" {
		return emptyNameError("key")
	}
	return s.update(ctx, realm, func(w *writer) error {
		a, err := w.attempts(key, now)
		if err != nil || a.Failures == 0 || !now.Before(a.WindowEnds) {
			return err
		}
		a.Failures--
		if a.Failures < limit.Max || limit.Max <= 0 {
			a.LockedUntil = time.Time{}
		}
		if a.Failures == 0 {
			_, _, err := w.remove(kAttempt, []byte(key), now)
			return err
		}
		return w.putAttempts(key, a)
	})
}

// Attempts returns key's counter at now (zero if none or over).
func (s *Store) Attempts(ctx context.Context, realm, key string, now time.Time) (sessions.Attempts, error) {
	var a sessions.Attempts
	err := s.view(ctx, realm, func(rb *bolt.Bucket) error {
		v := get(rb, bAttempts, []byte(key))
		if v == nil {
			return nil
		}
		if err := json.Unmarshal(v, &a); err != nil {
			return decodeError("attempts", err)
		}
		return nil
	})
	if err != nil {
		return sessions.Attempts{}, err
	}
	return current(a, now), nil
}

// ClearFailures removes key's counter and lockout.
func (s *Store) ClearFailures(ctx context.Context, realm, key string) error {
	return s.update(ctx, realm, func(w *writer) error {
		_, _, err := w.remove(kAttempt, []byte(key), time.Time{})
		return err
	})
}

// PutSession saves (or replaces) a session under id until s.Expires.
func (s *Store) PutSession(ctx context.Context, realm, id string, sess sessions.Session) error {
	if id == "" {
		return emptyNameError("session id")
	}
	return s.update(ctx, realm, func(w *writer) error {
		return w.putJSON(kSession, []byte(id), sess.User, sess.Expires, sess)
	})
}

// Session returns the unexpired session stored under id, or
// sessions.ErrNotFound. It is the hot path: one read transaction and one
// JSON decode.
func (s *Store) Session(ctx context.Context, realm, id string) (sessions.Session, error) {
	if err := ctx.Err(); err != nil {
		return sessions.Session{}, err
	}
	var sess sessions.Session
	err := s.db.View(func(tx *bolt.Tx) error {
		v := get(realmBucket(tx, realm), bSessions, []byte(id))
		if v == nil {
			return sessions.ErrNotFound
		}
		if err := json.Unmarshal(v, &sess); err != nil {
			return decodeError("session", err)
		}
		return nil
	})
	if err == nil && !s.now().Before(sess.Expires) {
		err = sessions.ErrNotFound
	}
	if err != nil {
		return sessions.Session{}, wrap(err)
	}
	return sess, nil
}

// TouchSession sets the LastSeen of an unexpired session, or returns
// sessions.ErrNotFound.
func (s *Store) TouchSession(ctx context.Context, realm, id string, lastSeen time.Time) error {
	now := s.now()
	return s.update(ctx, realm, func(w *writer) error {
		b := w.b(bSessions)
		v := b.Get([]byte(id))
		if v == nil {
			return sessions.ErrNotFound
		}
		var sess sessions.Session
		if err := json.Unmarshal(v, &sess); err != nil {
			return decodeError("session", err)
		}
		if !now.Before(sess.Expires) {
			return sessions.ErrNotFound
		}
		sess.LastSeen = lastSeen
		nv, err := json.Marshal(sess)
		if err != nil {
			return err
		}
		return b.Put([]byte(id), nv)
	})
}

// DeleteSession removes one session; an absent one is not an error.
func (s *Store) DeleteSession(ctx context.Context, realm, id string) error {
	return s.update(ctx, realm, func(w *writer) error {
		_, _, err := w.remove(kSession, []byte(id), time.Time{})
		return err
	})
}

// countLive counts the live entries of user in a per-user index bucket.
func countLive(idx *bolt.Bucket, user string, now time.Time) int {
	if idx == nil {
		return 0
	}
	prefix := lpPrefix(user)
	t := timeKey(now)
	n := 0
	c := idx.Cursor()
	for k, v := c.Seek(prefix); k != nil && strings.HasPrefix(string(k), string(prefix)); k, v = c.Next() {
		if live(v, t) {
			n++
		}
	}
	return n
}

// UserSessions counts the user's unexpired sessions from the user's index
// entries alone.
func (s *Store) UserSessions(ctx context.Context, realm, user string) (int, error) {
	n := 0
	now := s.now()
	err := s.view(ctx, realm, func(rb *bolt.Bucket) error {
		n = countLive(sub(rb, bSessionIndex), user, now)
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// DeleteUserSessions removes, in one transaction, the user's sessions
// except those listed in keep, and returns how many unexpired ones it
// removed (expired ones are removed too but not counted).
func (s *Store) DeleteUserSessions(ctx context.Context, realm, user string, keep ...string) (int, error) {
	if user == "" {
		return 0, emptyNameError("user")
	}
	keepSet := make(map[string]bool, len(keep))
	for _, id := range keep {
		keepSet[id] = true
	}
	now := s.now()
	n := 0
	err := s.update(ctx, realm, func(w *writer) error {
		var err error
		n, err = w.removeUser(kSession, user, now, keepSet)
		return err
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// PutDevice saves (or replaces) a trusted device under id until d.Expires.
func (s *Store) PutDevice(ctx context.Context, realm, id string, d sessions.Device) error {
	if id == "" {
		return emptyNameError("device id")
	}
	return s.update(ctx, realm, func(w *writer) error {
		return w.putJSON(kDevice, []byte(id), d.User, d.Expires, d)
	})
}

// Device returns the unexpired trusted device stored under id (with ID
// set), or sessions.ErrNotFound.
func (s *Store) Device(ctx context.Context, realm, id string) (sessions.Device, error) {
	if err := ctx.Err(); err != nil {
		return sessions.Device{}, err
	}
	var d sessions.Device
	err := s.db.View(func(tx *bolt.Tx) error {
		v := get(realmBucket(tx, realm), bDevices, []byte(id))
		if v == nil {
			return sessions.ErrNotFound
		}
		if err := json.Unmarshal(v, &d); err != nil {
			return decodeError("device", err)
		}
		return nil
	})
	if err == nil && !s.now().Before(d.Expires) {
		err = sessions.ErrNotFound
	}
	if err != nil {
		return sessions.Device{}, wrap(err)
	}
	d.ID = id
	return d, nil
}

// TouchDevice sets the LastUsed of an unexpired trusted device (never its
// Expires), or returns sessions.ErrNotFound.
func (s *Store) TouchDevice(ctx context.Context, realm, id string, lastUsed time.Time) error {
	now := s.now()
	return s.update(ctx, realm, func(w *writer) error {
		b := w.b(bDevices)
		v := b.Get([]byte(id))
		if v == nil {
			return sessions.ErrNotFound
		}
		var d sessions.Device
		if err := json.Unmarshal(v, &d); err != nil {
			return decodeError("device", err)
		}
		if !now.Before(d.Expires) {
			return sessions.ErrNotFound
		}
		d.LastUsed = lastUsed
		nv, err := json.Marshal(d)
		if err != nil {
			return err
		}
		return b.Put([]byte(id), nv)
	})
}

// DeleteDevice removes one trusted device; an absent one is not an error.
func (s *Store) DeleteDevice(ctx context.Context, realm, id string) error {
	return s.update(ctx, realm, func(w *writer) error {
		_, _, err := w.remove(kDevice, []byte(id), time.Time{})
		return err
	})
}

// UserDevices lists the user's unexpired trusted devices, oldest (by
// Created) first, with ID set.
func (s *Store) UserDevices(ctx context.Context, realm, user string) ([]sessions.Device, error) {
	now := s.now()
	t := timeKey(now)
	var list []sessions.Device
	err := s.view(ctx, realm, func(rb *bolt.Bucket) error {
		idx, devs := sub(rb, bDeviceIndex), sub(rb, bDevices)
		if idx == nil || devs == nil {
			return nil
		}
		prefix := lpPrefix(user)
		c := idx.Cursor()
		for k, ev := c.Seek(prefix); k != nil && strings.HasPrefix(string(k), string(prefix)); k, ev = c.Next() {
			if !live(ev, t) {
				continue
			}
			id := k[len(prefix):]
			v := devs.Get(id)
			if v == nil {
				continue
			}
			var d sessions.Device
			if err := json.Unmarshal(v, &d); err != nil {
				return decodeError("device", err)
			}
			if d.User != user || !now.Before(d.Expires) {
				continue
			}
			d.ID = string(id)
			list = append(list, d)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(list, func(a, b sessions.Device) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return list, nil
}

// DeleteUserDevices removes, in one transaction, all of the user's trusted
// devices and returns how many unexpired ones it removed.
func (s *Store) DeleteUserDevices(ctx context.Context, realm, user string) (int, error) {
	if user == "" {
		return 0, emptyNameError("user")
	}
	now := s.now()
	n := 0
	err := s.update(ctx, realm, func(w *writer) error {
		var err error
		n, err = w.removeUser(kDevice, user, now, nil)
		return err
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// PutToken saves (or replaces) a one-time value under kind/id until
// expires.
func (s *Store) PutToken(ctx context.Context, realm, kind, id string, value []byte, expires time.Time) error {
	return s.update(ctx, realm, func(w *writer) error {
		return w.putJSON(kToken, lpKey(kind, []byte(id)), "", expires, tokenRecord{Value: value, Expires: expires})
	})
}

// ConsumeToken returns and deletes the value under kind/id in one
// transaction, or returns sessions.ErrNotFound if it is absent or expired.
func (s *Store) ConsumeToken(ctx context.Context, realm, kind, id string) ([]byte, error) {
	now := s.now()
	var tok tokenRecord
	err := s.update(ctx, realm, func(w *writer) error {
		key := lpKey(kind, []byte(id))
		v := w.b(bTokens).Get(key)
		if v == nil {
			return sessions.ErrNotFound
		}
		if err := json.Unmarshal(v, &tok); err != nil {
			return decodeError("token", err)
		}
		_, _, err := w.remove(kToken, key, now)
		return err
	})
	if err == nil && !now.Before(tok.Expires) {
		err = sessions.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	if tok.Value == nil {
		tok.Value = []byte{}
	}
	return tok.Value, nil
}
