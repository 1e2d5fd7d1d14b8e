package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddy-2fa/caddy-2fa/sessions"
)

func init() {
	caddy.RegisterModule(adminAPI{})
}

// Limits of the admin API's durations.
const (
	// maxDisable bounds "disable --for": an exemption is meant to bridge
	// a lost phone, not to switch 2FA off for good.
	maxDisable = 90 * 24 * time.Hour
	// maxInviteTTL bounds how long an invite link may stay valid.
	maxInviteTTL = 30 * 24 * time.Hour
	// maxAdminBody bounds the JSON body of an admin request.
	maxAdminBody = 64 << 10
)

// adminAPI serves the two-factor endpoints of Caddy's admin API, under
// /two-factor/:
//
//	GET  /two-factor/realms                                   realms of the running config
//	GET  /two-factor/realms/<realm>/users                     every user's state
//	GET  /two-factor/realms/<realm>/users/<user>              one user's state and trusted devices
//	POST /two-factor/realms/<realm>/users/<user>/reset        forget the enrollment and everything else: next sign-in enrolls afresh
//	POST /two-factor/realms/<realm>/users/<user>/disable      {"for":"24h"}: a temporary exemption that ends by itself
//	POST /two-factor/realms/<realm>/users/<user>/revoke       end sessions and trusted devices, keep the enrollment
//	POST /two-factor/realms/<realm>/users/<user>/unlock       clear a lockout
//	POST /two-factor/realms/<realm>/users/<user>/invite       {"expires_in":"72h"} (optional): a one-time enrollment link
//	POST /two-factor/realms/<realm>/rekey                     re-seal every enrollment under the current secret
//
// Realm and user are URL path segments, percent-encoded where needed (a
// user "a/b" is a%2Fb). The API is only as reachable as Caddy's admin
// endpoint, which by default listens on localhost only: anyone who can
// reach it can reset or exempt any user, as they could already change the
// whole config.
//
// Admin modules never see handler config: the API reaches the realms'
// stores through the package-level registry that handlers join when
// provisioned (runningRealm).
type adminAPI struct {
	logger *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (adminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.two_factor",
		New: func() caddy.Module { return new(adminAPI) },
	}
}

// Provision sets up the admin API module.
func (a *adminAPI) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger(a)
	return nil
}

// adminEndpointBase is where the two-factor admin endpoints live.
const adminEndpointBase = "/two-factor/"

// Routes returns the admin routes of the two-factor API.
func (a *adminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{
		Pattern: adminEndpointBase,
		Handler: caddy.AdminHandlerFunc(a.handleAPIEndpoints),
	}}
}

// Admin actions on one user (POST …/users/<user>/<action>).
var adminActions = map[string]func(*adminAPI, http.ResponseWriter, *http.Request, adminTarget) error{
	"reset":   (*adminAPI).handleReset,
	"disable": (*adminAPI).handleDisable,
	"revoke":  (*adminAPI).handleRevoke,
	"unlock":  (*adminAPI).handleUnlock,
	"invite":  (*adminAPI).handleInvite,
}

// adminTarget is the realm and user a request is about.
type adminTarget struct {
	realm string
	info  realmInfo
	// user is the name the user's records are stored under: the
	// canonical form of the name in the path ("reset Alice" acts on
	// alice), or the spelling an earlier version enrolled them under.
	user string
	// spellings are every stored name of the user (the canonical one
	// first), for the actions that must reach all of them.
	spellings []string
}

