package filestore

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"time"

	bolt "go.etcd.io/bbolt"
)

// sweepBatch is how many expiry entries one sweep transaction handles, so
// that a large sweep does not hold the write lock for long.
const sweepBatch = 1000

// Sweep deletes the records that have expired at the store's current time
// (sessions, trusted devices, pending enrollments, tokens, TOTP step
// records, and attempt counters whose window and lockout are both over)
// together with their index entries, and returns how many records it
// removed. It walks the expiry index only up to now, in short
// transactions. The background sweeper calls it; it is safe to call at any
// time.
func (s *Store) Sweep() (removed int, err error) {
	now := s.now()
	limit := timeKey(now)
	due := func(k []byte) bool {
		return len(k) < 8 || binary.BigEndian.Uint64(k) <= limit
	}
	for {
		// Look first in a read transaction: a write transaction always
		// syncs the file, even when it changes nothing.
		pending := false
		err := s.db.View(func(tx *bolt.Tx) error {
			k, _ := tx.Bucket(bExpiry).Cursor().First()
			pending = k != nil && due(k)
			return nil
		})
		if err != nil || !pending {
			return removed, wrap(err)
		}
		n, more := 0, false
		err = s.db.Update(func(tx *bolt.Tx) error {
			n = 0
			exp := tx.Bucket(bExpiry)
			var keys [][]byte
			c := exp.Cursor()
			for k, _ := c.First(); k != nil && due(k) && len(keys) < sweepBatch; k, _ = c.Next() {
				keys = append(keys, bytes.Clone(k))
			}
			more = len(keys) == sweepBatch
			writers := map[string]*writer{}
			for _, k := range keys {
				ok, err := sweepEntry(tx, writers, k, now)
				if err != nil {
					return err
				}
				if ok {
					n++
				}
				// The entry is gone if its record was removed; if the
				// record has a later expiry (it was replaced), this
				// entry is stale.
				if err := exp.Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return removed, wrap(err)
		}
		removed += n
		if !more {
			return removed, nil
		}
	}
}

// sweepEntry removes the record an expiry index entry points to if the
// record has expired at now, and reports whether it did.
func sweepEntry(tx *bolt.Tx, writers map[string]*writer, entry []byte, now time.Time) (bool, error) {
	_, tag, realm, key, ok := parseExpiryKey(entry)
	if !ok {
		return false, nil
	}
	k, ok := kindByTag(tag)
	if !ok || realmBucket(tx, realm) == nil {
		return false, nil
	}
	w := writers[realm]
	if w == nil {
		var err error
		if w, err = openWriter(tx, realm); err != nil {
			return false, err
		}
		writers[realm] = w
	}
	v := w.b(k.bucket).Get(key)
	if v == nil {
		return false, nil
	}
	var m recordMeta
	if err := json.Unmarshal(v, &m); err == nil && now.Before(m.expiry()) {
		return false, nil
	}
	// Expired (or unreadable, which remove drops as well).
	existed, _, err := w.remove(k, key, now)
	return existed, err
}
