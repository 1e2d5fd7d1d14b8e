package caddymodule

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddy-2fa/caddy-2fa/keyring"
	"github.com/caddy-2fa/caddy-2fa/sessions"
)

// RealmInfo is what the admin API may know about a realm of the running
// config: its store and the few settings that shape admin answers. Admin
// modules never see handler config, so handlers register it here when they
// are provisioned and withdraw it on cleanup.
type RealmInfo struct {
	// Store is the realm's store.
	Store sessions.Store
	// PathPrefix is where the realm's gate pages live (for invite links).
	PathPrefix string
	// InviteTTL is how long invite links stay valid.
	InviteTTL time.Duration

	// ring is the realm's keys, for rekey. Unexported: keys never leave
	// the package.
	ring *keyring.Ring
	// names finds the stored spelling of a user name (identity.go).
	names *nameIndex
}

var realms = struct {
	sync.Mutex
	m map[string][]*Handler // realm → handlers, most recently provisioned last
}{m: map[string][]*Handler{}}

// registerRealm makes h's realm known to the admin API.
func registerRealm(h *Handler) {
	realms.Lock()
	defer realms.Unlock()
	realms.m[h.Realm] = append(realms.m[h.Realm], h)
}

// unregisterRealm withdraws h (at config unload).
func unregisterRealm(h *Handler) {
	realms.Lock()
	defer realms.Unlock()
	hs := realms.m[h.Realm]
	for i, x := range hs {
		if x == h {
			hs = append(hs[:i:i], hs[i+1:]...)
			break
		}
	}
	if len(hs) == 0 {
		delete(realms.m, h.Realm)
	} else {
		realms.m[h.Realm] = hs
	}
}

// LookupRealm returns the realm's information from the running config: the
// most recently provisioned handler of that realm wins (during a reload,
// the new config's).
func LookupRealm(realm string) (RealmInfo, bool) {
	realms.Lock()
	defer realms.Unlock()
	hs := realms.m[realm]
	if len(hs) == 0 {
		return RealmInfo{}, false
	}
	h := hs[len(hs)-1]
	return RealmInfo{Store: h.store, PathPrefix: h.PathPrefix, InviteTTL: h.inviteTTL, ring: h.ring, names: h.names}, true
}

// Realms lists the realms of the running config, sorted.
func Realms() []string {
	realms.Lock()
	defer realms.Unlock()
	var out []string
	for r := range realms.m {
		out = append(out, r)
	}
	sort.Strings(out)
	return out
}

// inviteTokenKind is the token kind under which invites are stored.
const inviteTokenKind = "invite"

// inviteID is the store ID of an invite token: its SHA-256, so the store
// never holds a usable link. (The token has 130 random bits; no key is
// needed, and the admin API, which has no keys, can compute it.)
func inviteID(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// CreateInvite stores a one-time enrollment invite for user and returns
// the link's path (under the realm's path prefix) and when it expires. ttl
// 0 means the realm's default (72h).
func CreateInvite(ctx context.Context, realm string, info RealmInfo, user string, ttl time.Duration) (link string, expires time.Time, err error) {
	if ttl <= 0 {
		ttl = info.InviteTTL
	}
	token := rand.Text()
	expires = now().Add(ttl)
	// The canonical identity: the link works for whichever spelling of
	// the name the user signs in with.
	val := []byte(strconv.FormatInt(expires.Unix(), 10) + "\n" + canonicalUser(user))
	if err := info.Store.PutToken(ctx, realm, inviteTokenKind, inviteID(token), val, expires); err != nil {
		return "", time.Time{}, err
	}
	return info.PathPrefix + "/invite/" + token, expires, nil
}

// parseInvite reads a stored invite: the invited user and its expiry.
func parseInvite(val []byte) (user string, expires time.Time) {
	secs, user, _ := strings.Cut(string(val), "\n")
	n, _ := strconv.ParseInt(secs, 10, 64)
	return user, time.Unix(n, 0)
}