// handleAPIEndpoints routes requests within adminEndpointBase.
func (a *adminAPI) handleAPIEndpoints(w http.ResponseWriter, r *http.Request) error {
	// Split the escaped path, then unescape each segment, so that a user
	// or realm containing "/" (sent as %2F) stays one segment.
	rest := strings.TrimPrefix(r.URL.EscapedPath(), adminEndpointBase)
	var parts []string
	for seg := range strings.SplitSeq(strings.TrimSuffix(rest, "/"), "/") {
		s, err := url.PathUnescape(seg)
		if err != nil {
			return apiError(http.StatusBadRequest, fmt.Errorf("invalid path segment %q: %v", seg, err))
		}
		parts = append(parts, s)
	}
	if len(parts) == 0 || parts[0] != "realms" {
		return notFound(r)
	}
	switch len(parts) {
	case 1:
		if err := allow(w, r, http.MethodGet); err != nil {
			return err
		}
		return writeAdminJSON(w, http.StatusOK, append([]string{}, realmNames()...))
	case 3:
		method := http.MethodGet
		switch parts[2] {
		case "users":
		case "rekey":
			method = http.MethodPost
		default:
			return notFound(r)
		}
		if err := allow(w, r, method); err != nil {
			return err
		}
		info, err := lookupRealm(parts[1])
		if err != nil {
			return err
		}
		if parts[2] == "rekey" {
			return a.handleRekey(w, r, parts[1], info)
		}
		return a.handleUsers(w, r, parts[1], info)
	case 4, 5:
		if parts[2] != "users" {
			return notFound(r)
		}
		var action func(*adminAPI, http.ResponseWriter, *http.Request, adminTarget) error
		if len(parts) == 5 {
			if action = adminActions[parts[4]]; action == nil {
				return notFound(r)
			}
			if err := allow(w, r, http.MethodPost); err != nil {
				return err
			}
		} else if err := allow(w, r, http.MethodGet); err != nil {
			return err
		}
		info, err := lookupRealm(parts[1])
		if err != nil {
			return err
		}
		if parts[3] == "" {
			return apiError(http.StatusBadRequest, errors.New("missing user name in path"))
		}
		tg, err := resolveTarget(r.Context(), parts[1], info, parts[3], parts[len(parts)-1])
		if err != nil {
			return err
		}
		if action != nil {
			return action(a, w, r, tg)
		}
		return a.handleUser(w, r, tg)
	}
	return notFound(r)
}

// resolveTarget folds the user name of an admin request into the
// canonical identity the gate uses and finds the name its records are
// stored under. A user enrolled under several spellings (by an earlier
// version) can only be reset, which forgets every spelling.
func resolveTarget(ctx context.Context, realm string, info realmInfo, name, action string) (adminTarget, error) {
	id, err := identify(name)
	if errors.Is(err, errNameTooLong) {
		return adminTarget{}, apiError(http.StatusBadRequest, fmt.Errorf("user name longer than %d bytes: the gate refuses such names", maxUserName))
	}
	if id == "" {
		return adminTarget{}, apiError(http.StatusBadRequest, errors.New("missing user name in path"))
	}
	tg := adminTarget{realm: realm, info: info, user: id}
	if info.names == nil {
		tg.spellings = []string{id}
		return tg, nil
	}
	stored, err := info.names.resolve(ctx, id, nil)
	var conflict *nameConflictError
	switch {
	case errors.As(err, &conflict):
		if action != "reset" {
			return tg, apiError(http.StatusConflict, conflict)
		}
	case err != nil:
		return tg, storeError(err)
	default:
		tg.user = stored
	}
	tg.spellings = info.names.spellings(id)
	return tg, nil
}

