package sessions

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"time"
)

// Factor kinds. Only FactorTOTP exists today; the others are reserved for
// the factor issues that follow.
const (
	FactorTOTP     = "totp"
	FactorWebAuthn = "webauthn"
	FactorEmail    = "email"
	FactorSMS      = "sms"
)

// LegacyTOTPFactorID is the ID under which a user's Enrollment (the single
// TOTP authenticator of the time before factors) appears among the user's
// factors. The enrollment record stays where it is and keeps working with
// Enrollment, AcceptStep and ReplaceSealedSecret; Factors shows it as a
// factor of kind FactorTOTP with this ID, named LegacyTOTPFactorName, added
// at the enrollment's Created time. Its Sealed and TOTP are always the
// enrollment's, so a re-seal by ReplaceSealedSecret shows at once; its
// replay window is the user's AcceptStep window. No ID made by NewFactorID
// can be equal to it.
const LegacyTOTPFactorID = "totp-enrollment"

// LegacyTOTPFactorName is the name the enrollment's factor has until the
// user renames it.
const LegacyTOTPFactorName = "Authenticator app"

// DefaultMaxFactors is the per-user cap on factors that the gate is meant
// to pass to AddFactor.
const DefaultMaxFactors = 10

// ErrTooManyFactors is returned by AddFactor when the user already has the
// maximum number of factors.
var ErrTooManyFactors = errors.New("too many factors")

// ErrLastFactor is returned by RemoveFactor, when asked to keep at least
// one factor, for the user's only factor.
var ErrLastFactor = errors.New("last factor")

// Factor is one of a user's second factors. A user has zero or more. The
// store keeps every field as it is given, except that it sets LastUsed in
// MarkFactorUsed and Name in RenameFactor; it never looks inside Sealed.
type Factor struct {
	// ID names the factor among the user's factors: unique per user,
	// chosen by the caller (NewFactorID), never reused for another
	// factor of the same user.
	ID string `json:"id"`
	// Kind is the factor's kind (FactorTOTP, ...).
	Kind string `json:"kind"`
	// Name is what the user calls it ("iPhone", "YubiKey 5").
	Name string `json:"name"`
	// Added is when the factor was added.
	Added time.Time `json:"added"`
	// LastUsed is when the factor last passed a check (zero: never).
	LastUsed time.Time `json:"last_used"`
	// Sealed is the kind's own data, sealed by the gate (for TOTP the
	// encrypted secret, as Enrollment.SealedSecret). The store never sees
	// a plain secret.
	Sealed []byte `json:"sealed,omitempty"`
	// TOTP holds the TOTP parameters of a FactorTOTP factor (nil for
	// other kinds).
	TOTP *TOTPParams `json:"totp,omitempty"`
	// MAC is the gate's tag over the record, made with a key the store
	// does not have (see Session.MAC); the store keeps it as it is. It is
	// meant to cover what decides access (realm, user, ID, Kind, Sealed,
	// TOTP), not Name, Added or LastUsed, which the store changes. The
	// enrollment's factor (LegacyTOTPFactorID) has none: its secret is
	// sealed bound to realm and user, as before factors.
	MAC []byte `json:"mac,omitempty"`
}

// TOTPParams are the parameters a TOTP authenticator was enrolled with.
type TOTPParams struct {
	// Algorithm is the HMAC hash (SHA1, SHA256, SHA512).
	Algorithm string `json:"algorithm"`
	// Digits is the code length.
	Digits int `json:"digits"`
	// Period is the time step in seconds.
	Period int `json:"period"`
}

// NewFactorID returns a new random factor ID: 128 bits, unpadded
// base64url, prefixed with "f-".
func NewFactorID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("sessions: crypto/rand failed: " + err.Error())
	}
	return "f-" + base64.RawURLEncoding.EncodeToString(b[:])
}
