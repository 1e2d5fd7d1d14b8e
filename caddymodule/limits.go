package caddymodule

import (
	"context"
	"strings"
	"sync"
	"time"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"

	"github.com/caddy-2fa/caddy-2fa/sessions"
)

// ipFailureFactor sets the per-client-IP failure budget relative to the
// per-user one: an address may fail this many times more often than one
// user (a few people behind one NAT mistyping codes), but no more, so one
// client cannot spread guesses over many accounts. At least 20.
const ipFailureFactor = 4

// failureKey is the failure counter of user: one counter per canonical
// identity (Unicode NFKC, case-folded, trimmed), so that "Alice",
// "alice", " alice" and full-width or other compatibility look-alikes all
// spend one budget, whatever the first factor considers distinct users.
// Prefixed so it can never be mistaken for a client address counter.
func failureKey(user string) string {
	return "user:" + canonicalUser(user)
}

// canonicalUser folds the ways of writing one name into one: Unicode
// NFKC, case folding, surrounding space trimmed. It runs on every request
// (identity.go), so the common forms are cheap: a canonical ASCII name is
// returned as it is, other ASCII names are lower-cased (which is what NFKC
// and case folding do to ASCII), and the rest use a pooled case folder.
func canonicalUser(user string) string {
	switch asciiForm(user) {
	case asciiCanonical:
		return user
	case asciiUpper:
		return strings.ToLower(user)
	}
	s := strings.TrimSpace(user)
	if !norm.NFKC.IsNormalString(s) {
		s = norm.NFKC.String(s)
	}
	c := folders.Get().(*cases.Caser)
	defer folders.Put(c)
	return c.String(s) // (resets c first)
}

// folders holds case folders for canonicalUser: making one allocates, and
// a Caser is not safe for concurrent use.
var folders = sync.Pool{New: func() any { c := cases.Fold(); return &c }}

// Forms of a name for canonicalUser's fast paths.
const (
	asciiOther     = iota // not printable ASCII, or surrounding space
	asciiCanonical        // printable ASCII, no upper case, no surrounding space
	asciiUpper            // printable ASCII with upper case, no surrounding space
)

func asciiForm(s string) int {
	if s == "" {
		return asciiCanonical
	}
	if s[0] == ' ' || s[len(s)-1] == ' ' {
		return asciiOther
	}
	form := asciiCanonical
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c >= 0x7f:
			return asciiOther
		case c >= 'A' && c <= 'Z':
			form = asciiUpper
		}
	}
	return form
}

// consecutiveLimit caps the failures one user may have without a success,
// whatever max_attempts allows: max_attempts refuses bursts, but an attacker
// who stays one failure under it in every window could otherwise guess on
// forever (with the default 5 5m 15m, 1152 guesses a day). After 100
// failures within a day the user is locked for a day, until a success
// before that point or an administrator's unlock clears the count. This
// holds guessing under 100 a day (3 × 10⁻⁴ chances a day with skew 1) and
// meets NIST SP 800-63B's limit of 100 consecutive failed attempts within
// any day. See SECURITY.md §3.
var consecutiveLimit = sessions.Limit{Max: 100, Window: 24 * time.Hour, Lockout: 24 * time.Hour}

// consecutiveFailureKey is the counter of consecutiveLimit for user, per
// canonical identity like failureKey.
func consecutiveFailureKey(user string) string {
	return "user-day:" + canonicalUser(user)
}

// userAttempts returns the user's lockout state: the max_attempts counter,
// or the consecutive-failure counter if that one is locked out for longer.
func userAttempts(ctx context.Context, st sessions.Store, realm, user string, t time.Time) (sessions.Attempts, error) {
	a, err := st.Attempts(ctx, realm, failureKey(user), t)
	if err != nil {
		return a, err
	}
	b, err := st.Attempts(ctx, realm, consecutiveFailureKey(user), t)
	if err != nil {
		return a, err
	}
	return longerLock(a, b, t), nil
}