// userSummary is what the admin API reports about a user. Times are
// omitted when they never happened (or, for locked_until and
// disabled_until, are over).
type userSummary struct {
	User string `json:"user"`
	// Enrolled says whether the user has a confirmed authenticator, since
	// EnrolledAt, with RecoveryCodes unused recovery codes left.
	Enrolled      bool      `json:"enrolled"`
	EnrolledAt    time.Time `json:"enrolled_at,omitzero"`
	RecoveryCodes int       `json:"recovery_codes"`
	// FirstSeen is when the gate first saw the user.
	FirstSeen time.Time `json:"first_seen,omitzero"`
	// LastVerified and LastMethod describe the last successful second
	// factor.
	LastVerified time.Time `json:"last_verified,omitzero"`
	LastMethod   string    `json:"last_method,omitempty"`
	// DisabledUntil is set while an admin's temporary exemption runs.
	DisabledUntil time.Time `json:"disabled_until,omitzero"`
	// LockedUntil is set while the user is locked out; Failures counts the
	// failed attempts of the current window.
	LockedUntil time.Time `json:"locked_until,omitzero"`
	Failures    int       `json:"failures"`
	// Sessions and TrustedDevices count the user's live sessions and
	// trusted browsers.
	Sessions       int `json:"sessions"`
	TrustedDevices int `json:"trusted_devices"`
	// Devices lists the trusted browsers (only for a single user).
	Devices []deviceSummary `json:"devices,omitempty"`

	// known: the store has an enrollment or a profile for the user.
	known bool
}

// deviceSummary describes one trusted browser.
type deviceSummary struct {
	Created   time.Time `json:"created"`
	LastUsed  time.Time `json:"last_used,omitzero"`
	Expires   time.Time `json:"expires"`
	ClientIP  string    `json:"client_ip,omitempty"`
	UserAgent string    `json:"user_agent,omitempty"`
}

// handleUsers lists the realm's users.
func (a *adminAPI) handleUsers(w http.ResponseWriter, r *http.Request, realm string, info realmInfo) error {
	ctx := r.Context()
	users, err := info.Store.Users(ctx, realm)
	if err != nil {
		return storeError(err)
	}
	slices.Sort(users)
	t := now()
	out := make([]userSummary, 0, len(users))
	for _, u := range users {
		s, _, err := summarize(ctx, adminTarget{realm: realm, info: info, user: u}, t)
		if err != nil {
			return storeError(err)
		}
		out = append(out, s)
	}
	return writeAdminJSON(w, http.StatusOK, out)
}

// handleUser reports one user, with their trusted devices.
func (a *adminAPI) handleUser(w http.ResponseWriter, r *http.Request, tg adminTarget) error {
	s, devices, err := summarize(r.Context(), tg, now())
	if err != nil {
		return storeError(err)
	}
	if !s.known {
		return userNotFound(tg)
	}
	s.Devices = make([]deviceSummary, 0, len(devices))
	for _, d := range devices {
		s.Devices = append(s.Devices, deviceSummary{Created: d.Created, LastUsed: d.LastUsed, Expires: d.Expires, ClientIP: d.ClientIP, UserAgent: d.UserAgent})
	}
	return writeAdminJSON(w, http.StatusOK, s)
}

// summarize gathers what the store knows about a user; known is false
// when the store has neither an enrollment nor a profile.
func summarize(ctx context.Context, tg adminTarget, t time.Time) (userSummary, []sessions.Device, error) {
	st := tg.info.Store
	s := userSummary{User: tg.user}
	e, err := st.Enrollment(ctx, tg.realm, tg.user)
	switch {
	case err == nil:
		s.known, s.Enrolled, s.EnrolledAt, s.RecoveryCodes = true, true, e.Created, e.RecoveryCodes
	case !errors.Is(err, sessions.ErrNotFound):
		return s, nil, err
	}
	p, err := st.Profile(ctx, tg.realm, tg.user)
	switch {
	case err == nil:
		s.known = true
		s.FirstSeen, s.LastVerified, s.LastMethod = p.FirstSeen, p.LastVerified, p.LastMethod
		if t.Before(p.DisabledUntil) {
			s.DisabledUntil = p.DisabledUntil
		}
	case !errors.Is(err, sessions.ErrNotFound):
		return s, nil, err
	}
	if s.Enrolled && s.FirstSeen.IsZero() {
		// A profile may be missing for enrollments made before profiles
		// existed; the enrollment is the earliest trace of the user.
		s.FirstSeen = s.EnrolledAt
	}
	at, err := userAttempts(ctx, st, tg.realm, tg.user, t)
	if err != nil {
		return s, nil, err
	}
	s.Failures = at.Failures
	if at.Locked(t) {
		s.LockedUntil = at.LockedUntil
	}
	if s.Sessions, err = st.UserSessions(ctx, tg.realm, tg.user); err != nil {
		return s, nil, err
	}
	devices, err := st.UserDevices(ctx, tg.realm, tg.user)
	if err != nil {
		return s, nil, err
	}
	s.TrustedDevices = len(devices)
	return s, devices, nil
}

