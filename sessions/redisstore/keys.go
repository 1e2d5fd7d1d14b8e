package redisstore

import (
	"crypto/sha256"
	"encoding/base64"
	"strings"
)

// DefaultKeyPrefix is the key prefix used when none is configured.
const DefaultKeyPrefix = "caddy2fa"

// Key suffixes of the per-user keys (see the package documentation).
const (
	sufEnrollment = "enr"
	sufRecovery   = "rc"
	sufStep       = "step"
	sufPending    = "pend"
	sufDevices    = "dev"
	sufProfile    = "prof"
	sufFactors    = "fac"
)

// Kind tags of the keys that are found by ID. Sessions are "sh" (keyed by
// a digest of the ID, see sessionKeyID): the tag "s" of the earlier
// format, keyed by the ID itself, is no longer read, so such keys are
// ignored until their TTL removes them.
const (
	tagSession = "sh"
	tagDevice  = "d"
	tagToken   = "t"
)

// sessionKeyIDLen is the length of a sessionKeyID. No profile field name
// is this long, so the session index entries in a user's profile hash are
// the fields of this length.
const sessionKeyIDLen = 22

// sessionKeyID is what a session is stored and indexed under instead of
// its ID: the first 128 bits of SHA-256(id), unpadded base64url (22
// characters, none of which needs escaping). It is shorter than the gate's
// IDs, which keeps the key in a smaller allocation (see the package
// documentation), and Redis never holds the IDs that cookies carry. An ID
// is a random token of at least 128 bits, so a digest of it can be
// neither reversed nor matched by another ID in practice.
func sessionKeyID(id string) string {
	sum := sha256.Sum256([]byte(id))
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}

// tagUsers ends the key of a realm's set of user names.
const tagUsers = "users"

const hexDigits = "0123456789ABCDEF"

// mustEscape reports whether escape percent-encodes c: the escape
// character itself, the separator, the hash tag braces, and control
// characters (so that keys stay printable in redis-cli).
func mustEscape(c byte) bool {
	return c == '%' || c == ':' || c == '{' || c == '}' || c < 0x20 || c == 0x7f
}

// escape percent-encodes the bytes of s that mustEscape selects. It is
// injective and its result contains no ':', '{' or '}', so names joined
// with ':' never collide and never form a cluster hash tag. Other bytes,
// including UTF-8, are kept as they are.
func escape(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if mustEscape(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if mustEscape(c) {
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&0xf])
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// escapePrefix makes a configured key prefix safe: braces would make a
// hash tag of the prefix and put every key in one cluster slot, so they
// (and '%', to stay unambiguous) are percent-encoded. ':' is kept, so
// that a prefix like "app:2fa" stays readable.
func escapePrefix(p string) string {
	if p == "" {
		p = DefaultKeyPrefix
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c == '%' || c == '{' || c == '}' || c < 0x20 || c == 0x7f {
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&0xf])
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// keys builds the Redis keys of one store.
type keys struct {
	prefix string // escaped, without the trailing ':'
}

// user is the key of one of a user's records (suffix one of the suf*
// constants): <prefix>:{<realm>:<user>}:<suffix>. All of a user's keys
// share the hash tag {<realm>:<user>}, so they are in one cluster slot.
func (k keys) user(realm, user, suffix string) string {
	r, u := escape(realm), escape(user)
	var b strings.Builder
	b.Grow(len(k.prefix) + len(r) + len(u) + len(suffix) + 5)
	b.WriteString(k.prefix)
	b.WriteString(":{")
	b.WriteString(r)
	b.WriteByte(':')
	b.WriteString(u)
	b.WriteString("}:")
	b.WriteString(suffix)
	return b.String()
}

// counter is the key of an attempt counter:
// <prefix>:{<realm>}:fail:<key>. Every counter of a realm shares the hash
// tag {<realm>}, so that ReserveAttempt counts a user's and a client
// address's counters in one script, in one cluster slot. No other key has
// a hash tag without ':' in it, so no user name (whose keys have the tag
// {<realm>:<user>}) can address a counter.
func (k keys) counter(realm, key string) string {
	r, c := escape(realm), escape(key)
	var b strings.Builder
	b.Grow(len(k.prefix) + len(r) + len(c) + 10)
	b.WriteString(k.prefix)
	b.WriteString(":{")
	b.WriteString(r)
	b.WriteString("}:fail:")
	b.WriteString(c)
	return b.String()
}

// byID is the key of a record found by ID: <prefix>:<realm>:<tag>:<id>.
// It has no hash tag: sessions and devices spread over all slots.
func (k keys) byID(realm, tag, id string) string {
	return k.join(escape(realm), tag, escape(id))
}

// join joins the prefix and parts, which are escaped already, with ':'.
func (k keys) join(parts ...string) string {
	n := len(k.prefix)
	for _, p := range parts {
		n += 1 + len(p)
	}
	var b strings.Builder
	b.Grow(n)
	b.WriteString(k.prefix)
	for _, p := range parts {
		b.WriteByte(':')
		b.WriteString(p)
	}
	return b.String()
}

// token is the key of a one-time token: <prefix>:<realm>:t:<kind>:<id>.
func (k keys) token(realm, kind, id string) string {
	return k.join(escape(realm), tagToken, escape(kind), escape(id))
}

// users is the key of the realm's set of user names:
// <prefix>:<realm>:users. It has no hash tag (it is not in any user's
// slot), and no other key has the form <prefix>:<realm>:<one part>.
func (k keys) users(realm string) string {
	return k.join(escape(realm), tagUsers)
}
