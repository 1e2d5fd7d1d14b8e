package caddymodule

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func TestUnmarshalCaddyfile(t *testing.T) {
	dur := func(d time.Duration) *caddy.Duration { c := caddy.Duration(d); return &c }
	intp := func(n int) *int { return &n }
	for _, tc := range []struct {
		name  string
		input string
		want  Handler
	}{
		{"no block", `two_factor`, Handler{}},
		{"empty block", "two_factor {\n}", Handler{}},
		{"everything", `two_factor {
			user {http.request.header.Remote-User}
			anonymous allow
			issuer "Example Corp"
			realm staff
			secret {env.TWO_FACTOR_SECRET}
			store file /var/lib/2fa.db
			session_ttl 8h
			idle_timeout 30m
			trust_device 14d
			skew 0
			max_attempts 10 10m 1h
			recovery_codes 0
			otp_header X-OTP
			path_prefix /_mfa
			templates /etc/caddy/2fa
			title "ACME login"
			lang JA
			logo https://cdn.example.com/logo.svg
			accent "#0B6E4F"
		}`, Handler{
			User: "{http.request.header.Remote-User}", Anonymous: "allow", Issuer: "Example Corp", Realm: "staff",
			Secret: "{env.TWO_FACTOR_SECRET}", Store: &StoreConfig{Backend: "file", Path: "/var/lib/2fa.db"},
			SessionTTL: caddy.Duration(8 * time.Hour), IdleTimeout: caddy.Duration(30 * time.Minute),
			TrustDevice: dur(14 * 24 * time.Hour), Skew: intp(0),
			MaxAttempts:   &AttemptLimit{Max: 10, Window: caddy.Duration(10 * time.Minute), Lockout: caddy.Duration(time.Hour)},
			RecoveryCodes: intp(0), OTPHeader: "X-OTP", PathPrefix: "/_mfa", Templates: "/etc/caddy/2fa", Title: "ACME login",
			Lang: "JA", Logo: "https://cdn.example.com/logo.svg", Accent: "#0B6E4F",
		}},
		// The file is read at load, not when the Caddyfile is adapted.
		{"logo file", "two_factor {\n logo file:/etc/caddy/logo.svg\n}", Handler{Logo: "file:/etc/caddy/logo.svg"}},
		{"logo path", "two_factor {\n logo /static/logo.png\n accent \"#fc0\"\n}", Handler{Logo: "/static/logo.png", Accent: "#fc0"}},
		{"lang with a region", "two_factor {\n lang en-GB\n}", Handler{Lang: "en-GB"}},
		// Without the templates option only the built-in catalogs count;
		// with it, the directory may add the language (checked at load).
		{"lang from a templates directory", "two_factor {\n lang de\n templates /etc/caddy/2fa\n}", Handler{Templates: "/etc/caddy/2fa", Lang: "de"}},
		{"store redis url", "two_factor {\n secret {env.S}\n store redis redis://127.0.0.1:6379/2 unix:///run/r.sock\n}", Handler{Secret: "{env.S}", Store: &StoreConfig{Backend: "redis", URLs: []string{"redis://127.0.0.1:6379/2", "unix:///run/r.sock"}}}},
		{"store redis block", `two_factor {
			secret {env.S}
			store redis {
				addrs 10.0.0.1:26379 10.0.0.2:26379
				master_name mymaster
				username gate
				password {env.REDIS_PASSWORD}
				db 3
				tls
				key_prefix app2fa
				pool_size 20
				dial_timeout 2s
				read_timeout 500ms
			}
		}`, Handler{Secret: "{env.S}", Store: &StoreConfig{
			Backend: "redis", URLs: []string{}, Addrs: []string{"10.0.0.1:26379", "10.0.0.2:26379"}, MasterName: "mymaster",
			Username: "gate", Password: "{env.REDIS_PASSWORD}", DB: 3, TLS: true, KeyPrefix: "app2fa", PoolSize: 20,
			DialTimeout: caddy.Duration(2 * time.Second), ReadTimeout: caddy.Duration(500 * time.Millisecond),
		}}},
		{"store file default path", "two_factor {\n store file\n}", Handler{Store: &StoreConfig{Backend: "file"}}},
		{"trust_device 0 disables", "two_factor {\n trust_device 0\n}", Handler{TrustDevice: dur(0)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h Handler
			if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.input)); err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			got, _ := json.Marshal(h)
			want, _ := json.Marshal(tc.want)
			if string(got) != string(want) {
				t.Fatalf("got  %s\nwant %s", got, want)
			}
		})
	}
}

