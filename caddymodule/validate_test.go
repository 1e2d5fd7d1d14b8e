package caddymodule

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/caddy-2fa/caddy-2fa/internal/redistest"
)

// boundary is one value of one option, written once as Caddyfile lines
// in the two_factor block and once as the handler's JSON fields.
type boundary struct {
	caddyfile string // lines inside two_factor { }
	json      string // fields of the handler object, without braces
	// refused is "" for a value both must accept; otherwise the error
	// must name it (e.g. "session_ttl:" or "store redis: db:").
	refused string
	// atLoad marks a value that only exists once Caddy loads the config
	// (a placeholder resolved, a file read): the Caddyfile adapts, and
	// load refuses it. Every other refused value is refused when the
	// Caddyfile is adapted, at the line of the option.
	atLoad bool
}

// The secrets of the table: one byte short of keyring.MinSecretLen, and
// just long enough.
var (
	secret31  = strings.Repeat("s", 31)
	secret32  = strings.Repeat("s", 32)
	secret32b = strings.Repeat("t", 32)
)

// appLoginCaddyfile and appLoginJSON are an app_login block with one more
// line (success, path...) and its JSON.
func appLoginCaddyfile(more string) string {
	return "app_login {\n\t\t\tpath /login\n\t\t\tusername_field user\n\t\t\tsession_cookie SESS\n\t\t\t" + more + "\n\t\t}"
}

func appLoginJSON(more string) string {
	if more != "" {
		more = "," + more
	}
	return `"app_login":{"paths":["/login"],"username_field":"user","session_cookies":["SESS"]` + more + `}`
}

