package redisstore

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-2fa/caddy-2fa/sessions"
)

var _ sessions.Store = (*Store)(nil)

// DefaultTimeout is the deadline New applies to every call when
// Options.Timeout is zero.
const DefaultTimeout = 2 * time.Second

// maxStep bounds the TOTP steps AcceptStep takes: the script compares
// steps as Lua numbers (doubles), which are exact up to 2^53. Real steps
// (Unix time / period) are far below.
const maxStep = 1 << 53

// Options configures a Store.
type Options struct {
	// KeyPrefix starts every key the store writes. Empty means
	// DefaultKeyPrefix ("caddy2fa"). Braces are percent-encoded (they
	// would form a cluster hash tag). Stores with different prefixes
	// share a server without seeing each other's records, as long as no
	// prefix is another one followed by ':'.
	KeyPrefix string
	// Timeout is the deadline applied to every call, on top of the
	// caller's context (whose deadline wins if it is sooner). Zero means
	// DefaultTimeout. For the deadline to also bound a read from a server
	// that stopped answering, the client must have ContextTimeoutEnabled
	// (Config.UniversalOptions sets it); otherwise the client's
	// ReadTimeout applies.
	Timeout time.Duration
	// Now returns the current time, for expiry checks on read and for the
	// TTLs of the keys written. Nil means time.Now. AddFailure and
	// Attempts use the time they are given instead.
	Now func() time.Time
}

// Store is a sessions.Store kept in Redis, shared by any number of gate
// instances. It is safe for concurrent use. It does not own its client:
// it has no Close, and the caller closes the client when done (after
// which every method returns an error).
type Store struct {
	rdb     redis.UniversalClient
	keys    keys
	timeout time.Duration
	now     func() time.Time
}

// New returns a store that keeps its records in Redis through client,
// which may be a standalone, Sentinel (failover) or Cluster client. New
// does not contact the server; use Ping and EvictionPolicy at start-up.
// The server must be Redis 6.2 or later (GETDEL, SET … GET).
func New(client redis.UniversalClient, opts Options) *Store {
	s := &Store{
		rdb:     client,
		keys:    keys{prefix: escapePrefix(opts.KeyPrefix)},
		timeout: opts.Timeout,
		now:     opts.Now,
	}
	if s.timeout <= 0 {
		s.timeout = DefaultTimeout
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s
}

// storeError is an error of this package; its message starts with
// "redisstore: " and names the operation.
type storeError struct {
	op  string
	err error
}

func (e *storeError) Error() string { return "redisstore: " + e.op + ": " + e.err.Error() }
func (e *storeError) Unwrap() error { return e.err }

// fail marks err as a failure of op. It leaves alone nil and the sessions
// sentinels. redis.Nil reaching fail is a failure too: only the call
// sites that expect an absent key turn it into sessions.ErrNotFound.
func fail(op string, err error) error {
	switch {
	case err == nil,
		errors.Is(err, sessions.ErrNotFound),
		errors.Is(err, sessions.ErrExists):
		return err
	}
	var se *storeError
	if errors.As(err, &se) {
		return err
	}
	return &storeError{op: op, err: err}
}

// emptyName is the error of a write with an empty name.
func emptyName(op, what string) error {
	return &storeError{op: op, err: fmt.Errorf("empty %s", what)}
}

// isNil reports whether err means that the key (or script result) is
// absent.
func isNil(err error) bool { return errors.Is(err, redis.Nil) }

// call returns ctx with the store's deadline.
func (s *Store) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

// maxTTLMillis is the longest TTL the store sets, about 292 years (the
// longest time.Duration).
const maxTTLMillis = int64(math.MaxInt64 / int64(time.Millisecond))

// ttlMillis is the TTL in milliseconds that makes a key written at now
// expire at exp (rounded up, so the key never goes before the record
// reads as expired, and at most maxTTLMillis); 0 if exp is not after now.
func ttlMillis(exp, now time.Time) int64 {
	d := exp.Sub(now) // saturates instead of overflowing
	if d <= 0 {
		return 0
	}
	ms := int64(d / time.Millisecond)
	if d%time.Millisecond != 0 {
		ms++
	}
	return min(ms, maxTTLMillis)
}

// ttl is ttlMillis as a Duration.
func ttl(exp, now time.Time) time.Duration {
	return time.Duration(ttlMillis(exp, now)) * time.Millisecond
}

// scoreSeconds is exp in Unix seconds rounded up: the index score of a
// record that expires at exp.
func scoreSeconds(exp time.Time) int64 {
	sec := exp.Unix()
	if exp.Nanosecond() != 0 {
		sec++
	}
	return sec
}

// Ping reports whether the server answers.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := s.call(ctx)
	defer cancel()
	return fail("ping", s.rdb.Ping(ctx).Err())
}

// ServerTime returns the server's clock (TIME). Records are written with
// the instances' clocks (see the package documentation): callers compare
// it with their own to warn when an instance's clock is off.
func (s *Store) ServerTime(ctx context.Context) (time.Time, error) {
	ctx, cancel := s.call(ctx)
	defer cancel()
	t, err := s.rdb.Time(ctx).Result()
	if err != nil {
		return time.Time{}, fail("reading the server's clock", err)
	}
	return t, nil
}

