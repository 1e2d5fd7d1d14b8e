// Package sessions defines what the two_factor gate keeps between requests
// (enrollments, recovery codes, used TOTP steps, attempt counters, verified
// sessions, trusted devices, pending enrollments and one-time tokens) and the
// Store interface that every storage backend implements.
//
// Every backend passes the same contract suite (package sessions/storetest).
// The operations that must not race across gate instances are store
// operations, atomic in every backend: AcceptStep (compare-and-set of the
// last accepted TOTP step), UseRecoveryCode and ConsumeToken (consume once),
// AddFailure (a counter with expiry that turns into a lockout),
// ReserveAttempt and ReleaseAttempt (an attempt counted on several
// counters at once, before the code is checked), Enroll (create only if
// absent), EnrollPending (create only if absent and only while the
// pending enrollment is the one whose code was checked),
// AddPendingEnrollment (create only if absent), ReplaceSealedSecret
// (compare-and-set of an enrollment's sealed secret), and every factor
// operation (AddFactor with its cap, RenameFactor, RemoveFactor with its
// keep-one rule, MarkFactorUsed and AcceptFactorStep).
//
// The package imports nothing from Caddy.
package sessions

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is returned when a record does not exist or has expired. It is
// the only error that means "absent": any other error is a store failure and
// callers must fail closed on it (never treat it as "not enrolled").
var ErrNotFound = errors.New("not found")

// ErrExists is returned by Enroll when the user already has an enrollment.
var ErrExists = errors.New("already exists")

// Enrollment is a user's confirmed TOTP authenticator. It has no expiry.
type Enrollment struct {
	// SealedSecret is the TOTP secret encrypted at rest (AES-GCM, bound to
	// realm and user). The store never sees the plain secret.
	SealedSecret []byte `json:"sealed_secret"`
	// Algorithm, Digits and Period are the TOTP parameters the
	// authenticator was enrolled with, kept so that a later change of the
	// defaults does not break existing enrollments.
	Algorithm string `json:"algorithm"`
	Digits    int    `json:"digits"`
	Period    int    `json:"period"`
	// Created is when the enrollment was confirmed.
	Created time.Time `json:"created"`
	// RecoveryCodes is how many unused recovery codes the user has left.
	// Filled in by the store on read.
	RecoveryCodes int `json:"-"`
}

// PendingEnrollment is a TOTP secret shown to a user who has not yet
// confirmed it with a valid code. It expires at Expires.
type PendingEnrollment struct {
	SealedSecret []byte    `json:"sealed_secret"`
	Created      time.Time `json:"created"`
	Expires      time.Time `json:"expires"`
	// MAC is the gate's tag over the record (see Session.MAC); the store
	// keeps it as it is.
	MAC []byte `json:"mac,omitempty"`
	// Browser binds the pending enrollment to the one browser that
	// started it: a keyed hash of the random token in that browser's
	// enrollment cookie. Only that browser is shown the secret and may
	// confirm it. Empty in records written before binding existed, which
	// no browser matches.
	Browser string `json:"browser,omitempty"`
}

// Session is a verified two-factor session, referenced by a random ID that
// only the user's cookie carries. It is valid only for User and only until
// Expires (absolute); an idle timeout is enforced by the caller with
// LastSeen.
type Session struct {
	User string `json:"user"`
	// Method is how the second factor was satisfied: totp, recovery or
	// trusted_device.
	Method   string    `json:"method"`
	Created  time.Time `json:"created"`
	Expires  time.Time `json:"expires"`
	LastSeen time.Time `json:"last_seen"`
	// ClientIP and UserAgent are informational (shown to the user and to
	// admins), never used for decisions.
	ClientIP  string `json:"client_ip,omitempty"`
	UserAgent string `json:"user_agent,omitempty"`
	// Device is the store key of the trusted device that started the
	// session (empty if a code started it): the session ends with the
	// device.
	Device string `json:"device,omitempty"`
	// MAC is the gate's tag binding the record to the key it is stored
	// under, its realm, user and the fields that decide access, made with
	// a key the store does not have. The store keeps it as it is, like
	// every other field; TouchSession leaves it alone.
	MAC []byte `json:"mac,omitempty"`
}

