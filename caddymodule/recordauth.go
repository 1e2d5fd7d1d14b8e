package caddymodule

import (
	"context"
	"encoding/binary"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-2fa/caddy-2fa/keyring"
	"github.com/caddy-2fa/caddy-2fa/sessions"
)

// Record kinds, as named in record tags and in the tampering log.
const (
	recordSession = "session"
	recordDevice  = "device"
	recordPending = "pending_enrollment"
	recordToken   = "token"
)

// authStore binds every record that grants access to where it is stored,
// so that write access to the store (a shared Redis, a copy of the bbolt
// file) is not enough to pass the gate:
//
//   - sessions (and app_login bindings, which are sessions) are stored
//     under a keyed hash of their ID (keyring.Keys.StoreKey), never the ID
//     their cookie carries, and one-time tokens (invites) likewise;
//   - sessions, trusted devices, pending enrollments and tokens carry a
//     tag (keyring.Keys.RecordTag, made with a key derived from secret)
//     over the realm, the key they are stored under, the user and every
//     field that decides access, checked on every read;
//   - a session started by a trusted device is valid only while that
//     device is: removing the device ends its sessions.
//
// A record that fails its check reads as absent (never a pass, never a
// store failure, so users are not stuck on a 503 page) and is logged once
// as tampering. Records written before tags existed have none and are
// refused the same way: their users verify again.
//
// It sits under the session cache, so a session read from the cache was
// checked when it was read from the store, and the hot path pays nothing.
// Methods not listed here pass through: they hold nothing that grants
// access by itself (enrollments are sealed with AES-GCM bound to realm and
// user, counters only ever refuse).
type authStore struct {
	sessions.Store
	ring   *keyring.Ring
	all    []*keyring.Keys // the ring's keys, current first
	logger *zap.Logger
}

func newAuthStore(next sessions.Store, ring *keyring.Ring, logger *zap.Logger) *authStore {
	all := append([]*keyring.Keys{ring.Current}, ring.Previous...)
	return &authStore{Store: next, ring: ring, all: all, logger: logger}
}

// keys are the ring's keys, current first.
func (a *authStore) keys() []*keyring.Keys { return a.all }

// checkTag reports whether tag is the record tag of kind and fields under
// the current or a previous secret (the record may have been written by
// an instance that has not been given the new secret yet, or before it).
func (a *authStore) checkTag(tag []byte, kind string, fields ...[]byte) bool {
	if a.ring.Current.CheckRecordTag(tag, kind, fields...) {
		return true
	}
	for _, k := range a.ring.Previous {
		if k.CheckRecordTag(tag, kind, fields...) {
			return true
		}
	}
	return false
}

// tagTime is t as a tag field: Unix seconds and nanoseconds, the instant
// every store keeps exactly.
func tagTime(t time.Time) []byte {
	b := binary.BigEndian.AppendUint64(nil, uint64(t.Unix()))
	return binary.BigEndian.AppendUint32(b, uint32(t.Nanosecond()))
}

// sessionTagFields are the fields of a session (or app_login binding)
// that its tag covers: where it is stored, whose it is, until when, how it
// was verified and by which trusted device. LastSeen (moved by
// TouchSession without a new tag), ClientIP and UserAgent are
// informational.
func sessionTagFields(realm, key string, s sessions.Session) [][]byte {
	return [][]byte{
		[]byte(realm), []byte(key), []byte(s.User), []byte(s.Method),
		tagTime(s.Created), tagTime(s.Expires), []byte(s.Device),
	}
}

// deviceTagFields are the fields of a trusted device that its tag covers.
// LastUsed (moved by TouchDevice), ClientIP and UserAgent are
// informational.
func deviceTagFields(realm, key string, d sessions.Device) [][]byte {
	return [][]byte{[]byte(realm), []byte(key), []byte(d.User), tagTime(d.Created), tagTime(d.Expires)}
}

// pendingTagFields are the fields of a pending enrollment that its tag
// covers: every field of sessions.PendingEnrollment but the tag itself. A
// field added to it that decides who may confirm the enrollment (such as
// the browser it is bound to) must be added here.
func pendingTagFields(realm, user string, p sessions.PendingEnrollment) [][]byte {
	return [][]byte{[]byte(realm), []byte(user), p.SealedSecret, tagTime(p.Created), tagTime(p.Expires), []byte(p.Browser)}
}

// tokenTagFields are the fields of a one-time token that its tag covers.
// Its expiry is the store's (a token that outlives it reads as absent);
// values that need their own, such as invites, carry it inside.
func tokenTagFields(realm, kind, key string, value []byte) [][]byte {
	return [][]byte{[]byte(realm), []byte(kind), []byte(key), value}
}

// sessionKey is the store key of the session ID id under k.
func sessionKey(k *keyring.Keys, id string) string {
	return k.StoreKey(recordSession, id)
}