// EvictionPolicy returns the server's maxmemory-policy, and whether it is
// risky: an allkeys-* policy lets Redis evict enrollments, recovery codes,
// profiles and users sets (which have no TTL) when memory runs out; the safe choices are
// noeviction and the volatile-* policies. Managed services often disable
// CONFIG; then policy is "" and err says why, and callers just log it.
func (s *Store) EvictionPolicy(ctx context.Context) (policy string, risky bool, err error) {
	ctx, cancel := s.call(ctx)
	defer cancel()
	m, err := s.rdb.ConfigGet(ctx, "maxmemory-policy").Result()
	if err != nil {
		return "", false, fail("reading maxmemory-policy", err)
	}
	policy, ok := m["maxmemory-policy"]
	if !ok {
		return "", false, fail("reading maxmemory-policy", errors.New("not in the CONFIG GET reply"))
	}
	return policy, strings.HasPrefix(policy, "allkeys-"), nil
}

// Enrollment returns the user's confirmed enrollment with the number of
// unused recovery codes, or sessions.ErrNotFound.
func (s *Store) Enrollment(ctx context.Context, realm, user string) (sessions.Enrollment, error) {
	const op = "reading enrollment"
	ctx, cancel := s.call(ctx)
	defer cancel()
	res, err := getEnrollmentScript.Run(ctx, s.rdb, []string{
		s.keys.user(realm, user, sufEnrollment),
		s.keys.user(realm, user, sufRecovery),
	}).Slice()
	if isNil(err) {
		return sessions.Enrollment{}, sessions.ErrNotFound
	}
	if err != nil {
		return sessions.Enrollment{}, fail(op, err)
	}
	v, ok1 := res[0].(string)
	n, ok2 := res[1].(int64)
	if len(res) != 2 || !ok1 || !ok2 {
		return sessions.Enrollment{}, fail(op, errors.New("unexpected script reply"))
	}
	var e sessions.Enrollment
	if err := json.Unmarshal([]byte(v), &e); err != nil {
		return sessions.Enrollment{}, fail(op, fmt.Errorf("%w: %v", errCorrupt, err))
	}
	e.RecoveryCodes = int(n)
	return e, nil
}

// hashArgs turns recovery code hashes into script arguments.
func hashArgs(first any, hashes []string) []any {
	args := make([]any, 0, len(hashes)+1)
	if first != nil {
		args = append(args, first)
	}
	for _, h := range hashes {
		args = append(args, h)
	}
	return args
}

// Enroll saves a confirmed enrollment and its recovery code hashes
// atomically if the user has none (else sessions.ErrExists), and deletes
// the pending enrollment. Duplicate hashes are stored once. The user is
// listed in the realm's users set first, in a command of its own.
func (s *Store) Enroll(ctx context.Context, realm, user string, e sessions.Enrollment, recoveryHashes []string) error {
	return s.enroll(ctx, realm, user, enrollScript, nil, e, recoveryHashes)
}

