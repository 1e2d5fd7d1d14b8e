package caddymodule

import (
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-2fa/caddy-2fa/challenge"
	"github.com/caddy-2fa/caddy-2fa/sessions"
	"github.com/caddy-2fa/caddy-2fa/templates"
)

// Actions of the settings page: the "action" field of its forms.
const (
	actionRemoveDevice         = "remove_device"
	actionRemoveAllDevices     = "remove_all_devices"
	actionSignOutOthers        = "sign_out_others"
	actionNewRecoveryCodes     = "new_recovery_codes"
	actionReplaceAuthenticator = "replace_authenticator"
	actionTurnOff              = "turn_off"
)

var settingsActions = []string{
	actionRemoveDevice, actionRemoveAllDevices, actionSignOutOthers,
	actionNewRecoveryCodes, actionReplaceAuthenticator, actionTurnOff,
}

// serveSettings is the user's own settings page, <path_prefix>/settings:
// status, trusted devices, other sessions, new recovery codes, replacing
// the authenticator app and, where policy allows, turning 2FA off. GET
// shows it; POST carries out one action (the "action" field).
//
// The page needs a verified session; the actions that change the factor
// itself (new recovery codes, replace, turn off) need a fresh TOTP code in
// the same form as well. A recovery code is not enough for those: one
// leaked recovery code must not let anyone mint new ones or replace the
// authenticator.
func (h *Handler) serveSettings(w http.ResponseWriter, r *http.Request, user, rd string) error {
	if r.Method == http.MethodPost {
		return h.postSettings(w, r, user, rd)
	}
	t := now()
	st, ok, err := h.settingsSession(w, r, user, t)
	if err != nil {
		return h.unavailable(w, r, err)
	}
	if !st.enrolled {
		return h.page(w, r, user, http.StatusOK, templates.PageSettings, templates.Data{
			Return:   rd,
			Settings: &templates.Settings{Invite: h.Enrollment == "invite"},
		})
	}
	if !ok {
		http.Redirect(w, r, h.pageURL("/challenge", h.PathPrefix+"/settings"), http.StatusSeeOther)
		return nil
	}
	return h.settingsPage(w, r, user, rd, st, templates.ProblemNone, templates.Settings{}, http.StatusOK)
}

// settingsState is what every settings request starts from.
type settingsState struct {
	enrolled bool
	e        sessions.Enrollment
	s        sessions.Session
	id       string // the verified session's ID
}

// settingsSession loads the user's enrollment and this browser's verified
// session; ok is false when either is missing.
func (h *Handler) settingsSession(w http.ResponseWriter, r *http.Request, user string, t time.Time) (st settingsState, ok bool, err error) {
	e, err := h.store.Enrollment(r.Context(), h.Realm, user)
	if errors.Is(err, sessions.ErrNotFound) {
		return st, false, nil
	}
	if err != nil {
		return st, false, err
	}
	st.enrolled, st.e = true, e
	s, ok, err := h.verifiedSession(w, r, user, t)
	if err != nil || !ok {
		return st, false, err
	}
	st.s, st.id = s, string(h.readCookie(r, sessionCookie))
	return st, true, nil
}

// settingsPage renders the settings page of an enrolled user with a
// verified session; v carries what the last action did or why it was
// refused.
func (h *Handler) settingsPage(w http.ResponseWriter, r *http.Request, user, rd string, st settingsState, problem templates.Problem, v templates.Settings, status int) error {
	ctx := r.Context()
	devices, err := h.store.UserDevices(ctx, h.Realm, user)
	if err != nil {
		return h.unavailable(w, r, err)
	}
	live, err := h.store.UserSessions(ctx, h.Realm, user)
	if err != nil {
		return h.unavailable(w, r, err)
	}
	var current []string // this browser's device, under every key it may be stored under
	if token := h.readCookie(r, deviceCookie); token != nil {
		current = h.deviceKeys(token)
	}
	v.Enrolled = true
	v.Since = st.e.Created
	v.Method, v.Verified = st.s.Method, st.s.Created
	v.RecoveryCodes = h.recovery > 0
	v.RecoveryLeft = st.e.RecoveryCodes
	v.RecoveryIssued = max(h.recovery, st.e.RecoveryCodes)
	v.TrustDevice = h.trust
	v.OtherSessions = max(0, live-1) // live counts this browser's session too
	v.CanTurnOff = h.mayTurnOff(r, user)
	for _, d := range devices {
		browser, system := userAgentFamily(d.UserAgent)
		v.Devices = append(v.Devices, templates.TrustedDevice{
			ID:       d.ID,
			Browser:  browser,
			OS:       system,
			Current:  slices.Contains(current, d.ID),
			Created:  d.Created,
			LastUsed: d.LastUsed,
			Expires:  d.Expires,
			IP:       d.ClientIP,
		})
	}
	// This device first, then the most recently used.
	slices.SortStableFunc(v.Devices, func(a, b templates.TrustedDevice) int {
		if a.Current != b.Current {
			if a.Current {
				return -1
			}
			return 1
		}
		return b.LastUsed.Compare(a.LastUsed)
	})
	return h.page(w, r, user, status, templates.PageSettings, templates.Data{Return: rd, Problem: problem, Settings: &v})
}