// knownUser answers 404 unless the store has an enrollment or a profile
// for the user: actions on a name the gate never saw are almost always
// typos, and must not create state.
func knownUser(ctx context.Context, tg adminTarget) error {
	for _, u := range tg.allNames() {
		_, err := tg.info.Store.Enrollment(ctx, tg.realm, u)
		if err == nil {
			return nil
		}
		if !errors.Is(err, sessions.ErrNotFound) {
			return storeError(err)
		}
		_, err = tg.info.Store.Profile(ctx, tg.realm, u)
		if err == nil {
			return nil
		}
		if !errors.Is(err, sessions.ErrNotFound) {
			return storeError(err)
		}
	}
	return userNotFound(tg)
}

// allNames are the stored names of the target user: every spelling.
func (tg adminTarget) allNames() []string {
	if len(tg.spellings) == 0 {
		return []string{tg.user}
	}
	return tg.spellings
}

// userAction is the answer to a POST on a user.
type userAction struct {
	Realm  string `json:"realm"`
	User   string `json:"user"`
	Action string `json:"action"`
	// DisabledUntil: disable.
	DisabledUntil time.Time `json:"disabled_until,omitzero"`
	// SessionsRevoked and DevicesRevoked: revoke.
	SessionsRevoked *int `json:"sessions_revoked,omitempty"`
	DevicesRevoked  *int `json:"devices_revoked,omitempty"`
	// WasLocked: unlock.
	WasLocked *bool `json:"was_locked,omitempty"`
	// URL (a path under the realm's path_prefix) and Expires: invite.
	URL     string    `json:"url,omitempty"`
	Expires time.Time `json:"expires,omitzero"`
}

func (a *adminAPI) handleReset(w http.ResponseWriter, r *http.Request, tg adminTarget) error {
	if err := a.prepare(r, tg, true, nil); err != nil {
		return err
	}
	// Every spelling: a reset leaves one identity with nothing enrolled,
	// whatever an earlier version stored under other spellings.
	for _, u := range tg.allNames() {
		if err := tg.info.Store.ResetUser(r.Context(), tg.realm, u); err != nil {
			return a.failed(r, tg, "reset", err)
		}
	}
	// The lockout counters are kept per canonical identity (failureKey).
	if err := clearUserFailures(r.Context(), tg.info.Store, tg.realm, tg.user); err != nil {
		return a.failed(r, tg, "reset", err)
	}
	a.audit(r, tg, "reset")
	return writeAdminJSON(w, http.StatusOK, userAction{Realm: tg.realm, User: tg.user, Action: "reset"})
}

func (a *adminAPI) handleDisable(w http.ResponseWriter, r *http.Request, tg adminTarget) error {
	var body struct {
		For string `json:"for"`
	}
	if err := a.prepare(r, tg, true, &body); err != nil {
		return err
	}
	if body.For == "" {
		return apiError(http.StatusBadRequest, errors.New(`missing "for": how long to disable two-factor for the user, e.g. {"for":"24h"}`))
	}
	d, err := parseAdminDuration("for", body.For, maxDisable)
	if err != nil {
		return err
	}
	until := now().Add(d)
	if err := tg.info.Store.SetDisabled(r.Context(), tg.realm, tg.user, until); err != nil {
		return a.failed(r, tg, "disable", err)
	}
	a.audit(r, tg, "disable", zap.Time("disabled_until", until))
	return writeAdminJSON(w, http.StatusOK, userAction{Realm: tg.realm, User: tg.user, Action: "disable", DisabledUntil: until})
}

