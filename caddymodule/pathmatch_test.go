package caddymodule

import (
	"net/http"
	"strings"
	"testing"
)

// pathSpellings are spellings of /app/secret that Caddy's path matcher
// does not read as /app/* but that an upstream may normalise to it
// (Tomcat's ;parameters, IIS's backslashes and trailing dots, double
// decoding), and others that must be gated the same way.
var pathSpellings = []string{
	"/app/secret", "/app;x/secret", "/app./secret", "/app%5csecret", "/app%252fsecret",
	"/app%20/secret", "//app/secret", "/APP/secret", "/app/secret/", "/app/./secret",
	"/app\\secret", "/app%2fsecret", "/app/%2e/secret", "/app/x/../secret", "/%61pp/secret",
	"/app%00/secret", "/app%09/secret", "/app/secret;jsessionid=x", "/app/secret%3f.css", "/./app/secret",
}

// TestAllowListMatcherMissesSpellings documents why README and SECURITY.md
// advise against `two_factor /app/*`: these spellings pass ungated to the
// next handler, which may be an upstream that serves /app/secret for them.
func TestAllowListMatcherMissesSpellings(t *testing.T) {
	s := startSite(t, siteOptions{match: "/app/* "})
	b := s.browser("alice")
	b.accept = ""
	var missed []string
	for _, p := range pathSpellings {
		if r := b.get(p); strings.Contains(r.body, "app user=") {
			missed = append(missed, p)
		}
	}
	for _, p := range []string{"/app;x/secret", "/app./secret", "/app%5csecret", "/app%252fsecret", "/app%20/secret"} {
		if !strings.Contains(strings.Join(missed, " "), p) {
			t.Errorf("%s: gated by two_factor /app/* (Caddy's matcher changed? update README and SECURITY.md)", p)
		}
	}
	t.Logf("passed ungated by two_factor /app/*: %v", missed)
}

// carveOutTricks are spellings that start like a public path but that an
// upstream may normalise to /app/secret: Tomcat's "..;", backslashes,
// double-encoded dots.
var carveOutTricks = []string{
	"/public/../app/secret", "/public/%2e%2e/app/secret", "/public/..;/app/secret", "/public/..%2fapp/secret",
	"/public%2f..%2fapp/secret", "/public/..%5capp/secret", "/public/..\\app/secret", "/public/%252e%252e/app/secret",
	"/PUBLIC/../app/secret", "/public/.%2e/app/secret", "/public;x/../app/secret",
	"/health/../app/secret", "/health;/../app/secret", "/health..;/app/secret", "/health/..;/app/secret", "/health%2f..%2fapp/secret",
}

// TestProtectEverythingGatesEverySpelling: the forms README recommends —
// protect everything, carve out public paths — gate every spelling of a
// protected path, and every carve-out trick either is gated or reaches
// only what Caddy serves itself, never the application; the carve-outs
// still work.
func TestProtectEverythingGatesEverySpelling(t *testing.T) {
	gated := func(t *testing.T, b *browser, p string) {
		t.Helper()
		r := b.get(p)
		if r.StatusCode != http.StatusUnauthorized || !strings.Contains(r.body, "two_factor_required") {
			t.Errorf("%s: %d %s, want the gate's 401", p, r.StatusCode, trim(r.body))
		}
	}
	t.Run("exact carve-outs with not", func(t *testing.T) {
		s := startSite(t, siteOptions{match: "@protected ", extra: "\t@protected not path /health /favicon.ico\n"})
		b := s.browser("alice")
		b.accept = ""
		for _, p := range append(pathSpellings, carveOutTricks...) {
			gated(t, b, p)
		}
		b.get("/health").expect(t, http.StatusOK).contains(t, "path=/health")
		b.get("/favicon.ico").expect(t, http.StatusOK)
	})
	t.Run("public prefix served by Caddy", func(t *testing.T) {
		s := startCustomSite(t, "", "\tbasic_auth {\n"+bcryptLines+"\t}\n"+`	handle /public/* {
		respond "static file" 200
	}
	handle {
		two_factor {
			store file `+t.TempDir()+`/s.db
		}
		respond "app user={http.two_factor.user} path={http.request.uri}" 200
	}`)
		b := s.browser("alice")
		b.accept = ""
		for _, p := range pathSpellings {
			gated(t, b, p)
		}
		for _, p := range carveOutTricks {
			if r := b.get(p); strings.Contains(r.body, "app user=") {
				t.Errorf("%s reached the application ungated: %s", p, trim(r.body))
			}
		}
		b.get("/public/logo.png").expect(t, http.StatusOK).contains(t, "static file")
	})
	t.Run("public prefix forwarded, with the guard", func(t *testing.T) {
		s := startSite(t, siteOptions{match: "@protected ", extra: `	@protected {
		not {
			path /public/*
			not path_regexp ` + "`[\\\\;%]|\\.\\.`" + `
		}
	}
`})
		b := s.browser("alice")
		b.accept = ""
		for _, p := range append(pathSpellings, carveOutTricks...) {
			if strings.HasPrefix(p, "/health") {
				continue
			}
			gated(t, b, p)
		}
		b.get("/public/logo.png").expect(t, http.StatusOK).contains(t, "path=/public/logo.png")
		b.get("/public/css/site.css").expect(t, http.StatusOK)
	})
}
