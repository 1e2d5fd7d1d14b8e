package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/caddy-2fa/caddy-2fa/sessions"
)

// One identity per person. The first factor may accept "Alice", "ALICE"
// and "ａｌｉｃｅ" for one account (case-insensitive LDAP, a login form
// that folds case); if the gate took them for three users, each spelling
// would meet its own policy and its own (absent) enrollment, and the
// weakest spelling would win. So the gate folds every name to one
// canonical identity (canonicalUser: NFKC, case folding, surrounding space
// trimmed) before it looks anything up: policy (require, exempt), the
// enrollment, sessions, trusted devices, recovery codes, failure counters,
// invites and the admin API all see the same identity.
//
// {http.two_factor.user} keeps the name as the first factor gave it (what
// the application knows) for identity source A; with app_login it is the
// canonical name taken from the login form.

// maxUserName is the longest canonical user name the gate accepts, in
// bytes. Longer names are refused with a page that says so: nothing
// legitimate needs more, and the enrollment's QR code must hold the name
// (percent-encoded, up to three times its length) with room to spare.
const maxUserName = 256

// errNameTooLong is returned by identify for a name over maxUserName.
var errNameTooLong = errors.New("user name too long")

// identify returns the canonical identity of a name given by the first
// factor: "" for an empty (or all-space) name, errNameTooLong for one whose
// canonical form is longer than maxUserName bytes.
func identify(name string) (string, error) {
	name = strings.TrimSpace(name)
	// Canonicalisation shrinks a name at most fourfold (a four-byte
	// compatibility letter folds to one byte); bound the work before it.
	if len(name) > 4*maxUserName {
		return "", errNameTooLong
	}
	id := canonicalUser(name)
	if len(id) > maxUserName {
		return "", errNameTooLong
	}
	return id, nil
}

// nameIndex knows the spellings under which an earlier version of the
// gate, which did not fold names, stored users of one realm: for each
// canonical identity, the non-canonical names that the realm's users
// list holds. It is read once from the store (Users) when the handler is
// provisioned, or on the first request if the store was unreachable then;
// until it is read, no identity is resolved (fail closed). Names in
// canonical form are never in it, and the gate itself writes new users
// under canonical names only, so the list cannot go stale by the gate's
// own doing.
type nameIndex struct {
	store sessions.Store
	realm string

	mu     sync.Mutex
	loaded atomic.Bool
	legacy map[string][]string // canonical identity → stored spellings (sorted)
}

func newNameIndex(st sessions.Store, realm string) *nameIndex {
	return &nameIndex{store: st, realm: realm}
}

// load reads the realm's users list once.
func (x *nameIndex) load(ctx context.Context, logger *zap.Logger) error {
	if x.loaded.Load() {
		return nil
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.loaded.Load() {
		return nil
	}
	users, err := x.store.Users(ctx, x.realm)
	if err != nil {
		return fmt.Errorf("listing users to find names stored before names were folded: %w", err)
	}
	m := map[string][]string{}
	for _, u := range users {
		if c := canonicalUser(u); c != u {
			m[c] = append(m[c], u)
		}
	}
	for _, v := range m {
		slices.Sort(v)
	}
	x.legacy = m
	x.loaded.Store(true)
	if len(m) > 0 && logger != nil {
		logger.Info("users stored under names that are not in canonical form (made by an earlier version): each keeps its enrollment under its stored spelling",
			zap.String("realm", x.realm), zap.Int("identities", len(m)))
	}
	return nil
}

// spellings returns every stored name of the canonical identity id: id
// itself first, then the legacy spellings. The index must be loaded.
func (x *nameIndex) spellings(id string) []string {
	return append([]string{id}, x.legacy[id]...)
}

// nameConflictError is returned by resolve when several spellings of one
// identity hold an enrollment.
type nameConflictError struct {
	id        string
	spellings []string
}

func (e *nameConflictError) Error() string {
	return fmt.Sprintf("user %q has enrollments under several spellings (%s): an administrator must reset the user (caddy two-factor reset %s)", e.id, strings.Join(e.spellings, ", "), e.id)
}

// resolve returns the name under which the records of the canonical
// identity id are stored: id itself, unless an earlier version enrolled
// the user under another spelling, which then keeps being used (its TOTP
// secret is sealed with that name, its recovery codes hashed with it).
// Once that enrollment is gone (reset, replaced), the identity moves to
// id. Several enrolled spellings are refused (nameConflictError): one of
// them may have been enrolled by someone who had only the password, the
// very thing folding prevents. Only identities with legacy spellings pay
// store reads here.
func (x *nameIndex) resolve(ctx context.Context, id string, logger *zap.Logger) (string, error) {
	if err := x.load(ctx, logger); err != nil {
		return "", err
	}
	legacy := x.legacy[id]
	if len(legacy) == 0 {
		return id, nil
	}
	var enrolled []string
	for _, n := range x.spellings(id) {
		_, err := x.store.Enrollment(ctx, x.realm, n)
		if err == nil {
			enrolled = append(enrolled, n)
		} else if !errors.Is(err, sessions.ErrNotFound) {
			return "", err
		}
	}
	switch len(enrolled) {
	case 0:
		return id, nil
	case 1:
		return enrolled[0], nil
	}
	return "", &nameConflictError{id: id, spellings: enrolled}
}

// userName turns a name from the first factor into the name its records
// are stored under. It answers the request itself (and returns ok false)
// for a name that is too long or enrolled under several spellings, and for
// a store failure.
func (h *Handler) userName(w http.ResponseWriter, r *http.Request, name string) (id, stored string, ok bool, err error) {
	id, err = identify(name)
	if errors.Is(err, errNameTooLong) {
		h.logger.Warn("user name longer than the gate accepts: refusing request", zap.String("realm", h.Realm), zap.Int("bytes", len(name)), zap.Int("max_bytes", maxUserName), zap.String("client_ip", clientIP(r)))
		return "", "", false, h.renderError(w, r, http.StatusForbidden, "name_too_long")
	}
	if id == "" {
		return "", "", true, nil
	}
	stored, err = h.names.resolve(r.Context(), id, h.logger)
	if err == nil {
		return id, stored, true, nil // (errors.As would allocate on the hot path)
	}
	var conflict *nameConflictError
	if errors.As(err, &conflict) {
		h.logger.Warn("user enrolled under several spellings of one name: refusing until an administrator resets the user", zap.String("realm", h.Realm), zap.String("user", id), zap.Strings("spellings", conflict.spellings), zap.String("client_ip", clientIP(r)))
		return "", "", false, h.renderError(w, r, http.StatusForbidden, "name_conflict")
	}
	return "", "", false, h.unavailable(w, r, err)
}
