// Package keyring derives the two_factor gate's keys from one operator
// secret, one key per purpose, so that a key used to sign cookies is never
// also used to encrypt TOTP secrets or to hash recovery codes.
//
// The package imports nothing from Caddy.
package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
)

// MinSecretLen is the shortest operator secret accepted, in bytes.
const MinSecretLen = 32

// Keys holds the keys derived from one secret.
type Keys struct {
	// SessionMAC signs the gate's session cookie (securecookie hash key).
	SessionMAC []byte
	// DeviceMAC signs the trusted-device cookie.
	DeviceMAC []byte
	// CSRFMAC signs the CSRF cookie.
	CSRFMAC []byte
	// RecoveryMAC keys the hashes of recovery codes.
	RecoveryMAC []byte
	// DeviceID keys the hash under which a trusted device is stored.
	DeviceID []byte

	seal cipher.AEAD
}

// Derive expands secret into per-purpose keys with HKDF-SHA256. The same
// secret always gives the same keys, on every instance.
func Derive(secret []byte) (*Keys, error) {
	if len(secret) < MinSecretLen {
		return nil, fmt.Errorf("secret is %d bytes, need at least %d", len(secret), MinSecretLen)
	}
	k := &Keys{}
	var err error
	for _, d := range []struct {
		dst  *[]byte
		info string
		n    int
	}{
		{&k.SessionMAC, "caddy-2fa session cookie mac", 64},
		{&k.DeviceMAC, "caddy-2fa device cookie mac", 64},
		{&k.CSRFMAC, "caddy-2fa csrf cookie mac", 64},
		{&k.RecoveryMAC, "caddy-2fa recovery code hash", 32},
		{&k.DeviceID, "caddy-2fa device id hash", 32},
	} {
		if *d.dst, err = hkdf.Key(sha256.New, secret, nil, d.info, d.n); err != nil {
			return nil, fmt.Errorf("deriving %s key: %v", d.info, err)
		}
	}
	sealKey, err := hkdf.Key(sha256.New, secret, nil, "caddy-2fa totp secret encryption", 32)
	if err != nil {
		return nil, fmt.Errorf("deriving encryption key: %v", err)
	}
	block, err := aes.NewCipher(sealKey)
	if err != nil {
		return nil, err
	}
	if k.seal, err = cipher.NewGCM(block); err != nil {
		return nil, err
	}
	return k, nil
}

// ErrOpen is returned by Open when a ciphertext does not authenticate:
// it was tampered with, made with another secret, or belongs to another
// realm or user.
var ErrOpen = errors.New("cannot decrypt: wrong key or record does not belong to this user")

// Seal encrypts a TOTP secret with AES-256-GCM. The ciphertext is bound to
// realm and user through the associated data, so a record copied to
// another user does not decrypt.
func (k *Keys) Seal(realm, user string, plaintext []byte) ([]byte, error) {
	nonce := make([]byte, k.seal.NonceSize(), k.seal.NonceSize()+len(plaintext)+k.seal.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return k.seal.Seal(nonce, nonce, plaintext, associatedData(realm, user)), nil
}

// Open decrypts what Seal made for the same realm and user.
func (k *Keys) Open(realm, user string, sealed []byte) ([]byte, error) {
	n := k.seal.NonceSize()
	if len(sealed) < n+k.seal.Overhead() {
		return nil, ErrOpen
	}
	pt, err := k.seal.Open(nil, sealed[:n], sealed[n:], associatedData(realm, user))
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}

// Ring is the keys of the current secret and of the previous secrets
// still accepted while the secret is being rotated. Everything is made
// with Current; what Current does not verify or open is tried with
// Previous, in order.
type Ring struct {
	// Current is derived from the secret in use.
	Current *Keys
	// Previous are derived from the secrets being retired.
	Previous []*Keys
}

// Open decrypts what Seal made for realm and user with the current keys
// or, failing that, with a previous secret's; current reports whether the
// current keys opened it (if not, the caller should seal it again).
// ErrOpen if no key opens it.
func (r *Ring) Open(realm, user string, sealed []byte) (plaintext []byte, current bool, err error) {
	if pt, err := r.Current.Open(realm, user, sealed); err == nil {
		return pt, true, nil
	}
	for _, k := range r.Previous {
		if pt, err := k.Open(realm, user, sealed); err == nil {
			return pt, false, nil
		}
	}
	return nil, false, ErrOpen
}

// DeviceKey is the store key of a trusted device: a keyed hash of the
// device cookie's random token, so the store never holds the token itself.
func (k *Keys) DeviceKey(token []byte) string {
	m := hmac.New(sha256.New, k.DeviceID)
	m.Write(token)
	return hex.EncodeToString(m.Sum(nil))
}

func associatedData(realm, user string) []byte {
	// Length-prefixed so that ("a:b","c") and ("a","b:c") differ.
	b := []byte("caddy-2fa:totp-secret:")
	b = binary.BigEndian.AppendUint32(b, uint32(len(realm)))
	b = append(b, realm...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(user)))
	return append(b, user...)
}
