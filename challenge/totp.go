package challenge

import (
	"crypto/subtle"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
)

// DefaultSkew is the number of time steps accepted on each side of the
// current one: 1, as RFC 6238 §5.2 recommends ("at most one time step is
// allowed as the network delay"). With 30 s steps a code is valid for
// about 90 s.
const DefaultSkew = 1

// MaxSkew bounds the skew VerifyTOTP honours; larger values are clamped.
// Every extra step widens the window an attacker's guess can hit
// ((2·skew+1) valid codes out of 10^digits) and the time a stolen code stays
// usable, and RFC 6238 §6 asks for a specific limit on how far a prover may
// be out of sync. The bound also caps the work done per verification.
const MaxSkew = 10

// Step returns the RFC 6238 time step of t: floor(unix seconds / period),
// computed in 64 bits so that times beyond 2038 (T = 20000000000 in the RFC
// vectors) work. Times before 1970 give negative steps, which no code
// matches. If p.Period is not positive Step returns 0; such params fail
// Validate and CodeAt refuses them.
func Step(t time.Time, p Params) int64 {
	if p.Period <= 0 {
		return 0
	}
	u := t.Unix()
	per := int64(p.Period)
	s := u / per
	if u%per < 0 { // floor, not truncation, for times before 1970
		s--
	}
	return s
}

// CodeAt returns the code of time step step (the HOTP counter), zero-padded
// to p.Digits characters. It returns "" if p is invalid or step is negative,
// and "" never equals a valid code.
func CodeAt(secret []byte, step int64, p Params) string {
	if p.Validate() != nil || step < 0 {
		return ""
	}
	alg, _ := p.otpAlgorithm()
	code, err := hotp.GenerateCodeCustom(EncodeSecret(secret), uint64(step), hotp.ValidateOpts{
		Digits:    otp.Digits(p.Digits),
		Algorithm: alg,
	})
	if err != nil || len(code) != p.Digits {
		return ""
	}
	return code
}

// Code returns the code for time t: CodeAt(secret, Step(t, p), p).
func Code(secret []byte, t time.Time, p Params) string {
	return CodeAt(secret, Step(t, p), p)
}

// VerifyTOTP checks code against the codes of the steps
// Step(now)-skew .. Step(now)+skew and returns the step that matched.
//
// Every candidate is generated and compared with
// subtle.ConstantTimeCompare, without an early exit, so the response time
// does not tell which step (if any) matched. If several steps match (a
// collision, about 1 in 10^digits per pair) the newest is returned: the
// caller stores the returned step as the last used one and accepts only
// newer steps afterwards (RFC 6238 §5.2 replay rule), and recording the
// newest candidate can only make that rule stricter.
//
// skew below 0 counts as 0 and skew above MaxSkew as MaxSkew; use
// DefaultSkew unless an operator explicitly opted into more.
//
// code must be exactly p.Digits ASCII digits, nothing else (no spaces: use
// Classify to clean user input first). Anything else, invalid params and
// secrets shorter than MinSecretSize give ok == false; VerifyTOTP never
// returns an error and never panics.
func VerifyTOTP(secret []byte, code string, now time.Time, skew int, p Params) (step int64, ok bool) {
	if p.Validate() != nil || len(secret) < MinSecretSize || !isDigits(code, p.Digits) {
		return 0, false
	}
	skew = min(max(skew, 0), MaxSkew)
	base := Step(now, p)
	want := []byte(code)
	var found, matched int64 // found becomes 1 once any candidate matched
	for i := -skew; i <= skew; i++ {
		s := base + int64(i)
		if (i > 0 && s < base) || s < 0 { // overflow near the end of time, or before 1970
			continue
		}
		c := CodeAt(secret, s, p)
		eq := int64(subtle.ConstantTimeCompare([]byte(c), want)) // 1 or 0
		mask := -eq                                              // all ones or zero
		matched = (s & mask) | (matched &^ mask)                 // later (newer) steps overwrite
		found |= eq
	}
	if found != 1 {
		return 0, false
	}
	return matched, true
}

// isDigits reports whether s is exactly n ASCII digits.
func isDigits(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