func (a *adminAPI) handleRevoke(w http.ResponseWriter, r *http.Request, tg adminTarget) error {
	if err := a.prepare(r, tg, true, nil); err != nil {
		return err
	}
	ctx := r.Context()
	var ns, nd int
	for _, u := range tg.allNames() {
		n, err := tg.info.Store.DeleteUserSessions(ctx, tg.realm, u)
		if err != nil {
			return a.failed(r, tg, "revoke", err)
		}
		ns += n
		if n, err = tg.info.Store.DeleteUserDevices(ctx, tg.realm, u); err != nil {
			return a.failed(r, tg, "revoke", err)
		}
		nd += n
	}
	a.audit(r, tg, "revoke", zap.Int("sessions_revoked", ns), zap.Int("devices_revoked", nd))
	return writeAdminJSON(w, http.StatusOK, userAction{Realm: tg.realm, User: tg.user, Action: "revoke", SessionsRevoked: &ns, DevicesRevoked: &nd})
}

func (a *adminAPI) handleUnlock(w http.ResponseWriter, r *http.Request, tg adminTarget) error {
	if err := a.prepare(r, tg, true, nil); err != nil {
		return err
	}
	ctx, t := r.Context(), now()
	at, err := userAttempts(ctx, tg.info.Store, tg.realm, tg.user, t)
	if err != nil {
		return a.failed(r, tg, "unlock", err)
	}
	if err := clearUserFailures(ctx, tg.info.Store, tg.realm, tg.user); err != nil {
		return a.failed(r, tg, "unlock", err)
	}
	locked := at.Locked(t)
	a.audit(r, tg, "unlock", zap.Bool("was_locked", locked))
	return writeAdminJSON(w, http.StatusOK, userAction{Realm: tg.realm, User: tg.user, Action: "unlock", WasLocked: &locked})
}

func (a *adminAPI) handleInvite(w http.ResponseWriter, r *http.Request, tg adminTarget) error {
	var body struct {
		ExpiresIn string `json:"expires_in"`
	}
	// An invite is how a user the gate never saw gets enrolled: no 404.
	if err := a.prepare(r, tg, false, &body); err != nil {
		return err
	}
	var ttl time.Duration
	if body.ExpiresIn != "" {
		var err error
		if ttl, err = parseAdminDuration("expires_in", body.ExpiresIn, maxInviteTTL); err != nil {
			return err
		}
	}
	if ttl == 0 && tg.info.InviteTTL <= 0 {
		ttl = DefaultInviteTTL
	}
	link, expires, err := createInvite(r.Context(), tg.realm, tg.info, tg.user, ttl)
	if err != nil {
		return a.failed(r, tg, "invite", err)
	}
	// The link is a credential for enrolling as the user: it goes to the
	// admin and nowhere else (never into the log).
	a.audit(r, tg, "invite", zap.Time("expires", expires))
	return writeAdminJSON(w, http.StatusOK, userAction{Realm: tg.realm, User: tg.user, Action: "invite", URL: link, Expires: expires})
}

// rekeyResult is the answer to a rekey: how many enrollments were sealed
// again under the current secret, how many already were, and which ones
// no listed secret opens (kept as they are, never deleted).
type rekeyResult struct {
	Realm           string   `json:"realm"`
	Rekeyed         int      `json:"rekeyed"`
	AlreadyCurrent  int      `json:"already_current"`
	Unreadable      int      `json:"unreadable"`
	UnreadableUsers []string `json:"unreadable_users,omitempty"`
}

