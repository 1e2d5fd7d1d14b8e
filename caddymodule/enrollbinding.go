package caddymodule

import (
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"net/http"
	"time"

	"github.com/caddy-2fa/caddy-2fa/challenge"
	"github.com/caddy-2fa/caddy-2fa/sessions"
	"github.com/caddy-2fa/caddy-2fa/templates"
)

// A pending enrollment (the secret shown on the enrollment page, not yet
// confirmed) belongs to the one browser that started it: the first
// visit under enrollment open, the browser that opened the invite link,
// or the one that asked to replace the authenticator. That browser holds
// a random token in the enrollment cookie; the store holds only the
// token's keyed hash (sessions.PendingEnrollment.Browser). Every GET and
// POST of the enrollment page checks it: another browser of the same
// user (someone who has only the password, or the user's other device)
// is never shown the secret, and its codes are never checked against it.
// It is told that setup is in progress elsewhere and, under enrollment
// open, may start over here, which makes the other browser's secret
// worthless; that is audited and limited by startOverLimit.

// enrollCheckedHook, when set (by tests only), runs between a confirmation
// code's check and the enrollment it allows, where another browser may
// start over.
var enrollCheckedHook func()

// enrollCookie carries this browser's enrollment token.
const enrollCookie = "2fa_enroll"

// actionStartOver is the enrollment form's "start over here".
const actionStartOver = "start_over"

// startOverLimit bounds how often a user's setup may be started over in
// another browser: 3 times in 24 hours. The real user rarely needs more
// than one (setting up on the phone after opening the page on the
// laptop); someone who has only the password cannot keep the user's
// setup from ever finishing, and each time they try the user's own
// confirmation says that setup was started over elsewhere.
var startOverLimit = sessions.Limit{Max: 3, Window: 24 * time.Hour, Lockout: 24 * time.Hour}

// startOverKey is the counter of startOverLimit for user (per canonical
// identity, like the failure counters).
func startOverKey(user string) string {
	return "enroll-restart:" + canonicalUser(user)
}

// startPendingEnrollment makes a new secret bound to this browser and
// saves it for ttl: replacing any pending enrollment, or with onlyIfAbsent
// only if the user has none (atomically: of browsers racing, one starts).
// When it saved, it sets this browser's enrollment cookie and returns the
// plain secret (the caller clears it) and the record; ok is false when
// another browser's pending enrollment was there first.
func (h *Handler) startPendingEnrollment(w http.ResponseWriter, r *http.Request, user string, t time.Time, ttl time.Duration, onlyIfAbsent bool) (secret []byte, p sessions.PendingEnrollment, ok bool, err error) {
	token := make([]byte, 32)
	if _, err := rand.Read(token); err != nil {
		return nil, p, false, err
	}
	if secret, err = challenge.NewSecret(); err != nil {
		return nil, p, false, err
	}
	sealed, err := h.keys.Seal(h.Realm, user, secret)
	if err != nil {
		clear(secret)
		return nil, p, false, err
	}
	p = sessions.PendingEnrollment{SealedSecret: sealed, Created: t, Expires: t.Add(ttl), Browser: h.keys.EnrollBrowserKey(h.Realm, user, token)}
	ok = true
	if onlyIfAbsent {
		ok, err = h.store.AddPendingEnrollment(r.Context(), h.Realm, user, p)
	} else {
		err = h.store.PutPendingEnrollment(r.Context(), h.Realm, user, p)
	}
	if err != nil || !ok {
		clear(secret)
		return nil, p, false, err
	}
	if err := h.setCookie(w, r, enrollCookie, token, ttl); err != nil {
		clear(secret)
		return nil, p, false, err
	}
	return secret, p, true, nil
}