// clearUserFailures resets both of the user's counters (after a success,
// an administrator's unlock or reset).
func clearUserFailures(ctx context.Context, st sessions.Store, realm, user string) error {
	if err := st.ClearFailures(ctx, realm, failureKey(user)); err != nil {
		return err
	}
	return st.ClearFailures(ctx, realm, consecutiveFailureKey(user))
}

// longerLock is b if b is locked out for longer than a, else a.
func longerLock(a, b sessions.Attempts, t time.Time) sessions.Attempts {
	if b.Locked(t) && b.LockedUntil.After(a.LockedUntil) {
		return b
	}
	return a
}

// ipFailureKey is the failure counter of a client address (from Caddy's
// client IP, which honours trusted_proxies and never a raw
// X-Forwarded-For).
func ipFailureKey(ip string) string { return "ip:" + ip }

func (h *Handler) ipLimit() sessions.Limit {
	l := h.limit
	l.Max = max(20, ipFailureFactor*l.Max)
	return l
}

// attempts returns the state that decides whether this attempt is
// refused: the user's counters, or the client address's if that one is
// locked out for longer. It is a cheap early answer for pages that show a
// form (a GET of the challenge); a code is only ever checked after
// reserveAttempt granted it.
func (h *Handler) attempts(ctx context.Context, user, ip string, t time.Time) (sessions.Attempts, error) {
	a, err := userAttempts(ctx, h.store, h.Realm, user, t)
	if err != nil || ip == "" {
		return a, err
	}
	b, err := h.store.Attempts(ctx, h.Realm, ipFailureKey(ip), t)
	if err != nil {
		return a, err
	}
	return longerLock(a, b, t), nil
}

// attemptCounters are the counters one code check by user from ip is
// counted on: max_attempts and the consecutive-failure cap of the user,
// and the client address's budget.
func (h *Handler) attemptCounters(user, ip string) []sessions.Counter {
	c := []sessions.Counter{
		{Key: failureKey(user), Limit: h.limit},
		{Key: consecutiveFailureKey(user), Limit: consecutiveLimit},
	}
	if ip != "" {
		c = append(c, sessions.Counter{Key: ipFailureKey(ip), Limit: h.ipLimit()})
	}
	return c
}

// reserveAttempt reserves one code check for user from ip, atomically in
// the store, before the code is looked at: it is refused (false) while any
// of the counters is locked out, and otherwise counted on all of them at
// once, as a failure until a success clears it. Concurrent submissions,
// on this instance or any other sharing the store, can therefore never
// have more codes checked than the budget allows. The state returned is
// the one that applies: the lockout that refused the attempt, or the one
// this attempt started (the attempt that reaches max_attempts is still
// checked, and a wrong code then shows the lockout page).
func (h *Handler) reserveAttempt(ctx context.Context, user, ip string, t time.Time) (sessions.Attempts, bool, error) {
	return h.store.ReserveAttempt(ctx, h.Realm, t, h.attemptCounters(user, ip)...)
}

// attemptSucceeded settles a reserved attempt whose code was right: the
// user's counters are cleared, and the client address gets its
// reservation back (good codes from people behind one NAT must not lock
// the address out), while the address's failures stay counted: one good
// account must not wash away failures spread over others.
func (h *Handler) attemptSucceeded(ctx context.Context, user, ip string, t time.Time) error {
	if err := h.clearFailures(ctx, user); err != nil {
		return err
	}
	if ip == "" {
		return nil
	}
	return h.store.ReleaseAttempt(ctx, h.Realm, ipFailureKey(ip), t, h.ipLimit())
}

// clearFailures resets the user's counters.
func (h *Handler) clearFailures(ctx context.Context, user string) error {
	return clearUserFailures(ctx, h.store, h.Realm, user)
}

// codeChecked, when set (by tests, before any request), is called each
// time the gate compares a code with a user's TOTP secret or recovery
// code hashes, so that tests can count code checks directly rather than
// infer them from timing.
var codeChecked func(user string)
