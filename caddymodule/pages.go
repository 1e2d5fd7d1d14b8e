package caddymodule

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"html/template"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-2fa/caddy-2fa/challenge"
	"github.com/caddy-2fa/caddy-2fa/sessions"
	"github.com/caddy-2fa/caddy-2fa/templates"
)

// maxFormBytes bounds the body of a gate form: a code, a checkbox, two
// hidden fields.
const maxFormBytes = 16 << 10

// serveGate serves the gate's own pages under path_prefix. They are never
// handed to the application.
func (h *Handler) serveGate(w http.ResponseWriter, r *http.Request, user string) error {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodPost:
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		return h.renderError(w, r, http.StatusMethodNotAllowed, "method")
	}
	post := r.Method == http.MethodPost
	if post {
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		if err := r.ParseForm(); err != nil {
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				return h.formTooLarge(w, r, user)
			}
			return h.renderError(w, r, http.StatusBadRequest, "bad_request")
		}
	}
	var rd string
	if post {
		rd = safeReturn(r.PostForm.Get("rd"), h.PathPrefix)
	} else {
		rd = safeReturn(r.URL.Query().Get("rd"), h.PathPrefix)
	}
	switch strings.TrimPrefix(r.URL.Path, h.PathPrefix) {
	case "", "/":
		http.Redirect(w, r, h.pageURL("/challenge", rd), http.StatusSeeOther)
		return nil
	case "/enroll":
		if post {
			return h.postEnroll(w, r, user, rd)
		}
		return h.getEnroll(w, r, user, rd, templates.ProblemNone, http.StatusOK)
	case "/challenge":
		if post {
			return h.postChallenge(w, r, user, rd)
		}
		return h.getChallenge(w, r, user, rd)
	case "/settings":
		return h.serveSettings(w, r, user, rd)
	case "/later":
		if !post {
			w.Header().Set("Allow", "POST")
			return h.renderError(w, r, http.StatusMethodNotAllowed, "method")
		}
		return h.postLater(w, r, user, rd)
	case "/logout":
		if post {
			return h.postLogout(w, r, user)
		}
		return h.page(w, r, user, http.StatusOK, templates.PageLogout, templates.Data{Return: rd})
	}
	if token, ok := strings.CutPrefix(r.URL.Path, h.PathPrefix+"/invite/"); ok && !post && token != "" {
		return h.getInvite(w, r, user, token)
	}
	return h.renderError(w, r, http.StatusNotFound, "not_found")
}

// formTooLarge answers a form body over maxFormBytes with 413. Posted to
// a page that takes a code, from this site (Fetch Metadata or Origin) by
// a browser that was shown a gate form, it spends an attempt like a
// failed code, so that huge bodies are no way around the failure limit; a
// cross-site post is not counted, so another site cannot lock a user out.
func (h *Handler) formTooLarge(w http.ResponseWriter, r *http.Request, user string) error {
	switch strings.TrimPrefix(r.URL.Path, h.PathPrefix) {
	case "/challenge", "/enroll", "/settings":
		if _, ok := h.csrfFromCookie(r, user); ok && user != "" && h.cop.Check(r) == nil {
			t := now()
			a, granted, err := h.reserveAttempt(r.Context(), user, clientIP(r), t)
			if err != nil {
				return h.unavailable(w, r, err)
			}
			if !granted {
				return h.lockedPage(w, r, user, a, t)
			}
			h.audit(r, "verify", user, MethodTOTP, "failure", "too_large")
			if a.Locked(t) {
				h.audit(r, "lockout", user, MethodTOTP, "locked", "too_large")
				return h.lockedPage(w, r, user, a, t)
			}
		}
	}
	return h.renderError(w, r, http.StatusRequestEntityTooLarge, "bad_request")
}

