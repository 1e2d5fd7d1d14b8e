package filestore

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/caddy-2fa/caddy-2fa/sessions"
)

// kind describes a record type that expires.
type kind struct {
	// tag identifies the kind in expiry index keys.
	tag byte
	// bucket holds the records.
	bucket []byte
	// index is the per-user index bucket, or nil.
	index []byte
}

var (
	kSession = kind{'s', bSessions, bSessionIndex}
	kDevice  = kind{'d', bDevices, bDeviceIndex}
	kPending = kind{'p', bPending, nil}
	kToken   = kind{'t', bTokens, nil}
	kStep    = kind{'x', bSteps, nil}
	kAttempt = kind{'a', bAttempts, nil}

	kinds = []kind{kSession, kDevice, kPending, kToken, kStep, kAttempt}
)

func kindByTag(tag byte) (kind, bool) {
	for _, k := range kinds {
		if k.tag == tag {
			return k, true
		}
	}
	return kind{}, false
}

// recordMeta decodes the fields of any expiring record that the store
// itself needs: the owner (sessions, devices) and the expiry.
type recordMeta struct {
	User        string    `json:"user"`
	Expires     time.Time `json:"expires"`
	WindowEnds  time.Time `json:"window_ends"`
	LockedUntil time.Time `json:"locked_until"`
}

// expiry is when the record can be removed: the latest of its times
// (attempt counters have a window and a lockout, other records Expires).
func (m recordMeta) expiry() time.Time {
	e := m.Expires
	if m.WindowEnds.After(e) {
		e = m.WindowEnds
	}
	if m.LockedUntil.After(e) {
		e = m.LockedUntil
	}
	return e
}

// stepRecord is the last accepted TOTP step of a user.
type stepRecord struct {
	Step    int64     `json:"step"`
	Expires time.Time `json:"expires"`
}

// tokenRecord is a one-time value.
type tokenRecord struct {
	Value   []byte    `json:"value"`
	Expires time.Time `json:"expires"`
}

var maxTime = time.Unix(0, math.MaxInt64)

// timeKey encodes t as big-endian Unix nanoseconds, clamped to
// 1970..2262, so that byte order is time order.
func timeKey(t time.Time) uint64 {
	switch {
	case t.Unix() < 0:
		return 0
	case t.After(maxTime):
		return math.MaxUint64
	}
	return uint64(t.UnixNano())
}

func appendTime(b []byte, t time.Time) []byte {
	return binary.BigEndian.AppendUint64(b, timeKey(t))
}

// live reports whether an index value (an encoded expiry) is after now.
func live(v []byte, now uint64) bool {
	return len(v) == 8 && now < binary.BigEndian.Uint64(v)
}

// appendLP appends s prefixed by its length as a uvarint.
func appendLP(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// lpKey is lp(a) followed by b.
func lpKey(a string, b []byte) []byte {
	k := make([]byte, 0, binary.MaxVarintLen64+len(a)+len(b))
	return append(appendLP(k, a), b...)
}

// lpPrefix is lp(a), the prefix of all lpKey(a, …) keys.
func lpPrefix(a string) []byte {
	return appendLP(make([]byte, 0, binary.MaxVarintLen64+len(a)), a)
}

// expiryKey is the expiry index key of a record.
func expiryKey(exp time.Time, tag byte, realm string, key []byte) []byte {
	k := make([]byte, 0, 9+binary.MaxVarintLen64+len(realm)+len(key))
	k = appendTime(k, exp)
	k = append(k, tag)
	k = appendLP(k, realm)
	return append(k, key...)
}

// parseExpiryKey splits an expiry index key.
func parseExpiryKey(k []byte) (at uint64, tag byte, realm string, key []byte, ok bool) {
	if len(k) < 10 {
		return 0, 0, "", nil, false
	}
	at, tag = binary.BigEndian.Uint64(k), k[8]
	n, w := binary.Uvarint(k[9:])
	if w <= 0 || n > uint64(len(k)-9-w) {
		return 0, 0, "", nil, false
	}
	rest := k[9+w:]
	return at, tag, string(rest[:n]), rest[n:], true
}

// storeError is an error of this package; its message starts with
// "filestore: ".
type storeError struct{ err error }

func (e storeError) Error() string { return "filestore: " + e.err.Error() }
func (e storeError) Unwrap() error { return e.err }

// wrap marks err (from bbolt or encoding/json) as this package's error. It
// leaves alone nil, the sessions sentinels, context errors and errors that
// are already marked.
func wrap(err error) error {
	var se storeError
	switch {
	case err == nil,
		errors.Is(err, sessions.ErrNotFound),
		errors.Is(err, sessions.ErrExists),
		errors.Is(err, context.Canceled),
		errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &se):
		return err
	}
	return storeError{err}
}

// emptyNameError is returned by writes with an empty name.
func emptyNameError(what string) error {
	return storeError{fmt.Errorf("empty %s", what)}
}

func decodeError(what string, err error) error {
	return storeError{fmt.Errorf("decoding %s: %w", what, err)}
}

