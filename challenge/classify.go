package challenge

// Kind is what a submitted code field holds.
type Kind int

const (
	// KindInvalid is anything that is neither a TOTP code nor a recovery
	// code: empty, wrong length, non-ASCII (for example full-width) digits,
	// stray characters, or more than 64 bytes. It should count as a failed
	// attempt.
	KindInvalid Kind = iota
	// KindTOTP is exactly p.Digits ASCII digits once spaces are removed.
	KindTOTP
	// KindRecovery is a recovery code as accepted by NormalizeRecoveryCode.
	KindRecovery
)

// String returns "invalid", "totp" or "recovery", for logs and tests.
func (k Kind) String() string {
	switch k {
	case KindTOTP:
		return "totp"
	case KindRecovery:
		return "recovery"
	}
	return "invalid"
}

// maxInput is the longest code field Classify and NormalizeRecoveryCode look
// at; anything longer is refused before any other work.
const maxInput = 64

// Classify tells what a submitted code field holds, so that one input box
// can take both TOTP and recovery codes:
//
//   - KindTOTP and the digits, if the input is exactly p.Digits ASCII digits
//     after removing spaces and tabs ("123 456" is "123456");
//   - otherwise KindRecovery and the normalized code, if
//     NormalizeRecoveryCode accepts it;
//   - otherwise KindInvalid and "".
//
// The two kinds cannot be confused: TOTP codes have 6 or 8 digits,
// recovery codes 10 characters, so an all-digit recovery code such as
// "01234-56789" is still a recovery code. If p is invalid no input is
// KindTOTP. Inputs longer than 64 bytes are KindInvalid without further
// work.
func Classify(input string, p Params) (Kind, string) {
	if len(input) > maxInput || len(input) == 0 {
		return KindInvalid, ""
	}
	if p.Validate() == nil {
		var digits [maxInput]byte
		n := 0
		allDigits := true
		for i := 0; i < len(input); i++ {
			c := input[i]
			if c == ' ' || c == '\t' {
				continue
			}
			if c < '0' || c > '9' {
				allDigits = false
				break
			}
			digits[n] = c
			n++
		}
		if allDigits && n == p.Digits {
			return KindTOTP, string(digits[:n])
		}
	}
	if code, ok := NormalizeRecoveryCode(input); ok {
		return KindRecovery, code
	}
	return KindInvalid, ""
}