// tokenKey is the store key of the token id of kind under k.
func tokenKey(k *keyring.Keys, kind, id string) string {
	return k.StoreKey(recordToken+":"+kind, id)
}

// PutSession tags the session and stores it under its ID's keyed hash.
func (a *authStore) PutSession(ctx context.Context, realm, id string, s sessions.Session) error {
	key := sessionKey(a.ring.Current, id)
	s.MAC = a.ring.Current.RecordTag(recordSession, sessionTagFields(realm, key, s)...)
	return a.Store.PutSession(ctx, realm, key, s)
}

// Session returns the session of id if its tag checks and, for a session
// started by a trusted device, the device is still there for the same
// user; sessions.ErrNotFound otherwise. A session stored under a previous
// secret's key is moved to the current key (put new, then delete old), as
// trusted devices and app_login bindings are, so that it outlives the
// previous secret's retirement.
func (a *authStore) Session(ctx context.Context, realm, id string) (sessions.Session, error) {
	for i, k := range a.keys() {
		key := sessionKey(k, id)
		s, err := a.Store.Session(ctx, realm, key)
		if errors.Is(err, sessions.ErrNotFound) {
			continue
		}
		if err != nil {
			return s, err
		}
		if !a.checkTag(s.MAC, recordSession, sessionTagFields(realm, key, s)...) {
			a.refused(ctx, realm, recordSession, key, s.User, s.MAC)
			return sessions.Session{}, sessions.ErrNotFound
		}
		if s.Device != "" {
			d, err := a.Device(ctx, realm, s.Device)
			if errors.Is(err, sessions.ErrNotFound) || err == nil && (d.User != s.User || !now().Before(d.Expires)) {
				// The device was removed (settings, a recovery-code
				// sign-in, admin revoke or reset) or expired: so are the
				// sessions it started.
				return sessions.Session{}, sessions.ErrNotFound
			}
			if err != nil {
				return sessions.Session{}, err
			}
		}
		if i > 0 {
			if err := a.PutSession(ctx, realm, id, s); err != nil {
				return sessions.Session{}, err
			}
			if err := a.Store.DeleteSession(ctx, realm, key); err != nil {
				return sessions.Session{}, err
			}
		}
		return s, nil
	}
	return sessions.Session{}, sessions.ErrNotFound
}

// TouchSession moves LastSeen of the session of id, wherever it is stored.
func (a *authStore) TouchSession(ctx context.Context, realm, id string, lastSeen time.Time) error {
	for _, k := range a.keys() {
		err := a.Store.TouchSession(ctx, realm, sessionKey(k, id), lastSeen)
		if !errors.Is(err, sessions.ErrNotFound) {
			return err
		}
	}
	return sessions.ErrNotFound
}

// DeleteSession deletes the session of id under every key it may be
// stored under.
func (a *authStore) DeleteSession(ctx context.Context, realm, id string) error {
	for _, k := range a.keys() {
		if err := a.Store.DeleteSession(ctx, realm, sessionKey(k, id)); err != nil {
			return err
		}
	}
	return nil
}

// DeleteUserSessions deletes the user's sessions but those of the IDs in
// keep (under every key they may be stored under).
func (a *authStore) DeleteUserSessions(ctx context.Context, realm, user string, keep ...string) (int, error) {
	keys := make([]string, 0, len(keep)*(1+len(a.ring.Previous)))
	for _, id := range keep {
		for _, k := range a.keys() {
			keys = append(keys, sessionKey(k, id))
		}
	}
	return a.Store.DeleteUserSessions(ctx, realm, user, keys...)
}

// PutDevice tags the trusted device. Its ID is already a keyed hash of its
// cookie's token (keyring.Keys.DeviceKey), which UserDevices returns and
// settings hands back to DeleteDevice, so it is stored under that ID.
func (a *authStore) PutDevice(ctx context.Context, realm, id string, d sessions.Device) error {
	d.MAC = a.ring.Current.RecordTag(recordDevice, deviceTagFields(realm, id, d)...)
	return a.Store.PutDevice(ctx, realm, id, d)
}

// Device returns the trusted device stored under id if its tag checks,
// and sessions.ErrNotFound otherwise.
func (a *authStore) Device(ctx context.Context, realm, id string) (sessions.Device, error) {
	d, err := a.Store.Device(ctx, realm, id)
	if err != nil {
		return d, err
	}
	if !a.checkTag(d.MAC, recordDevice, deviceTagFields(realm, id, d)...) {
		a.refused(ctx, realm, recordDevice, id, d.User, d.MAC)
		return sessions.Device{}, sessions.ErrNotFound
	}
	return d, nil
}

