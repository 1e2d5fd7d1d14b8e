package caddymodule

import (
	"errors"
	"net/http"
	"time"

	"github.com/caddy-2fa/caddy-2fa/sessions"
)

// getInvite redeems an invite link: for exactly the user it was made for,
// it starts an enrollment (a new secret, valid for an hour) bound to the
// browser that opened the link, and sends that browser to the enrollment
// page. The link works once: a second browser gets "gone".
func (h *Handler) getInvite(w http.ResponseWriter, r *http.Request, user, token string) error {
	ctx := r.Context()
	id := inviteID(token)
	val, err := h.store.ConsumeToken(ctx, h.Realm, inviteTokenKind, id)
	if errors.Is(err, sessions.ErrNotFound) {
		h.audit(r, "invite", user, "", "failure", "unknown_or_used")
		return h.renderError(w, r, http.StatusGone, "invite_gone")
	}
	if err != nil {
		return h.unavailable(w, r, err)
	}
	invited, expires := parseInvite(val)
	if !now().Before(expires) {
		h.audit(r, "invite", user, "", "failure", "expired")
		return h.renderError(w, r, http.StatusGone, "invite_gone")
	}
	if canonicalUser(invited) != canonicalUser(user) {
		// Not theirs: put it back, unchanged, for its owner.
		if err := h.store.PutToken(ctx, h.Realm, inviteTokenKind, id, val, expires); err != nil {
			return h.unavailable(w, r, err)
		}
		h.audit(r, "invite", user, "", "failure", "other_user")
		return h.renderError(w, r, http.StatusForbidden, "invite_other_user")
	}
	if _, err := h.store.Enrollment(ctx, h.Realm, user); err == nil {
		http.Redirect(w, r, h.pageURL("/challenge", "/"), http.StatusSeeOther)
		return nil
	} else if !errors.Is(err, sessions.ErrNotFound) {
		return h.unavailable(w, r, err)
	}
	// The link is spent: the setup it starts belongs to this browser
	// only (and replaces any other pending one).
	secret, _, _, err := h.startPendingEnrollment(w, r, user, now(), time.Hour, false)
	clear(secret)
	if err != nil {
		return h.unavailable(w, r, err)
	}
	h.audit(r, "invite", user, "", "success", "")
	http.Redirect(w, r, h.PathPrefix+"/enroll", http.StatusSeeOther)
	return nil
}