// realmBucket returns realm's bucket in a read transaction, or nil.
func realmBucket(tx *bolt.Tx, realm string) *bolt.Bucket {
	return tx.Bucket(bRealms).Bucket([]byte(realm))
}

// sub returns the named bucket of a realm bucket that may be nil.
func sub(rb *bolt.Bucket, name []byte) *bolt.Bucket {
	if rb == nil {
		return nil
	}
	return rb.Bucket(name)
}

// get reads key from the named bucket of a realm bucket that may be nil.
func get(rb *bolt.Bucket, name, key []byte) []byte {
	if b := sub(rb, name); b != nil {
		return b.Get(key)
	}
	return nil
}

// view runs fn in a read transaction with realm's bucket (nil if the realm
// has no records).
func (s *Store) view(ctx context.Context, realm string, fn func(rb *bolt.Bucket) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return wrap(s.db.View(func(tx *bolt.Tx) error {
		return fn(realmBucket(tx, realm))
	}))
}

// writer gives a write transaction access to one realm's buckets.
type writer struct {
	realm string
	rb    *bolt.Bucket
	exp   *bolt.Bucket
}

// openWriter returns a writer for realm, creating its buckets if needed.
func openWriter(tx *bolt.Tx, realm string) (*writer, error) {
	if realm == "" {
		return nil, emptyNameError("realm")
	}
	rb, err := tx.Bucket(bRealms).CreateBucketIfNotExists([]byte(realm))
	if err != nil {
		return nil, fmt.Errorf("realm bucket: %w", err)
	}
	for _, name := range realmBuckets {
		if _, err := rb.CreateBucketIfNotExists(name); err != nil {
			return nil, fmt.Errorf("%s bucket: %w", name, err)
		}
	}
	return &writer{realm: realm, rb: rb, exp: tx.Bucket(bExpiry)}, nil
}

// update runs fn in one write transaction on realm's buckets.
func (s *Store) update(ctx context.Context, realm string, fn func(w *writer) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return wrap(s.db.Update(func(tx *bolt.Tx) error {
		w, err := openWriter(tx, realm)
		if err != nil {
			return err
		}
		return fn(w)
	}))
}

func (w *writer) b(name []byte) *bolt.Bucket { return w.rb.Bucket(name) }

// remove deletes the record of kind k under key with its index and expiry
// entries. It reports whether a record existed and whether it was still
// live at now. An undecodable record is deleted without its index entries.
func (w *writer) remove(k kind, key []byte, now time.Time) (existed, wasLive bool, err error) {
	b := w.b(k.bucket)
	v := b.Get(key)
	if v == nil {
		return false, false, nil
	}
	var m recordMeta
	decErr := json.Unmarshal(v, &m)
	if err := b.Delete(key); err != nil {
		return true, false, err
	}
	if decErr != nil {
		return true, false, nil
	}
	exp := m.expiry()
	if k.index != nil {
		if err := w.b(k.index).Delete(lpKey(m.User, key)); err != nil {
			return true, false, err
		}
	}
	if err := w.exp.Delete(expiryKey(exp, k.tag, w.realm, key)); err != nil {
		return true, false, err
	}
	return true, now.Before(exp), nil
}

// put saves v (JSON of a record of kind k owned by user, expiring at exp)
// under key, replacing any previous record and its index entries.
func (w *writer) put(k kind, key []byte, user string, exp time.Time, v []byte) error {
	if len(key) == 0 {
		return emptyNameError("key")
	}
	if _, _, err := w.remove(k, key, time.Time{}); err != nil {
		return err
	}
	if err := w.b(k.bucket).Put(key, v); err != nil {
		return err
	}
	if k.index != nil {
		if user == "" {
			return emptyNameError("user")
		}
		if err := w.b(k.index).Put(lpKey(user, key), appendTime(nil, exp)); err != nil {
			return err
		}
	}
	return w.exp.Put(expiryKey(exp, k.tag, w.realm, key), []byte{})
}

// putJSON encodes rec and saves it with put.
func (w *writer) putJSON(k kind, key []byte, user string, exp time.Time, rec any) error {
	v, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return w.put(k, key, user, exp, v)
}

// indexed returns the record keys in a per-user index bucket for user.
func indexed(idx *bolt.Bucket, user string) [][]byte {
	if idx == nil {
		return nil
	}
	prefix := lpPrefix(user)
	var keys [][]byte
	c := idx.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		keys = append(keys, bytes.Clone(k[len(prefix):]))
	}
	return keys
}

// removeUser removes all records of kind k (which has an index) of user
// and returns how many of them were live at now.
func (w *writer) removeUser(k kind, user string, now time.Time, keep map[string]bool) (int, error) {
	n := 0
	idx := w.b(k.index)
	for _, key := range indexed(idx, user) {
		if keep[string(key)] {
			continue
		}
		existed, wasLive, err := w.remove(k, key, now)
		if err != nil {
			return n, err
		}
		if !existed {
			// A dangling index entry (remove deletes the entry of an
			// existing record): drop it.
			if err := idx.Delete(lpKey(user, key)); err != nil {
				return n, err
			}
		}
		if wasLive {
			n++
		}
	}
	return n, nil
}