// handleRekey seals every enrollment of the realm with the current
// secret's key, so that previous_secrets is no longer needed to read
// them. Each swap is a compare-and-set: an enrollment reset or re-sealed
// meanwhile is read again, never overwritten.
func (a *adminAPI) handleRekey(w http.ResponseWriter, r *http.Request, realm string, info realmInfo) error {
	tg := adminTarget{realm: realm, info: info}
	if err := a.prepare(r, tg, false, nil); err != nil {
		return err
	}
	if info.ring == nil {
		return apiError(http.StatusServiceUnavailable, fmt.Errorf("realm %q has no keys", realm))
	}
	ctx := r.Context()
	users, err := info.Store.Users(ctx, realm)
	if err != nil {
		return a.failed(r, tg, "rekey", err)
	}
	res := rekeyResult{Realm: realm}
	for _, u := range users {
		outcome, err := rekeyUser(ctx, info, realm, u)
		if err != nil {
			return a.failed(r, tg, "rekey", err)
		}
		switch outcome {
		case rekeyDone:
			res.Rekeyed++
		case rekeyCurrent:
			res.AlreadyCurrent++
		case rekeyUnreadable:
			res.Unreadable++
			res.UnreadableUsers = append(res.UnreadableUsers, u)
		}
	}
	a.audit(r, tg, "rekey", zap.Int("rekeyed", res.Rekeyed), zap.Int("already_current", res.AlreadyCurrent), zap.Int("unreadable", res.Unreadable))
	return writeAdminJSON(w, http.StatusOK, res)
}

// Outcomes of rekeyUser.
const (
	rekeyNone       = iota // no enrollment (a profile only)
	rekeyDone              // sealed again under the current key
	rekeyCurrent           // already under the current key
	rekeyUnreadable        // no listed key opens it
)

// rekeyUser seals user's enrollment under the current key if a previous
// one sealed it.
func rekeyUser(ctx context.Context, info realmInfo, realm, user string) (int, error) {
	// A lost compare-and-set means the enrollment changed meanwhile (a
	// concurrent rekey, a reset or a re-enrollment): read it again. Bounded, in
	// case it keeps changing.
	for range 3 {
		e, err := info.Store.Enrollment(ctx, realm, user)
		if errors.Is(err, sessions.ErrNotFound) {
			return rekeyNone, nil
		}
		if err != nil {
			return 0, err
		}
		secret, current, err := info.ring.Open(realm, user, e.SealedSecret)
		if err != nil {
			return rekeyUnreadable, nil
		}
		if current {
			clear(secret)
			return rekeyCurrent, nil
		}
		sealed, err := info.ring.Current.Seal(realm, user, secret)
		clear(secret)
		if err != nil {
			return 0, err
		}
		swapped, err := info.Store.ReplaceSealedSecret(ctx, realm, user, e.SealedSecret, sealed)
		if errors.Is(err, sessions.ErrNotFound) {
			return rekeyNone, nil
		}
		if err != nil {
			return 0, err
		}
		if swapped {
			return rekeyDone, nil
		}
	}
	return 0, fmt.Errorf("enrollment of %q kept changing while being re-sealed; try again", user)
}

