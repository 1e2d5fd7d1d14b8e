// Package caddymodule is the Caddy side of caddy-2fa: the
// http.handlers.two_factor handler, its Caddyfile directive and the way it
// keeps stores open across config reloads.
package caddymodule

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"golang.org/x/text/language"

	"github.com/caddy-2fa/caddy-2fa/challenge"
	"github.com/caddy-2fa/caddy-2fa/keyring"
	"github.com/caddy-2fa/caddy-2fa/sessions"
	"github.com/caddy-2fa/caddy-2fa/templates"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Defaults of the handler's options.
const (
	DefaultUser          = "{http.auth.user.id}"
	DefaultRealm         = "default"
	DefaultPathPrefix    = "/.2fa"
	DefaultSessionTTL    = 12 * time.Hour
	DefaultTrustDevice   = 30 * 24 * time.Hour
	DefaultSkew          = 1
	DefaultMaxFailures   = 5
	DefaultFailureWindow = 5 * time.Minute
	DefaultLockout       = 15 * time.Minute
	DefaultRecoveryCodes = 10
	DefaultInviteTTL     = 72 * time.Hour

	// pendingEnrollmentTTL is how long a secret shown on the enrollment
	// page can still be confirmed.
	pendingEnrollmentTTL = 15 * time.Minute
	// maxSkew is the largest skew accepted: 3 steps (±90 s) is already
	// more than RFC 6238 §5.2 recommends.
	maxSkew = 3
	// minSessionTTL is the shortest session_ttl and idle_timeout (other
	// than 0, the default), 1m: a session's last use is written about
	// once a minute, so a shorter idle timeout could not be honoured.
	minSessionTTL = time.Minute
	// maxAttemptsMax is the largest max_attempts count: the daily cap of
	// consecutive failures (SECURITY.md §3) is 100 anyway.
	maxAttemptsMax = 100
	// maxRecoveryCodes is the largest recovery_codes.
	maxRecoveryCodes = 100
	// maxRedisNumber bounds store redis db and pool_size.
	maxRedisNumber = 1 << 16
)

