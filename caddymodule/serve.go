package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-2fa/caddy-2fa/sessions"
)

// now is the gate's clock; tests move it to cross time windows without
// sleeping.
var now = time.Now

// Second-factor methods, as set in {http.two_factor.method} and stored
// with sessions.
const (
	MethodTOTP          = "totp"
	MethodRecovery      = "recovery"
	MethodTrustedDevice = "trusted_device"
	MethodAnonymous     = "anonymous"
)

// ServeHTTP gates the request: it passes it to next only when the user has
// a verified 2FA session (or a trusted device, or a valid code in
// otp_header); otherwise it answers itself.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) (err error) {
	var code string
	if h.OTPHeader != "" {
		// Whichever way the request goes on, a code it carries reaches
		// neither the application nor Caddy's access log.
		var done func(error)
		code, w, done = h.takeOTPHeader(w, r)
		defer func() { done(err) }()
	}
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	// Path-override headers: Symfony, Zend and IIS URL Rewrite route by
	// them, so a request the gate passes for one path (app_login's login
	// page, an exempt user's, a trusted one's) could reach another. Only a
	// proxy in front may set them, and here Caddy is that proxy.
	delete(r.Header, "X-Original-Url")
	delete(r.Header, "X-Rewrite-Url")
	gatePage := r.URL.Path == h.PathPrefix || strings.HasPrefix(r.URL.Path, h.PathPrefix+"/")
	if h.AppLogin != nil {
		return h.serveAppLogin(w, r, next, repl, code, gatePage)
	}
	name := repl.ReplaceAll(h.User, "")
	// The application gets the name as the first factor gave it (that is
	// what it knows); the gate works with the canonical identity, and
	// with the name the user's records are stored under (identity.go).
	_, user, ok, err := h.userName(w, r, name)
	if !ok {
		return err
	}
	repl.Set("http.two_factor.user", name)

	if user == "" {
		if h.Anonymous == "allow" && !gatePage {
			h.stripGateCookies(r)
			repl.Set("http.two_factor.user", "")
			repl.Set("http.two_factor.method", MethodAnonymous)
			return next.ServeHTTP(w, r)
		}
		if ce := h.logger.Check(zapcore.WarnLevel, "no user identity: refusing request (is the user placeholder right, and does an authentication handler run before two_factor?)"); ce != nil {
			ce.Write(zap.String("placeholder", h.User), zap.String("client_ip", clientIP(r)), zap.String("uri", r.URL.Path))
		}
		return h.renderError(w, r, http.StatusForbidden, "no_identity")
	}
	return h.pipeline(w, r, next, repl, subject{user: user}, code, gatePage, now())
}

// subject is what an identity source learned of a request before the
// pipeline runs: who the user is and, with app_login, what state the
// application session is in.
type subject struct {
	// user is the canonical name the user's records are stored under
	// (identity.go); never empty.
	user string
	// app is what app_login made of the request's application session
	// cookies (nil for the user placeholder source). Its bound cookies
	// belong to user; the Cookie header already withholds the others.
	app *appRequest
	// logout is set for a request to app_login's logout_path.
	logout bool
}

// pipeline is the one path every request with a known user takes, from
// either identity source (ServeHTTP for "user <placeholder>",
// serveAppLogin for app_login), in this order:
//
//  1. gate pages (enroll, challenge, settings, ...) are served here;
//  2. a verified 2FA session for the user passes;
//  3. a code in otp_header is checked for the user (serveOTPHeader) and
//     passes or is refused; it is never tried against anyone else;
//  4. a trusted-device cookie for the user starts a session and passes;
//  5. policy (enforce): exempt, disabled, not required and grace pass;
//  6. enforce: everyone else is sent to enrollment or the challenge (303
//     for a browser, 401 JSON otherwise).
//
// Whatever passes goes through passVerified or pass, which strip the
// gate's cookies and the identity header's aliases; the otp_header and
// its aliases were already removed by takeOTPHeader. A store failure at
// any step is a 503, never a pass.
func (h *Handler) pipeline(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, repl *caddy.Replacer, sub subject, code string, gatePage bool, t time.Time) error {
	if gatePage {
		return h.serveGate(w, r, sub.user)
	}
	s, ok, err := h.verifiedSession(w, r, sub.user, t)
	if err != nil {
		return h.unavailable(w, r, err)
	}
	if ok {
		return h.passVerified(w, r, next, repl, sub, s.Method, t)
	}
	if code != "" {
		return h.serveOTPHeader(w, r, next, repl, sub, code, t)
	}
	if h.trust > 0 {
		ok, err := h.trustedDevice(w, r, sub.user, t)
		if err != nil {
			return h.unavailable(w, r, err)
		}
		if ok {
			return h.passVerified(w, r, next, repl, sub, MethodTrustedDevice, t)
		}
	}
	return h.enforce(w, r, next, repl, sub.user, t)
}

