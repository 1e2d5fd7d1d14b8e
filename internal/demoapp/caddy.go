package demoapp

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	caddy.RegisterModule(Handler{})
	httpcaddyfile.RegisterHandlerDirective("legacy_demo_app", parseCaddyfile)
	// A terminal handler, like respond: after two_factor and
	// reverse_proxy-style middleware, no global `order` needed.
	httpcaddyfile.RegisterDirectiveOrder("legacy_demo_app", httpcaddyfile.Before, "respond")
}

// Handler is the http.handlers.legacy_demo_app module: it serves the demo
// legacy application (package demoapp) and never calls the next handler.
//
// It exists ONLY to demonstrate and test caddy-2fa's app_login mode. The
// demo users' passwords (alice / wonderland, bob / builder) are kept in
// plain text in memory; there is no session expiry. Do not use it in
// production.
//
// All handlers in a process with the same options share one App, created
// on first use, so the app's sessions survive a config reload (`caddy
// reload`), as those of a real application behind the proxy would. The
// options mirror demoapp.Options; all default to off.
type Handler struct {
	// FrontController routes every page and form through /index.php?page=…
	// (see Options.FrontController).
	FrontController bool `json:"front_controller,omitempty"`
	// PreLoginSession starts an anonymous session with a CSRF token on
	// every request without one (see Options.PreLoginSession).
	PreLoginSession bool `json:"pre_login_session,omitempty"`
	// KeepSessionIDAtLogin keeps the pre-login session ID at login (see
	// Options.KeepSessionIDAtLogin).
	KeepSessionIDAtLogin bool `json:"keep_session_id_at_login,omitempty"`
	// PHPCookies parses cookies and form bodies the way PHP does (see
	// Options.PHPCookies).
	PHPCookies bool `json:"php_cookies,omitempty"`
	// LastCookieWins reads the last of duplicate session cookies (see
	// Options.LastCookieWins).
	LastCookieWins bool `json:"last_cookie_wins,omitempty"`
	// ArrayLoginForm names the login fields login[username] and
	// login[password] (see Options.ArrayLoginForm).
	ArrayLoginForm bool `json:"array_login_form,omitempty"`
	// FailedLoginStatus is the status of a failed form login; 0 means 200.
	FailedLoginStatus int `json:"failed_login_status,omitempty"`
	// CookieName is the session cookie's name; default DEMOSESSID.
	CookieName string `json:"cookie_name,omitempty"`

	app *App
}

var (
	sharedOnce sync.Once
	sharedApp  *App

	appsMu sync.Mutex
	apps   = map[string]*App{} // by fmt.Sprint of the Options
)

// Shared returns the process-wide App served by every legacy_demo_app
// handler without options, creating it (with the demo users) on first use.
func Shared() *App {
	sharedOnce.Do(func() { sharedApp = New(Options{}) })
	return sharedApp
}

// options returns the handler's Options.
func (h *Handler) options() Options {
	return Options{
		CookieName:           h.CookieName,
		FrontController:      h.FrontController,
		PreLoginSession:      h.PreLoginSession,
		KeepSessionIDAtLogin: h.KeepSessionIDAtLogin,
		FailedLoginStatus:    h.FailedLoginStatus,
		PHPCookies:           h.PHPCookies,
		LastCookieWins:       h.LastCookieWins,
		ArrayLoginForm:       h.ArrayLoginForm,
	}
}

// sharedFor returns the process-wide App for opts (which has no Users).
func sharedFor(opts Options) *App {
	key := fmt.Sprintf("%+v", opts)
	if key == fmt.Sprintf("%+v", Options{}) {
		return Shared()
	}
	appsMu.Lock()
	defer appsMu.Unlock()
	a, ok := apps[key]
	if !ok {
		a = New(opts)
		apps[key] = a
	}
	return a
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.legacy_demo_app",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision attaches the handler to the shared App for its options.
func (h *Handler) Provision(caddy.Context) error {
	h.app = sharedFor(h.options())
	return nil
}

// Validate checks the options.
func (h *Handler) Validate() error {
	if h.FailedLoginStatus != 0 && (h.FailedLoginStatus < 200 || h.FailedLoginStatus > 599) {
		return fmt.Errorf("legacy_demo_app: failed_login_status must be an HTTP status (200-599), got %d", h.FailedLoginStatus)
	}
	if h.KeepSessionIDAtLogin && !h.PreLoginSession {
		return fmt.Errorf("legacy_demo_app: keep_session_id_at_login needs pre_login_session")
	}
	return nil
}

// ServeHTTP serves the demo app. It is a terminal handler: next is
// never called.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	app := h.app
	if app == nil { // not provisioned (tests); still serve the shared app
		app = sharedFor(h.options())
	}
	app.ServeHTTP(w, r)
	return nil
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	legacy_demo_app [<matcher>] {
//		front_controller
//		pre_login_session
//		keep_session_id_at_login
//		php_cookies
//		last_cookie_wins
//		array_login_form
//		failed_login_status <code>
//		cookie_name <name>
//	}
//
// It takes no arguments; the block and every option in it are optional.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume directive name
	if d.NextArg() {
		return d.Errf("legacy_demo_app takes no arguments, got %q", d.Val())
	}
	flags := map[string]*bool{
		"front_controller":         &h.FrontController,
		"pre_login_session":        &h.PreLoginSession,
		"keep_session_id_at_login": &h.KeepSessionIDAtLogin,
		"php_cookies":              &h.PHPCookies,
		"last_cookie_wins":         &h.LastCookieWins,
		"array_login_form":         &h.ArrayLoginForm,
	}
	seen := map[string]bool{}
	for d.NextBlock(0) {
		opt := d.Val()
		if seen[opt] {
			return d.Errf("legacy_demo_app: %s given twice", opt)
		}
		seen[opt] = true
		if f, ok := flags[opt]; ok {
			if d.NextArg() {
				return d.Errf("legacy_demo_app: %s takes no arguments, got %q", opt, d.Val())
			}
			*f = true
			continue
		}
		switch opt {
		case "failed_login_status":
			if !d.NextArg() {
				return d.Errf("legacy_demo_app: failed_login_status needs a status code")
			}
			n, err := strconv.Atoi(d.Val())
			if err != nil || n < 200 || n > 599 {
				return d.Errf("legacy_demo_app: failed_login_status must be an HTTP status (200-599), got %q", d.Val())
			}
			h.FailedLoginStatus = n
		case "cookie_name":
			if !d.NextArg() {
				return d.Errf("legacy_demo_app: cookie_name needs a name")
			}
			h.CookieName = d.Val()
			if strings.ContainsAny(h.CookieName, " ;=,\t\"") {
				return d.Errf("legacy_demo_app: cookie_name %q is not a valid cookie name", h.CookieName)
			}
		default:
			return d.Errf("legacy_demo_app: unrecognized option %q", opt)
		}
		if d.NextArg() {
			return d.Errf("legacy_demo_app: %s takes one argument, got another: %q", opt, d.Val())
		}
	}
	return h.Validate()
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	var dh Handler
	err := dh.UnmarshalCaddyfile(h.Dispenser)
	return &dh, err
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
	_ caddyfile.Unmarshaler       = (*Handler)(nil)
	_ http.Handler                = (*App)(nil)
)