// pendingBoundHere reports, in constant time, whether p was started by
// this browser: its enrollment cookie's token hashes to p.Browser under
// the current secret or a previous one. A record without a binding
// (written before bindings existed) belongs to no browser.
func (h *Handler) pendingBoundHere(r *http.Request, user string, p sessions.PendingEnrollment) bool {
	token := h.readCookie(r, enrollCookie)
	if token == nil || p.Browser == "" {
		return false
	}
	match := subtle.ConstantTimeCompare([]byte(h.keys.EnrollBrowserKey(h.Realm, user, token)), []byte(p.Browser))
	for _, k := range h.ring.Previous {
		match |= subtle.ConstantTimeCompare([]byte(k.EnrollBrowserKey(h.Realm, user, token)), []byte(p.Browser))
	}
	return match == 1
}

// enrollElsewherePage tells a browser that the user's setup is in progress
// in another browser. It shows nothing of that setup's secret; under
// enrollment open it offers to start over here.
func (h *Handler) enrollElsewherePage(w http.ResponseWriter, r *http.Request, user, rd string, problem templates.Problem, status int) error {
	var grace *templates.Grace
	if end, ok, err := h.graceLeft(r, user, now()); err != nil {
		return h.unavailable(w, r, err)
	} else if ok {
		grace = &templates.Grace{Until: end, Left: end.Sub(now())}
	}
	return h.page(w, r, user, status, templates.PageEnroll, templates.Data{
		Return:  rd,
		Problem: problem,
		Enroll: &templates.Enroll{
			Elsewhere: true,
			StartOver: h.Enrollment != "invite",
			Grace:     grace,
		},
	})
}

// refuseOtherBrowser answers an enrollment request from a browser that
// did not start the user's pending enrollment: the request is audited and
// the browser told that setup is in progress elsewhere. A browser that
// holds an enrollment token of its own had its setup started over by
// another one, and is told so. The status is 409 unless the request was
// refused for another reason first (status, e.g. 403 for a stale form).
func (h *Handler) refuseOtherBrowser(w http.ResponseWriter, r *http.Request, user, rd string, status int) error {
	h.audit(r, "enroll", user, "", "refused", "other_browser")
	problem := templates.ProblemNone
	if h.readCookie(r, enrollCookie) != nil {
		problem = templates.ProblemStartedOver
	}
	if status < 400 {
		status = http.StatusConflict
	}
	return h.enrollElsewherePage(w, r, user, rd, problem, status)
}

// postStartOver is "start over here": under enrollment open, it replaces
// the user's pending enrollment (whichever browser started it) with a new
// one bound to this browser, so the other browser's secret stops working.
// Each start-over is audited and spends one of startOverLimit, reserved
// before anything changes. Under enrollment invite only a new invite
// link starts over: someone with only the password must not be able to
// take over a setup the administrator started for the user.
func (h *Handler) postStartOver(w http.ResponseWriter, r *http.Request, user, rd string) error {
	ctx := r.Context()
	const event = "enroll_start_over"
	if h.Enrollment == "invite" {
		h.audit(r, event, user, "", "refused", "invite_required")
		return h.enrollElsewherePage(w, r, user, rd, templates.ProblemNone, http.StatusForbidden)
	}
	_, err := h.store.Enrollment(ctx, h.Realm, user)
	if err == nil {
		http.Redirect(w, r, h.pageURL("/challenge", rd), http.StatusSeeOther)
		return nil
	}
	if !errors.Is(err, sessions.ErrNotFound) {
		return h.unavailable(w, r, err)
	}
	t := now()
	a, err := h.store.AddFailure(ctx, h.Realm, startOverKey(user), t, startOverLimit)
	if err != nil {
		return h.unavailable(w, r, err)
	}
	if a.Failures > startOverLimit.Max {
		h.audit(r, event, user, "", "refused", "limit")
		return h.enrollElsewherePage(w, r, user, rd, templates.ProblemStartOverLimit, http.StatusTooManyRequests)
	}
	secret, _, _, err := h.startPendingEnrollment(w, r, user, t, pendingEnrollmentTTL, false)
	clear(secret)
	if err != nil {
		return h.unavailable(w, r, err)
	}
	h.audit(r, event, user, "", "success", "")
	http.Redirect(w, r, h.pageURL("/enroll", rd), http.StatusSeeOther)
	return nil
}