// getEnroll shows the enrollment page: a new secret (kept unconfirmed for
// a while, so a reload shows the same one) as a QR code, a link and text,
// only to the browser that started it (enrollbinding.go); another
// browser of the user is told that setup is in progress elsewhere. An
// enrolled user never sees a secret again: they are sent to the challenge
// instead.
func (h *Handler) getEnroll(w http.ResponseWriter, r *http.Request, user, rd string, problem templates.Problem, status int) error {
	ctx := r.Context()
	_, err := h.store.Enrollment(ctx, h.Realm, user)
	if err == nil {
		http.Redirect(w, r, h.pageURL("/challenge", rd), http.StatusSeeOther)
		return nil
	}
	if !errors.Is(err, sessions.ErrNotFound) {
		return h.unavailable(w, r, err)
	}
	t := now()
	var secret []byte
	p, err := h.store.PendingEnrollment(ctx, h.Realm, user)
	if err != nil && !errors.Is(err, sessions.ErrNotFound) {
		return h.unavailable(w, r, err)
	}
	found := err == nil
	if found && t.Before(p.Expires) {
		if !h.pendingBoundHere(r, user, p) {
			return h.refuseOtherBrowser(w, r, user, rd, status)
		}
		secret, _, err = h.ring.Open(h.Realm, user, p.SealedSecret)
		if err != nil {
			secret = nil // sealed under an older secret: start afresh
		}
	}
	if secret == nil {
		// The gate has now seen this user: admins can find them (and the
		// grace period, if any, starts).
		if _, err := h.store.SeeUser(ctx, h.Realm, user, t); err != nil {
			return h.unavailable(w, r, err)
		}
		if h.Enrollment == "invite" {
			// Only an invite link starts an enrollment.
			h.audit(r, "enroll", user, "", "refused", "invite_required")
			return h.renderError(w, r, http.StatusForbidden, "invite_required")
		}
		// If there was none, only if no other browser started one
		// meanwhile; one that was there is expired or this browser's
		// own and unreadable: replaced.
		var started bool
		secret, p, started, err = h.startPendingEnrollment(w, r, user, t, pendingEnrollmentTTL, !found)
		if err != nil {
			return h.unavailable(w, r, err)
		}
		if !started {
			return h.refuseOtherBrowser(w, r, user, rd, status)
		}
	}
	var grace *templates.Grace
	if end, ok, err := h.graceLeft(r, user, t); err != nil {
		clear(secret)
		return h.unavailable(w, r, err)
	} else if ok {
		grace = &templates.Grace{Until: end, Left: end.Sub(t)}
	}
	params := challenge.DefaultParams()
	uri := challenge.KeyURI(h.issuer(r), user, secret, params)
	encoded := challenge.EncodeSecret(secret)
	clear(secret)
	png, err := challenge.QRPNG(uri, 400)
	if err != nil {
		// Not the store's fault (identify bounds user names so that this
		// cannot happen for them; a very long issuer still could).
		h.logger.Error("rendering the enrollment QR code", zap.String("realm", h.Realm), zap.Int("uri_bytes", len(uri)), zap.Error(err))
		return h.renderError(w, r, http.StatusInternalServerError, "other")
	}
	return h.page(w, r, user, status, templates.PageEnroll, templates.Data{
		Return:  rd,
		Problem: problem,
		Enroll: &templates.Enroll{
			URI:          template.URL(uri),
			QR:           template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(png)),
			SecretGroups: challenge.GroupSecret(encoded),
			Digits:       params.Digits,
			Period:       params.Period,
			Expires:      p.Expires,
			Grace:        grace,
		},
	})
}