// prepare reads the optional JSON body into body (nil: the action takes
// none, and any body is an error) and, if mustExist, answers 404 for a
// user the store does not know.
func (a *adminAPI) prepare(r *http.Request, tg adminTarget, mustExist bool, body any) error {
	data, err := io.ReadAll(io.LimitReader(r.Body, maxAdminBody+1))
	if err != nil {
		return apiError(http.StatusBadRequest, fmt.Errorf("reading request body: %v", err))
	}
	if len(data) > maxAdminBody {
		return apiError(http.StatusRequestEntityTooLarge, fmt.Errorf("request body larger than %d bytes", maxAdminBody))
	}
	if len(strings.TrimSpace(string(data))) > 0 {
		if body == nil {
			body = &struct{}{}
		}
		dec := json.NewDecoder(strings.NewReader(string(data)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(body); err != nil {
			return apiError(http.StatusBadRequest, fmt.Errorf("decoding request body: %v", err))
		}
	}
	if mustExist {
		return knownUser(r.Context(), tg)
	}
	return nil
}

// parseAdminDuration parses a positive duration (Caddy syntax: 30m, 24h,
// 7d) of at most max.
func parseAdminDuration(field, s string, max time.Duration) (time.Duration, error) {
	d, err := caddy.ParseDuration(s)
	if err != nil {
		return 0, apiError(http.StatusBadRequest, fmt.Errorf("%s: invalid duration %q (use e.g. 30m, 24h or 7d)", field, s))
	}
	if d <= 0 {
		return 0, apiError(http.StatusBadRequest, fmt.Errorf("%s: must be positive, got %q", field, s))
	}
	if d > max {
		return 0, apiError(http.StatusBadRequest, fmt.Errorf("%s: at most %s, got %q", field, formatDays(max), s))
	}
	return d, nil
}

// formatDays writes whole days as "90d", anything else as Go does.
func formatDays(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

// audit logs a successful admin action. Never a token, link or secret.
func (a *adminAPI) audit(r *http.Request, tg adminTarget, action string, extra ...zap.Field) {
	a.logger.Info("two-factor admin_"+action, auditFields("admin_"+action, tg.realm, tg.user, remoteHost(r), "", "success", "", extra)...)
}

// failed logs an admin action the store could not carry out and returns
// the 503 answer.
func (a *adminAPI) failed(r *http.Request, tg adminTarget, action string, err error) error {
	a.logger.Error("two-factor admin_"+action, auditFields("admin_"+action, tg.realm, tg.user, remoteHost(r), "", "error", "store_error", []zap.Field{zap.Error(err)})...)
	return storeError(err)
}

// remoteHost is the admin client's address (empty over a Unix socket).
func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func lookupRealm(realm string) (realmInfo, error) {
	info, ok := runningRealm(realm)
	if !ok || info.Store == nil {
		known := realmNames()
		list := "none: no two_factor handler in the running config"
		if len(known) > 0 {
			list = strings.Join(known, ", ")
		}
		return realmInfo{}, apiError(http.StatusNotFound, fmt.Errorf("realm %q not found (known realms: %s)", realm, list))
	}
	return info, nil
}

func userNotFound(tg adminTarget) error {
	return apiError(http.StatusNotFound, fmt.Errorf("user %q not found in realm %q (the gate has never seen them)", tg.user, tg.realm))
}

func notFound(r *http.Request) error {
	return apiError(http.StatusNotFound, fmt.Errorf("resource not found: %s", r.URL.Path))
}

// allow answers 405, with an Allow header, to any method but method.
func allow(w http.ResponseWriter, r *http.Request, method string) error {
	if r.Method == method {
		return nil
	}
	w.Header().Set("Allow", method)
	return apiError(http.StatusMethodNotAllowed, fmt.Errorf("method not allowed: %s (use %s)", r.Method, method))
}

// storeError is the answer to a store failure: 503, since the admin can
// retry once the store is back. Store errors never contain secrets.
func storeError(err error) error {
	var apiErr caddy.APIError
	if errors.As(err, &apiErr) {
		return err
	}
	return apiError(http.StatusServiceUnavailable, fmt.Errorf("%w: %v", errStore, err))
}

func apiError(status int, err error) error {
	return caddy.APIError{HTTPStatus: status, Err: err}
}

func writeAdminJSON(w http.ResponseWriter, status int, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return apiError(http.StatusInternalServerError, fmt.Errorf("encoding response: %v", err))
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, err = w.Write(append(data, '\n'))
	return err
}

// Interface guards
var (
	_ caddy.AdminRouter = (*adminAPI)(nil)
	_ caddy.Provisioner = (*adminAPI)(nil)
)
