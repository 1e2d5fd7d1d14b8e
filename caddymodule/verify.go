package caddymodule

import (
	"crypto/rand"
	"errors"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-2fa/caddy-2fa/challenge"
	"github.com/caddy-2fa/caddy-2fa/sessions"
)

// serveOTPHeader checks a TOTP code sent by an API client in otp_header,
// for sub.user only. ServeHTTP has already removed the header from the
// request. A right code does what the challenge page does: it starts a
// 2FA session (its cookie in the response) and, with app_login, marks the
// request's pending bindings verified, so a client that logged in to the
// application and then sent one code is signed in like a browser that
// filled in the challenge.
func (h *Handler) serveOTPHeader(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, repl *caddy.Replacer, sub subject, code string, t time.Time) error {
	user := sub.user
	ctx := r.Context()
	e, err := h.store.Enrollment(ctx, h.Realm, user)
	if errors.Is(err, sessions.ErrNotFound) {
		// No authenticator to check the code against: the request is
		// one without a code, and policy decides (an exempt or
		// not-yet-required user passes as without the header; anyone
		// else is sent to enrollment).
		return h.enforce(w, r, next, repl, user, t)
	}
	if err != nil {
		return h.unavailable(w, r, err)
	}
	ip := clientIP(r)
	a, granted, err := h.reserveAttempt(ctx, user, ip, t)
	if err != nil {
		return h.unavailable(w, r, err)
	}
	if !granted {
		return h.lockedJSON(w, a, t)
	}
	ok, reason, err := h.checkTOTP(r, user, e, code, t)
	if err != nil {
		return h.unavailable(w, r, err)
	}
	if !ok {
		// Counted already, by the reservation.
		h.audit(r, "verify", user, MethodTOTP, "failure", reason)
		if a.Locked(t) {
			h.audit(r, "lockout", user, MethodTOTP, "locked", "")
			return h.lockedJSON(w, a, t)
		}
		return writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "two_factor_invalid", "challenge": h.pageURL("/challenge", safeReturn(r.URL.RequestURI(), h.PathPrefix))})
	}
	if err := h.attemptSucceeded(ctx, user, ip, t); err != nil {
		return h.unavailable(w, r, err)
	}
	if err := h.succeededFor(w, r, sub, MethodTOTP, t); err != nil {
		return h.unavailable(w, r, err)
	}
	return h.passVerified(w, r, next, repl, sub, MethodTOTP, t)
}

// checkTOTP verifies code against the enrollment and claims its time step,
// so that a code is accepted at most once per user on every instance. The
// reason names why a code was refused (for the log and the page). Callers
// must have reserved the attempt (reserveAttempt) first.
func (h *Handler) checkTOTP(r *http.Request, user string, e sessions.Enrollment, code string, t time.Time) (ok bool, reason string, err error) {
	p := enrollmentParams(e)
	kind, digits := challenge.Classify(code, p)
	if kind != challenge.KindTOTP {
		return false, "bad_format", nil
	}
	// A secret sealed under a previous secret's key is left as it is:
	// re-sealing it under the current key here would lock the user out of
	// every instance not yet given the new secret (503) during a rolling
	// rotation. Only "caddy two-factor rekey" re-seals, once every
	// instance has the new secret.
	secret, _, err := h.ring.Open(h.Realm, user, e.SealedSecret)
	if err != nil {
		return false, "", errors.New("cannot decrypt the enrollment: was the secret changed? (list the old one in previous_secrets)")
	}
	defer clear(secret)
	if codeChecked != nil {
		codeChecked(user)
	}
	step, ok := challenge.VerifyTOTP(secret, digits, t, h.skew, p)
	if !ok {
		return false, "wrong_code", nil
	}
	return h.claimStep(r, user, step, p)
}

func (h *Handler) claimStep(r *http.Request, user string, step int64, p challenge.Params) (bool, string, error) {
	// Keep the claim while the step could still verify: until the end of
	// step+skew, plus one step, plus the margin for clock differences
	// between instances.
	until := time.Unix((step+int64(h.skew)+2)*int64(p.Period), 0).Add(replayMarkerMargin)
	accepted, err := h.store.AcceptStep(r.Context(), h.Realm, user, step, until)
	if err != nil {
		return false, "", err
	}
	if !accepted {
		return false, "used_code", nil
	}
	return true, "", nil
}

func enrollmentParams(e sessions.Enrollment) challenge.Params {
	p := challenge.Params{Algorithm: e.Algorithm, Digits: e.Digits, Period: e.Period}
	if p.Validate() != nil {
		return challenge.DefaultParams()
	}
	return p
}

// succeeded starts a fresh session after a second factor was verified
// (its reserved attempt settled by attemptSucceeded first).
func (h *Handler) succeeded(w http.ResponseWriter, r *http.Request, user, method string, t time.Time) error {
	return h.succeededFor(w, r, subject{user: user}, method, t)
}

// succeededFor is succeeded for a subject the pipeline already read: its
// application bindings (if any) are marked verified in place, so that
// passVerified does not write them again.
func (h *Handler) succeededFor(w http.ResponseWriter, r *http.Request, sub subject, method string, t time.Time) error {
	user := sub.user
	if err := h.startSession(w, r, user, method, "", t); err != nil {
		return err
	}
	var err error
	if sub.app != nil {
		err = h.verifyBindings(r, sub.app, method, t)
	} else {
		err = h.verifyAppBinding(r, user, method, t)
	}
	if err != nil {
		return err
	}
	if err := h.store.RecordVerification(r.Context(), h.Realm, user, method, t); err != nil {
		return err
	}
	h.audit(r, "verify", user, method, "success", "")
	return nil
}

// startSession creates a verified session with a new random ID (never one
// the browser brought: no fixation), drops the browser's previous session,
// and sets the cookie. device is the store key of the trusted device that
// started it ("" for a code): the session ends when that device is
// removed.
func (h *Handler) startSession(w http.ResponseWriter, r *http.Request, user, method, device string, t time.Time) error {
	if old := h.readCookie(r, sessionCookie); old != nil {
		if err := h.store.DeleteSession(r.Context(), h.Realm, string(old)); err != nil {
			return err
		}
	}
	ttl := time.Duration(h.SessionTTL)
	id := rand.Text()
	s := sessions.Session{
		User:      user,
		Method:    method,
		Created:   t,
		Expires:   t.Add(ttl),
		LastSeen:  t,
		ClientIP:  clientIP(r),
		UserAgent: truncate(r.UserAgent(), 256),
		Device:    device,
	}
	if err := h.store.PutSession(r.Context(), h.Realm, id, s); err != nil {
		return err
	}
	if fw, ok := w.(*appCookieWatcher); ok {
		// Started on the way to the application (an otp_header code, a
		// trusted device): an application logout in this very request
		// must end this session, not the one the browser brought.
		fw.gateSID = []byte(id)
	}
	return h.setCookie(w, r, sessionCookie, []byte(id), ttl)
}
