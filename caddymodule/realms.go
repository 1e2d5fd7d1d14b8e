package caddymodule

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-2fa/caddy-2fa/keyring"
	"github.com/caddy-2fa/caddy-2fa/sessions"
	"github.com/caddy-2fa/caddy-2fa/sessions/redisstore"
)

// realmInfo is what the admin API may know about a realm of the running
// config: its store and the few settings that shape admin answers. Admin
// modules never see handler config, so handlers register it here when they
// are provisioned and withdraw it on cleanup.
type realmInfo struct {
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

// registerRealm makes h's realm known to the admin API. Within one config,
// every handler of a realm must use the same store: a realm is one set of
// users, and the admin API acts on one store per realm, so a second store
// would hold a second, silently diverging truth (an admin's revoke or reset
// answered 200 while the other site kept the user signed in and enrolled).
// Handlers of the config being replaced by a reload are still registered
// and may use another store (a realm moving to Redis): only handlers
// provisioned in the same config are compared.
func registerRealm(h *Handler) error {
	realms.Lock()
	defer realms.Unlock()
	if h.config != nil {
		for _, o := range realms.m[h.Realm] {
			if o.config == h.config && o.storeID != h.storeID {
				return fmt.Errorf("realm %q: configured with two different stores, %s and %s: every two_factor block of a realm must use the same store (the admin API acts on one store per realm); use the same store in both, or give them different realm names", h.Realm, o.storeID, h.storeID)
			}
		}
	}
	realms.m[h.Realm] = append(realms.m[h.Realm], h)
	return nil
}

// storeID names the data a store configuration reaches, for comparing
// two handlers' stores: the file store's absolute path (symbolic links
// resolved), or Redis's servers, database and key prefix. Client settings
// (pool size, timeouts, credentials) do not change the data and are left
// out. It never contains a password.
func storeID(cfg *StoreConfig) (string, error) {
	if cfg.Backend == "redis" {
		rc, err := redisConfig(cfg)
		if err != nil {
			return "", err
		}
		addrs := slices.Clone(rc.Addrs)
		slices.Sort(addrs)
		prefix := rc.KeyPrefix
		if prefix == "" {
			prefix = redisstore.DefaultKeyPrefix
		}
		id := "redis " + strings.Join(addrs, ",")
		if rc.MasterName != "" {
			id += " master=" + strconv.Quote(rc.MasterName)
		}
		return id + " db=" + strconv.Itoa(rc.DB) + " key_prefix=" + strconv.Quote(prefix), nil
	}
	path := cfg.Path
	if path == "" {
		path = filepath.Join(caddy.AppDataDir(), "two_factor", "store.db")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	return "file " + abs, nil
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

// runningRealm returns the realm's information from the running config: the
// most recently provisioned handler of that realm wins (during a reload,
// the new config's).
func runningRealm(realm string) (realmInfo, bool) {
	realms.Lock()
	defer realms.Unlock()
	hs := realms.m[realm]
	if len(hs) == 0 {
		return realmInfo{}, false
	}
	h := hs[len(hs)-1]
	return realmInfo{Store: h.store, PathPrefix: h.PathPrefix, InviteTTL: h.inviteTTL, ring: h.ring, names: h.names}, true
}

// realmNames lists the realms of the running config, sorted.
func realmNames() []string {
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

// inviteID is the ID of an invite token handed to the store: its SHA-256,
// so no layer holds a usable link. The realm's store (authStore) keys it
// again with a key derived from secret and tags the invite, so that an
// invite cannot be planted or re-owned by writing to the store.
func inviteID(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// createInvite stores a one-time enrollment invite for user and returns
// the link's path (under the realm's path prefix) and when it expires. ttl
// 0 means the realm's default (72h).
func createInvite(ctx context.Context, realm string, info realmInfo, user string, ttl time.Duration) (link string, expires time.Time, err error) {
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