func TestUnmarshalCaddyfileErrors(t *testing.T) {
	for _, tc := range []struct{ input, wantErr string }{
		{"two_factor extra", `two_factor takes no arguments on its first line, got "extra"`},
		{"two_factor {\n bogus 1\n}", `unrecognized two_factor option "bogus"`},
		{"two_factor {\n user\n}", "user: expected exactly one value, got 0"},
		{"two_factor {\n user a b\n}", "user: expected exactly one value, got 2"},
		{"two_factor {\n anonymous maybe\n}", `anonymous: must be deny or allow, got "maybe"`},
		{"two_factor {\n skew 5\n}", `skew: must be a whole number from 0 to 3, got 5`},
		{"two_factor {\n skew -1\n}", `skew: must be a whole number from 0 to 3, got -1`},
		{"two_factor {\n skew one\n}", `skew: expected a whole number, got "one"`},
		{"two_factor {\n session_ttl soon\n}", `session_ttl: invalid duration "soon"`},
		{"two_factor {\n session_ttl 10s\n}", `session_ttl: must be at least 1m, got 10s`},
		{"two_factor {\n idle_timeout 5s\n}", `idle_timeout: must be 0 (none) or at least 1m, got 5s`},
		{"two_factor {\n trust_device -1h\n}", `trust_device: must not be negative, got -1h0m0s`},
		{"two_factor {\n max_attempts 5\n}", "max_attempts: expected <n> <window> <lockout>, e.g. max_attempts 5 5m 15m; got 1 arguments"},
		{"two_factor {\n max_attempts 0 5m 15m\n}", `max_attempts: count must be a whole number from 1 to 100, got 0`},
		{"two_factor {\n max_attempts 5 5x 15m\n}", `max_attempts: invalid window "5x"`},
		{"two_factor {\n max_attempts 5 5m never\n}", `max_attempts: invalid lockout "never"`},
		{"two_factor {\n recovery_codes many\n}", `recovery_codes: expected a whole number, got "many"`},
		{"two_factor {\n recovery_codes 1000\n}", `recovery_codes: must be a whole number from 0 to 100, got 1000`},
		{"two_factor {\n otp_header \"X OTP\"\n}", `otp_header: "X OTP" is not a valid header name`},
		{"two_factor {\n path_prefix 2fa\n}", `path_prefix: must start with / and name a path, got "2fa"`},
		{"two_factor {\n path_prefix /2fa/\n}", `path_prefix: must not end with /, got "/2fa/"`},
		{"two_factor {\n path_prefix /a/../b\n}", `path_prefix: must be a clean path, got "/a/../b"`},
		{"two_factor {\n store\n}", "store: expected a backend"},
		{"two_factor {\n store memcached\n}", `store: unknown backend "memcached" (known: file, redis)`},
		{"two_factor {\n store redis\n}", "store redis: needs a URL"},
		{"two_factor {\n store redis redis://a {\n addrs b:1\n }\n}", "store redis: give URLs or addrs, not both"},
		{"two_factor {\n store redis {\n addrs a:1\n db x\n }\n}", `store redis: db: expected a whole number, got "x"`},
		{"two_factor {\n store redis {\n addrs a:1\n tls yes\n }\n}", `store redis: tls takes no value, got "yes"`},
		{"two_factor {\n store redis {\n addrs a:1\n sentinel x\n }\n}", `store redis: unrecognized option "sentinel"`},
		{"two_factor {\n store redis {\n addrs a:1\n read_timeout soon\n }\n}", `store redis: read_timeout: invalid duration "soon"`},
		{"two_factor {\n store file /x {\n y\n }\n}", "store file: takes no block"},
		{"two_factor {\n store file a b\n}", "store file: takes at most one path, got 2 arguments"},
		{"two_factor {\n issuer a\n issuer b\n}", "issuer: specified more than once"},
		{"two_factor {\n title x {\n  y\n }\n}", "title: takes no block"},
		{"two_factor {\n lang\n}", "lang: expected exactly one value, got 0"},
		{"two_factor {\n lang en ja\n}", "lang: expected exactly one value, got 2"},
		{"two_factor {\n lang \"not a tag!\"\n}", `lang: "not a tag!" is not a language tag such as en or ja`},
		{"two_factor {\n lang fr\n}", `lang: no catalog for "fr" (built in: en, ja; a templates directory can add one in locales/<tag>.json)`},
		{"two_factor {\n lang ja\n lang en\n}", "lang: specified more than once"},
		{"two_factor {\n accent #1756b8\n}", `accent: expected a colour such as "#1756b8", in quotes (# starts a comment in a Caddyfile)`},
		{"two_factor {\n accent blue\n}", `accent: "blue" is not a hex colour such as #1756b8 or #17b`},
		{"two_factor {\n accent \"#777777\"\n}", "accent: #777777 reaches a contrast of only 4.48:1 with white button text and 4.16:1 with dark text; WCAG AA needs 4.5:1"},
		{"two_factor {\n accent \"#fff\" \"#000\"\n}", "accent: expected exactly one value, got 2"},
		{"two_factor {\n accent \"#fff\"\n accent \"#000\"\n}", "accent: specified more than once"},
		{"two_factor {\n logo http://cdn.example.com/logo.png\n}", `logo: "http://cdn.example.com/logo.png": use https://`},
		{"two_factor {\n logo logo.png\n}", `logo: "logo.png" is not an https:// URL, a path on this site (/static/logo.svg) or a file (file:/etc/caddy/logo.svg)`},
		{"two_factor {\n logo\n}", "logo: expected exactly one value, got 0"},
		{"two_factor {\n secret " + rotA + "\n previous_secrets\n}", "previous_secrets: expected at least one old secret"},
		{"two_factor {\n secret " + rotA + "\n previous_secrets too-short\n}", "previous_secrets: value 1 must be at least 32 bytes, got 9"},
		{"two_factor {\n previous_secrets " + rotA + "\n}", "previous_secrets: needs secret to be set explicitly"},
		{"two_factor {\n secret " + rotB + "\n previous_secrets " + rotA + " {\n x\n }\n}", "previous_secrets: takes no block"},
	} {
		t.Run(tc.input, func(t *testing.T) {
			var h Handler
			err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.input))
			if err == nil {
				t.Fatalf("no error, want %q", tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %q, want it to contain %q", err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), "Testfile:") {
				t.Errorf("error %q does not name the file and line", err)
			}
		})
	}
}

