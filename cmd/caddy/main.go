// Command caddy is a Caddy binary with the standard modules and the
// two_factor gate built in. Build it with `go build ./cmd/caddy`.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	// Caddy's standard modules.
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	// The two_factor gate.
	_ "github.com/caddy-2fa/caddy-2fa"
)

func main() {
	caddycmd.Main()
}
