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
	"encoding/base64"
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
	// CSRFMAC signs the CSRF cookie (and the enrollment and app_login
	// companion cookies, whose names, bound into the MAC, keep them apart).
	CSRFMAC []byte
	// LaterMAC signs the "remind me later" cookie.
	LaterMAC []byte
	// RecoveryMAC keys the hashes of recovery codes.
	RecoveryMAC []byte
	// DeviceID keys the hash under which a trusted device is stored.
	DeviceID []byte
	// RecordMAC keys the tags that bind a stored record (session, trusted
	// device, pending enrollment, one-time token) to the key it is stored
	// under, its realm and its user, so that write access to the store
	// is not enough to forge, re-own or move a record.
	RecordMAC []byte
	// StoreID keys the hash under which sessions and one-time tokens are
	// stored, so that the store never holds the IDs that cookies and links
	// carry, and an ID read from a cookie does not give the store key.
	StoreID []byte
	// EnrollBrowser keys the hash that binds a pending enrollment to the
	// browser that started it.
	EnrollBrowser []byte

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
		{&k.LaterMAC, "caddy-2fa later cookie mac", 64},
		{&k.RecoveryMAC, "caddy-2fa recovery code hash", 32},
		{&k.DeviceID, "caddy-2fa device id hash", 32},
		{&k.RecordMAC, "caddy-2fa store record mac", 32},
		{&k.StoreID, "caddy-2fa store id hash", 32},
		{&k.EnrollBrowser, "caddy-2fa enrollment browser hash", 32},
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

// RecordTagLen is the length of a record tag: HMAC-SHA256 truncated to
// 128 bits, which is plenty against forgery (an attacker must guess it
// online, one store write and one request per guess) and keeps records
// small.
const RecordTagLen = 16

// RecordTag is the tag of a stored record: HMAC-SHA256 under RecordMAC of
// kind and the length-prefixed fields, truncated to RecordTagLen bytes.
// Callers list every field that decides access, including the key the
// record is stored under, its realm and its user.
func (k *Keys) RecordTag(kind string, fields ...[]byte) []byte {
	m := hmac.New(sha256.New, k.RecordMAC)
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(kind)))
	m.Write(n[:])
	m.Write([]byte(kind))
	for _, f := range fields {
		binary.BigEndian.PutUint32(n[:], uint32(len(f)))
		m.Write(n[:])
		m.Write(f)
	}
	return m.Sum(nil)[:RecordTagLen]
}

// CheckRecordTag reports whether tag is the RecordTag of kind and fields,
// in constant time.
func (k *Keys) CheckRecordTag(tag []byte, kind string, fields ...[]byte) bool {
	return len(tag) == RecordTagLen && hmac.Equal(tag, k.RecordTag(kind, fields...))
}

// StoreKey is the key under which the record of kind with the random ID
// id is stored: a keyed hash (HMAC-SHA256 under StoreID, 128 bits,
// unpadded base64url, 22 characters), so that reading the store gives no
// usable ID and reading a cookie gives no store key.
func (k *Keys) StoreKey(kind, id string) string {
	m := hmac.New(sha256.New, k.StoreID)
	m.Write([]byte(kind))
	m.Write([]byte{0})
	m.Write([]byte(id))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:16])
}

// EnrollBrowserKey is the keyed hash that binds a pending enrollment of
// realm and user to the browser whose enrollment cookie holds token. The
// store keeps only this hash, never the token; the realm and user are in
// the hash, so one browser's token binds nothing of another user's.
func (k *Keys) EnrollBrowserKey(realm, user string, token []byte) string {
	m := hmac.New(sha256.New, k.EnrollBrowser)
	m.Write(lengthPrefixed("caddy-2fa:enroll-browser:", realm, user))
	m.Write(token)
	return hex.EncodeToString(m.Sum(nil))
}

// lengthPrefixed is label followed by each of names prefixed with its
// length, so that ("a:b","c") and ("a","b:c") differ.
func lengthPrefixed(label string, names ...string) []byte {
	b := []byte(label)
	for _, n := range names {
		b = binary.BigEndian.AppendUint32(b, uint32(len(n)))
		b = append(b, n...)
	}
	return b
}

func associatedData(realm, user string) []byte {
	// Length-prefixed so that ("a:b","c") and ("a","b:c") differ.
	b := []byte("caddy-2fa:totp-secret:")
	b = binary.BigEndian.AppendUint32(b, uint32(len(realm)))
	b = append(b, realm...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(user)))
	return append(b, user...)
}