// TestLoadErrors: bad JSON config and bad secrets fail at load, naming the
// option (validate_test.go holds the table of every option's limits).
func TestLoadErrors(t *testing.T) {
	for _, tc := range []struct {
		h    Handler
		want string
	}{
		{Handler{Anonymous: "sometimes"}, `anonymous: must be deny or allow, got "sometimes"`},
		{Handler{Secret: "too short"}, "secret: must be at least 32 bytes, got 9"},
		{Handler{Secret: "{env.CADDY_2FA_TEST_UNSET_VARIABLE}"}, `secret: "{env.CADDY_2FA_TEST_UNSET_VARIABLE}" resolved to an empty value`},
		{Handler{PathPrefix: "/"}, "path_prefix: must start with / and name a path"},
		{Handler{Store: &StoreConfig{Backend: "etcd"}}, `store: unknown backend "etcd"`},
		{Handler{Store: &StoreConfig{Backend: "redis", URLs: []string{"redis://127.0.0.1:1"}}}, "secret: required with store redis: every instance sharing the store must derive the same keys"},
		{Handler{Secret: "0123456789abcdef0123456789abcdef", Store: &StoreConfig{Backend: "redis", URLs: []string{"{env.CADDY_2FA_TEST_UNSET_VARIABLE}"}}}, "redis URL 1 resolved to an empty value"},
		{Handler{Secret: "0123456789abcdef0123456789abcdef", Store: &StoreConfig{Backend: "redis", URLs: []string{"http://x"}}}, "store:"},
		{Handler{Templates: "/nonexistent/dir/for/caddy-2fa"}, "templates:"},
		{Handler{Lang: "fr"}, `lang: no catalog for "fr" (have: en, ja; a templates directory can add one in locales/<tag>.json)`},
		{Handler{Lang: "not a tag!"}, `lang: "not a tag!" is not a language tag`},
		{Handler{Logo: "file:/nonexistent/caddy-2fa/logo.png"}, "logo: no such file: /nonexistent/caddy-2fa/logo.png"},
		{Handler{Logo: "ftp://example.com/logo.png"}, `logo: "ftp://example.com/logo.png" is not an https:// URL`},
		{Handler{Accent: "#777"}, "accent: #777777 reaches a contrast of only 4.48:1"},
		{Handler{Accent: "red"}, `accent: "red" is not a hex colour`},
		{Handler{PreviousSecrets: []string{rotA}}, "previous_secrets: needs secret to be set explicitly"},
		{Handler{Secret: rotB, PreviousSecrets: []string{"short"}}, "previous_secrets: value 1 must be at least 32 bytes, got 5"},
		{Handler{Secret: rotB, PreviousSecrets: []string{rotA, "{env.CADDY_2FA_TEST_UNSET_VARIABLE}"}}, `previous_secrets: value 2 ("{env.CADDY_2FA_TEST_UNSET_VARIABLE}") resolved to an empty value`},
		{Handler{Secret: rotB, PreviousSecrets: []string{rotB}}, "previous_secrets: value 1 is the current secret"},
		{Handler{Secret: rotB, PreviousSecrets: []string{rotA, rotA}}, "previous_secrets: value 2 is listed twice"},
	} {
		ctx, cancel := caddy.NewContext(caddy.Context{Context: t.Context()})
		h := tc.h
		if h.Store == nil {
			h.Store = &StoreConfig{Path: t.TempDir() + "/s.db"}
		}
		// As Caddy loads a module: Provision, then Validate.
		err := h.Provision(ctx)
		if err == nil {
			err = h.Validate()
		}
		cancel()
		h.Cleanup()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Provision and Validate(%+v) = %v, want %q", tc.h, err, tc.want)
		}
	}
}