// Device is a trusted ("remember this device") browser of one user. The
// store keys it by a keyed hash of the device cookie's token, never the
// token itself. Use never extends Expires.
type Device struct {
	User      string    `json:"user"`
	Created   time.Time `json:"created"`
	Expires   time.Time `json:"expires"`
	LastUsed  time.Time `json:"last_used"`
	ClientIP  string    `json:"client_ip,omitempty"`
	UserAgent string    `json:"user_agent,omitempty"`
	// MAC is the gate's tag over the record (see Session.MAC); the store
	// keeps it as it is, and TouchDevice leaves it alone.
	MAC []byte `json:"mac,omitempty"`
	// ID is the key the device is stored under. Filled in by UserDevices.
	ID string `json:"-"`
}

// Attempts is the state of a failure counter.
type Attempts struct {
	// Failures counted in the current window.
	Failures int `json:"failures"`
	// WindowEnds is when the current counting window closes and the
	// count starts again from zero.
	WindowEnds time.Time `json:"window_ends"`
	// LockedUntil is set when Failures reached the limit; until then every
	// attempt is refused.
	LockedUntil time.Time `json:"locked_until"`
}

// Profile is what the gate remembers about a user apart from the
// enrollment: when it first saw them (for the enrollment grace period),
// their last verification, and a temporary exemption set by an admin. It
// has no expiry.
type Profile struct {
	// FirstSeen is when the gate first saw the user (set once).
	FirstSeen time.Time `json:"first_seen"`
	// LastVerified is the user's last successful second factor.
	LastVerified time.Time `json:"last_verified"`
	// LastMethod is how that verification was done.
	LastMethod string `json:"last_method,omitempty"`
	// DisabledUntil, while in the future, exempts the user from 2FA (an
	// admin's "disable --for 24h" for a lost phone). Zero: not disabled.
	DisabledUntil time.Time `json:"disabled_until"`
}

// Locked reports whether the counter is in lockout at now.
func (a Attempts) Locked(now time.Time) bool { return now.Before(a.LockedUntil) }

// Limit is the failure policy applied by AddFailure and ReserveAttempt.
type Limit struct {
	// Max failures within Window before a lockout.
	Max int
	// Window is how long failures are counted from the first one.
	Window time.Duration
	// Lockout is how long attempts are refused once Max is reached.
	Lockout time.Duration
}

// Counter names one attempt counter and the limit it is held to, for
// ReserveAttempt.
type Counter struct {
	// Key is the counter's key, as for AddFailure.
	Key string
	// Limit is the policy the counter is held to.
	Limit Limit
}

