package caddymodule

import (
	"errors"
	"fmt"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-2fa/caddy-2fa/sessions"
)

// Methods reported in {http.two_factor.method} for requests that pass
// without a second factor, saying why.
const (
	MethodExempt      = "exempt"       // matched an exempt rule
	MethodDisabled    = "disabled"     // temporarily disabled by an admin
	MethodNotRequired = "not_required" // require does not cover the user, who has not opted in
	MethodGrace       = "grace"        // chose "remind me later" within the grace period
)

// Requirement says who must use 2FA.
type Requirement struct {
	// Mode is "all" (default: everyone), "enrolled" (optional 2FA: only
	// users who enrolled are challenged), "users" or "groups".
	Mode string `json:"mode,omitempty"`
	// Users (globs) who must use 2FA, with mode "users".
	Users []string `json:"users,omitempty"`
	// Groups (globs) whose members must use 2FA, with mode "groups".
	Groups []string `json:"groups,omitempty"`
}

// Exemption lists users and groups (globs) who never need a second
// factor, e.g. guests.
type Exemption struct {
	// Users (globs) who are exempt.
	Users []string `json:"users,omitempty"`
	// Groups (globs) whose members are exempt.
	Groups []string `json:"groups,omitempty"`
}

// laterCookie remembers "remind me later" during the grace period.
const laterCookie = "2fa_later"

func (q *Requirement) validate() error {
	switch q.Mode {
	case "", "all", "enrolled":
		if len(q.Users)+len(q.Groups) > 0 {
			return fmt.Errorf("require %s: takes no names", q.Mode)
		}
	case "users", "groups":
		names := q.Users
		if q.Mode == "groups" {
			names = q.Groups
		}
		if len(names) == 0 {
			return fmt.Errorf("require %s: needs at least one name", q.Mode)
		}
		return validGlobs("require "+q.Mode, names)
	default:
		return fmt.Errorf("require: must be all, enrolled, users or groups, got %q", q.Mode)
	}
	return nil
}

func validGlobs(opt string, globs []string) error {
	for _, g := range globs {
		if _, err := path.Match(g, ""); err != nil || g == "" {
			return fmt.Errorf("%s: %q is not a valid name or glob", opt, g)
		}
		if _, err := path.Match(canonicalUser(g), ""); err != nil {
			return fmt.Errorf("%s: %q is not a valid glob once folded like user names (%q)", opt, g, canonicalUser(g))
		}
	}
	return nil
}

// foldGlobs folds user name globs the way user names are folded
// (canonicalUser), so that "require users Alice" and "exempt users guest*"
// apply to every spelling of a name alike: a rule that met "alice" but
// not "ALICE" would let whoever signs in with the other spelling choose
// the weaker policy.
func foldGlobs(globs []string) []string {
	out := make([]string, len(globs))
	for i, g := range globs {
		out[i] = canonicalUser(g)
	}
	return out
}

func matchAny(globs []string, names ...string) bool {
	for _, g := range globs {
		for _, n := range names {
			if ok, _ := path.Match(g, n); ok {
				return true
			}
		}
	}
	return false
}

// userGroups resolves the groups placeholder: a comma-separated list.
func (h *Handler) userGroups(repl *caddy.Replacer) []string {
	if h.Groups == "" {
		return nil
	}
	var out []string
	for g := range strings.SplitSeq(repl.ReplaceAll(h.Groups, ""), ",") {
		if g = strings.TrimSpace(g); g != "" {
			out = append(out, g)
		}
	}
	return out
}

// exempted reports whether an exempt rule covers the user. Rules speak of
// the canonical identity, whichever spelling user is (identity.go).
func (h *Handler) exempted(user string, groups []string) bool {
	e := h.Exempt
	return e != nil && (matchAny(h.exemptUsers, canonicalUser(user)) || matchAny(e.Groups, groups...))
}

// required reports whether policy makes user use 2FA. Rules speak of the
// canonical identity, whichever spelling user is (identity.go). Users who
// enrolled (opted in) are always challenged.
func (h *Handler) required(user string, groups []string, enrolled bool) bool {
	if enrolled {
		return true
	}
	q := h.Require
	if q == nil {
		return true
	}
	switch q.Mode {
	case "enrolled":
		return false
	case "users":
		return matchAny(h.requireUsers, canonicalUser(user))
	case "groups":
		return matchAny(q.Groups, groups...)
	}
	return true
}

// enforce decides a request of an identified user without a verified
// session: it passes (saying why in the method placeholder) when policy
// lets the user through without a second factor, and otherwise sends the
// browser to enrollment or the challenge.
func (h *Handler) enforce(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, repl *caddy.Replacer, user string, t time.Time) error {
	groups := h.userGroups(repl)
	if h.exempted(user, groups) {
		return h.pass(w, r, next, repl, MethodExempt)
	}
	ctx := r.Context()
	p, err := h.store.Profile(ctx, h.Realm, user)
	if err != nil && !errors.Is(err, sessions.ErrNotFound) {
		return h.unavailable(w, r, err)
	}
	if t.Before(p.DisabledUntil) {
		return h.pass(w, r, next, repl, MethodDisabled)
	}
	_, err = h.store.Enrollment(ctx, h.Realm, user)
	enrolled := err == nil
	if err != nil && !errors.Is(err, sessions.ErrNotFound) {
		return h.unavailable(w, r, err)
	}
	if !h.required(user, groups, enrolled) {
		return h.pass(w, r, next, repl, MethodNotRequired)
	}
	if !enrolled && h.graceEnabled() {
		if until, ok := h.laterUntil(r, user); ok && t.Before(until) {
			return h.pass(w, r, next, repl, MethodGrace)
		}
	}
	return h.redirectToGate(w, r, enrolled)
}

// graceEnabled reports whether "remind me later" exists: a grace period
// is configured and enrollment is open. Under enrollment invite there is
// no grace: users cannot enroll without an invite, so no page offers to
// put it off, and neither POST <path_prefix>/later nor a "remind me later"
// cookie lets anyone pass (with only the password, that would be a way
// past the invite requirement). Provision warns about the combination.
func (h *Handler) graceEnabled() bool {
	return h.Grace > 0 && h.Enrollment != "invite"
}

// graceLeft returns when the user's enrollment grace period ends, if one
// is configured, enabled and still running. It records when the gate first
// saw the user.
func (h *Handler) graceLeft(r *http.Request, user string, t time.Time) (time.Time, bool, error) {
	if !h.graceEnabled() {
		return time.Time{}, false, nil
	}
	p, err := h.store.SeeUser(r.Context(), h.Realm, user, t)
	if err != nil {
		return time.Time{}, false, err
	}
	end := p.FirstSeen.Add(time.Duration(h.Grace))
	return end, t.Before(end), nil
}

// laterUntil reads the "remind me later" cookie for user.
func (h *Handler) laterUntil(r *http.Request, user string) (time.Time, bool) {
	raw := h.readCookie(r, laterCookie)
	secs, u, ok := strings.Cut(string(raw), "\n")
	if !ok || u != user {
		return time.Time{}, false
	}
	n, err := strconv.ParseInt(secs, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(n, 0), true
}
