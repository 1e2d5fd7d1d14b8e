package caddymodule

import (
	"net/http"
	"strconv"

	"github.com/caddy-2fa/caddy-2fa/templates"
)

// postLater is the enrollment page's "remind me later": within the grace
// period, and only under enrollment open (graceEnabled), the user may use
// the site without 2FA for now.
func (h *Handler) postLater(w http.ResponseWriter, r *http.Request, user, rd string) error {
	if !h.checkCSRF(r, user) {
		return h.renderError(w, r, http.StatusForbidden, "forbidden")
	}
	if h.Grace > 0 && !h.graceEnabled() {
		h.audit(r, "enroll_later", user, "", "refused", "invite_required")
		return h.renderError(w, r, http.StatusForbidden, "invite_required")
	}
	t := now()
	end, ok, err := h.graceLeft(r, user, t)
	if err != nil {
		return h.unavailable(w, r, err)
	}
	if !ok {
		return h.getEnroll(w, r, user, rd, templates.ProblemNone, http.StatusForbidden)
	}
	// Until the end of the grace period, but asked again at least daily.
	until := t.Add(laterTTL)
	if end.Before(until) {
		until = end
	}
	if err := h.setCookie(w, r, laterCookie, []byte(strconv.FormatInt(until.Unix(), 10)+"\n"+user), until.Sub(t)); err != nil {
		return h.unavailable(w, r, err)
	}
	h.audit(r, "enroll_later", user, "", "success", "")
	http.Redirect(w, r, rd, http.StatusSeeOther)
	return nil
}
