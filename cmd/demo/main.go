// Command demo is a Caddy binary with the standard modules, the two_factor
// gate and the legacy_demo_app handler (a toy application with its own
// password login, see internal/demoapp) built in.
//
// This binary exists only for the README demo:
//
//	go run ./cmd/demo run --config Caddyfile.example
//
// The legacy demo app keeps plain-text passwords in memory and must never
// be deployed. Production builds use cmd/caddy or xcaddy, which do not
// include it.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	// Caddy's standard modules.
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	// The two_factor gate.
	_ "github.com/caddy-2fa/caddy-2fa"

	// The legacy_demo_app handler and directive (demo only).
	_ "github.com/caddy-2fa/caddy-2fa/internal/demoapp"
)

func main() {
	caddycmd.Main()
}
