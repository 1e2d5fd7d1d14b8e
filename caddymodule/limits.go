package caddymodule

import (
	"context"
	"strings"
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

// FailureKey is the failure counter of user: one counter per canonical
// identity (Unicode NFKC, case-folded, trimmed), so that "Alice",
// "alice", " alice" and full-width or other compatibility look-alikes all
// spend one budget, whatever the first factor considers distinct users.
// Prefixed so it can never be mistaken for a client address counter.
func FailureKey(user string) string {
	return "user:" + canonicalUser(user)
}

// canonicalUser folds the ways of writing one name into one: Unicode
// NFKC, case folding, surrounding space trimmed.
func canonicalUser(user string) string {
	return cases.Fold().String(norm.NFKC.String(strings.TrimSpace(user)))
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
// refused: the user's counter, or the client address's if that one is
// locked out for longer.
func (h *Handler) attempts(ctx context.Context, user, ip string, t time.Time) (sessions.Attempts, error) {
	a, err := h.store.Attempts(ctx, h.Realm, FailureKey(user), t)
	if err != nil || ip == "" {
		return a, err
	}
	b, err := h.store.Attempts(ctx, h.Realm, ipFailureKey(ip), t)
	if err != nil {
		return a, err
	}
	if b.Locked(t) && b.LockedUntil.After(a.LockedUntil) {
		return b, nil
	}
	return a, nil
}

// addFailure counts a refused code against the user and the client
// address, in the store (so it holds across instances), and returns the
// state that now applies.
func (h *Handler) addFailure(ctx context.Context, user, ip string, t time.Time) (sessions.Attempts, error) {
	a, err := h.store.AddFailure(ctx, h.Realm, FailureKey(user), t, h.limit)
	if err != nil || ip == "" {
		return a, err
	}
	b, err := h.store.AddFailure(ctx, h.Realm, ipFailureKey(ip), t, h.ipLimit())
	if err != nil {
		return a, err
	}
	if b.Locked(t) && b.LockedUntil.After(a.LockedUntil) {
		return b, nil
	}
	return a, nil
}

// clearFailures resets the user's counter after a success. The address's
// counter is left alone: one good account must not wash away failures
// spread over others.
func (h *Handler) clearFailures(ctx context.Context, user string) error {
	return h.store.ClearFailures(ctx, h.Realm, FailureKey(user))
}
