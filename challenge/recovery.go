package challenge

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
)

// RecoveryAlphabet is the character set of recovery codes: Crockford's
// base32 in lower case. It has no i, l, o or u, so codes cannot contain
// look-alikes of 1 and 0, and its 32 characters make each one exactly
// 5 random bits (a random byte masked to 5 bits is unbiased).
const RecoveryAlphabet = "0123456789abcdefghjkmnpqrstvwxyz"

// Recovery code shape: two groups of recoveryGroup characters joined by a
// dash, 10 characters = 50 bits of entropy. That is plenty for a secret that
// is stored only as a keyed hash, is single-use and shares the per-account
// failure budget with TOTP.
const (
	recoveryGroup = 5
	recoveryLen   = 2 * recoveryGroup
	// MaxRecoveryCodes bounds NewRecoveryCodes.
	MaxRecoveryCodes = 100
)

// NewRecoveryCodes returns n distinct recovery codes of the form
// "xxxxx-xxxxx" drawn from RecoveryAlphabet with crypto/rand, without
// modulo bias. n must be 1..MaxRecoveryCodes; 10 is the usual number.
// Show the codes once and store only the hash of each:
// HashRecoveryCode(key, realm, user, NormalizeRecoveryCode(code)).
func NewRecoveryCodes(n int) ([]string, error) {
	if n < 1 || n > MaxRecoveryCodes {
		return nil, errors.New("recovery code count out of range")
	}
	codes := make([]string, 0, n)
	seen := make(map[string]bool, n)
	var raw [recoveryLen]byte
	for len(codes) < n {
		if _, err := rand.Read(raw[:]); err != nil {
			return nil, errors.New("read random recovery code: " + err.Error())
		}
		var c [recoveryLen + 1]byte
		j := 0
		for i, r := range raw {
			if i == recoveryGroup {
				c[j] = '-'
				j++
			}
			c[j] = RecoveryAlphabet[r&31] // 256 is a multiple of 32: unbiased
			j++
		}
		s := string(c[:])
		if seen[s] {
			continue
		}
		seen[s] = true
		codes = append(codes, s)
	}
	return codes, nil
}

// NormalizeRecoveryCode turns what a person typed into the canonical 10
// characters of a recovery code (no dash, lower case), or returns ok ==
// false. It accepts any letter case, dashes and spaces anywhere (with or
// without the dash, surrounding or inner spaces), and maps Crockford
// look-alikes: i and l to 1, o to 0. Any other character, or a length other
// than 10 after cleaning, is refused. Inputs longer than 64 bytes are
// refused without further work.
func NormalizeRecoveryCode(input string) (string, bool) {
	if len(input) > maxInput {
		return "", false
	}
	var out [recoveryLen]byte
	n := 0
	for i := 0; i < len(input); i++ {
		c := input[i]
		switch {
		case c == '-' || c == ' ' || c == '\t' || c == '\r' || c == '\n':
			continue
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
		}
		switch c {
		case 'i', 'l':
			c = '1'
		case 'o':
			c = '0'
		}
		if !inRecoveryAlphabet(c) || n == recoveryLen {
			return "", false
		}
		out[n] = c
		n++
	}
	if n != recoveryLen {
		return "", false
	}
	return string(out[:]), true
}

func inRecoveryAlphabet(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' && c != 'i' && c != 'l' && c != 'o' && c != 'u'
}

// recoveryHashDomain separates these HMACs from any other use of the key.
const recoveryHashDomain = "caddy-2fa recovery code v1"

// HashRecoveryCode returns the value to store instead of a recovery code:
// hex(HMAC-SHA256(key, domain ‖ realm ‖ user ‖ normalized)), each field
// preceded by its length as a 64-bit big-endian number so that fields cannot
// run into each other ("ab"+"c" ≠ "a"+"bc"). The key (from the gate's
// configuration or secret storage) means a leaked store alone does not allow
// an offline search of the 50-bit code space; binding realm and user means a
// hash copied to another account or realm does not match there. normalized
// should come from NormalizeRecoveryCode; compare stored and computed hashes
// with subtle.ConstantTimeCompare or hmac.Equal.
func HashRecoveryCode(key []byte, realm, user, normalized string) string {
	m := hmac.New(sha256.New, key)
	var l [8]byte
	for _, f := range [...]string{recoveryHashDomain, realm, user, normalized} {
		binary.BigEndian.PutUint64(l[:], uint64(len(f)))
		m.Write(l[:])
		m.Write([]byte(f))
	}
	return hex.EncodeToString(m.Sum(nil))
}