// Handler is a second factor in front of whatever comes after it in the
// route. A request passes only once the user has proved possession of an
// authenticator (a TOTP code, a one-time recovery code, or a browser the
// user chose to trust); until then browsers are sent (303) to the gate's
// pages under path_prefix and other clients get 401 with a JSON body
// {"error":"two_factor_required","challenge":"<url>"}.
//
// Who the user is comes from an earlier handler, through the `user`
// placeholder (basic_auth's {http.auth.user.id} by default). A request with
// no identity is refused with 403, never passed, unless `anonymous` is
// "allow": a typo in the placeholder must not switch 2FA off.
//
// The gate's own cookies are removed from the request before it is handed
// on, so the application never sees them. Handlers after this one can use:
//
// | Placeholder | Description |
// |-------------|-------------|
// | `{http.two_factor.user}` | the user the second factor was verified for |
// | `{http.two_factor.method}` | how: `totp`, `recovery`, `trusted_device` (or `anonymous` for an unidentified request let through by `anonymous allow`) |
//
// A store error on the request path never lets a request through: the gate
// answers 503 until the store works again.
type Handler struct {
	// User is the placeholder that gives the signed-in user's name,
	// resolved on every request. Default: {http.auth.user.id}.
	User string `json:"user,omitempty"`

	// AppLogin is identity source B, instead of User: the gate learns
	// the user from the application's own login form and binds the
	// second factor to the application's session cookies (by name and
	// value), which reach the application only under app_login's rule.
	AppLogin *AppLogin `json:"app_login,omitempty"`

	// Anonymous says what happens to a request for which User resolves
	// to nothing: "deny" (default; 403 and a warning in the log naming
	// the placeholder) or "allow" (passed on unverified).
	Anonymous string `json:"anonymous,omitempty"`

	// Require says who must use 2FA: everyone (default), only users who
	// enrolled (optional 2FA), or listed users or groups. Users who
	// enrolled are always challenged.
	Require *Requirement `json:"require,omitempty"`

	// Groups is a placeholder giving the user's groups, comma-separated
	// (e.g. {http.request.header.Remote-Groups} after forward_auth), for
	// require groups and exempt groups.
	Groups string `json:"groups,omitempty"`

	// Exempt users or groups (globs, e.g. guests) never need a second
	// factor; they pass with {http.two_factor.method} = exempt.
	Exempt *Exemption `json:"exempt,omitempty"`

	// Enrollment is "open" (default: a user who must use 2FA enrolls on
	// first login) or "invite" (only through a one-time link from an
	// admin, so someone with a stolen password cannot enroll first).
	Enrollment string `json:"enrollment,omitempty"`

	// Grace lets a user who must enroll press "remind me later" until
	// this long after the gate first saw them. Default: 0 (no grace).
	// Only with enrollment open: under enrollment invite it has no effect
	// (a warning is logged at load), since letting users without an
	// invite pass would let anyone with only a password in.
	Grace caddy.Duration `json:"grace,omitempty"`

	// Issuer is the name authenticator apps show next to the code.
	// Default: the request's host.
	Issuer string `json:"issuer,omitempty"`

	// Realm namespaces users and sessions in the store, so that two
	// gates with different realms share nothing. Default: "default".
	Realm string `json:"realm,omitempty"`

	// Secret (at least 32 bytes; placeholders such as {env.TWO_FACTOR_SECRET}
	// or {file./run/secrets/2fa} are resolved once at load) is what the
	// cookie keys and the encryption key of TOTP secrets at rest are
	// derived from. Every instance that shares a store must have the same
	// secret. Default with the file store: 48 random bytes generated once
	// and kept in Caddy's data directory (two_factor/secret, mode 0600).
	// Changing it signs everyone out and makes stored enrollments
	// unreadable, unless the old value is kept in PreviousSecrets for a
	// while (README: Rotating the secret).
	Secret string `json:"secret,omitempty"`

	// PreviousSecrets are earlier values of Secret (each at least 32
	// bytes, placeholders resolved at load like Secret's) that are still
	// accepted for reading while the secret is rotated: cookies they
	// signed still verify and are re-issued under Secret, trusted devices
	// and app_login bindings stored under them are moved to Secret's keys
	// when next used, TOTP secrets they encrypted still open and are
	// re-encrypted only by "caddy two-factor rekey" (never on a code, so
	// that instances not yet given the new secret can still open them),
	// and recovery codes issued under them keep
	// working (they cannot be re-hashed without the codes; new ones are
	// made under Secret). Everything is written with Secret. Needs Secret
	// to be set explicitly. With several instances, first list the new
	// value here on every one, then swap, then rekey (README, "Rotating
	// the secret"). Remove an old value once session_ttl and
	// trust_device have passed since the switch, rekey reported nothing
	// unreadable, and its recovery codes are no longer needed. Default:
	// none.
	PreviousSecrets []string `json:"previous_secrets,omitempty"`

	// Store is where enrollments and sessions are kept. Default: the
	// embedded file store in Caddy's data directory.
	Store *StoreConfig `json:"store,omitempty"`

	// SessionTTL is the absolute lifetime of a verified 2FA session,
	// however active it is: at least 1m. Default (also for 0): 12h.
	SessionTTL caddy.Duration `json:"session_ttl,omitempty"`

	// IdleTimeout ends a session that has not been used for this long:
	// 0 (no idle timeout, the default) or at least 1m. It is checked on
	// the server; the session's last use is written at most about once a
	// minute.
	IdleTimeout caddy.Duration `json:"idle_timeout,omitempty"`

	// TrustDevice is how long a browser stays trusted after the user
	// ticks "remember this device"; a trusted browser skips the code
	// prompt for that user only. Use never extends it. 0 disables the
	// option. Default: 30d.
	TrustDevice *caddy.Duration `json:"trust_device,omitempty"`

	// Skew is how many 30-second time steps either side of the current
	// one are accepted, for clocks that drift. Default: 1 (RFC 6238's
	// recommendation); at most 3.
	Skew *int `json:"skew,omitempty"`

	// MaxAttempts limits failed codes per user; when given, all three of
	// its fields must be. Default: 5 failures in 5m lock the user out for
	// 15m.
	MaxAttempts *AttemptLimit `json:"max_attempts,omitempty"`

	// RecoveryCodes is how many one-time recovery codes are issued at
	// enrollment, at most 100. 0 disables recovery codes. Default: 10.
	RecoveryCodes *int `json:"recovery_codes,omitempty"`

	// OTPHeader, if set, lets API clients send a current TOTP code in
	// this request header instead of going through the pages. A valid
	// code passes the request and starts a session (its cookie is set on
	// the response); each code is accepted once, and failures count
	// towards MaxAttempts. The header (and its spellings with '_' for
	// '-') is removed from every request the gate handles, so the
	// application never receives a code, and Caddy's access log shows it
	// as REDACTED. With app_login, a code counts for the user the
	// request's application session is bound to (and verifies that
	// binding); without a bound session it is removed and ignored.
	// Default: off.
	OTPHeader string `json:"otp_header,omitempty"`

	// PathPrefix is where the gate's pages live. Default: /.2fa.
	PathPrefix string `json:"path_prefix,omitempty"`

	// Templates is a directory whose files replace the embedded pages of
	// the same name (enroll.html, challenge.html, layout.html, style.css
	// and so on), and whose locales/<tag>.json message catalogs add a
	// language or replace some of a language's words (docs/i18n.md).
	// Everything is checked at load. Default: the embedded pages.
	Templates string `json:"templates,omitempty"`

	// Title is the product name shown on the gate's pages, in every
	// language. Default: "Two-factor authentication" in the page's
	// language (二要素認証 in Japanese).
	Title string `json:"title,omitempty"`

	// Logo is shown in the header of the gate's pages in place of the
	// product name, which becomes its alt text: an https:// URL, a path
	// on the same site (/static/logo.svg), or a local image file written
	// file:/etc/caddy/logo.svg (PNG, SVG, JPEG or WebP, at most 256 KiB),
	// read at load and inlined into the pages. The Content-Security-Policy
	// allows exactly that image: the URL's origin, 'self' for a path, or
	// nothing more for a file. Default: no logo.
	Logo string `json:"logo,omitempty"`

	// Accent is a hex colour (#rgb or #rrggbb; quote it in a Caddyfile,
	// where # starts a comment) for buttons, links and focus rings in
	// light and dark mode. Button text becomes white or near-black,
	// whichever reads better; a colour with less than 4.5:1 contrast
	// (WCAG AA) with both is refused at load. Links and focus rings use
	// the accent darkened or lightened just enough to be readable on each
	// mode's background. Default: the stylesheet's blue.
	Accent string `json:"accent,omitempty"`

	// Lang fixes the language of the gate's pages (a BCP 47 tag such as
	// "en" or "ja") instead of following each browser's Accept-Language
	// header. There must be a catalog for it: one of the embedded ones
	// (en, ja) or one in the templates directory's locales/. Default:
	// the browser's preference among the catalogs, English when none
	// fits (pages then carry Vary: Accept-Language).
	Lang string `json:"lang,omitempty"`

	// store is layered, outermost first (see Provision): the session
	// cache (cachedStore, per handler) → record keys and tags (authStore,
	// recordauth.go) → metrics (instrumentedStore, so only real backend
	// calls are timed, under the keys actually stored) → the file or
	// Redis store shared through the stores usage pool (storeKey).
	store    sessions.Store
	storeKey string
	// storeID names the data the store reaches (storeID), and config
	// identifies the config the handler was provisioned in (its
	// context's Done channel, one per loaded config; nil if none), so
	// that one realm cannot have two stores within a config.
	storeID  string
	config   <-chan struct{}
	keys     *keyring.Keys // ring.Current
	ring     *keyring.Ring
	pages    *templates.Set
	lang     string // the catalog language Lang resolved to; "" follows the browser
	params   challenge.Params
	limit    sessions.Limit
	skew     int
	trust    time.Duration
	recovery int
	cop      *http.CrossOriginProtection
	logger   *zap.Logger
	// accessLog is Caddy's access loggers' namespace, for the lines the
	// gate writes in Caddy's place (accesslog.go).
	accessLog *zap.Logger

	inviteTTL time.Duration
	// identityHeader is the request header the user placeholder reads,
	// if it reads one.
	identityHeader string

	// codecs sign and verify the gate's cookies with the current
	// secret's keys, one codec per cookie kind (cookies.go).
	codecs cookieCodecs
	// prevCodecs are the codecs of PreviousSecrets, in their order, tried
	// when codecs do not verify a cookie.
	prevCodecs []cookieCodecs
	// verified remembers the cookie values these codecs verified in the
	// last second. It is the handler's, so a reload forgets it together
	// with the keys it no longer has.
	verified     *verifiedCookies
	cookieSuffix string

	// names resolves canonical identities to the names their records are
	// stored under (identity.go).
	names *nameIndex
	// requireUsers and exemptUsers are Require.Users and Exempt.Users
	// folded like user names, so that a rule meets every spelling of a
	// name alike.
	requireUsers, exemptUsers []string
}

