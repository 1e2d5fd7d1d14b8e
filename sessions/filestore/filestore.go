// Package filestore is the embedded sessions.Store: one bbolt file, for a
// single Caddy instance. It needs no setup and survives restarts. Only one
// process can have the file open at a time.
//
// # Layout
//
// Top-level buckets:
//
//	meta    "version" -> layout version ("1")
//	realms  one nested bucket per realm name, each holding:
//	    enrollments   user -> Enrollment (JSON)
//	    recovery      user -> unused recovery code hashes (JSON array)
//	    steps         user -> last accepted TOTP step and its expiry (JSON)
//	    pending       user -> PendingEnrollment (JSON)
//	    attempts      key  -> Attempts (JSON)
//	    sessions      id   -> Session (JSON)
//	    session_index lp(user) id -> expiry (8 bytes)
//	    devices       id   -> Device (JSON)
//	    device_index  lp(user) id -> expiry (8 bytes)
//	    tokens        lp(kind) id -> value and expiry (JSON)
//	    profiles      user -> Profile (JSON), never expires
//	expiry  expiry(8 bytes) tag(1 byte) lp(realm) record key -> empty
//
// lp(s) is s prefixed with its length as a uvarint, so composite keys never
// collide whatever bytes the names contain, and a user's index entries are
// one contiguous key range. The expiry bucket is ordered by time, so the
// sweep only visits records that are due. Expiry times are big-endian Unix
// nanoseconds, clamped to the range 1970..2262.
//
// Profiles and enrollments never expire and have no expiry entries. The
// profiles bucket came after layout version 1 without changing it: a realm
// written by an older build gets it on its next write, and reads treat a
// missing bucket as empty.
//
// Realm, user and id names may contain any bytes, but names used as keys
// (realm, user, attempts key, session and device id) must not be empty and
// must not exceed bbolt's key size limit of 32 KiB; writes with such names
// fail with an error.
package filestore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
	"go.uber.org/zap"

	"github.com/caddy-2fa/caddy-2fa/sessions"
)

var _ sessions.Store = (*Store)(nil)

// layoutVersion is stored in the meta bucket; Open refuses files written
// with a different layout.
const layoutVersion = "1"

// Top-level bucket names.
var (
	bMeta   = []byte("meta")
	bRealms = []byte("realms")
	bExpiry = []byte("expiry")

	kVersion = []byte("version")
)

// Per-realm bucket names.
var (
	bEnrollments  = []byte("enrollments")
	bRecovery     = []byte("recovery")
	bSteps        = []byte("steps")
	bPending      = []byte("pending")
	bAttempts     = []byte("attempts")
	bSessions     = []byte("sessions")
	bSessionIndex = []byte("session_index")
	bDevices      = []byte("devices")
	bDeviceIndex  = []byte("device_index")
	bTokens       = []byte("tokens")
	bProfiles     = []byte("profiles")
	bFactors      = []byte("factors")

	realmBuckets = [][]byte{
		bEnrollments, bRecovery, bSteps, bPending, bAttempts,
		bSessions, bSessionIndex, bDevices, bDeviceIndex, bTokens,
		bProfiles, bFactors,
	}
)

// Options configures a Store.
type Options struct {
	// Now returns the current time for read-side expiry checks and the
	// sweeper. Nil means time.Now.
	Now func() time.Time
	// SweepInterval is how often the background sweeper deletes expired
	// records. Zero means one minute; negative disables the sweeper.
	SweepInterval time.Duration
	// Logger receives sweep errors. Nil means no logging.
	Logger *zap.Logger
}

// Store is a sessions.Store kept in one bbolt file. It is safe for
// concurrent use. Create it with Open and release it with Close.
type Store struct {
	db   *bolt.DB
	path string
	now  func() time.Time
	log  *zap.Logger

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// Open opens (creating if needed) the store file at path. The parent
// directory is created with mode 0700 and the file with mode 0600. If
// another process holds the file, Open fails after about a second.
func Open(path string, opts Options) (*Store, error) {
	if path == "" {
		return nil, errors.New("filestore: empty path")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("filestore: creating directory: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("filestore: %s is locked by another process "+
			"(another Caddy instance using the same data directory?); "+
			"a file store can be used by one process only, use the redis store "+
			"to share state between instances: %w", path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("filestore: opening %s: %w", path, err)
	}
	s := &Store{db: db, path: path, now: opts.Now, log: opts.Logger}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = zap.NewNop()
	}
	if err := s.tightenMode(); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.init(); err != nil {
		db.Close()
		return nil, err
	}
	if opts.SweepInterval >= 0 {
		interval := opts.SweepInterval
		if interval == 0 {
			interval = time.Minute
		}
		s.stop = make(chan struct{})
		s.done = make(chan struct{})
		go s.sweeper(interval)
	}
	return s, nil
}

// tightenMode makes sure an existing file is not readable by others.
func (s *Store) tightenMode() error {
	fi, err := os.Stat(s.path)
	if err != nil {
		return fmt.Errorf("filestore: %w", err)
	}
	if fi.Mode().Perm()&0o077 == 0 {
		return nil
	}
	s.log.Warn("store file was accessible to other users; setting mode 0600",
		zap.String("path", s.path), zap.Stringer("mode", fi.Mode().Perm()))
	if err := os.Chmod(s.path, 0o600); err != nil {
		return fmt.Errorf("filestore: %w", err)
	}
	return nil
}

// init creates the top-level buckets and checks the layout version.
func (s *Store) init() error {
	return wrap(s.db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bMeta)
		if err != nil {
			return err
		}
		switch v := meta.Get(kVersion); {
		case v == nil:
			if err := meta.Put(kVersion, []byte(layoutVersion)); err != nil {
				return err
			}
		case string(v) != layoutVersion:
			return fmt.Errorf("%s has layout version %q, this build reads version %q",
				s.path, v, layoutVersion)
		}
		for _, name := range [][]byte{bRealms, bExpiry} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	}))
}

// Close stops the sweeper and closes the file. Further calls return the
// first call's result; store methods called after Close return an error
// (never sessions.ErrNotFound).
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		if s.stop != nil {
			close(s.stop)
			<-s.done
		}
		s.closeErr = s.db.Close()
	})
	return s.closeErr
}

// Path returns the file the store was opened with.
func (s *Store) Path() string { return s.path }

// Ping reports whether the store is open and its file is readable.
func (s *Store) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return wrap(s.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bRealms) == nil || tx.Bucket(bExpiry) == nil {
			return errors.New("buckets missing")
		}
		return nil
	}))
}

// sweeper calls Sweep every interval until Close.
func (s *Store) sweeper(interval time.Duration) {
	defer close(s.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			n, err := s.Sweep()
			if err != nil {
				s.log.Error("sweeping expired two-factor records", zap.Error(err))
			} else if n > 0 {
				s.log.Debug("swept expired two-factor records", zap.Int("removed", n))
			}
		}
	}
}