// postEnroll confirms an enrollment with the first code. Only then is the
// enrollment saved; the recovery codes are shown once.
func (h *Handler) postEnroll(w http.ResponseWriter, r *http.Request, user, rd string) error {
	ctx := r.Context()
	if !h.checkCSRF(r, user) {
		return h.getEnroll(w, r, user, rd, templates.ProblemFormExpired, http.StatusForbidden)
	}
	if r.PostForm.Get("action") == actionStartOver {
		return h.postStartOver(w, r, user, rd)
	}
	t := now()
	p, err := h.store.PendingEnrollment(ctx, h.Realm, user)
	if errors.Is(err, sessions.ErrNotFound) || err == nil && !t.Before(p.Expires) {
		return h.getEnroll(w, r, user, rd, templates.ProblemEnrollGone, http.StatusBadRequest)
	}
	if err != nil {
		return h.unavailable(w, r, err)
	}
	if !h.pendingBoundHere(r, user, p) {
		// Another browser's secret: no code is checked against it.
		return h.refuseOtherBrowser(w, r, user, rd, 0)
	}
	params := challenge.DefaultParams()
	// Enrolled sealed as it was shown, even under a previous secret's
	// key: instances not yet given the new secret must still open it
	// during a rolling rotation. "caddy two-factor rekey" re-seals.
	e := sessions.Enrollment{SealedSecret: p.SealedSecret, Algorithm: params.Algorithm, Digits: params.Digits, Period: params.Period, Created: t}
	ip := clientIP(r)
	a, granted, err := h.reserveAttempt(ctx, user, ip, t)
	if err != nil {
		return h.unavailable(w, r, err)
	}
	if !granted {
		return h.lockedPage(w, r, user, a, t)
	}
	ok, reason, err := h.checkTOTP(r, user, e, r.PostForm.Get("code"), t)
	if err != nil {
		return h.unavailable(w, r, err)
	}
	if !ok {
		return h.failed(w, r, user, rd, MethodTOTP, reason, a, t, func(problem templates.Problem, status int) error {
			return h.getEnroll(w, r, user, rd, problem, status)
		})
	}
	var codes, hashes []string
	if h.recovery > 0 {
		if codes, hashes, err = h.newRecoveryCodes(user); err != nil {
			return h.unavailable(w, r, err)
		}
	}
	if enrollCheckedHook != nil {
		enrollCheckedHook()
	}
	// Only while the pending enrollment is still the one whose code was
	// checked: started over in another browser meanwhile, it is not.
	err = h.store.EnrollPending(ctx, h.Realm, user, p.SealedSecret, e, hashes)
	if errors.Is(err, sessions.ErrExists) {
		// Enrolled meanwhile (another tab or instance): never overwrite.
		http.Redirect(w, r, h.pageURL("/challenge", rd), http.StatusSeeOther)
		return nil
	}
	if errors.Is(err, sessions.ErrNotFound) {
		return h.refuseOtherBrowser(w, r, user, rd, 0)
	}
	if err != nil {
		return h.unavailable(w, r, err)
	}
	h.clearCookie(w, r, enrollCookie)
	h.audit(r, "enroll", user, MethodTOTP, "success", "")
	if err := h.attemptSucceeded(ctx, user, ip, t); err != nil {
		return h.unavailable(w, r, err)
	}
	if err := h.succeeded(w, r, user, MethodTOTP, t); err != nil {
		return h.unavailable(w, r, err)
	}
	if len(codes) == 0 {
		http.Redirect(w, r, rd, http.StatusSeeOther)
		return nil
	}
	return h.page(w, r, user, http.StatusOK, templates.PageRecovery, templates.Data{
		Return: rd,
		Recovery: &templates.Recovery{
			Codes:    codes,
			Download: h.recoveryDownload(r, user, codes, t),
			Filename: recoveryFilename(h.issuer(r)),
			Continue: rd,
		},
	})
}

// getChallenge shows the code prompt, or moves the user on when there is
// nothing to ask.
func (h *Handler) getChallenge(w http.ResponseWriter, r *http.Request, user, rd string) error {
	ctx := r.Context()
	_, err := h.store.Enrollment(ctx, h.Realm, user)
	if errors.Is(err, sessions.ErrNotFound) {
		http.Redirect(w, r, h.pageURL("/enroll", rd), http.StatusSeeOther)
		return nil
	}
	if err != nil {
		return h.unavailable(w, r, err)
	}
	t := now()
	if _, ok, err := h.verifiedSession(w, r, user, t); err != nil {
		return h.unavailable(w, r, err)
	} else if ok {
		http.Redirect(w, r, rd, http.StatusSeeOther)
		return nil
	}
	if done, err := h.refuseIfLocked(w, r, user, t); done || err != nil {
		return err
	}
	return h.challengePage(w, r, user, rd, templates.ProblemNone, http.StatusOK)
}

func (h *Handler) challengePage(w http.ResponseWriter, r *http.Request, user, rd string, problem templates.Problem, status int) error {
	return h.page(w, r, user, status, templates.PageChallenge, templates.Data{
		Return:    rd,
		Problem:   problem,
		Challenge: &templates.Challenge{TrustDevice: h.trust, RecoveryCodes: h.recovery > 0},
	})
}