// UserDevices lists the user's trusted devices whose tags check: a device
// planted or moved in the store is neither shown nor usable.
func (a *authStore) UserDevices(ctx context.Context, realm, user string) ([]sessions.Device, error) {
	list, err := a.Store.UserDevices(ctx, realm, user)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(list, func(d sessions.Device) bool {
		if d.User == user && a.checkTag(d.MAC, recordDevice, deviceTagFields(realm, d.ID, d)...) {
			return false
		}
		a.refused(ctx, realm, recordDevice, d.ID, d.User, d.MAC)
		return true
	}), nil
}

// PutPendingEnrollment tags the pending enrollment.
func (a *authStore) PutPendingEnrollment(ctx context.Context, realm, user string, p sessions.PendingEnrollment) error {
	p.MAC = a.ring.Current.RecordTag(recordPending, pendingTagFields(realm, user, p)...)
	return a.Store.PutPendingEnrollment(ctx, realm, user, p)
}

// AddPendingEnrollment tags the pending enrollment and saves it only if
// the user has none live (see sessions.Store).
func (a *authStore) AddPendingEnrollment(ctx context.Context, realm, user string, p sessions.PendingEnrollment) (bool, error) {
	p.MAC = a.ring.Current.RecordTag(recordPending, pendingTagFields(realm, user, p)...)
	return a.Store.AddPendingEnrollment(ctx, realm, user, p)
}

// PendingEnrollment returns the user's pending enrollment if its tag
// checks, and sessions.ErrNotFound otherwise.
func (a *authStore) PendingEnrollment(ctx context.Context, realm, user string) (sessions.PendingEnrollment, error) {
	p, err := a.Store.PendingEnrollment(ctx, realm, user)
	if err != nil {
		return p, err
	}
	if !a.checkTag(p.MAC, recordPending, pendingTagFields(realm, user, p)...) {
		a.refused(ctx, realm, recordPending, user, user, p.MAC)
		return sessions.PendingEnrollment{}, sessions.ErrNotFound
	}
	return p, nil
}

// PutToken stores value, followed by its tag, under the keyed hash of id.
func (a *authStore) PutToken(ctx context.Context, realm, kind, id string, value []byte, expires time.Time) error {
	key := tokenKey(a.ring.Current, kind, id)
	tag := a.ring.Current.RecordTag(recordToken, tokenTagFields(realm, kind, key, value)...)
	v := make([]byte, 0, len(value)+len(tag))
	return a.Store.PutToken(ctx, realm, kind, key, append(append(v, value...), tag...), expires)
}

// ConsumeToken consumes the token of id (under the key of whichever
// secret stored it) and returns its value if its tag checks;
// sessions.ErrNotFound otherwise (the token is consumed all the same).
func (a *authStore) ConsumeToken(ctx context.Context, realm, kind, id string) ([]byte, error) {
	for _, k := range a.keys() {
		key := tokenKey(k, kind, id)
		v, err := a.Store.ConsumeToken(ctx, realm, kind, key)
		if errors.Is(err, sessions.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		n := len(v) - keyring.RecordTagLen
		if n < 0 {
			a.refused(ctx, realm, recordToken+":"+kind, key, "", nil)
			return nil, sessions.ErrNotFound
		}
		if !a.checkTag(v[n:], recordToken, tokenTagFields(realm, kind, key, v[:n])...) {
			a.refused(ctx, realm, recordToken+":"+kind, key, "", v[n:])
			return nil, sessions.ErrNotFound
		}
		return v[:n], nil
	}
	return nil, sessions.ErrNotFound
}

// refusedLogMax bounds refusedLogged; when full it starts afresh.
const refusedLogMax = 10_000

// refusedLogged remembers the records already logged as refused, so that a
// browser that keeps sending the cookie of a tampered record logs it once,
// not on every request.
var refusedLogged = struct {
	sync.Mutex
	m map[[3]string]bool
}{m: make(map[[3]string]bool)}

// refused logs, once per record, that a record failed its check: at warn
// as tampering when it carries a tag that does not match (forged,
// re-owned, moved, edited), at info when it has none (written before the
// gate tagged records). The record's user is the one it claims; values,
// keys and tags are never logged.
func (a *authStore) refused(ctx context.Context, realm, kind, key, user string, tag []byte) {
	refusedLogged.Lock()
	seen := refusedLogged.m[[3]string{realm, kind, key}]
	if !seen {
		if len(refusedLogged.m) >= refusedLogMax {
			clear(refusedLogged.m)
		}
		refusedLogged.m[[3]string{realm, kind, key}] = true
	}
	refusedLogged.Unlock()
	if seen {
		return
	}
	level, reason := zapcore.WarnLevel, "bad_tag"
	if len(tag) == 0 {
		level, reason = zapcore.InfoLevel, "untagged"
	}
	ip, _ := caddyhttp.GetVar(ctx, caddyhttp.ClientIPVarKey).(string)
	if ce := a.logger.Check(level, "two-factor tampered_record"); ce != nil {
		ce.Write(auditFields("tampered_record", realm, user, ip, "", "refused", reason, []zap.Field{zap.String("record", kind)})...)
	}
}