// enroll runs script (enrollScript or enrollPendingScript) on the user's
// enrollment, recovery code and pending enrollment keys with ARGV = the
// enrollment's JSON, then extra, then the recovery code hashes. The
// script answers 1 (enrolled), 0 (sessions.ErrExists) or -1
// (sessions.ErrNotFound).
func (s *Store) enroll(ctx context.Context, realm, user string, script *redis.Script, extra []any, e sessions.Enrollment, recoveryHashes []string) error {
	const op = "enrolling"
	switch {
	case realm == "":
		return emptyName(op, "realm")
	case user == "":
		return emptyName(op, "user")
	}
	v, err := json.Marshal(e)
	if err != nil {
		return fail(op, err)
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	if err := s.addUser(ctx, realm, user); err != nil {
		return fail(op, err)
	}
	args := append(append([]any{v}, extra...), hashArgs(nil, recoveryHashes)...)
	n, err := script.Run(ctx, s.rdb, []string{
		s.keys.user(realm, user, sufEnrollment),
		s.keys.user(realm, user, sufRecovery),
		s.keys.user(realm, user, sufPending),
	}, args...).Int()
	if err != nil {
		return fail(op, err)
	}
	switch n {
	case 0:
		return sessions.ErrExists
	case -1:
		return sessions.ErrNotFound
	}
	return nil
}

// SetRecoveryCodes replaces the user's recovery code hashes atomically, or
// returns sessions.ErrNotFound if the user is not enrolled.
func (s *Store) SetRecoveryCodes(ctx context.Context, realm, user string, recoveryHashes []string) error {
	const op = "setting recovery codes"
	switch {
	case realm == "":
		return emptyName(op, "realm")
	case user == "":
		return emptyName(op, "user")
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	n, err := setRecoveryScript.Run(ctx, s.rdb, []string{
		s.keys.user(realm, user, sufEnrollment),
		s.keys.user(realm, user, sufRecovery),
	}, hashArgs(nil, recoveryHashes)...).Int()
	if err != nil {
		return fail(op, err)
	}
	if n == 0 {
		return sessions.ErrNotFound
	}
	return nil
}

// ReplaceSealedSecret swaps the enrollment's sealed secret in one script
// if it still holds old, or returns sessions.ErrNotFound if the user is
// not enrolled.
func (s *Store) ReplaceSealedSecret(ctx context.Context, realm, user string, old, sealed []byte) (bool, error) {
	const op = "replacing sealed secret"
	switch {
	case realm == "":
		return false, emptyName(op, "realm")
	case user == "":
		return false, emptyName(op, "user")
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	// The enrollment is JSON, where []byte is standard base64.
	n, err := replaceSealedScript.Run(ctx, s.rdb, []string{s.keys.user(realm, user, sufEnrollment)},
		base64.StdEncoding.EncodeToString(old), base64.StdEncoding.EncodeToString(sealed)).Int()
	if err != nil {
		return false, fail(op, err)
	}
	if n < 0 {
		return false, sessions.ErrNotFound
	}
	return n == 1, nil
}

// UseRecoveryCode removes one recovery code hash atomically (SREM) and
// returns how many remain, or sessions.ErrNotFound if the hash is not one
// of the user's unused codes. The hashes are keyed hashes, so the set
// lookup, which is not constant-time, reveals nothing about a code.
func (s *Store) UseRecoveryCode(ctx context.Context, realm, user, hash string) (int, error) {
	if realm == "" {
		return 0, emptyName("using recovery code", "realm")
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	n, err := useRecoveryScript.Run(ctx, s.rdb, []string{s.keys.user(realm, user, sufRecovery)}, hash).Int()
	if err != nil {
		return 0, fail("using recovery code", err)
	}
	if n < 0 {
		return 0, sessions.ErrNotFound
	}
	return n, nil
}

// AcceptStep records step as the user's last accepted TOTP step,
// atomically, if it is greater than the recorded one or that record has
// expired; it reports whether it did. Steps beyond ±2^53 are refused with
// an error.
func (s *Store) AcceptStep(ctx context.Context, realm, user string, step int64, expires time.Time) (bool, error) {
	const op = "accepting TOTP step"
	switch {
	case realm == "":
		return false, emptyName(op, "realm")
	case user == "":
		return false, emptyName(op, "user")
	case step > maxStep || step < -maxStep:
		return false, fail(op, fmt.Errorf("step %d out of range", step))
	}
	return s.acceptStep(ctx, op, []string{s.keys.user(realm, user, sufStep)}, step, expires)
}

// acceptStep runs acceptStepScript on keys: the user's last-step key and,
// when given, a key that must exist (the enrollment), checked in the same
// script so that a removal cannot come between.
func (s *Store) acceptStep(ctx context.Context, op string, keys []string, step int64, expires time.Time) (bool, error) {
	now := s.now()
	ctx, cancel := s.call(ctx)
	defer cancel()
	n, err := acceptStepScript.Run(ctx, s.rdb, keys,
		step, expires.Unix(), expires.Nanosecond(), now.Unix(), now.Nanosecond(), ttlMillis(expires, now)).Int()
	if err != nil {
		return false, fail(op, err)
	}
	if n == -1 {
		return false, sessions.ErrNotFound
	}
	return n == 1, nil
}

// ResetUser forgets everything about the user. The enrollment, factors,
// recovery codes, last step and pending enrollment go first, together
// with the profile's LastVerified, LastMethod and DisabledUntil
// (FirstSeen is kept), in one script; then the user's sessions and
// trusted devices, one by one (they are in other cluster slots). If it fails half-way, a retry finishes the job. The user stays
// in the realm's users set (Users skips members with neither an
// enrollment nor a profile). Attempt counters are not the user's keys
// (see keys.counter): a reset never touches one.
func (s *Store) ResetUser(ctx context.Context, realm, user string) error {
	const op = "resetting user"
	switch {
	case realm == "":
		return emptyName(op, "realm")
	case user == "":
		return emptyName(op, "user")
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	err := resetUserScript.Run(ctx, s.rdb, []string{
		s.keys.user(realm, user, sufEnrollment),
		s.keys.user(realm, user, sufRecovery),
		s.keys.user(realm, user, sufStep),
		s.keys.user(realm, user, sufPending),
		s.keys.user(realm, user, sufProfile),
		s.keys.user(realm, user, sufFactors),
	}).Err()
	if err != nil {
		return fail(op, err)
	}
	if _, err := s.deleteOwned(ctx, kindSession, realm, user, nil); err != nil {
		return fail(op, err)
	}
	if _, err := s.deleteOwned(ctx, kindDevice, realm, user, nil); err != nil {
		return fail(op, err)
	}
	return nil
}

// PutPendingEnrollment saves or replaces the user's unconfirmed enrollment
// until p.Expires (one that has already expired deletes it).
func (s *Store) PutPendingEnrollment(ctx context.Context, realm, user string, p sessions.PendingEnrollment) error {
	const op = "saving pending enrollment"
	switch {
	case realm == "":
		return emptyName(op, "realm")
	case user == "":
		return emptyName(op, "user")
	}
	v, err := json.Marshal(p)
	if err != nil {
		return fail(op, err)
	}
	key := s.keys.user(realm, user, sufPending)
	ctx, cancel := s.call(ctx)
	defer cancel()
	if d := ttl(p.Expires, s.now()); d > 0 {
		err = s.rdb.Set(ctx, key, v, d).Err()
	} else {
		err = s.rdb.Del(ctx, key).Err()
	}
	return fail(op, err)
}

// AddPendingEnrollment saves p until p.Expires with SET NX, so only if
// the user has no live pending enrollment (the key's expiry is the
// record's).
func (s *Store) AddPendingEnrollment(ctx context.Context, realm, user string, p sessions.PendingEnrollment) (bool, error) {
	const op = "adding pending enrollment"
	switch {
	case realm == "":
		return false, emptyName(op, "realm")
	case user == "":
		return false, emptyName(op, "user")
	}
	d := ttl(p.Expires, s.now())
	if d <= 0 {
		return false, nil
	}
	v, err := json.Marshal(p)
	if err != nil {
		return false, fail(op, err)
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	added, err := s.rdb.SetNX(ctx, s.keys.user(realm, user, sufPending), v, d).Result()
	if err != nil {
		return false, fail(op, err)
	}
	return added, nil
}

// EnrollPending saves a confirmed enrollment and its recovery code hashes
// in one script if the user has none and the pending enrollment still
// holds pendingSealed, and deletes the pending enrollment. The user is
// listed in the realm's users set first, in a command of its own.
func (s *Store) EnrollPending(ctx context.Context, realm, user string, pendingSealed []byte, e sessions.Enrollment, recoveryHashes []string) error {
	// The pending enrollment is JSON, where []byte is standard base64.
	return s.enroll(ctx, realm, user, enrollPendingScript, []any{base64.StdEncoding.EncodeToString(pendingSealed)}, e, recoveryHashes)
}

// PendingEnrollment returns the user's unexpired unconfirmed enrollment,
// or sessions.ErrNotFound.
func (s *Store) PendingEnrollment(ctx context.Context, realm, user string) (sessions.PendingEnrollment, error) {
	const op = "reading pending enrollment"
	ctx, cancel := s.call(ctx)
	defer cancel()
	v, err := s.rdb.Get(ctx, s.keys.user(realm, user, sufPending)).Bytes()
	if isNil(err) {
		return sessions.PendingEnrollment{}, sessions.ErrNotFound
	}
	if err != nil {
		return sessions.PendingEnrollment{}, fail(op, err)
	}
	var p sessions.PendingEnrollment
	if err := json.Unmarshal(v, &p); err != nil {
		return sessions.PendingEnrollment{}, fail(op, fmt.Errorf("%w: %v", errCorrupt, err))
	}
	if !s.now().Before(p.Expires) {
		return sessions.PendingEnrollment{}, sessions.ErrNotFound
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

// AddFailure counts one failure for key at now, atomically, and returns
// the new state. A counter whose window and lockout are over starts again
// at one. The lockout starts when the count reaches limit.Max (if
// positive) outside a lockout, and is not extended by failures counted
// during it. The key's TTL runs from now to the later of the window's end
// and the lockout's end.
func (s *Store) AddFailure(ctx context.Context, realm, key string, now time.Time, limit sessions.Limit) (sessions.Attempts, error) {
	const op = "counting failure"
	switch {
	case realm == "":
		return sessions.Attempts{}, emptyName(op, "realm")
	case key == "":
		return sessions.Attempts{}, emptyName(op, "key")
	}
	w := strings.Fields(durationFields(limit.Window))
	l := strings.Fields(durationFields(limit.Lockout))
	ctx, cancel := s.call(ctx)
	defer cancel()
	v, err := addFailureScript.Run(ctx, s.rdb, []string{s.keys.counter(realm, key)},
		now.Unix(), now.Nanosecond(), limit.Max, w[0], w[1], l[0], l[1], zeroUnix).Text()
	if err != nil {
		return sessions.Attempts{}, fail(op, err)
	}
	a, err := decodeAttempts(v)
	if err != nil {
		return sessions.Attempts{}, fail(op, err)
	}
	return a, nil
}

// Attempts returns key's counter at now (zero if none, or if its window
// and lockout are over).
func (s *Store) Attempts(ctx context.Context, realm, key string, now time.Time) (sessions.Attempts, error) {
	const op = "reading failures"
	ctx, cancel := s.call(ctx)
	defer cancel()
	v, err := s.rdb.Get(ctx, s.keys.counter(realm, key)).Result()
	if isNil(err) {
		return sessions.Attempts{}, nil
	}
	if err != nil {
		return sessions.Attempts{}, fail(op, err)
	}
	a, err := decodeAttempts(v)
	if err != nil {
		return sessions.Attempts{}, fail(op, err)
	}
	return current(a, now), nil
}

// ClearFailures removes key's counter and lockout.
func (s *Store) ClearFailures(ctx context.Context, realm, key string) error {
	if realm == "" {
		return emptyName("clearing failures", "realm")
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	return fail("clearing failures", s.rdb.Del(ctx, s.keys.counter(realm, key)).Err())
}

// ReserveAttempt counts one attempt on every counter, atomically, in one
// script on the realm's counter slot, unless one of them is locked out at
// now (then it writes nothing). Like AddFailure, it decides with the
// caller's now.
func (s *Store) ReserveAttempt(ctx context.Context, realm string, now time.Time, counters ...sessions.Counter) (sessions.Attempts, bool, error) {
	const op = "reserving an attempt"
	switch {
	case realm == "":
		return sessions.Attempts{}, false, emptyName(op, "realm")
	case len(counters) == 0:
		return sessions.Attempts{}, false, fail(op, errors.New("no counter"))
	}
	keys := make([]string, len(counters))
	args := make([]any, 0, 3+5*len(counters))
	args = append(args, now.Unix(), now.Nanosecond(), zeroUnix)
	for i, c := range counters {
		if c.Key == "" {
			return sessions.Attempts{}, false, emptyName(op, "key")
		}
		keys[i] = s.keys.counter(realm, c.Key)
		w := strings.Fields(durationFields(c.Limit.Window))
		l := strings.Fields(durationFields(c.Limit.Lockout))
		args = append(args, c.Limit.Max, w[0], w[1], l[0], l[1])
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	res, err := reserveAttemptScript.Run(ctx, s.rdb, keys, args...).Slice()
	if err != nil {
		return sessions.Attempts{}, false, fail(op, err)
	}
	var (
		ok  int64
		rec string
	)
	if len(res) == 2 {
		ok, _ = res[0].(int64)
		rec, _ = res[1].(string)
	}
	a, err := decodeAttempts(rec)
	if err != nil {
		return sessions.Attempts{}, false, fail(op, err)
	}
	return current(a, now), ok == 1, nil
}

// ReleaseAttempt gives back one attempt on key, atomically, if its window
// is still open at now.
func (s *Store) ReleaseAttempt(ctx context.Context, realm, key string, now time.Time, limit sessions.Limit) error {
	const op = "releasing an attempt"
	switch {
	case realm == "":
		return emptyName(op, "realm")
	case key == "":
		return emptyName(op, "key")
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	err := releaseAttemptScript.Run(ctx, s.rdb, []string{s.keys.counter(realm, key)},
		now.Unix(), now.Nanosecond(), zeroUnix, limit.Max).Err()
	return fail(op, err)
}

// PutToken saves or replaces a one-time value under kind/id until expires
// (one that has already expired deletes it). Empty kind and id are
// allowed.
func (s *Store) PutToken(ctx context.Context, realm, kind, id string, value []byte, expires time.Time) error {
	const op = "saving token"
	if realm == "" {
		return emptyName(op, "realm")
	}
	key := s.keys.token(realm, kind, id)
	ctx, cancel := s.call(ctx)
	defer cancel()
	var err error
	if d := ttl(expires, s.now()); d > 0 {
		err = s.rdb.Set(ctx, key, encodeToken(value, expires), d).Err()
	} else {
		err = s.rdb.Del(ctx, key).Err()
	}
	return fail(op, err)
}

// ConsumeToken returns the value under kind/id and deletes it atomically
// (GETDEL), or returns sessions.ErrNotFound if it is absent or expired.
func (s *Store) ConsumeToken(ctx context.Context, realm, kind, id string) ([]byte, error) {
	const op = "consuming token"
	if realm == "" {
		return nil, emptyName(op, "realm")
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	v, err := s.rdb.GetDel(ctx, s.keys.token(realm, kind, id)).Bytes()
	if isNil(err) {
		return nil, sessions.ErrNotFound
	}
	if err != nil {
		return nil, fail(op, err)
	}
	value, expires, err := decodeToken(v)
	if err != nil {
		return nil, fail(op, err)
	}
	if !s.now().Before(expires) {
		return nil, sessions.ErrNotFound
	}
	return value, nil
}

// kind describes sessions or trusted devices: records found by ID, each
// owned by a user who has an index of them.
//
// The two are stored differently. A session is stored under its key ID
// (sessionKeyID, a digest of its ID) and indexed in its owner's profile
// hash, which every user who verified already has, so that a session
// costs one key and a small hash field. A trusted device is stored under
// its ID (already a keyed hash of the device cookie's token, which
// UserDevices must return) and indexed in a sorted set of its own.
type kind struct {
	tag    string // key tag of the records
	index  string // suffix of the per-user index key
	format byte   // first byte of the records
	name   string // for error messages
	// inProfile: records are stored under sessionKeyID(id) and indexed in
	// the profile hash; else under id, indexed in a sorted set.
	inProfile bool
}

var (
	kindSession = kind{tagSession, sufProfile, fmtSession, "session", true}
	kindDevice  = kind{tagDevice, sufDevices, fmtDevice, "trusted device", false}
)

// member is what the record under id is stored and indexed under.
func (k kind) member(id string) string {
	if k.inProfile {
		return sessionKeyID(id)
	}
	return id
}

// recordKey is the key of the record stored under member.
func (s *Store) recordKey(k kind, realm, member string) string {
	return s.keys.byID(realm, k.tag, member)
}

// owner returns the user a session or device value belongs to, and its
// expiry.
func (k kind) owner(v []byte) (user string, expires time.Time, err error) {
	if k.format == fmtSession {
		s, err := decodeSession(v)
		return s.User, s.Expires, err
	}
	d, err := decodeDevice(v)
	return d.User, d.Expires, err
}

// indexAdd lists member, which expires at expires, in user's index, and
// drops the entries that expired before now.
func (s *Store) indexAdd(ctx context.Context, k kind, realm, user, member string, expires, now time.Time) error {
	script := indexAddScript
	if k.inProfile {
		script = sessionIndexAddScript
	}
	return script.Run(ctx, s.rdb, []string{s.keys.user(realm, user, k.index)},
		member, scoreSeconds(expires), now.Unix(), now.UnixMilli()).Err()
}

// indexRemove removes members from user's index (for sessions, also the
// entries that expired before now).
func (s *Store) indexRemove(ctx context.Context, k kind, realm, user string, now time.Time, members ...string) error {
	key := s.keys.user(realm, user, k.index)
	if !k.inProfile {
		if len(members) == 0 {
			return nil
		}
		args := make([]any, len(members))
		for i, m := range members {
			args[i] = m
		}
		return s.rdb.ZRem(ctx, key, args...).Err()
	}
	args := make([]any, 0, 2+len(members))
	args = append(args, now.Unix(), now.UnixMilli())
	for _, m := range members {
		args = append(args, m)
	}
	return sessionIndexRemoveScript.Run(ctx, s.rdb, []string{key}, args...).Err()
}

// ids returns the members of user's index of kind k.
func (s *Store) ids(ctx context.Context, k kind, realm, user string) ([]string, error) {
	key := s.keys.user(realm, user, k.index)
	if !k.inProfile {
		return s.rdb.ZRange(ctx, key, 0, -1).Result()
	}
	fields, err := s.rdb.HKeys(ctx, key).Result()
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(fields, func(f string) bool { return len(f) != sessionKeyIDLen }), nil
}

// put saves the encoded record v of user under id until expires, and keeps
// the per-user indexes right:
//
//  1. the record's member is added to the new owner's index first, so
//     that a record can never exist without being in its owner's index
//     (a failure later only leaves an index entry that points at nothing,
//     which is harmless and dropped once its expiry passes);
//  2. the record is written with SET … GET, which returns the value it
//     replaced in the same command;
//  3. if that value belonged to another user, the member is removed from
//     that user's index.
//
// A record that has already expired is deleted instead (with its entry in
// its owner's index).
func (s *Store) put(ctx context.Context, k kind, realm, id, user string, v []byte, expires time.Time) error {
	op := "saving " + k.name
	switch {
	case realm == "":
		return emptyName(op, "realm")
	case id == "":
		return emptyName(op, "id")
	case user == "":
		return emptyName(op, "user")
	}
	now := s.now()
	member := k.member(id)
	ctx, cancel := s.call(ctx)
	defer cancel()
	d := ttl(expires, now)
	if d <= 0 {
		return fail(op, s.delete(ctx, k, realm, member))
	}
	if err := s.indexAdd(ctx, k, realm, user, member, expires, now); err != nil {
		return fail(op, err)
	}
	old, err := s.rdb.SetArgs(ctx, s.recordKey(k, realm, member), v, redis.SetArgs{TTL: d, Get: true}).Bytes()
	if isNil(err) {
		return nil
	}
	if err != nil {
		return fail(op, err)
	}
	if prev, _, err := k.owner(old); err == nil && prev != user {
		if err := s.indexRemove(ctx, k, realm, prev, now, member); err != nil {
			return fail(op, err)
		}
	}
	return nil
}

// delete removes the record stored under member (GETDEL) and its owner's
// index entry.
func (s *Store) delete(ctx context.Context, k kind, realm, member string) error {
	old, err := s.rdb.GetDel(ctx, s.recordKey(k, realm, member)).Bytes()
	if isNil(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if user, _, err := k.owner(old); err == nil {
		return s.indexRemove(ctx, k, realm, user, s.now(), member)
	}
	return nil
}

// touch rewrites the record under id with modify applied, keeping its TTL,
// if it is live; sessions.ErrNotFound if not. It reads the record, then
// swaps in the new value only if the stored one has not changed meanwhile,
// retrying a few times if it has.
func (s *Store) touch(ctx context.Context, k kind, realm, id string, modify func(v []byte) ([]byte, time.Time, error)) error {
	op := "updating " + k.name
	if realm == "" {
		return emptyName(op, "realm")
	}
	key := s.recordKey(k, realm, k.member(id))
	ctx, cancel := s.call(ctx)
	defer cancel()
	for range 10 {
		old, err := s.rdb.Get(ctx, key).Bytes()
		if isNil(err) {
			return sessions.ErrNotFound
		}
		if err != nil {
			return fail(op, err)
		}
		nv, expires, err := modify(old)
		if err != nil {
			return fail(op, err)
		}
		if !s.now().Before(expires) {
			return sessions.ErrNotFound
		}
		n, err := swapScript.Run(ctx, s.rdb, []string{key}, old, nv).Int()
		if err != nil {
			return fail(op, err)
		}
		if n == 1 {
			return nil
		}
	}
	return fail(op, errors.New("record kept changing; gave up"))
}

// owned reads the records listed in user's index of kind k (in one
// pipeline) and returns those that are user's and live at now, by member.
// Index entries whose record is gone or is now another user's are
// skipped (and left alone: removing them here could race with a put).
func (s *Store) owned(ctx context.Context, k kind, realm, user string) (map[string][]byte, error) {
	ids, err := s.ids(ctx, k, realm, user)
	if err != nil || len(ids) == 0 {
		return nil, err
	}
	cmds := make([]*redis.StringCmd, len(ids))
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.Get(ctx, s.recordKey(k, realm, id))
		}
		return nil
	})
	if err != nil && !isNil(err) {
		return nil, err
	}
	now := s.now()
	out := make(map[string][]byte, len(ids))
	for i, c := range cmds {
		v, err := c.Bytes()
		if isNil(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		owner, expires, err := k.owner(v)
		if err != nil {
			return nil, err
		}
		if owner == user && now.Before(expires) {
			out[ids[i]] = v
		}
	}
	return out, nil
}

// deleteOwned deletes user's records of kind k except those whose IDs are
// in keep, and returns how many of them were live. Each record is deleted
// by a script that first checks that it is still the user's; the records
// deleted then leave the user's index (for sessions, with the entries
// that expired).
func (s *Store) deleteOwned(ctx context.Context, k kind, realm, user string, keep []string) (int, error) {
	ids, err := s.ids(ctx, k, realm, user)
	if err != nil || len(ids) == 0 {
		return 0, err
	}
	kept := make(map[string]bool, len(keep))
	for _, id := range keep {
		kept[k.member(id)] = true
	}
	ids = slices.DeleteFunc(ids, func(id string) bool { return kept[id] })
	prefix := ownerPrefix(k.format, user)
	keys := make([][]string, len(ids))
	for i, id := range ids {
		keys[i] = []string{s.recordKey(k, realm, id)}
	}
	cmds := s.runEach(ctx, deleteOwnedScript, keys, prefix)
	now := s.now()
	n := 0
	var deleted []string
	for i, c := range cmds {
		v, err := c.Text()
		if isNil(err) {
			continue
		}
		if err != nil {
			return n, err
		}
		deleted = append(deleted, ids[i])
		if _, expires, err := k.owner([]byte(v)); err == nil && now.Before(expires) {
			n++
		}
	}
	if len(deleted) > 0 || k.inProfile {
		if err := s.indexRemove(ctx, k, realm, user, now, deleted...); err != nil {
			return n, err
		}
	}
	return n, nil
}

// PutSession saves or replaces a session under id until sess.Expires, and
// lists it in its user's index (see the package documentation).
func (s *Store) PutSession(ctx context.Context, realm, id string, sess sessions.Session) error {
	return s.put(ctx, kindSession, realm, id, sess.User, encodeSession(sess), sess.Expires)
}

// Session returns the unexpired session stored under id, or
// sessions.ErrNotFound. It is the hot path: one GET.
func (s *Store) Session(ctx context.Context, realm, id string) (sessions.Session, error) {
	return getRecord(s, ctx, kindSession, realm, id, decodeSession, func(x sessions.Session) time.Time { return x.Expires })
}

// getRecord reads the session or device stored under id: one GET, then
// the record's own expiry check (absent and expired read as ErrNotFound).
func getRecord[T any](s *Store, ctx context.Context, k kind, realm, id string, decode func([]byte) (T, error), expires func(T) time.Time) (T, error) {
	var zero T
	ctx, cancel := s.call(ctx)
	defer cancel()
	v, err := s.rdb.Get(ctx, s.recordKey(k, realm, k.member(id))).Bytes()
	if isNil(err) {
		return zero, sessions.ErrNotFound
	}
	if err != nil {
		return zero, fail("reading "+k.name, err)
	}
	x, err := decode(v)
	if err != nil {
		return zero, fail("reading "+k.name, err)
	}
	if !s.now().Before(expires(x)) {
		return zero, sessions.ErrNotFound
	}
	return x, nil
}

// TouchSession sets the LastSeen of an unexpired session, or returns
// sessions.ErrNotFound.
func (s *Store) TouchSession(ctx context.Context, realm, id string, lastSeen time.Time) error {
	return s.touch(ctx, kindSession, realm, id, func(v []byte) ([]byte, time.Time, error) {
		sess, err := decodeSession(v)
		if err != nil {
			return nil, time.Time{}, err
		}
		sess.LastSeen = lastSeen
		return encodeSession(sess), sess.Expires, nil
	})
}

// DeleteSession removes one session; an absent one is not an error.
func (s *Store) DeleteSession(ctx context.Context, realm, id string) error {
	if realm == "" {
		return emptyName("deleting session", "realm")
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	return fail("deleting session", s.delete(ctx, kindSession, realm, kindSession.member(id)))
}

// UserSessions counts the user's live sessions: those in the user's index
// whose record is still the user's and unexpired.
func (s *Store) UserSessions(ctx context.Context, realm, user string) (int, error) {
	ctx, cancel := s.call(ctx)
	defer cancel()
	m, err := s.owned(ctx, kindSession, realm, user)
	if err != nil {
		return 0, fail("counting sessions", err)
	}
	return len(m), nil
}

// DeleteUserSessions removes the user's sessions except those whose IDs
// are in keep, and returns how many live ones it removed (expired ones
// are removed too but not counted). Each session is removed atomically,
// and only if it is still the user's; the removals are not one
// transaction (the sessions are in different cluster slots), so a session
// created meanwhile may survive, as if it had been created just after.
func (s *Store) DeleteUserSessions(ctx context.Context, realm, user string, keep ...string) (int, error) {
	const op = "deleting user's sessions"
	switch {
	case realm == "":
		return 0, emptyName(op, "realm")
	case user == "":
		return 0, emptyName(op, "user")
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	n, err := s.deleteOwned(ctx, kindSession, realm, user, keep)
	if err != nil {
		return 0, fail(op, err)
	}
	return n, nil
}

// PutDevice saves or replaces a trusted device under id until d.Expires,
// and lists it in its user's index.
func (s *Store) PutDevice(ctx context.Context, realm, id string, d sessions.Device) error {
	return s.put(ctx, kindDevice, realm, id, d.User, encodeDevice(d), d.Expires)
}

// Device returns the unexpired trusted device stored under id (with ID
// set), or sessions.ErrNotFound.
func (s *Store) Device(ctx context.Context, realm, id string) (sessions.Device, error) {
	d, err := getRecord(s, ctx, kindDevice, realm, id, decodeDevice, func(x sessions.Device) time.Time { return x.Expires })
	if err == nil {
		d.ID = id
	}
	return d, err
}

// TouchDevice sets the LastUsed of an unexpired trusted device (never its
// Expires), or returns sessions.ErrNotFound.
func (s *Store) TouchDevice(ctx context.Context, realm, id string, lastUsed time.Time) error {
	return s.touch(ctx, kindDevice, realm, id, func(v []byte) ([]byte, time.Time, error) {
		d, err := decodeDevice(v)
		if err != nil {
			return nil, time.Time{}, err
		}
		d.LastUsed = lastUsed
		return encodeDevice(d), d.Expires, nil
	})
}

// DeleteDevice removes one trusted device; an absent one is not an error.
func (s *Store) DeleteDevice(ctx context.Context, realm, id string) error {
	if realm == "" {
		return emptyName("deleting trusted device", "realm")
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	return fail("deleting trusted device", s.delete(ctx, kindDevice, realm, kindDevice.member(id)))
}

// UserDevices lists the user's unexpired trusted devices, oldest (by
// Created) first, with ID set.
func (s *Store) UserDevices(ctx context.Context, realm, user string) ([]sessions.Device, error) {
	const op = "listing trusted devices"
	ctx, cancel := s.call(ctx)
	defer cancel()
	m, err := s.owned(ctx, kindDevice, realm, user)
	if err != nil {
		return nil, fail(op, err)
	}
	list := make([]sessions.Device, 0, len(m))
	for id, v := range m {
		d, err := decodeDevice(v)
		if err != nil {
			return nil, fail(op, err)
		}
		d.ID = id
		list = append(list, d)
	}
	slices.SortFunc(list, func(a, b sessions.Device) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return list, nil
}

// DeleteUserDevices removes all of the user's trusted devices and returns
// how many live ones it removed, like DeleteUserSessions.
func (s *Store) DeleteUserDevices(ctx context.Context, realm, user string) (int, error) {
	const op = "deleting user's trusted devices"
	switch {
	case realm == "":
		return 0, emptyName(op, "realm")
	case user == "":
		return 0, emptyName(op, "user")
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	n, err := s.deleteOwned(ctx, kindDevice, realm, user, nil)
	if err != nil {
		return 0, fail(op, err)
	}
	return n, nil
}

// runEach runs script once for each list of keys in keys (with the same
// arguments) in one pipeline of EVALSHA, and returns the commands, whose
// errors the caller checks. If the server does not have the script cached
// (NOSCRIPT, e.g. after a restart), the script is loaded and the commands
// that failed are sent again; any that fail again are run one by one with
// the script's source.
func (s *Store) runEach(ctx context.Context, script *redis.Script, keys [][]string, args ...any) []*redis.Cmd {
	cmds := make([]*redis.Cmd, len(keys))
	send := func(which []int) {
		// Errors are in the commands.
		_, _ = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, i := range which {
				cmds[i] = script.EvalSha(ctx, p, keys[i], args...)
			}
			return nil
		})
	}
	missing := func() []int {
		var which []int
		for i, c := range cmds {
			if err := c.Err(); err != nil && (errors.Is(err, redis.ErrNoScript) || redis.HasErrorPrefix(err, "NOSCRIPT")) {
				which = append(which, i)
			}
		}
		return which
	}
	all := make([]int, len(keys))
	for i := range all {
		all[i] = i
	}
	send(all)
	retry := missing()
	if len(retry) == 0 {
		return cmds
	}
	if script.Load(ctx, s.rdb).Err() == nil {
		send(retry)
		retry = missing()
	}
	for _, i := range retry {
		cmds[i] = script.Run(ctx, s.rdb, keys[i], args...)
	}
	return cmds
}