// Store keeps the gate's state. Records are namespaced by realm. Methods are
// safe for concurrent use by many goroutines and, for shared backends, by
// many gate instances. Expired records read as ErrNotFound even before a
// background sweep removes them.
type Store interface {
	// Enrollment returns the user's confirmed enrollment, or ErrNotFound.
	Enrollment(ctx context.Context, realm, user string) (Enrollment, error)
	// Enroll saves a confirmed enrollment together with its recovery
	// code hashes, atomically, only if the user has none (else ErrExists).
	// It also removes the user's pending enrollment.
	Enroll(ctx context.Context, realm, user string, e Enrollment, recoveryHashes []string) error
	// SetRecoveryCodes replaces the user's recovery code hashes (the old
	// set stops working at once). ErrNotFound if the user is not enrolled.
	SetRecoveryCodes(ctx context.Context, realm, user string, recoveryHashes []string) error
	// ReplaceSealedSecret sets the enrollment's SealedSecret to sealed,
	// atomically, only if it still holds exactly old (compare-and-set),
	// leaving everything else about the enrollment as it was; it reports
	// whether it did. Used to re-seal a TOTP secret under a new key
	// without racing a reset or a re-enrollment. ErrNotFound if the user
	// is not enrolled.
	ReplaceSealedSecret(ctx context.Context, realm, user string, old, sealed []byte) (bool, error)
	// UseRecoveryCode consumes one recovery code hash, atomically: of any
	// number of concurrent calls with the same hash at most one succeeds.
	// It returns how many codes remain, or ErrNotFound if the hash is not
	// one of the user's unused codes.
	UseRecoveryCode(ctx context.Context, realm, user, hash string) (remaining int, err error)
	// AcceptStep records step as the user's last accepted TOTP time step,
	// atomically, only if it is greater than the last one recorded; it
	// reports whether it was. The record is kept until expires (after
	// which any step is accepted again).
	AcceptStep(ctx context.Context, realm, user string, step int64, expires time.Time) (bool, error)
	// ResetUser forgets everything about the user: enrollment, factors
	// (with their replay windows), recovery codes, last step, pending
	// enrollment, sessions and trusted devices, and in the profile
	// LastVerified, LastMethod and DisabledUntil
	// (FirstSeen is kept, so a reset does not restart an enrollment grace
	// period). It never touches an attempt counter: counters live in a
	// name space of their own, which no user name can address (the
	// caller clears the user's counters by their keys).
	ResetUser(ctx context.Context, realm, user string) error

	// PutPendingEnrollment saves (or replaces) the user's unconfirmed
	// enrollment until p.Expires.
	PutPendingEnrollment(ctx context.Context, realm, user string, p PendingEnrollment) error
	// PendingEnrollment returns the user's unconfirmed enrollment, or
	// ErrNotFound.
	PendingEnrollment(ctx context.Context, realm, user string) (PendingEnrollment, error)
	// AddPendingEnrollment saves p as the user's unconfirmed enrollment
	// until p.Expires only if the user has no live one, atomically: of
	// any number of concurrent calls at most one saves. It reports
	// whether it saved p (a p that has already expired is not saved).
	AddPendingEnrollment(ctx context.Context, realm, user string, p PendingEnrollment) (bool, error)
	// EnrollPending is Enroll made conditional on the pending enrollment
	// whose code was checked: atomically, only if the user has no
	// enrollment (else ErrExists) and the user's live pending enrollment
	// still holds exactly the sealed secret pendingSealed (else
	// ErrNotFound: it expired, was confirmed, reset or started over), it
	// saves e with its recovery code hashes and removes the pending
	// enrollment.
	EnrollPending(ctx context.Context, realm, user string, pendingSealed []byte, e Enrollment, recoveryHashes []string) error

	// Factors lists the user's factors (an empty list, not an error, if
	// there are none): the Enrollment first, as the factor
	// LegacyTOTPFactorID (a migration on read: nothing is rewritten
	// until a factor operation changes something), then the others in
	// the order they were added.
	Factors(ctx context.Context, realm, user string) ([]Factor, error)
	// AddFactor adds f to the user's factors, atomically, only if the
	// user has fewer than maxFactors (else ErrTooManyFactors) and none with
	// f.ID (else ErrExists). Of any number of concurrent calls, the
	// user never ends up with more than maxFactors factors. f.ID must not be
	// LegacyTOTPFactorID.
	AddFactor(ctx context.Context, realm, user string, f Factor, maxFactors int) error
	// RenameFactor sets the factor's Name, atomically (ErrNotFound if the
	// user has no factor id).
	RenameFactor(ctx context.Context, realm, user, id, name string) error
	// RemoveFactor removes one of the user's factors, atomically
	// (ErrNotFound if there is none with id). With keepOne, it refuses
	// to remove the user's only factor (ErrLastFactor), also against
	// concurrent removals: of two concurrent removals of a user's last
	// two factors at most one succeeds. Removing LegacyTOTPFactorID
	// removes the Enrollment. Recovery codes are left alone.
	RemoveFactor(ctx context.Context, realm, user, id string, keepOne bool) error
	// MarkFactorUsed sets the factor's LastUsed (ErrNotFound if gone).
	MarkFactorUsed(ctx context.Context, realm, user, id string, t time.Time) error
	// AcceptFactorStep is AcceptStep for one TOTP factor: each factor
	// has its own replay window, so a code of one authenticator does not
	// block the same step of another. ErrNotFound if the user has no
	// factor id. For LegacyTOTPFactorID it is AcceptStep itself (one
	// window shared with the path that does not know factors).
	AcceptFactorStep(ctx context.Context, realm, user, id string, step int64, expires time.Time) (bool, error)

	// AddFailure counts one failure for key at now under limit and returns
	// the new state. Reaching limit.Max sets LockedUntil = now +
	// limit.Lockout. Atomic: concurrent failures are all counted.
	AddFailure(ctx context.Context, realm, key string, now time.Time, limit Limit) (Attempts, error)
	// Attempts returns the state of key's counter at now (zero if none).
	Attempts(ctx context.Context, realm, key string, now time.Time) (Attempts, error)
	// ClearFailures resets key's counter and lockout.
	ClearFailures(ctx context.Context, realm, key string) error
	// ReserveAttempt reserves one attempt on every counter at once,
	// atomically, before a code is checked. If any counter is locked out
	// at now it counts nothing and returns that counter's state (the one
	// locked for longest) and false. Otherwise it counts one attempt on
	// every counter, exactly as AddFailure counts a failure (a new window
	// starts at one; reaching Limit.Max sets LockedUntil = now +
	// Limit.Lockout), and returns true with the state that now applies:
	// the counter locked out for longest if this attempt started a
	// lockout, else the first counter's. Of any number of concurrent
	// calls, across instances, at most Limit.Max - Failures get true for
	// a counter, so the number of codes checked can never exceed any
	// counter's budget. A reserved attempt stays counted (as a failure)
	// unless the counter is cleared or the attempt released.
	ReserveAttempt(ctx context.Context, realm string, now time.Time, counters ...Counter) (Attempts, bool, error)
	// ReleaseAttempt gives back one attempt reserved on key while its
	// window is still open at now: Failures goes down by one and, if it
	// is then under limit.Max, a lockout is lifted. Nothing happens to a
	// counter that is absent, at zero or whose window is over. Used after
	// a success, for counters that a success does not clear (a client
	// address's).
	ReleaseAttempt(ctx context.Context, realm, key string, now time.Time, limit Limit) error

	// PutSession saves a session under id until s.Expires.
	PutSession(ctx context.Context, realm, id string, s Session) error
	// Session returns the session stored under id, or ErrNotFound.
	Session(ctx context.Context, realm, id string) (Session, error)
	// TouchSession sets the session's LastSeen (ErrNotFound if gone).
	TouchSession(ctx context.Context, realm, id string, lastSeen time.Time) error
	// DeleteSession removes one session (no error if absent).
	DeleteSession(ctx context.Context, realm, id string) error
	// UserSessions counts the user's live sessions.
	UserSessions(ctx context.Context, realm, user string) (int, error)
	// DeleteUserSessions removes all of the user's sessions except those
	// whose IDs are listed in keep, and returns how many it removed
	// (expired sessions, which read as ErrNotFound, are not counted).
	DeleteUserSessions(ctx context.Context, realm, user string, keep ...string) (int, error)

	// PutDevice saves a trusted device under id until d.Expires.
	PutDevice(ctx context.Context, realm, id string, d Device) error
	// Device returns the trusted device stored under id, or ErrNotFound.
	Device(ctx context.Context, realm, id string) (Device, error)
	// TouchDevice sets the device's LastUsed (never its Expires);
	// ErrNotFound if gone.
	TouchDevice(ctx context.Context, realm, id string, lastUsed time.Time) error
	// DeleteDevice removes one trusted device (no error if absent).
	DeleteDevice(ctx context.Context, realm, id string) error
	// UserDevices lists the user's live trusted devices, oldest first.
	UserDevices(ctx context.Context, realm, user string) ([]Device, error)
	// DeleteUserDevices removes all of the user's trusted devices and
	// returns how many it removed (expired ones are not counted).
	DeleteUserDevices(ctx context.Context, realm, user string) (int, error)

	// PutToken saves a one-time value under kind/id until expires.
	PutToken(ctx context.Context, realm, kind, id string, value []byte, expires time.Time) error
	// ConsumeToken returns the value and deletes it, atomically: of any
	// number of concurrent calls at most one gets the value; the others
	// get ErrNotFound.
	ConsumeToken(ctx context.Context, realm, kind, id string) ([]byte, error)

	// Users lists the realm's users that have an enrollment or a
	// profile, sorted by name.
	Users(ctx context.Context, realm string) ([]string, error)
	// Profile returns the user's profile, or ErrNotFound.
	Profile(ctx context.Context, realm, user string) (Profile, error)
	// SeeUser records t as the user's FirstSeen unless one is recorded
	// already (atomically: concurrent calls agree on one time), and
	// returns the profile.
	SeeUser(ctx context.Context, realm, user string, t time.Time) (Profile, error)
	// RecordVerification sets LastVerified and LastMethod (creating the
	// profile, with FirstSeen = t, if there is none).
	RecordVerification(ctx context.Context, realm, user, method string, t time.Time) error
	// SetDisabled sets DisabledUntil (zero clears it), creating the
	// profile (FirstSeen = now) if there is none.
	SetDisabled(ctx context.Context, realm, user string, until time.Time) error

	// Ping reports whether the store is usable.
	Ping(ctx context.Context) error
}