// postChallenge checks a TOTP or recovery code.
func (h *Handler) postChallenge(w http.ResponseWriter, r *http.Request, user, rd string) error {
	ctx := r.Context()
	if !h.checkCSRF(r, user) {
		return h.challengePage(w, r, user, rd, templates.ProblemFormExpired, http.StatusForbidden)
	}
	e, err := h.store.Enrollment(ctx, h.Realm, user)
	if errors.Is(err, sessions.ErrNotFound) {
		http.Redirect(w, r, h.pageURL("/enroll", rd), http.StatusSeeOther)
		return nil
	}
	if err != nil {
		return h.unavailable(w, r, err)
	}
	t := now()
	ip := clientIP(r)
	a, granted, err := h.reserveAttempt(ctx, user, ip, t)
	if err != nil {
		return h.unavailable(w, r, err)
	}
	if !granted {
		return h.lockedPage(w, r, user, a, t)
	}
	code := r.PostForm.Get("code")
	method := MethodTOTP
	var ok bool
	var reason string
	var remaining int
	switch kind, norm := challenge.Classify(code, enrollmentParams(e)); kind {
	case challenge.KindRecovery:
		method = MethodRecovery
		if h.recovery == 0 {
			reason = "wrong_code"
			break
		}
		remaining, err = h.useRecoveryCode(ctx, user, norm)
		switch {
		case err == nil:
			ok = true
		case errors.Is(err, sessions.ErrNotFound):
			reason = "wrong_code"
		default:
			return h.unavailable(w, r, err)
		}
	default:
		if ok, reason, err = h.checkTOTP(r, user, e, code, t); err != nil {
			return h.unavailable(w, r, err)
		}
	}
	if !ok {
		return h.failed(w, r, user, rd, method, reason, a, t, func(problem templates.Problem, status int) error {
			return h.challengePage(w, r, user, rd, problem, status)
		})
	}
	if err := h.attemptSucceeded(ctx, user, ip, t); err != nil {
		return h.unavailable(w, r, err)
	}
	if method == MethodRecovery {
		// A recovery code means the authenticator may be lost, and with
		// it a trusted browser: forget the user's trusted devices.
		if _, err := h.store.DeleteUserDevices(ctx, h.Realm, user); err != nil {
			return h.unavailable(w, r, err)
		}
		h.audit(r, "recovery_code_used", user, MethodRecovery, "success", "", zap.Int("remaining", remaining))
	}
	if err := h.succeeded(w, r, user, method, t); err != nil {
		return h.unavailable(w, r, err)
	}
	if h.trust > 0 && r.PostForm.Get("trust_device") != "" {
		if err := h.trustThisDevice(w, r, user, t); err != nil {
			return h.unavailable(w, r, err)
		}
	}
	http.Redirect(w, r, rd, http.StatusSeeOther)
	return nil
}

// useRecoveryCode consumes the recovery code norm, hashed with the current
// key or, for codes issued before the secret was rotated, with a previous
// secret's (they cannot be re-hashed without the codes, so they keep
// working while that secret is listed). sessions.ErrNotFound if no hash
// matches an unused code.
func (h *Handler) useRecoveryCode(ctx context.Context, user, norm string) (int, error) {
	if codeChecked != nil {
		codeChecked(user)
	}
	remaining, err := h.store.UseRecoveryCode(ctx, h.Realm, user, challenge.HashRecoveryCode(h.keys.RecoveryMAC, h.Realm, user, norm))
	for _, k := range h.ring.Previous {
		if !errors.Is(err, sessions.ErrNotFound) {
			break
		}
		remaining, err = h.store.UseRecoveryCode(ctx, h.Realm, user, challenge.HashRecoveryCode(k.RecoveryMAC, h.Realm, user, norm))
	}
	return remaining, err
}

// failed logs a refused code and shows the page again with the reason,
// or the lockout page once the limit is reached. The failure was counted
// when the attempt was reserved; a is the state that reservation left.
func (h *Handler) failed(w http.ResponseWriter, r *http.Request, user, rd, method, reason string, a sessions.Attempts, t time.Time, again func(templates.Problem, int) error) error {
	h.audit(r, "verify", user, method, "failure", reason)
	if a.Locked(t) {
		h.audit(r, "lockout", user, method, "locked", reason)
		return h.lockedPage(w, r, user, a, t)
	}
	switch reason {
	case "bad_format":
		return again(templates.ProblemBadFormat, http.StatusBadRequest)
	case "used_code":
		return again(templates.ProblemUsedCode, http.StatusUnauthorized)
	}
	return again(templates.ProblemWrongCode, http.StatusUnauthorized)
}

// refuseIfLocked shows the lockout page if the user is locked out: a
// cheap early answer for a page that shows a code form. It decides
// nothing about a submitted code (see reserveAttempt).
func (h *Handler) refuseIfLocked(w http.ResponseWriter, r *http.Request, user string, t time.Time) (bool, error) {
	a, err := h.attempts(r.Context(), user, clientIP(r), t)
	if err != nil {
		return true, h.unavailable(w, r, err)
	}
	if a.Locked(t) {
		return true, h.lockedPage(w, r, user, a, t)
	}
	return false, nil
}

func (h *Handler) lockedPage(w http.ResponseWriter, r *http.Request, user string, a sessions.Attempts, t time.Time) error {
	wait := a.LockedUntil.Sub(t)
	w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
	retryIn := max(time.Minute, ((wait+time.Minute-1)/time.Minute)*time.Minute)
	return h.page(w, r, user, http.StatusTooManyRequests, templates.PageLocked, templates.Data{
		Locked: &templates.Locked{Until: a.LockedUntil, RetryIn: retryIn},
	})
}

