// Package twofactor registers the caddy-2fa modules with Caddy. Import it
// for its side effects, or build Caddy with
//
//	xcaddy build --with github.com/caddy-2fa/caddy-2fa
package twofactor

import (
	// The http.handlers.two_factor handler and the two_factor directive.
	_ "github.com/caddy-2fa/caddy-2fa/caddymodule"
)
