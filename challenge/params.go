// Package challenge holds the second-factor primitives of the gate: TOTP
// (RFC 6238) code generation and verification, TOTP secrets and their
// base32 form, the otpauth:// provisioning URI and its QR code, and
// single-use recovery codes.
//
// The package is pure: it does no I/O, keeps no state, does not log and
// imports nothing from Caddy. Replay protection (RFC 6238 §5.2: accept each
// code only once) and throttling need shared state and are the caller's job;
// VerifyTOTP returns the matched time step so that the caller can store it
// and refuse any step that is not newer than the last accepted one.
//
// HOTP code generation (HMAC, dynamic truncation) is delegated to
// github.com/pquerna/otp/hotp; the verification loop, the constant-time
// comparison and the step bookkeeping are implemented here because
// totp.ValidateCustom neither returns the matched step nor has skew by
// default.
package challenge

import (
	"errors"
	"fmt"

	"github.com/pquerna/otp"
)

// Params are the TOTP parameters of one enrollment. They are stored with
// the enrollment, so that changing the global configuration later does not
// break codes from authenticator apps that were set up with older values.
type Params struct {
	// Algorithm is the HMAC hash: "SHA1", "SHA256" or "SHA512" (upper case,
	// as written in the otpauth URI).
	Algorithm string
	// Digits is the code length, 6 or 8.
	Digits int
	// Period is the time step in seconds (RFC 6238 X), 1..300.
	Period int
}

// Limits of Params.Period in seconds.
const (
	MinPeriod = 1
	MaxPeriod = 300
)

// DefaultParams returns SHA1, 6 digits, 30 seconds: the only profile that
// real authenticator apps reliably support. Google Authenticator ignores the
// algorithm, digits and period parameters on several platforms, so any other
// profile may silently produce wrong codes; enrollment must therefore always
// end with a confirmation code.
func DefaultParams() Params {
	return Params{Algorithm: "SHA1", Digits: 6, Period: 30}
}

// Validate reports whether p is usable: a known algorithm (SHA1, SHA256,
// SHA512, exact upper-case spelling), 6 or 8 digits and a period of
// MinPeriod..MaxPeriod seconds.
func (p Params) Validate() error {
	if _, err := p.otpAlgorithm(); err != nil {
		return err
	}
	if p.Digits != 6 && p.Digits != 8 {
		return fmt.Errorf("totp digits must be 6 or 8, not %d", p.Digits)
	}
	if p.Period < MinPeriod || p.Period > MaxPeriod {
		return fmt.Errorf("totp period must be %d..%d seconds, not %d", MinPeriod, MaxPeriod, p.Period)
	}
	return nil
}

// IsDefault reports whether p is the interoperable SHA1/6/30 profile. Callers
// can use it to warn when a configuration asks for something else.
func (p Params) IsDefault() bool {
	return p == DefaultParams()
}

var errUnknownAlgorithm = errors.New("unknown totp algorithm")

func (p Params) otpAlgorithm() (otp.Algorithm, error) {
	switch p.Algorithm {
	case "SHA1":
		return otp.AlgorithmSHA1, nil
	case "SHA256":
		return otp.AlgorithmSHA256, nil
	case "SHA512":
		return otp.AlgorithmSHA512, nil
	}
	return 0, fmt.Errorf("%w %q (want SHA1, SHA256 or SHA512)", errUnknownAlgorithm, p.Algorithm)
}