// boundaries are every option's values just inside and just outside each
// of its limits.
var boundaries = []boundary{
	{"session_ttl 0", `"session_ttl":0`, "", false}, // 0 is the default, in JSON and so in the Caddyfile
	{"session_ttl 59s", `"session_ttl":"59s"`, "session_ttl:", false},
	{"session_ttl 1m", `"session_ttl":"1m"`, "", false},
	{"session_ttl -1m", `"session_ttl":"-1m"`, "session_ttl:", false},
	{"idle_timeout 0", `"idle_timeout":0`, "", false},
	{"idle_timeout 1s", `"idle_timeout":"1s"`, "idle_timeout:", false},
	{"idle_timeout 59s", `"idle_timeout":"59s"`, "idle_timeout:", false},
	{"idle_timeout 1m", `"idle_timeout":"1m"`, "", false},
	{"idle_timeout -1m", `"idle_timeout":"-1m"`, "idle_timeout:", false},
	{"trust_device -1s", `"trust_device":"-1s"`, "trust_device:", false},
	{"trust_device 0", `"trust_device":0`, "", false},
	{"trust_device 1s", `"trust_device":"1s"`, "", false},
	{"grace -1s", `"grace":"-1s"`, "grace:", false},
	{"grace 0", `"grace":0`, "", false},
	{"grace 1s", `"grace":"1s"`, "", false},
	{"skew -1", `"skew":-1`, "skew:", false},
	{"skew 0", `"skew":0`, "", false},
	{"skew 3", `"skew":3`, "", false},
	{"skew 4", `"skew":4`, "skew:", false},
	{"recovery_codes -1", `"recovery_codes":-1`, "recovery_codes:", false},
	{"recovery_codes 0", `"recovery_codes":0`, "", false},
	{"recovery_codes 100", `"recovery_codes":100`, "", false},
	{"recovery_codes 101", `"recovery_codes":101`, "recovery_codes:", false},
	{"max_attempts 0 5m 15m", `"max_attempts":{"max":0,"window":"5m","lockout":"15m"}`, "max_attempts:", false},
	{"max_attempts 1 5m 15m", `"max_attempts":{"max":1,"window":"5m","lockout":"15m"}`, "", false},
	{"max_attempts 100 5m 15m", `"max_attempts":{"max":100,"window":"5m","lockout":"15m"}`, "", false},
	{"max_attempts 101 5m 15m", `"max_attempts":{"max":101,"window":"5m","lockout":"15m"}`, "max_attempts:", false},
	{"max_attempts 1000 5m 15m", `"max_attempts":{"max":1000,"window":"5m","lockout":"15m"}`, "max_attempts:", false},
	{"max_attempts 5 0 15m", `"max_attempts":{"max":5,"lockout":"15m"}`, "max_attempts:", false},
	{"max_attempts 5 1s 15m", `"max_attempts":{"max":5,"window":"1s","lockout":"15m"}`, "", false},
	{"max_attempts 5 5m 0", `"max_attempts":{"max":5,"window":"5m"}`, "max_attempts:", false},
	{"max_attempts 5 5m -1s", `"max_attempts":{"max":5,"window":"5m","lockout":"-1s"}`, "max_attempts:", false},
	{"max_attempts 5 5m 1s", `"max_attempts":{"max":5,"window":"5m","lockout":"1s"}`, "", false},
	{"anonymous allow", `"anonymous":"allow"`, "", false},
	{"anonymous maybe", `"anonymous":"maybe"`, "anonymous:", false},
	{"enrollment invite", `"enrollment":"invite"`, "", false},
	{"enrollment closed", `"enrollment":"closed"`, "enrollment:", false},
	{"require users alice", `"require":{"mode":"users","users":["alice"]}`, "", false},
	{"require sometimes", `"require":{"mode":"sometimes"}`, "require", false},
	{"require groups admins", `"require":{"mode":"groups","groups":["admins"]}`, "require groups:", false},
	{"require groups admins\n\t\tgroups {http.request.header.Remote-Groups}", `"require":{"mode":"groups","groups":["admins"]},"groups":"{http.request.header.Remote-Groups}"`, "", false},
	{"exempt users guest*", `"exempt":{"users":["guest*"]}`, "", false},
	{"exempt users [", `"exempt":{"users":["["]}`, "exempt users:", false},
	{"exempt groups guests", `"exempt":{"groups":["guests"]}`, "exempt groups:", false},
	{"otp_header X-OTP", `"otp_header":"X-OTP"`, "", false},
	{`otp_header "X OTP"`, `"otp_header":"X OTP"`, "otp_header:", false},
	{"path_prefix /a", `"path_prefix":"/a"`, "", false},
	{"path_prefix /", `"path_prefix":"/"`, "path_prefix:", false},
	{"path_prefix /2fa/", `"path_prefix":"/2fa/"`, "path_prefix:", false},
	{"secret " + secret31, `"secret":"` + secret31 + `"`, "secret:", false},
	{"secret " + secret32, `"secret":"` + secret32 + `"`, "", false},
	{"secret {env.CADDY_2FA_TEST_UNSET_VARIABLE}", `"secret":"{env.CADDY_2FA_TEST_UNSET_VARIABLE}"`, "secret:", true},
	{"secret " + secret32 + "\n\t\tprevious_secrets " + secret31, `"secret":"` + secret32 + `","previous_secrets":["` + secret31 + `"]`, "previous_secrets:", false},
	{"secret " + secret32 + "\n\t\tprevious_secrets " + secret32b, `"secret":"` + secret32 + `","previous_secrets":["` + secret32b + `"]`, "", false},
	{"previous_secrets " + secret32b, `"previous_secrets":["` + secret32b + `"]`, "previous_secrets:", false},
	{"lang ja", `"lang":"ja"`, "", false},
	{"lang fr", `"lang":"fr"`, "lang:", false},
	{`lang "not a tag!"`, `"lang":"not a tag!"`, "lang:", false},
	{`accent "#767676"`, `"accent":"#767676"`, "", false},
	{`accent "#777777"`, `"accent":"#777777"`, "accent:", false},
	{"logo /static/logo.png", `"logo":"/static/logo.png"`, "", false},
	{"logo logo.png", `"logo":"logo.png"`, "logo:", false},
	{"logo http://cdn.example.com/logo.png", `"logo":"http://cdn.example.com/logo.png"`, "logo:", false},
	{"logo file:/nonexistent/caddy-2fa/logo.png", `"logo":"file:/nonexistent/caddy-2fa/logo.png"`, "logo:", true},
	{"templates /nonexistent/caddy-2fa", `"templates":"/nonexistent/caddy-2fa"`, "templates:", true},
	{"store memcached", `"store":{"backend":"memcached"}`, "store:", false},
	{"store redis redis://127.0.0.1:1", `"store":{"backend":"redis","urls":["redis://127.0.0.1:1"]}`, "secret:", false},
	{"secret " + secret32 + "\n\t\tstore redis redis://127.0.0.1:1 {\n\t\t\tdb -1\n\t\t}", `"secret":"` + secret32 + `","store":{"backend":"redis","urls":["redis://127.0.0.1:1"],"db":-1}`, "store redis: db:", false},
	{"secret " + secret32 + "\n\t\tstore redis redis://127.0.0.1:1 {\n\t\t\tdb 65537\n\t\t}", `"secret":"` + secret32 + `","store":{"backend":"redis","urls":["redis://127.0.0.1:1"],"db":65537}`, "store redis: db:", false},
	{"secret " + secret32 + "\n\t\tstore redis redis://127.0.0.1:1 {\n\t\t\tpool_size -1\n\t\t}", `"secret":"` + secret32 + `","store":{"backend":"redis","urls":["redis://127.0.0.1:1"],"pool_size":-1}`, "store redis: pool_size:", false},
	{"secret " + secret32 + "\n\t\tstore redis redis://127.0.0.1:1 {\n\t\t\tdial_timeout -1s\n\t\t}", `"secret":"` + secret32 + `","store":{"backend":"redis","urls":["redis://127.0.0.1:1"],"dial_timeout":"-1s"}`, "store redis: dial_timeout:", false},
	{"secret " + secret32 + "\n\t\tstore redis redis://127.0.0.1:1 {\n\t\t\taddrs 127.0.0.1:1\n\t\t}", `"secret":"` + secret32 + `","store":{"backend":"redis","urls":["redis://127.0.0.1:1"],"addrs":["127.0.0.1:1"]}`, "store redis:", false},
	{appLoginCaddyfile("success status 99"), appLoginJSON(`"success":{"status":[99]}`), "app_login:", false},
	{appLoginCaddyfile("success status 100"), appLoginJSON(`"success":{"status":[100]}`), "", false},
	{appLoginCaddyfile("success status 599"), appLoginJSON(`"success":{"status":[599]}`), "", false},
	{appLoginCaddyfile("success status 600"), appLoginJSON(`"success":{"status":[600]}`), "app_login:", false},
	{appLoginCaddyfile("path /.2fa/login"), `"app_login":{"paths":["/login","/.2fa/login"],"username_field":"user","session_cookies":["SESS"]}`, "app_login:", false},
	{appLoginCaddyfile("logout_path logout"), appLoginJSON(`"logout_path":"logout"`), "app_login:", false},
	{appLoginCaddyfile("unknown_session maybe"), appLoginJSON(`"unknown_session":"maybe"`), "app_login:", false},
	{"app_login {\n\t\t\tpath /login\n\t\t\tsession_cookie SESS\n\t\t}", `"app_login":{"paths":["/login"],"session_cookies":["SESS"]}`, "app_login:", false},
	{appLoginCaddyfile("unknown_session deny") + "\n\t\tuser {http.request.header.X-User}", appLoginJSON(`"unknown_session":"deny"`) + `,"user":"{http.request.header.X-User}"`, "app_login:", false},
}

