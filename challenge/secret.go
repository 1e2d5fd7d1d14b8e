package challenge

import (
	"crypto/rand"
	"encoding/base32"
	"errors"
	"strings"
)

// SecretSize is the length in bytes of secrets made by NewSecret: 160 bits,
// the size RFC 4226 §4 R6 recommends (it requires at least 128) and the
// output length of HMAC-SHA1 (RFC 6238 §5.1).
const SecretSize = 20

// MinSecretSize is the shortest secret VerifyTOTP accepts (128 bits, the
// RFC 4226 minimum). Shorter secrets only appear in test vectors or through
// misconfiguration.
const MinSecretSize = 16

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewSecret returns a fresh SecretSize-byte (160-bit) TOTP secret from
// crypto/rand. Each enrollment must get its own secret (RFC 6238 §3 R5).
func NewSecret() ([]byte, error) {
	s := make([]byte, SecretSize)
	if _, err := rand.Read(s); err != nil {
		return nil, errors.New("read random secret: " + err.Error())
	}
	return s, nil
}

// EncodeSecret returns the base32 form of secret used in otpauth URIs and
// for manual entry: RFC 4648 alphabet, upper case, without '=' padding
// (the Key URI format says padding "should be omitted").
func EncodeSecret(secret []byte) string {
	return b32.EncodeToString(secret)
}

// DecodeSecret parses a base32 secret the way a person or an app may have
// written it: upper or lower case, with spaces, tabs, newlines or dashes
// between groups, with or without '=' padding. An empty or malformed
// secret is an error.
func DecodeSecret(s string) ([]byte, error) {
	if len(s) > 1024 {
		return nil, errors.New("base32 secret too long")
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '-':
			continue
		case c >= 'a' && c <= 'z':
			c -= 'a' - 'A'
		}
		b.WriteByte(c)
	}
	clean := strings.TrimRight(b.String(), "=")
	if clean == "" {
		return nil, errors.New("empty base32 secret")
	}
	if r := len(clean) % 8; r == 1 || r == 3 || r == 6 {
		// No byte count encodes to these lengths.
		return nil, errors.New("invalid base32 secret length")
	}
	out, err := b32.DecodeString(clean)
	if err != nil {
		return nil, errors.New("invalid base32 secret")
	}
	return out, nil
}

// GroupSecret splits an encoded secret into groups of four characters, for
// display when the user types the secret by hand instead of scanning the
// QR code. The last group may be shorter. Joining the groups with spaces
// gives a string that DecodeSecret accepts.
func GroupSecret(encoded string) []string {
	groups := make([]string, 0, (len(encoded)+3)/4)
	for len(encoded) > 4 {
		groups = append(groups, encoded[:4])
		encoded = encoded[4:]
	}
	if encoded != "" {
		groups = append(groups, encoded)
	}
	return groups
}