// mayTurnOff reports whether policy lets user go without 2FA once
// unenrolled: require does not cover them, or they are exempt.
func (h *Handler) mayTurnOff(r *http.Request, user string) bool {
	repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if !ok {
		return false // cannot resolve groups: assume 2FA is required
	}
	groups := h.userGroups(repl)
	return h.exempted(user, groups) || !h.required(user, groups, false)
}

// postSettings carries out one settings action. Every action needs the
// form's CSRF token and a verified session; each writes one audit line,
// event "settings_<action>".
func (h *Handler) postSettings(w http.ResponseWriter, r *http.Request, user, rd string) error {
	ctx := r.Context()
	t := now()
	action := r.PostForm.Get("action")
	event := "settings"
	if slices.Contains(settingsActions, action) {
		event += "_" + action
	}
	refuse := func(reason string) { h.audit(r, event, user, "", "failure", reason) }
	st, ok, err := h.settingsSession(w, r, user, t)
	if err != nil {
		return h.unavailable(w, r, err)
	}
	if !h.checkCSRF(r, user) {
		refuse("csrf")
		if ok {
			return h.settingsPage(w, r, user, rd, st, templates.ProblemNone, templates.Settings{Refused: "form_expired"}, http.StatusForbidden)
		}
		return h.renderError(w, r, http.StatusForbidden, "forbidden")
	}
	if !st.enrolled {
		refuse("not_enrolled")
		http.Redirect(w, r, h.PathPrefix+"/settings", http.StatusSeeOther)
		return nil
	}
	if !ok {
		refuse("no_session")
		http.Redirect(w, r, h.pageURL("/challenge", h.PathPrefix+"/settings"), http.StatusSeeOther)
		return nil
	}
	again := func(v templates.Settings, status int) error {
		return h.settingsPage(w, r, user, rd, st, templates.ProblemNone, v, status)
	}

	switch action {
	case actionRemoveDevice:
		// Only a device the store lists for this user: the form's ID is
		// never trusted on its own.
		id := r.PostForm.Get("device")
		devices, err := h.store.UserDevices(ctx, h.Realm, user)
		if err != nil {
			return h.unavailable(w, r, err)
		}
		if id == "" || !slices.ContainsFunc(devices, func(d sessions.Device) bool { return d.ID == id }) {
			refuse("not_users_device")
			return again(templates.Settings{Refused: "no_device"}, http.StatusNotFound)
		}
		if err := h.store.DeleteDevice(ctx, h.Realm, id); err != nil {
			return h.unavailable(w, r, err)
		}
		done := "device_removed"
		if token := h.readCookie(r, deviceCookie); token != nil && slices.Contains(h.deviceKeys(token), id) {
			h.clearCookie(w, r, deviceCookie)
			done = "this_device_removed"
		}
		h.audit(r, event, user, "", "success", "")
		return again(templates.Settings{Done: done, Count: 1}, http.StatusOK)

	case actionRemoveAllDevices:
		// Forget this browser's device cookie too if it is one of them.
		mine := false
		if token := h.readCookie(r, deviceCookie); token != nil {
			_, d, err := h.device(ctx, token)
			if err != nil && !errors.Is(err, sessions.ErrNotFound) {
				return h.unavailable(w, r, err)
			}
			mine = err == nil && d.User == user
		}
		n, err := h.store.DeleteUserDevices(ctx, h.Realm, user)
		if err != nil {
			return h.unavailable(w, r, err)
		}
		if mine {
			h.clearCookie(w, r, deviceCookie)
		}
		h.audit(r, event, user, "", "success", "")
		return again(templates.Settings{Done: "devices_removed", Count: n}, http.StatusOK)

	case actionSignOutOthers:
		n, err := h.store.DeleteUserSessions(ctx, h.Realm, user, st.id)
		if err != nil {
			return h.unavailable(w, r, err)
		}
		h.audit(r, event, user, "", "success", "")
		return again(templates.Settings{Done: "signed_out_others", Count: n}, http.StatusOK)

	case actionNewRecoveryCodes:
		if h.recovery == 0 {
			refuse("recovery_disabled")
			return again(templates.Settings{Refused: "recovery_disabled"}, http.StatusForbidden)
		}
		if ok, err := h.freshCode(w, r, user, rd, st, action, t); !ok {
			return err
		}
		codes, hashes, err := h.newRecoveryCodes(user)
		if err != nil {
			return h.unavailable(w, r, err)
		}
		err = h.store.SetRecoveryCodes(ctx, h.Realm, user, hashes)
		if errors.Is(err, sessions.ErrNotFound) {
			// Reset meanwhile (an admin, another tab): nothing to renew.
			refuse("not_enrolled")
			http.Redirect(w, r, h.PathPrefix+"/settings", http.StatusSeeOther)
			return nil
		}
		if err != nil {
			return h.unavailable(w, r, err)
		}
		h.audit(r, event, user, "", "success", "")
		return h.page(w, r, user, http.StatusOK, templates.PageRecovery, templates.Data{
			Return: rd,
			Recovery: &templates.Recovery{
				Codes:    codes,
				Download: h.recoveryDownload(r, user, codes, t),
				Filename: recoveryFilename(h.issuer(r)),
				Continue: h.PathPrefix + "/settings",
			},
		})

	case actionReplaceAuthenticator:
		if ok, err := h.freshCode(w, r, user, rd, st, action, t); !ok {
			return err
		}
		// A new factor revokes everything the old one vouched for:
		// enrollment, recovery codes, sessions and trusted devices.
		if err := h.store.ResetUser(ctx, h.Realm, user); err != nil {
			return h.unavailable(w, r, err)
		}
		// The user enrolls the new app at once, even where enrollment
		// needs an invite, in this browser only, under the canonical name,
		// which is where the user's records live from now on (identity.go).
		secret, _, _, err := h.startPendingEnrollment(w, r, canonicalUser(user), t, pendingEnrollmentTTL, false)
		clear(secret)
		if err != nil {
			return h.unavailable(w, r, err)
		}
		h.clearCookie(w, r, sessionCookie)
		h.clearCookie(w, r, deviceCookie)
		h.audit(r, event, user, "", "success", "")
		http.Redirect(w, r, h.pageURL("/enroll", h.PathPrefix+"/settings"), http.StatusSeeOther)
		return nil

	case actionTurnOff:
		if !h.mayTurnOff(r, user) {
			refuse("required_by_policy")
			return again(templates.Settings{Refused: "turn_off_required"}, http.StatusForbidden)
		}
		if ok, err := h.freshCode(w, r, user, rd, st, action, t); !ok {
			return err
		}
		if err := h.store.ResetUser(ctx, h.Realm, user); err != nil {
			return h.unavailable(w, r, err)
		}
		h.clearCookie(w, r, sessionCookie)
		h.clearCookie(w, r, deviceCookie)
		h.audit(r, event, user, "", "success", "")
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return nil
	}
	refuse("unknown_action")
	return h.renderError(w, r, http.StatusBadRequest, "bad_request")
}