// trustThisDevice remembers this browser for the user: a random token in
// a signed cookie, its keyed hash in the store (so it can be revoked).
func (h *Handler) trustThisDevice(w http.ResponseWriter, r *http.Request, user string, t time.Time) error {
	token := make([]byte, 32)
	if _, err := rand.Read(token); err != nil {
		return err
	}
	if old := h.readCookie(r, deviceCookie); old != nil {
		if err := h.deleteDevice(r.Context(), old); err != nil {
			return err
		}
	}
	d := sessions.Device{User: user, Created: t, Expires: t.Add(h.trust), LastUsed: t, ClientIP: clientIP(r), UserAgent: truncate(r.UserAgent(), 256)}
	if err := h.store.PutDevice(r.Context(), h.Realm, h.keys.DeviceKey(token), d); err != nil {
		return err
	}
	h.audit(r, "trust_device", user, "", "success", "")
	return h.setCookie(w, r, deviceCookie, token, h.trust)
}

// postLogout ends the 2FA session on the server and forgets this browser
// as a trusted device, so the next request asks for a code again.
func (h *Handler) postLogout(w http.ResponseWriter, r *http.Request, user string) error {
	if !h.checkCSRF(r, user) {
		return h.renderError(w, r, http.StatusForbidden, "forbidden")
	}
	ctx := r.Context()
	if id := h.readCookie(r, sessionCookie); id != nil {
		if err := h.store.DeleteSession(ctx, h.Realm, string(id)); err != nil {
			return h.unavailable(w, r, err)
		}
	}
	if token := h.readCookie(r, deviceCookie); token != nil {
		if err := h.deleteDevice(ctx, token); err != nil {
			return h.unavailable(w, r, err)
		}
	}
	h.clearCookie(w, r, sessionCookie)
	h.clearCookie(w, r, deviceCookie)
	h.audit(r, "logout", user, "", "success", "")
	return h.page(w, r, user, http.StatusOK, templates.PageLoggedOut, templates.Data{})
}

// page renders a gate page with a CSRF token for its forms.
func (h *Handler) page(w http.ResponseWriter, r *http.Request, user string, status int, name string, d templates.Data) error {
	tok, err := h.csrfToken(w, r, user)
	if err != nil {
		return err
	}
	d.User = user
	d.CSRFToken = tok
	return h.render(w, r, status, name, d)
}

func (h *Handler) renderError(w http.ResponseWriter, r *http.Request, status int, kind string) error {
	return h.render(w, r, status, templates.PageError, templates.Data{Error: &templates.Error{Status: status, Kind: kind}})
}

// render writes a page with the headers every gate page carries.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, status int, name string, d templates.Data) error {
	d.Title = h.Title
	d.Lang = h.pageLang(r)
	d.Issuer = h.issuer(r)
	d.Prefix = h.PathPrefix
	d.Now = now()
	if d.Return == "" {
		d.Return = "/"
	}
	var buf bytes.Buffer
	if err := h.pages.Render(&buf, name, d); err != nil {
		h.logger.Error("rendering page", zap.String("page", name), zap.Error(err))
		http.Error(w, "Internal Server Error", http.StatusInternalServerError)
		return nil
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("Content-Security-Policy", h.pages.CSP())
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("Referrer-Policy", "no-referrer")
	if h.lang == "" {
		hdr.Add("Vary", "Accept-Language")
	}
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, err := w.Write(buf.Bytes())
		return err
	}
	return nil
}

// issuer is the name authenticator apps show: the issuer option, or the
// host the user is visiting.
func (h *Handler) issuer(r *http.Request) string {
	if h.Issuer != "" {
		return h.Issuer
	}
	host := r.Host
	if hst, _, err := net.SplitHostPort(host); err == nil {
		host = hst
	}
	return host
}

// pageLang is the language of the pages for r: the lang option, or the
// best catalog for the browser's Accept-Language.
func (h *Handler) pageLang(r *http.Request) string {
	if h.lang != "" {
		return h.lang
	}
	return h.pages.Match(r.Header.Get("Accept-Language"))
}

// recoveryDownload is the recovery codes as a plain-text file, in the
// page's language, for a download link.
func (h *Handler) recoveryDownload(r *http.Request, user string, codes []string, t time.Time) template.URL {
	text := h.pages.RecoveryFile(h.pageLang(r), h.issuer(r), user, codes, t)
	return template.URL("data:text/plain;charset=utf-8," + url.PathEscape(text))
}

func recoveryFilename(issuer string) string {
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' {
			return r
		}
		return '-'
	}, issuer)
	if name == "" {
		name = "two-factor"
	}
	return name + "-recovery-codes.txt"
}