// passVerified passes a request whose second factor was verified by
// method (a session, a code, a trusted device). With app_login it first
// marks the request's pending bindings verified and, on the
// application's logout path, ends them and the 2FA session.
func (h *Handler) passVerified(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, repl *caddy.Replacer, sub subject, method string, t time.Time) error {
	if ar := sub.app; ar != nil {
		if err := h.verifyBindings(r, ar, method, t); err != nil {
			return h.unavailable(w, r, err)
		}
		if sub.logout {
			if err := h.endBindings(w, r, ar); err != nil {
				return h.unavailable(w, r, err)
			}
		}
		h.expireUnknown(w, r, ar)
	}
	return h.pass(w, r, next, repl, method)
}

// pass hands the request on with {http.two_factor.method} set and the
// gate's cookies removed. {http.two_factor.user} was set by the identity
// source when it learned the name.
func (h *Handler) pass(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, repl *caddy.Replacer, method string) error {
	h.stripGateCookies(r)
	if h.identityHeader != "" {
		stripHeaderAliases(r.Header, h.identityHeader)
	}
	repl.Set("http.two_factor.method", method)
	return next.ServeHTTP(w, r)
}

// verifiedSession returns the session of the browser's session cookie if
// it is live and was verified for user. A missing, forged, expired or
// other user's session is simply not a session; only a store failure is
// an error. A cookie signed under a previous secret is re-issued on w
// under the current one, for what is left of the session.
func (h *Handler) verifiedSession(w http.ResponseWriter, r *http.Request, user string, t time.Time) (sessions.Session, bool, error) {
	raw, oldKey := h.readCookieKey(r, sessionCookie)
	if raw == nil {
		return sessions.Session{}, false, nil
	}
	id := string(raw)
	s, err := h.store.Session(r.Context(), h.Realm, id)
	if errors.Is(err, sessions.ErrNotFound) {
		return s, false, nil
	}
	if err != nil {
		return s, false, err
	}
	if s.User != user || !t.Before(s.Expires) {
		return s, false, nil
	}
	if idle := time.Duration(h.IdleTimeout); idle > 0 {
		if t.Sub(s.LastSeen) > idle {
			if err := h.store.DeleteSession(r.Context(), h.Realm, id); err != nil {
				return s, false, err
			}
			return s, false, nil
		}
		// Record activity at most about once a minute (or a quarter of
		// the idle timeout, if shorter), never on every request.
		if t.Sub(s.LastSeen) > min(time.Minute, idle/4) {
			if err := h.store.TouchSession(r.Context(), h.Realm, id, t); err != nil && !errors.Is(err, sessions.ErrNotFound) {
				return s, false, err
			}
		}
	}
	if oldKey {
		if err := h.setCookie(w, r, sessionCookie, raw, s.Expires.Sub(t)); err != nil {
			return s, false, err
		}
	}
	return s, true, nil
}