// freshCode checks the TOTP code a sensitive settings form carries, after
// reserving the attempt like the challenge does. A recovery code is
// refused, and refusals count towards the user's failure limit; a right
// code clears it. When it returns false it has answered the request (the
// page with the problem, the lockout page or a store error) and err is
// the result.
func (h *Handler) freshCode(w http.ResponseWriter, r *http.Request, user, rd string, st settingsState, action string, t time.Time) (bool, error) {
	event := "settings_" + action
	ctx := r.Context()
	ip := clientIP(r)
	a, granted, err := h.reserveAttempt(ctx, user, ip, t)
	if err != nil {
		return false, h.unavailable(w, r, err)
	}
	if !granted {
		h.audit(r, event, user, "", "failure", "locked")
		return false, h.lockedPage(w, r, user, a, t)
	}
	code := r.PostForm.Get("code")
	ok, reason, err := h.checkTOTP(r, user, st.e, code, t)
	if err != nil {
		return false, h.unavailable(w, r, err)
	}
	if ok {
		if err := h.attemptSucceeded(ctx, user, ip, t); err != nil {
			return false, h.unavailable(w, r, err)
		}
		return true, nil
	}
	recoveryCode := false
	if kind, _ := challenge.Classify(code, enrollmentParams(st.e)); kind == challenge.KindRecovery {
		recoveryCode, reason = true, "recovery_code"
	}
	h.audit(r, event, user, "", "failure", reason)
	return false, h.failed(w, r, user, rd, MethodTOTP, reason, a, t, func(problem templates.Problem, status int) error {
		return h.settingsPage(w, r, user, rd, st, problem, templates.Settings{Form: action, RecoveryCode: recoveryCode}, status)
	})
}

// newRecoveryCodes makes h.recovery new recovery codes for user and their
// keyed hashes, which is all the store keeps.
func (h *Handler) newRecoveryCodes(user string) (codes, hashes []string, err error) {
	if codes, err = challenge.NewRecoveryCodes(h.recovery); err != nil {
		return nil, nil, err
	}
	for _, c := range codes {
		n, _ := challenge.NormalizeRecoveryCode(c)
		hashes = append(hashes, challenge.HashRecoveryCode(h.keys.RecoveryMAC, h.Realm, user, n))
	}
	return codes, hashes, nil
}