func TestSafeReturn(t *testing.T) {
	for in, want := range map[string]string{
		"/app":                          "/app",
		"/app?x=1&y=%2F":                "/app?x=1&y=%2F",
		"/a/b#frag":                     "/a/b#frag",
		"":                              "/",
		"app":                           "/",
		"https://evil.example/":         "/",
		"//evil.example":                "/",
		"///evil.example":               "/",
		`/\evil.example`:                "/",
		`\\evil.example`:                "/",
		"/%2F/evil.example":             "/",
		"/%2f%2fevil.example":           "/",
		"/%5Cevil.example":              "/",
		"https:evil.example":            "/",
		"javascript:alert(1)":           "/",
		"/\t/evil.example":              "/",
		"/%09/evil.example":             "/",
		"/%0a/evil.example":             "/",
		"/\r\nLocation: http://evil":    "/",
		"/%0d%0aSet-Cookie:x=1":         "/",
		"https://evil.example@app/":     "/",
		"/.2fa/challenge":               "/",
		"/.2FA/enroll":                  "/",
		"/" + strings.Repeat("a", 3000): "/",
	} {
		if got := safeReturn(in, "/.2fa"); got != want {
			t.Errorf("safeReturn(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestCookieSafeIsInjective: two realms never share cookie names.
func TestCookieSafeIsInjective(t *testing.T) {
	seen := map[string]string{}
	for _, realm := range []string{"a.b", "a2eb", "a-2eb", "a-b", "a_b", "staff", "ümlaut", "a b", "a%20b", "-", "--"} {
		c := cookieSafe(realm)
		if other, dup := seen[c]; dup {
			t.Errorf("realms %q and %q share cookie suffix %q", other, realm, c)
		}
		seen[c] = realm
		for _, ch := range c {
			if !(ch == '_' || ch == '-' || ch >= '0' && ch <= '9' || ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z') {
				t.Errorf("cookie suffix %q of %q has %q", c, realm, ch)
			}
		}
	}
}

// TestSyntaxDocListsEveryOption: the syntax block in UnmarshalCaddyfile's
// doc comment names exactly the options the parser's switches accept (in
// the two_factor block, app_login's block and store redis's block).
func TestSyntaxDocListsEveryOption(t *testing.T) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "caddyfile.go", nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	documented, parsed := map[string]bool{}, map[string]bool{}
	for _, decl := range f.Decls {
		fn, ok := decl.(*ast.FuncDecl)
		if !ok {
			continue
		}
		switch fn.Name.Name {
		case "UnmarshalCaddyfile", "parseAppLogin", "parseStore":
		default:
			continue
		}
		if fn.Name.Name == "UnmarshalCaddyfile" {
			// The syntax block is the doc comment's indented code block.
			for line := range strings.SplitSeq(fn.Doc.Text(), "\n") {
				fields := strings.Fields(line)
				if !strings.HasPrefix(line, "\t") || len(fields) == 0 || fields[0] == "two_factor" || strings.HasPrefix(fields[0], "}") {
					continue
				}
				documented[fields[0]] = true
			}
		}
		// Every case of a `switch opt` is an option.
		ast.Inspect(fn.Body, func(n ast.Node) bool {
			sw, ok := n.(*ast.SwitchStmt)
			if !ok {
				return true
			}
			if id, ok := sw.Tag.(*ast.Ident); !ok || id.Name != "opt" {
				return true
			}
			for _, stmt := range sw.Body.List {
				for _, e := range stmt.(*ast.CaseClause).List {
					if lit, ok := e.(*ast.BasicLit); ok {
						name, _ := strconv.Unquote(lit.Value)
						parsed[name] = true
					}
				}
			}
			return true
		})
	}
	if len(parsed) < 30 {
		t.Fatalf("found only %d options in the parser: %v", len(parsed), parsed)
	}
	for name := range parsed {
		if !documented[name] {
			t.Errorf("option %q is parsed but missing from the syntax in the doc comment", name)
		}
	}
	for name := range documented {
		if !parsed[name] {
			t.Errorf("option %q is in the doc comment's syntax but the parser does not know it", name)
		}
	}
}