// TestValidationAgrees: every option's boundary values are accepted or
// refused alike by a Caddyfile (adapted, then loaded) and by a JSON
// config (loaded), with an error that names the option; a Caddyfile is
// refused when it is adapted, at the option's line, unless the value
// only exists at load.
func TestValidationAgrees(t *testing.T) {
	port := freePort(t)
	t.Cleanup(func() { caddy.Stop() })
	for _, tc := range boundaries {
		t.Run(strings.ReplaceAll(tc.caddyfile, "\n", " "), func(t *testing.T) {
			checkBoundary(t, tc, port, t.TempDir()+"/store.db")
		})
	}
}

// TestValidationAgreesRedis: the Redis store's limits, just inside, with
// a Redis server there.
func TestValidationAgreesRedis(t *testing.T) {
	rs := redistest.Start(t)
	url := "unix://" + rs.Socket
	port := freePort(t)
	t.Cleanup(func() { caddy.Stop() })
	for _, tc := range []boundary{
		{"secret " + secret32 + "\n\t\tstore redis " + url, `"secret":"` + secret32 + `","store":{"backend":"redis","urls":["` + url + `"]}`, "", false},
		{
			"secret " + secret32 + "\n\t\tstore redis " + url + " {\n\t\t\tdb 15\n\t\t\tpool_size 65536\n\t\t\tdial_timeout 1s\n\t\t\tread_timeout 0\n\t\t}",
			`"secret":"` + secret32 + `","store":{"backend":"redis","urls":["` + url + `"],"db":15,"pool_size":65536,"dial_timeout":"1s","read_timeout":0}`, "", false,
		},
		{"secret " + secret32 + "\n\t\tstore redis " + url + " {\n\t\t\tpool_size 65537\n\t\t}", `"secret":"` + secret32 + `","store":{"backend":"redis","urls":["` + url + `"],"pool_size":65537}`, "store redis: pool_size:", false},
	} {
		t.Run(strings.ReplaceAll(tc.caddyfile, "\n", " "), func(t *testing.T) {
			checkBoundary(t, tc, port, "")
		})
	}
}