// trustedDevice starts a session if the browser carries a trusted-device
// cookie that the store still knows, for this user, unexpired.
func (h *Handler) trustedDevice(w http.ResponseWriter, r *http.Request, user string, t time.Time) (bool, error) {
	token, oldKey := h.readCookieKey(r, deviceCookie)
	if token == nil {
		return false, nil
	}
	key, d, err := h.device(r.Context(), token)
	if errors.Is(err, sessions.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if d.User != user || !t.Before(d.Expires) {
		return false, nil
	}
	if err := h.store.TouchDevice(r.Context(), h.Realm, key, t); err != nil {
		return false, err
	}
	if oldKey {
		// Signed under a previous secret: the same token, under the
		// current key, for what is left of the trust.
		if err := h.setCookie(w, r, deviceCookie, token, d.Expires.Sub(t)); err != nil {
			return false, err
		}
	}
	if err := h.startSession(w, r, user, MethodTrustedDevice, key, t); err != nil {
		return false, err
	}
	h.audit(r, "verify", user, MethodTrustedDevice, "success", "")
	return true, nil
}

// device returns the trusted device of a device cookie's token and the key
// it is stored under. A device stored under a previous secret's key is
// moved to the current key first (put new, then delete old), so that old
// keys can be retired.
func (h *Handler) device(ctx context.Context, token []byte) (string, sessions.Device, error) {
	keys := h.deviceKeys(token)
	d, err := h.store.Device(ctx, h.Realm, keys[0])
	if !errors.Is(err, sessions.ErrNotFound) {
		return keys[0], d, err
	}
	for _, oldKey := range keys[1:] {
		d, err := h.store.Device(ctx, h.Realm, oldKey)
		if errors.Is(err, sessions.ErrNotFound) {
			continue
		}
		if err != nil {
			return "", d, err
		}
		if err := h.store.PutDevice(ctx, h.Realm, keys[0], d); err != nil {
			return "", d, err
		}
		if err := h.store.DeleteDevice(ctx, h.Realm, oldKey); err != nil {
			return "", d, err
		}
		return keys[0], d, nil
	}
	return keys[0], d, err
}

// deviceKeys are the store keys a device token may be stored under: the
// current key's, then each previous secret's.
func (h *Handler) deviceKeys(token []byte) []string {
	keys := []string{h.keys.DeviceKey(token)}
	for _, k := range h.ring.Previous {
		keys = append(keys, k.DeviceKey(token))
	}
	return keys
}

// deleteDevice forgets the trusted device of token under every key it may
// be stored under.
func (h *Handler) deleteDevice(ctx context.Context, token []byte) error {
	for _, key := range h.deviceKeys(token) {
		if err := h.store.DeleteDevice(ctx, h.Realm, key); err != nil {
			return err
		}
	}
	return nil
}

// replayMarkerMargin is how long the last accepted step is kept beyond
// the moment the step stops verifying. Instances sharing a store write the
// marker's expiry with their own clocks, and an instance whose clock is
// behind accepts a step later than one whose clock is right: with a marker
// kept only for the step's own window, a code accepted on an instance 55
// s fast was accepted again on one with the right clock. Steps only grow,
// so keeping the marker longer refuses nothing that could verify: the
// margin covers clocks up to an hour apart (the gate warns when Redis's
// clock and its own differ by more than maxClockOffset).
const replayMarkerMargin = time.Hour

// redirectToGate sends a browser to the challenge (or, for a user not
// enrolled yet, to enrollment) and tells other clients in JSON where that
// page is.
func (h *Handler) redirectToGate(w http.ResponseWriter, r *http.Request, enrolled bool) error {
	page := "/challenge"
	if !enrolled {
		page = "/enroll"
	}
	target := h.pageURL(page, safeReturn(r.URL.RequestURI(), h.PathPrefix))
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Add("Vary", "Accept")
	if wantsHTML(r) {
		http.Redirect(w, r, target, http.StatusSeeOther)
		return nil
	}
	return writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "two_factor_required", "challenge": target})
}

// pageURL is the URL of a gate page that returns to rd afterwards.
func (h *Handler) pageURL(page, rd string) string {
	if rd == "" || rd == "/" {
		return h.PathPrefix + page
	}
	return h.PathPrefix + page + "?rd=" + url.QueryEscape(rd)
}

// unavailable answers a store failure: 503, never a pass.
func (h *Handler) unavailable(w http.ResponseWriter, r *http.Request, err error) error {
	h.logger.Error("two-factor store unavailable: refusing request", zap.String("realm", h.Realm), zap.String("client_ip", clientIP(r)), zap.Error(err))
	w.Header().Set("Retry-After", "5")
	if !wantsHTML(r) {
		w.Header().Set("Cache-Control", "no-store")
		return writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "two_factor_unavailable"})
	}
	return h.renderError(w, r, http.StatusServiceUnavailable, "unavailable")
}

func (h *Handler) lockedJSON(w http.ResponseWriter, a sessions.Attempts, t time.Time) error {
	secs := int(a.LockedUntil.Sub(t).Seconds()) + 1
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	w.Header().Set("Cache-Control", "no-store")
	return writeJSON(w, http.StatusTooManyRequests, map[string]any{"error": "two_factor_locked", "retry_after": secs})
}

// stripHeaderAliases deletes every header whose name differs from name
// but means the same to a CGI/FastCGI backend or a lenient application:
// the same letters with '_' for '-' (Remote_User for Remote-User), which
// Go does not merge with the canonical one. When the identity comes from a
// header, a client could otherwise smuggle a second identity past the
// handler that set the first (Caddy GHSA-f59h-q822-g45g). Caddy itself
// drops underscore headers unless a server's expected_underscore_headers
// allows them; this keeps the identity safe when it does.
func stripHeaderAliases(hdr http.Header, name string) {
	want := headerAliasKey(name)
	canon := http.CanonicalHeaderKey(name)
	for k := range hdr {
		if k != canon && headerAliasKey(k) == want {
			delete(hdr, k)
		}
	}
}

func headerAliasKey(s string) string {
	return strings.ToLower(strings.ReplaceAll(s, "_", "-"))
}

func wantsHTML(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

func clientIP(r *http.Request) string {
	if ip, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ok && ip != "" {
		return ip
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
