package demoapp

import (
	"net/http"
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
// plain text in memory; there is no CSRF protection and no session
// expiry. Do not use it in production.
//
// All handlers in a process share one App, created on first use, so
// the app's sessions survive a config reload (`caddy reload`), as those
// of a real application behind the proxy would.
type Handler struct {
	app *App
}

var (
	sharedOnce sync.Once
	sharedApp  *App
)

// Shared returns the process-wide App served by every legacy_demo_app
// handler, creating it (with the demo users) on first use.
func Shared() *App {
	sharedOnce.Do(func() { sharedApp = New(Options{}) })
	return sharedApp
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.legacy_demo_app",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision attaches the handler to the shared App.
func (h *Handler) Provision(caddy.Context) error {
	h.app = Shared()
	return nil
}

// ServeHTTP serves the demo app. It is a terminal handler: next is
// never called.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	app := h.app
	if app == nil { // not provisioned (tests); still serve the shared app
		app = Shared()
	}
	app.ServeHTTP(w, r)
	return nil
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	legacy_demo_app [<matcher>]
//
// It takes no arguments and no options.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume directive name
	if d.NextArg() {
		return d.Errf("legacy_demo_app takes no arguments, got %q", d.Val())
	}
	if d.NextBlock(0) {
		return d.Errf("legacy_demo_app takes no options, got a block (%q)", d.Val())
	}
	if d.Val() == "}" { // an empty block: "{" then "}" straight away
		return d.Err("legacy_demo_app takes no options, got an empty block")
	}
	return nil
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	var dh Handler
	err := dh.UnmarshalCaddyfile(h.Dispenser)
	return &dh, err
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
	_ caddyfile.Unmarshaler       = (*Handler)(nil)
	_ http.Handler                = (*App)(nil)
)