// checkBoundary loads tc as a Caddyfile and as JSON and compares the
// verdicts. store is the file store's path unless tc names a store.
func checkBoundary(t *testing.T, tc boundary, port int, store string) {
	t.Helper()
	const firstLine = 8 // the line of tc.caddyfile's first line
	storeLine, storeJSON := "", ""
	if !strings.Contains(tc.caddyfile, "store ") {
		storeLine = "\t\tstore file " + store + "\n"
		storeJSON = fmt.Sprintf(`"store":{"path":%q},`, store)
	}
	cf := fmt.Sprintf("{\n\tadmin off\n\tstorage file_system %s\n\tpersist_config off\n}\nhttp://localhost:%d {\n\ttwo_factor {\n\t\t%s\n%s\t}\n\trespond \"ok\"\n}\n",
		caddyStorage, port, tc.caddyfile, storeLine)
	if got := strings.Split(cf, "\n")[firstLine-1]; !strings.HasPrefix(got, "\t\t"+strings.SplitN(tc.caddyfile, "\n", 2)[0]) {
		t.Fatalf("line %d of the Caddyfile is %q", firstLine, got)
	}
	adapted, _, adaptErr := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cf), map[string]any{"filename": "Caddyfile"})
	cfErr := adaptErr
	if adaptErr == nil {
		cfErr = caddy.Load(adapted, true)
	}

	js := fmt.Sprintf(`{"admin":{"disabled":true,"config":{"persist":false}},"storage":{"module":"file_system","root":%q},
		"apps":{"http":{"servers":{"s":{"listen":["127.0.0.1:%d"],"routes":[{"handle":[{"handler":"two_factor",%s%s},{"handler":"static_response","body":"ok"}]}]}}}}}`,
		caddyStorage, port, storeJSON, tc.json)
	if !json.Valid([]byte(js)) {
		t.Fatalf("test JSON is not valid: %s", js)
	}
	jsErr := caddy.Load([]byte(js), true)

	if tc.refused == "" {
		if cfErr != nil || jsErr != nil {
			t.Fatalf("want both accepted\nCaddyfile: %v\nJSON:      %v", cfErr, jsErr)
		}
		return
	}
	if cfErr == nil || jsErr == nil {
		t.Fatalf("want both refused naming %q\nCaddyfile: %v\nJSON:      %v", tc.refused, cfErr, jsErr)
	}
	for _, err := range []error{cfErr, jsErr} {
		if !strings.Contains(err.Error(), tc.refused) {
			t.Errorf("error %q does not name %q", err, tc.refused)
		}
	}
	switch {
	case tc.atLoad && adaptErr != nil:
		t.Errorf("refused when adapted, want refused only at load: %v", adaptErr)
	case !tc.atLoad && adaptErr == nil:
		t.Errorf("Caddyfile adapted and was refused only at load: %v", cfErr)
	case !tc.atLoad:
		// At the line of the option the error names, or at the
		// directive's when the option is missing (secret for a Redis
		// store).
		want := 7
		opt, _, _ := strings.Cut(strings.TrimSuffix(tc.refused, ":"), " ")
		for i, l := range strings.Split(tc.caddyfile, "\n") {
			if f := strings.Fields(l); len(f) > 0 && f[0] == opt {
				want = firstLine + i
				break
			}
		}
		if at := fmt.Sprintf(", at Caddyfile:%d", want); !strings.Contains(adaptErr.Error(), at) {
			t.Errorf("Caddyfile error %q is not reported at line %d", adaptErr, want)
		}
	}
}

// TestProvisionLeavesRulesToValidate: Provision fills in defaults and
// builds, but refuses nothing that is Validate's to refuse; Caddy runs
// Validate after it. A config refused by Validate is still provisioned
// completely (and cleaned up by Caddy).
func TestProvisionLeavesRulesToValidate(t *testing.T) {
	for _, h := range []Handler{
		{SessionTTL: caddy.Duration(1e9)},
		{IdleTimeout: caddy.Duration(1e9)},
		{MaxAttempts: &AttemptLimit{Max: 1000, Window: caddy.Duration(6e10), Lockout: caddy.Duration(6e10)}},
		{Anonymous: "sometimes"},
		{PathPrefix: "/"},
		{PreviousSecrets: []string{secret32b}},
		{AppLogin: &AppLogin{Paths: []string{"/login"}, UsernameField: "user", SessionCookies: []string{"SESS"}}, User: "{http.request.header.X-User}"},
	} {
		ctx, cancel := caddy.NewContext(caddy.Context{Context: t.Context()})
		h.Store = &StoreConfig{Path: t.TempDir() + "/s.db"}
		perr := h.Provision(ctx)
		verr := h.Validate()
		cancel()
		h.Cleanup()
		if perr != nil {
			t.Errorf("Provision refused %+v: %v (a rule of Validate's)", h, perr)
		}
		if verr == nil {
			t.Errorf("Validate accepted %+v", h)
		}
	}
}