// AttemptLimit is a failure budget: Max failures within Window lock the
// user out for Lockout. Without it the default is 5 failures in 5m for a
// 15m lockout; with it, every field must be set.
type AttemptLimit struct {
	// Max is the number of failures that triggers a lockout, from 1 to
	// 100 (100 failures a day lock a user for a day whatever it says).
	Max int `json:"max,omitempty"`
	// Window is how long failures are counted; positive.
	Window caddy.Duration `json:"window,omitempty"`
	// Lockout is how long a locked-out user must wait; positive.
	Lockout caddy.Duration `json:"lockout,omitempty"`
}

// StoreConfig chooses and configures the store.
type StoreConfig struct {
	// Backend is "file" (default: the embedded bbolt database, for one
	// machine) or "redis" (several Caddy instances sharing users and
	// sessions).
	Backend string `json:"backend,omitempty"`

	// Path of the file store's database. Default:
	// <Caddy data dir>/two_factor/store.db.
	Path string `json:"path,omitempty"`

	// URLs of the Redis server(s): redis://[user:password@]host:port[/db],
	// rediss:// for TLS, unix:///path/to/socket[?db=N]. Several URLs
	// mean a Redis Cluster. Placeholders such as {env.REDIS_URL} are
	// resolved at load.
	URLs []string `json:"urls,omitempty"`
	// Addrs are host:port addresses, as an alternative to URLs: one is a
	// standalone server, several a Cluster, or Sentinels with MasterName.
	Addrs []string `json:"addrs,omitempty"`
	// MasterName selects Redis Sentinel: the name of the monitored master.
	MasterName string `json:"master_name,omitempty"`
	// Username for Redis ACL authentication.
	Username string `json:"username,omitempty"`
	// Password for Redis; use a placeholder such as {env.REDIS_PASSWORD}.
	// Never logged.
	Password string `json:"password,omitempty"`
	// DB is the Redis database number (standalone and Sentinel only),
	// from 0 to 65536. Default: 0, or the URL's.
	DB int `json:"db,omitempty"`
	// TLS connects to Redis over TLS.
	TLS bool `json:"tls,omitempty"`
	// KeyPrefix starts every Redis key of the gate. Default: "caddy2fa".
	KeyPrefix string `json:"key_prefix,omitempty"`
	// PoolSize is the number of connections per Redis node, at most
	// 65536. Default (also for 0): go-redis's (10 per CPU).
	PoolSize int `json:"pool_size,omitempty"`
	// DialTimeout bounds connecting to Redis. Default (also for 0): 5s.
	DialTimeout caddy.Duration `json:"dial_timeout,omitempty"`
	// ReadTimeout bounds each Redis command. Default (also for 0): 3s.
	// Every store call also has an overall deadline, so an unresponsive
	// Redis gives a 503, not a hung request.
	ReadTimeout caddy.Duration `json:"read_timeout,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.two_factor",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision fills in defaults, derives the keys, opens the store and loads
// the pages. It does not call Validate (Caddy calls Validate after it, and
// cleans up if Validate refuses); it fails only where something cannot be
// built: store options that do not validate, a placeholder that resolves
// to a secret too short or to nothing, a templates directory or logo file
// that cannot be read, a language none of the catalogs serves, a store
// that cannot be opened.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	h.accessLog = ctx.Logger(accessLogNamespace{})
	if h.AppLogin != nil && h.AppLogin.UnknownSession == "" {
		h.AppLogin.UnknownSession = "relogin"
	}
	if h.AppLogin != nil {
		h.AppLogin.provision()
	}
	if h.User == "" && h.AppLogin == nil {
		h.User = DefaultUser
	}
	if h.Anonymous == "" && h.AppLogin == nil {
		h.Anonymous = "deny"
	}
	if h.Realm == "" {
		h.Realm = DefaultRealm
	}
	if h.PathPrefix == "" {
		h.PathPrefix = DefaultPathPrefix
	}
	if h.SessionTTL == 0 {
		h.SessionTTL = caddy.Duration(DefaultSessionTTL)
	}
	h.trust = DefaultTrustDevice
	if h.TrustDevice != nil {
		h.trust = time.Duration(*h.TrustDevice)
	}
	h.skew = DefaultSkew
	if h.Skew != nil {
		h.skew = *h.Skew
	}
	h.recovery = DefaultRecoveryCodes
	if h.RecoveryCodes != nil {
		h.recovery = *h.RecoveryCodes
	}
	h.limit = sessions.Limit{Max: DefaultMaxFailures, Window: DefaultFailureWindow, Lockout: DefaultLockout}
	if h.MaxAttempts != nil {
		h.limit = sessions.Limit{Max: h.MaxAttempts.Max, Window: time.Duration(h.MaxAttempts.Window), Lockout: time.Duration(h.MaxAttempts.Lockout)}
	}
	if h.Store == nil {
		h.Store = &StoreConfig{}
	}
	if h.Store.Backend == "" {
		h.Store.Backend = "file"
	}
	// The store's options go to the store's constructors (go-redis
	// panics on a negative pool size), so they are checked before the
	// store is built: the one rule Provision applies, and the same
	// function Validate calls.
	if err := h.Store.validate(); err != nil {
		return err
	}
	h.inviteTTL = DefaultInviteTTL
	if name, ok := strings.CutPrefix(h.User, "{http.request.header."); ok && strings.HasSuffix(name, "}") && !strings.ContainsAny(name[:len(name)-1], "{}") {
		h.identityHeader = name[:len(name)-1]
	}
	h.params = challenge.DefaultParams()
	if h.Require != nil {
		h.requireUsers = foldGlobs(h.Require.Users)
	}
	if h.Exempt != nil {
		h.exemptUsers = foldGlobs(h.Exempt.Users)
	}
	if h.Realm != DefaultRealm {
		h.cookieSuffix = "_" + cookieSafe(h.Realm)
	}
	if h.Grace > 0 && h.Enrollment == "invite" {
		h.logger.Warn("grace has no effect with enrollment invite: users without an invite are not let through, and no page offers \"remind me later\"", zap.Duration("grace", time.Duration(h.Grace)))
	}

	repl := caddy.NewReplacer()
	secret := repl.ReplaceKnown(h.Secret, "")
	var err error
	switch {
	case secret != "":
		if len(secret) < keyring.MinSecretLen {
			return fmt.Errorf("secret: must be at least %d bytes, got %d", keyring.MinSecretLen, len(secret))
		}
		h.keys, err = keyring.Derive([]byte(secret))
	case h.Secret != "":
		return fmt.Errorf("secret: %q resolved to an empty value", h.Secret)
	case h.Store.Backend == "redis":
		// Validate's rule too; without a secret there are no keys to
		// build the rest with.
		return errSecretRequired(h.Store.Backend)
	default:
		var raw []byte
		raw, err = keyring.LoadOrCreateSecret(filepath.Join(caddy.AppDataDir(), "two_factor", "secret"))
		if err == nil {
			h.keys, err = keyring.Derive(raw)
		}
	}
	if err != nil {
		return fmt.Errorf("secret: %v", err)
	}
	h.ring = &keyring.Ring{Current: h.keys}
	if err := h.provisionPreviousSecrets(repl, secret); err != nil {
		return err
	}

	h.codecs = newCookieCodecs(h.keys, time.Duration(h.SessionTTL), h.trust)
	h.prevCodecs = nil
	for _, k := range h.ring.Previous {
		h.prevCodecs = append(h.prevCodecs, newCookieCodecs(k, time.Duration(h.SessionTTL), h.trust))
	}
	h.verified = newVerifiedCookies()
	h.cop = http.NewCrossOriginProtection()

	if h.pages, err = templates.Load(templates.Options{Dir: h.Templates, Logo: h.Logo, Accent: h.Accent}); err != nil {
		return err // names the option: templates, logo or accent
	}
	if _, err := language.Parse(h.Lang); err == nil {
		// A tag that does not parse is Validate's to refuse.
		var ok bool
		if h.lang, ok = h.pages.Language(h.Lang); !ok {
			return fmt.Errorf("lang: no catalog for %q (have: %s; a templates directory can add one in locales/<tag>.json)", h.Lang, strings.Join(h.pages.Languages(), ", "))
		}
	}

	h.store, h.storeKey, err = openStore(h.Store, h.logger)
	if err != nil {
		return fmt.Errorf("store: %v", err)
	}
	// The cache sits above the record checks, so that a cached session
	// was checked when it was read and the hot path pays nothing more.
	h.store = newCachedStore(newAuthStore(instrumentStore(h.store), h.ring, h.logger))
	if h.storeID, err = storeID(h.Store); err != nil {
		return fmt.Errorf("store: %v", err)
	}
	h.config = ctx.Done()
	h.names = newNameIndex(h.store, h.Realm)
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	if err := h.names.load(lctx, h.logger); err != nil {
		// Tried again on the first request that needs it; until then
		// every identified request is refused (503), never passed.
		h.logger.Warn("could not read the users list at start-up; will retry", zap.String("realm", h.Realm), zap.Error(err))
	}
	cancel()
	registerMetrics(ctx)
	return registerRealm(h)
}

// provisionPreviousSecrets resolves PreviousSecrets and derives their keys
// into h.ring. secret is the resolved current secret.
func (h *Handler) provisionPreviousSecrets(repl *caddy.Replacer, secret string) error {
	if len(h.PreviousSecrets) == 0 {
		return nil
	}
	seen := map[string]bool{secret: true}
	for i, p := range h.PreviousSecrets {
		v := repl.ReplaceKnown(p, "")
		switch {
		case v == "":
			return fmt.Errorf("previous_secrets: value %d (%q) resolved to an empty value", i+1, p)
		case len(v) < keyring.MinSecretLen:
			return fmt.Errorf("previous_secrets: value %d must be at least %d bytes, got %d", i+1, keyring.MinSecretLen, len(v))
		case v == secret:
			return fmt.Errorf("previous_secrets: value %d is the current secret (list only the old values)", i+1)
		case seen[v]:
			return fmt.Errorf("previous_secrets: value %d is listed twice", i+1)
		}
		seen[v] = true
		k, err := keyring.Derive([]byte(v))
		if err != nil {
			return fmt.Errorf("previous_secrets: value %d: %v", i+1, err)
		}
		h.ring.Previous = append(h.ring.Previous, k)
	}
	return nil
}

// Validate checks the configuration. It holds every rule, for JSON
// configs and Caddyfiles alike (UnmarshalCaddyfile runs it after parsing,
// so that a Caddyfile is refused at adapt time, at the option's line).
// It accepts a configuration before Provision has filled in defaults
// (zero values stand for them) as well as after. Values that exist only
// once placeholders are resolved or files are read (the secrets'
// lengths, the templates directory, a logo file, a catalog in the
// templates directory) are checked by Provision, which resolves them.
func (h *Handler) Validate() error {
	// Identity.
	if h.AppLogin != nil {
		if h.User != "" {
			return fmt.Errorf("app_login: cannot be combined with user (the user comes from the application's login)")
		}
		if h.Anonymous != "" {
			return fmt.Errorf("app_login: cannot be combined with anonymous (requests without the application's cookie pass anyway)")
		}
		if err := h.AppLogin.validate(); err != nil {
			return err
		}
		prefix := cmp.Or(h.PathPrefix, DefaultPathPrefix)
		for _, p := range h.AppLogin.loginPaths() {
			if matchPath(p, prefix) || strings.HasPrefix(p, prefix+"/") {
				return fmt.Errorf("app_login: path %q overlaps path_prefix %q", p, prefix)
			}
		}
	}
	switch h.Anonymous {
	case "", "deny", "allow":
	default:
		return fmt.Errorf("anonymous: must be deny or allow, got %q", h.Anonymous)
	}

	// Policy.
	if h.Require != nil {
		if err := h.Require.validate(); err != nil {
			return err
		}
		if h.Require.Mode == "groups" && h.Groups == "" {
			return fmt.Errorf("require groups: needs the groups option (a placeholder with the user's groups)")
		}
	}
	if h.Exempt != nil {
		if err := validGlobs("exempt users", h.Exempt.Users); err != nil {
			return err
		}
		if err := validGlobs("exempt groups", h.Exempt.Groups); err != nil {
			return err
		}
		if len(h.Exempt.Groups) > 0 && h.Groups == "" {
			return fmt.Errorf("exempt groups: needs the groups option (a placeholder with the user's groups)")
		}
	}
	switch h.Enrollment {
	case "", "open", "invite":
	default:
		return fmt.Errorf("enrollment: must be open or invite, got %q", h.Enrollment)
	}
	if h.Grace < 0 {
		return fmt.Errorf("grace: must not be negative, got %v", time.Duration(h.Grace))
	}

	// Keys. Placeholders are resolved, and their values checked, by
	// Provision.
	if h.Secret != "" && !strings.Contains(h.Secret, "{") && len(h.Secret) < keyring.MinSecretLen {
		return fmt.Errorf("secret: must be at least %d bytes, got %d", keyring.MinSecretLen, len(h.Secret))
	}
	if len(h.PreviousSecrets) > 0 && h.Secret == "" {
		return fmt.Errorf("previous_secrets: needs secret to be set explicitly (the new value; the generated secret cannot be rotated this way)")
	}
	for i, v := range h.PreviousSecrets {
		if !strings.Contains(v, "{") && len(v) < keyring.MinSecretLen {
			return fmt.Errorf("previous_secrets: value %d must be at least %d bytes, got %d", i+1, keyring.MinSecretLen, len(v))
		}
	}

	// Store.
	if err := h.Store.validate(); err != nil {
		return err
	}
	if h.Store != nil && h.Store.Backend == "redis" && h.Secret == "" {
		return errSecretRequired(h.Store.Backend)
	}

	// Lifetimes and limits. A zero duration is the default (JSON cannot
	// tell it from an omitted one, so neither can the Caddyfile).
	if h.SessionTTL != 0 && time.Duration(h.SessionTTL) < minSessionTTL {
		return fmt.Errorf("session_ttl: must be at least 1m, got %v", time.Duration(h.SessionTTL))
	}
	if h.IdleTimeout != 0 && time.Duration(h.IdleTimeout) < minSessionTTL {
		return fmt.Errorf("idle_timeout: must be 0 (none) or at least 1m, got %v", time.Duration(h.IdleTimeout))
	}
	if h.TrustDevice != nil && *h.TrustDevice < 0 {
		return fmt.Errorf("trust_device: must not be negative, got %v", time.Duration(*h.TrustDevice))
	}
	if h.Skew != nil && (*h.Skew < 0 || *h.Skew > maxSkew) {
		return fmt.Errorf("skew: must be a whole number from 0 to %d, got %d", maxSkew, *h.Skew)
	}
	if m := h.MaxAttempts; m != nil {
		if m.Max < 1 || m.Max > maxAttemptsMax {
			return fmt.Errorf("max_attempts: count must be a whole number from 1 to %d, got %d", maxAttemptsMax, m.Max)
		}
		if m.Window <= 0 {
			return fmt.Errorf("max_attempts: window must be positive, got %v", time.Duration(m.Window))
		}
		if m.Lockout <= 0 {
			return fmt.Errorf("max_attempts: lockout must be positive, got %v", time.Duration(m.Lockout))
		}
	}
	if h.RecoveryCodes != nil && (*h.RecoveryCodes < 0 || *h.RecoveryCodes > maxRecoveryCodes) {
		return fmt.Errorf("recovery_codes: must be a whole number from 0 to %d, got %d", maxRecoveryCodes, *h.RecoveryCodes)
	}

	// Requests and pages.
	if h.OTPHeader != "" && !validHeaderName(h.OTPHeader) {
		return fmt.Errorf("otp_header: %q is not a valid header name", h.OTPHeader)
	}
	if h.PathPrefix != "" {
		if err := validatePathPrefix(h.PathPrefix); err != nil {
			return fmt.Errorf("path_prefix: %v", err)
		}
	}
	if strings.ContainsAny(h.Realm, "\x00\r\n") {
		return fmt.Errorf("realm: %q contains control characters", h.Realm)
	}
	if err := templates.CheckLogo(h.Logo); err != nil {
		return err // names the option
	}
	if err := templates.CheckAccent(h.Accent); err != nil {
		return err // names the option
	}
	if h.Lang != "" {
		if _, err := language.Parse(h.Lang); err != nil {
			return fmt.Errorf("lang: %q is not a language tag such as en or ja", h.Lang)
		}
		// A templates directory may add the language; Provision checks
		// it once the directory is read.
		if _, ok := templates.EmbeddedLanguage(h.Lang); !ok && h.Templates == "" {
			return fmt.Errorf("lang: no catalog for %q (built in: %s; a templates directory can add one in locales/<tag>.json)", h.Lang, strings.Join(templates.EmbeddedLanguages(), ", "))
		}
	}
	return nil
}

// validate checks the store options; a nil StoreConfig is the default
// file store.
func (sc *StoreConfig) validate() error {
	if sc == nil {
		return nil
	}
	switch sc.Backend {
	case "", "file":
	case "redis":
		if len(sc.URLs) == 0 && len(sc.Addrs) == 0 {
			return fmt.Errorf("store redis: needs a URL (store redis redis://host:6379) or addrs")
		}
		if len(sc.URLs) > 0 && len(sc.Addrs) > 0 {
			return fmt.Errorf("store redis: give URLs or addrs, not both")
		}
		if sc.DB < 0 || sc.DB > maxRedisNumber {
			return fmt.Errorf("store redis: db: must be a whole number from 0 to %d, got %d", maxRedisNumber, sc.DB)
		}
		if sc.PoolSize < 0 || sc.PoolSize > maxRedisNumber {
			return fmt.Errorf("store redis: pool_size: must be a whole number from 0 to %d, got %d", maxRedisNumber, sc.PoolSize)
		}
		if sc.DialTimeout < 0 {
			return fmt.Errorf("store redis: dial_timeout: must not be negative, got %v", time.Duration(sc.DialTimeout))
		}
		if sc.ReadTimeout < 0 {
			return fmt.Errorf("store redis: read_timeout: must not be negative, got %v", time.Duration(sc.ReadTimeout))
		}
	default:
		return fmt.Errorf("store: unknown backend %q (known: file, redis)", sc.Backend)
	}
	return nil
}

// errSecretRequired is the error for a store other than the file store
// without an explicit secret.
func errSecretRequired(backend string) error {
	return fmt.Errorf("secret: required with store %s: every instance sharing the store must derive the same keys (set the same secret everywhere, e.g. secret {env.TWO_FACTOR_SECRET})", backend)
}

// Cleanup releases the store.
func (h *Handler) Cleanup() error {
	unregisterRealm(h)
	if h.storeKey != "" {
		_, err := stores.Delete(h.storeKey)
		return err
	}
	return nil
}

func validatePathPrefix(p string) error {
	if !strings.HasPrefix(p, "/") || len(p) < 2 {
		return fmt.Errorf("must start with / and name a path, got %q", p)
	}
	if strings.HasSuffix(p, "/") {
		return fmt.Errorf("must not end with /, got %q", p)
	}
	for _, r := range p {
		if r <= ' ' || r == 0x7f || strings.ContainsRune(`\?#%"<>`, r) {
			return fmt.Errorf("contains a character not allowed in a plain path: %q", p)
		}
	}
	if strings.Contains(p, "//") || strings.Contains(p, "/./") || strings.Contains(p, "/../") || strings.HasSuffix(p, "/..") || strings.HasSuffix(p, "/.") {
		return fmt.Errorf("must be a clean path, got %q", p)
	}
	return nil
}

func validHeaderName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '-' || c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return s != ""
}

// cookieSafe encodes a realm name for cookie names, injectively: letters,
// digits and '_' stay, every other byte becomes '-' and two hex digits, so
// two realms never share cookie names.
func cookieSafe(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "-%02x", c)
		}
	}
	return b.String()
}

// errStore marks errors from the store, which are answered with 503.
var errStore = errors.New("store unavailable")

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
