package caddymodule

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/spf13/cobra"
)

// adminSite is a running Caddy like startSite's (basic_auth, two_factor,
// an echoing respond) but with Caddy's admin endpoint on a free port and
// the log in a file. startSite's config switches the admin endpoint off,
// and a second admin option in its global block would be rejected, so
// this builds its own config rather than bending siteOptions.
type adminSite struct {
	*site
	admin string // host:port of the admin endpoint
	log   string // path of the JSON log file
}

// startAdminSite runs realm "default" on one site with gate options, and
// realm "staff" (same store) on another, so realms can be told apart.
func startAdminSite(t *testing.T, gate string) *adminSite {
	t.Helper()
	port, staffPort, adminPort := freePort(t), freePort(t), freePort(t)
	dir := t.TempDir()
	store, logFile := dir+"/store.db", dir+"/caddy.log"
	cfg := fmt.Sprintf(`{
	admin localhost:%d
	storage file_system %s
	persist_config off
	log {
		output file %s
		format json
	}
}
http://localhost:%d {
	basic_auth {
%s	}
	two_factor {
		store file %s
		issuer "Example Corp"
%s
	}
	respond "app user={http.two_factor.user} method={http.two_factor.method} path={http.request.uri}" 200
}
http://localhost:%d {
	basic_auth {
%s	}
	two_factor {
		store file %s
		realm staff
	}
	respond "staff" 200
}
`, adminPort, caddyStorage, logFile, port, bcryptLines, store, gate, staffPort, bcryptLines, store)
	loadCaddyfile(t, cfg)
	t.Cleanup(func() { caddy.Stop() })
	return &adminSite{
		site:  &site{t: t, base: fmt.Sprintf("http://localhost:%d", port), store: store},
		admin: fmt.Sprintf("localhost:%d", adminPort),
		log:   logFile,
	}
}

// call sends a request to the admin API and returns status and body.
func (s *adminSite) call(method, path, body string) (int, string, http.Header) {
	s.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://"+s.admin+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	return resp.StatusCode, string(data), resp.Header
}

// ok sends a request that must succeed and decodes its JSON answer into v.
func (s *adminSite) ok(method, path, body string, v any) {
	s.t.Helper()
	status, data, _ := s.call(method, path, body)
	if status != http.StatusOK {
		s.t.Fatalf("%s %s: status %d, want 200: %s", method, path, status, data)
	}
	if err := json.Unmarshal([]byte(data), v); err != nil {
		s.t.Fatalf("%s %s: answer is not JSON: %v\n%s", method, path, err, data)
	}
}

// fails sends a request that must fail with status and an API error whose
// message contains want.
func (s *adminSite) fails(method, path, body string, status int, want string) http.Header {
	s.t.Helper()
	got, data, h := s.call(method, path, body)
	if got != status {
		s.t.Fatalf("%s %s %s: status %d, want %d: %s", method, path, body, got, status, data)
	}
	var e struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal([]byte(data), &e); err != nil || !strings.Contains(e.Error, want) {
		s.t.Fatalf("%s %s %s: error %q (%v), want it to contain %q", method, path, body, data, err, want)
	}
	return h
}

func (s *adminSite) user(name string) userSummary {
	s.t.Helper()
	var u userSummary
	s.ok("GET", "/two-factor/realms/default/users/"+name, "", &u)
	return u
}

// logEvent returns the fields of the last log line with event, failing if
// there is none; it also fails if the log holds any of secrets.
func (s *adminSite) logEvent(event string, secrets ...string) map[string]any {
	s.t.Helper()
	data, err := os.ReadFile(s.log)
	if err != nil {
		s.t.Fatal(err)
	}
	for _, sec := range secrets {
		if bytes.Contains(data, []byte(sec)) {
			s.t.Fatalf("the log contains a secret (%q)", sec)
		}
	}
	var found map[string]any
	for line := range bytes.SplitSeq(data, []byte("\n")) {
		var m map[string]any
		if json.Unmarshal(line, &m) == nil && m["event"] == event {
			found = m
		}
	}
	if found == nil {
		s.t.Fatalf("no %s line in the log:\n%s", event, trim(string(data)))
	}
	return found
}

func expectLogged(t *testing.T, m map[string]any, want map[string]any) {
	t.Helper()
	for k, v := range want {
		if m[k] != v {
			t.Errorf("log line %v: %s = %v, want %v", m, k, m[k], v)
		}
	}
}

// near fails unless got is within a minute of want.
func near(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if d := got.Sub(want); d < -time.Minute || d > time.Minute {
		t.Errorf("%s = %v, want about %v", what, got, want)
	}
}

// TestAdminListAndStatus: the realms, the user list and one user's status
// report what the gate did; names that need escaping work; unknown users
// and realms are 404.
func TestAdminListAndStatus(t *testing.T) {
	s := startAdminSite(t, "")
	var realms []string
	s.ok("GET", "/two-factor/realms", "", &realms)
	if strings.Join(realms, ",") != "default,staff" {
		t.Errorf("realms = %q, want [default staff]", realms)
	}

	var users []userSummary
	s.ok("GET", "/two-factor/realms/default/users", "", &users)
	if len(users) != 0 {
		t.Fatalf("users before anyone signed in = %+v", users)
	}

	enrolledAt := testNow()
	key, codes := s.browser("alice").enroll()
	// A recovery code forgets trusted devices: use it before trusting one.
	s.browser("alice").challenge(codes[0], false).expectRedirect(t, "/app")
	advance(30 * time.Second)
	s.browser("alice").challenge(totp(key, testNow()), true).expectRedirect(t, "/app")
	// basic_auth cannot carry every name (not one with a colon, say):
	// users with names that need escaping come straight from the store.
	info, _ := runningRealm("default")
	if err := info.Store.RecordVerification(context.Background(), "default", "ümlaut@x", MethodTOTP, testNow()); err != nil {
		t.Fatal(err)
	}

	s.ok("GET", "/two-factor/realms/default/users", "", &users)
	if len(users) != 2 || users[0].User != "alice" || users[1].User != "ümlaut@x" {
		t.Fatalf("users = %+v, want alice and ümlaut@x, sorted", users)
	}
	a := users[0]
	if !a.Enrolled || a.RecoveryCodes != len(codes)-1 || a.LastMethod != MethodTOTP || a.Sessions != 3 || a.TrustedDevices != 1 || a.Failures != 0 {
		t.Errorf("alice = %+v, want enrolled, %d recovery codes, last method totp, 3 sessions, 1 device", a, len(codes)-1)
	}
	near(t, "enrolled_at", a.EnrolledAt, enrolledAt)
	near(t, "last_verified", a.LastVerified, testNow())
	if !a.LockedUntil.IsZero() || !a.DisabledUntil.IsZero() || a.Devices != nil {
		t.Errorf("alice = %+v: not locked, not disabled, and no device list in the list", a)
	}
	// Times the user never had are left out, not sent as year 1.
	if _, body, _ := s.call("GET", "/two-factor/realms/default/users", ""); strings.Contains(body, "0001-01-01") || strings.Contains(body, "locked_until") {
		t.Errorf("zero times in the list: %s", body)
	}

	// One user: the summary plus the trusted devices.
	a = s.user("alice")
	if a.TrustedDevices != 1 || len(a.Devices) != 1 || a.Devices[0].ClientIP != "127.0.0.1" || a.Devices[0].UserAgent == "" {
		t.Fatalf("alice's devices = %+v", a.Devices)
	}
	near(t, "device expires", a.Devices[0].Expires, testNow().Add(DefaultTrustDevice))
	// A name with characters that must be escaped in a URL path.
	if u := s.user("%C3%BCmlaut@x"); u.User != "ümlaut@x" || u.Enrolled || u.LastMethod != MethodTOTP {
		t.Errorf("ümlaut@x = %+v", u)
	}
	// A "/" in a name stays in its segment.
	if err := info.Store.SetDisabled(context.Background(), "default", "a/b", testNow().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if u := s.user("a%2Fb"); u.User != "a/b" || u.Enrolled || u.DisabledUntil.IsZero() {
		t.Errorf("a/b = %+v", u)
	}

	s.fails("GET", "/two-factor/realms/default/users/carol", "", http.StatusNotFound, `user "carol" not found in realm "default"`)
	s.fails("GET", "/two-factor/realms/nope/users", "", http.StatusNotFound, `realm "nope" not found (known realms: default, staff)`)
	s.fails("GET", "/two-factor/realms/nope/users/alice", "", http.StatusNotFound, `realm "nope" not found`)
	// Realms share nothing: alice is unknown to staff.
	s.fails("GET", "/two-factor/realms/staff/users/alice", "", http.StatusNotFound, `user "alice" not found in realm "staff"`)
}

// TestAdminReset: after a reset the user's sessions are gone and the next
// request enrolls afresh; the reset is logged.
func TestAdminReset(t *testing.T) {
	s := startAdminSite(t, "")
	b := s.browser("alice")
	b.enroll()
	b.get("/app").expect(t, http.StatusOK)

	var res userAction
	s.ok("POST", "/two-factor/realms/default/users/alice/reset", "", &res)
	if res.User != "alice" || res.Realm != "default" || res.Action != "reset" {
		t.Errorf("reset answer = %+v", res)
	}
	b.get("/app").expectRedirect(t, "/.2fa/enroll")
	if u := s.user("alice"); u.Enrolled || u.Sessions != 0 || u.RecoveryCodes != 0 || !u.LastVerified.IsZero() {
		t.Errorf("after reset alice = %+v", u)
	}
	b.enroll() // afresh, with a new secret
	expectLogged(t, s.logEvent("admin_reset"), map[string]any{"realm": "default", "user": "alice", "result": "success", "client_ip": "127.0.0.1", "level": "info"})

	s.fails("POST", "/two-factor/realms/default/users/carol/reset", "", http.StatusNotFound, `user "carol" not found`)
	s.fails("POST", "/two-factor/realms/default/users/alice/reset", `{"really":true}`, http.StatusBadRequest, `unknown field "really"`)
}

// TestAdminDisable: a disabled user passes without a code (and the
// application is told why) until the exemption ends by itself; bad
// durations are refused.
func TestAdminDisable(t *testing.T) {
	s := startAdminSite(t, "")
	s.browser("alice").enroll()
	s.browser("alice").get("/app").expectRedirect(t, "/.2fa/challenge")

	var res userAction
	s.ok("POST", "/two-factor/realms/default/users/alice/disable", `{"for":"2h"}`, &res)
	near(t, "disabled_until", res.DisabledUntil, testNow().Add(2*time.Hour))
	s.browser("alice").get("/app").expect(t, http.StatusOK).contains(t, "user=alice method=disabled")
	s.browser("bob").get("/app").expectRedirect(t, "/.2fa/enroll") // only alice
	if u := s.user("alice"); !u.DisabledUntil.Equal(res.DisabledUntil) {
		t.Errorf("status disabled_until = %v, want %v", u.DisabledUntil, res.DisabledUntil)
	}
	m := s.logEvent("admin_disable")
	expectLogged(t, m, map[string]any{"user": "alice", "result": "success"})
	if m["disabled_until"] == nil {
		t.Errorf("admin_disable log line lacks disabled_until: %v", m)
	}

	advance(2*time.Hour + time.Minute)
	s.browser("alice").get("/app").expectRedirect(t, "/.2fa/challenge")
	if u := s.user("alice"); !u.DisabledUntil.IsZero() {
		t.Errorf("an exemption that ended is still reported: %v", u.DisabledUntil)
	}

	// Days are accepted.
	s.ok("POST", "/two-factor/realms/default/users/alice/disable", `{"for":"1d"}`, &res)
	near(t, "disabled_until", res.DisabledUntil, testNow().Add(24*time.Hour))

	p := "/two-factor/realms/default/users/alice/disable"
	s.fails("POST", p, "", http.StatusBadRequest, `missing "for"`)
	s.fails("POST", p, `{}`, http.StatusBadRequest, `missing "for"`)
	s.fails("POST", p, `{"for":"soon"}`, http.StatusBadRequest, `for: invalid duration "soon"`)
	s.fails("POST", p, `{"for":"-1h"}`, http.StatusBadRequest, "must be positive")
	s.fails("POST", p, `{"for":"0s"}`, http.StatusBadRequest, "must be positive")
	s.fails("POST", p, `{"for":"91d"}`, http.StatusBadRequest, "at most 90d")
	s.fails("POST", p, `{"for":24}`, http.StatusBadRequest, "decoding request body")
	s.fails("POST", p, `{"for":"1h"`, http.StatusBadRequest, "decoding request body")
	s.fails("POST", "/two-factor/realms/default/users/carol/disable", `{"for":"1h"}`, http.StatusNotFound, `user "carol" not found`)
	h := s.fails("GET", p, "", http.StatusMethodNotAllowed, "method not allowed: GET")
	if h.Get("Allow") != "POST" {
		t.Errorf("Allow = %q, want POST", h.Get("Allow"))
	}
}

// TestAdminRevoke: revoke ends sessions and trusted devices (the old
// cookies go back to the challenge) and keeps the enrollment.
func TestAdminRevoke(t *testing.T) {
	s := startAdminSite(t, "")
	key, _ := s.browser("alice").enroll()
	advance(30 * time.Second)
	b := s.browser("alice")
	b.challenge(totp(key, testNow()), true).expectRedirect(t, "/app")
	b.get("/app").expect(t, http.StatusOK)
	device := b.cookie("2fa_device")
	bob := s.browser("bob")
	bob.enroll()

	var res userAction
	s.ok("POST", "/two-factor/realms/default/users/alice/revoke", "", &res)
	if res.SessionsRevoked == nil || *res.SessionsRevoked != 2 || res.DevicesRevoked == nil || *res.DevicesRevoked != 1 {
		t.Fatalf("revoke answer = %s", mustJSON(res))
	}
	b.get("/app").expectRedirect(t, "/.2fa/challenge")
	c := s.browser("alice")
	c.setCookie("2fa_device", device)
	c.get("/app").expectRedirect(t, "/.2fa/challenge")
	if u := s.user("alice"); !u.Enrolled || u.Sessions != 0 || u.TrustedDevices != 0 {
		t.Errorf("after revoke alice = %+v", u)
	}
	bob.get("/app").expect(t, http.StatusOK) // only alice's
	advance(30 * time.Second)
	b.challenge(totp(key, testNow()), false).expectRedirect(t, "/app")
	expectLogged(t, s.logEvent("admin_revoke"), map[string]any{"user": "alice", "sessions_revoked": 2.0, "devices_revoked": 1.0})

	s.fails("POST", "/two-factor/realms/default/users/carol/revoke", "", http.StatusNotFound, `user "carol" not found`)
}

// TestAdminUnlock: a locked-out user can try again at once after unlock.
func TestAdminUnlock(t *testing.T) {
	s := startAdminSite(t, "max_attempts 3 5m 10m")
	key, _ := s.browser("alice").enroll()
	advance(30 * time.Second)
	b := s.browser("alice")
	for range 2 {
		b.challenge(wrongCode(key), false).expect(t, http.StatusUnauthorized)
	}
	if u := s.user("alice"); u.Failures != 2 || !u.LockedUntil.IsZero() {
		t.Errorf("after 2 failures alice = %+v", u)
	}
	b.challenge(wrongCode(key), false).expect(t, http.StatusTooManyRequests)
	u := s.user("alice")
	near(t, "locked_until", u.LockedUntil, testNow().Add(10*time.Minute))
	b.challenge(totp(key, testNow()), false).expect(t, http.StatusTooManyRequests)

	var res userAction
	s.ok("POST", "/two-factor/realms/default/users/alice/unlock", "", &res)
	if res.WasLocked == nil || !*res.WasLocked {
		t.Errorf("unlock answer = %s, want was_locked", mustJSON(res))
	}
	if u := s.user("alice"); u.Failures != 0 || !u.LockedUntil.IsZero() {
		t.Errorf("after unlock alice = %+v", u)
	}
	advance(30 * time.Second)
	b.challenge(totp(key, testNow()), false).expectRedirect(t, "/app")
	expectLogged(t, s.logEvent("admin_unlock"), map[string]any{"user": "alice", "was_locked": true})

	s.ok("POST", "/two-factor/realms/default/users/alice/unlock", "", &res)
	if res.WasLocked == nil || *res.WasLocked {
		t.Errorf("second unlock answer = %s, want was_locked false", mustJSON(res))
	}
	s.fails("POST", "/two-factor/realms/default/users/carol/unlock", "", http.StatusNotFound, `user "carol" not found`)
}

var reInviteURL = regexp.MustCompile(`^/\.2fa/invite/[A-Z2-7]{26}$`)

// TestAdminInvite: an invite works for a user the gate never saw, expires
// when asked, and its link is never logged.
func TestAdminInvite(t *testing.T) {
	s := startAdminSite(t, "enrollment invite")
	// No invite, no enrollment.
	s.browser("bob").get("/.2fa/enroll").expect(t, http.StatusForbidden)

	var res userAction
	s.ok("POST", "/two-factor/realms/default/users/bob/invite", `{"expires_in":"2h"}`, &res)
	if !reInviteURL.MatchString(res.URL) {
		t.Fatalf("invite url = %q, want %s", res.URL, reInviteURL)
	}
	near(t, "expires", res.Expires, testNow().Add(2*time.Hour))
	token := strings.TrimPrefix(res.URL, "/.2fa/invite/")
	expectLogged(t, s.logEvent("admin_invite", token), map[string]any{"user": "bob", "realm": "default", "result": "success"})

	b := s.browser("bob")
	b.get(res.URL).expectRedirect(t, "/.2fa/enroll")
	b.get("/.2fa/enroll").expect(t, http.StatusOK).contains(t, "otpauth://")

	// Default validity: the realm's (72h).
	var def userAction
	s.ok("POST", "/two-factor/realms/default/users/carol/invite", "", &def)
	near(t, "default expires", def.Expires, testNow().Add(DefaultInviteTTL))
	if def.URL == res.URL {
		t.Error("two invites share a link")
	}
	// Someone else's invite does not work (and stays usable for its owner).
	s.browser("bob").get(def.URL).expect(t, http.StatusForbidden)

	p := "/two-factor/realms/default/users/bob/invite"
	s.fails("POST", p, `{"expires_in":"later"}`, http.StatusBadRequest, `expires_in: invalid duration "later"`)
	s.fails("POST", p, `{"expires_in":"31d"}`, http.StatusBadRequest, "at most 30d")
	s.fails("POST", "/two-factor/realms/nope/users/bob/invite", "", http.StatusNotFound, `realm "nope" not found`)
}

// TestAdminRouting: unknown paths and actions are 404, wrong methods 405.
func TestAdminRouting(t *testing.T) {
	s := startAdminSite(t, "")
	s.browser("alice").enroll()
	s.fails("GET", "/two-factor/", "", http.StatusNotFound, "resource not found")
	s.fails("GET", "/two-factor/realms/default", "", http.StatusNotFound, "resource not found")
	s.fails("GET", "/two-factor/realms/default/people", "", http.StatusNotFound, "resource not found")
	s.fails("POST", "/two-factor/realms/default/users/alice/delete", "", http.StatusNotFound, "resource not found")
	s.fails("GET", "/two-factor/realms/default/users/alice/reset/x", "", http.StatusNotFound, "resource not found")
	for _, c := range []struct{ method, path, allow string }{
		{"POST", "/two-factor/realms", "GET"},
		{"DELETE", "/two-factor/realms/default/users", "GET"},
		{"POST", "/two-factor/realms/default/users/alice", "GET"},
		{"GET", "/two-factor/realms/default/users/alice/reset", "POST"},
		{"PUT", "/two-factor/realms/default/users/alice/invite", "POST"},
	} {
		if h := s.fails(c.method, c.path, "", http.StatusMethodNotAllowed, "method not allowed"); h.Get("Allow") != c.allow {
			t.Errorf("%s %s: Allow = %q, want %q", c.method, c.path, h.Get("Allow"), c.allow)
		}
	}
	// Nothing was reset by the refused requests.
	if u := s.user("alice"); !u.Enrolled {
		t.Error("a refused request changed alice")
	}
}

// runCLI runs "caddy two-factor <args>" and returns what it printed.
func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := &cobra.Command{Use: "two-factor", SilenceUsage: true} // as under caddy's root command
	twoFactorCobra(root)
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(io.Discard)
	root.SetArgs(args)
	err := root.Execute()
	t.Logf("$ caddy two-factor %s\n%s", strings.Join(args, " "), out.String())
	if err != nil {
		t.Logf("error: %v", err)
	}
	return out.String(), err
}

func cliOK(t *testing.T, args ...string) string {
	t.Helper()
	out, err := runCLI(t, args...)
	if err != nil {
		t.Fatalf("caddy two-factor %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func cliFails(t *testing.T, want string, args ...string) {
	t.Helper()
	if _, err := runCLI(t, args...); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("caddy two-factor %s: error %v, want one containing %q", strings.Join(args, " "), err, want)
	}
}

// TestCLI drives every subcommand against the running admin endpoint.
func TestCLI(t *testing.T) {
	s := startAdminSite(t, "max_attempts 3 5m 10m")
	key, _ := s.browser("alice").enroll()
	advance(30 * time.Second)
	s.browser("alice").challenge(totp(key, testNow()), true).expectRedirect(t, "/app")
	info, _ := runningRealm("default")
	if err := info.Store.RecordVerification(context.Background(), "default", "ümlaut@x", MethodTOTP, testNow()); err != nil {
		t.Fatal(err)
	}
	if err := info.Store.SetDisabled(context.Background(), "default", "a/b", testNow().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	addr := "--address=" + s.admin

	out := cliOK(t, "list", addr)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "USER ") || !strings.Contains(lines[0], "LAST VERIFIED") ||
		!strings.HasPrefix(lines[1], "a/b ") || !strings.HasPrefix(lines[2], "alice ") || !strings.HasPrefix(lines[3], "ümlaut@x ") {
		t.Fatalf("list:\n%s", out)
	}
	if f := strings.Fields(lines[2]); f[len(f)-2] != "2" || f[len(f)-1] != "1" || !strings.Contains(lines[2], " totp ") {
		t.Errorf("alice's row %q: want 2 sessions, 1 device, method totp", lines[2])
	}
	if !strings.Contains(lines[1], " no ") || !strings.Contains(lines[1], "until ") || !strings.Contains(lines[1], "never") {
		t.Errorf("a/b's row %q: want not enrolled, never verified, disabled until", lines[1])
	}

	var users []userSummary
	if err := json.Unmarshal([]byte(cliOK(t, "list", "--json", addr)), &users); err != nil || len(users) != 3 {
		t.Fatalf("list --json: %v, %d users", err, len(users))
	}
	if out := cliOK(t, "list", "--realm", "staff", addr); !strings.Contains(out, `No users in realm "staff"`) {
		t.Errorf("list --realm staff:\n%s", out)
	}

	out = cliOK(t, "status", "alice", addr)
	for _, want := range []string{"User:", "alice", "Enrolled:", "10 recovery codes left", "(totp)", "Trusted devices:", "TRUSTED SINCE", "127.0.0.1", "Go-http-client"} {
		if !strings.Contains(out, want) {
			t.Errorf("status alice lacks %q:\n%s", want, out)
		}
	}
	if out := cliOK(t, "status", "ümlaut@x", addr); !regexp.MustCompile(`(?m)^User: +ümlaut@x$`).MatchString(out) {
		t.Errorf("status ümlaut@x:\n%s", out)
	}
	if out := cliOK(t, "status", "a/b", addr); !strings.Contains(out, "Disabled:") || !strings.Contains(out, "until") {
		t.Errorf("status a/b:\n%s", out)
	}
	var u userSummary
	if err := json.Unmarshal([]byte(cliOK(t, "status", "alice", "--json", addr)), &u); err != nil || u.User != "alice" || len(u.Devices) != 1 {
		t.Errorf("status --json: %v %+v", err, u)
	}

	// Lock alice out, then unlock her.
	b := s.browser("alice")
	for range 3 {
		b.challenge(wrongCode(key), false)
	}
	if out := cliOK(t, "status", "alice", addr); !strings.Contains(out, "Locked:") || !strings.Contains(out, "3 failed attempts") {
		t.Errorf("status of a locked user:\n%s", out)
	}
	if out := cliOK(t, "unlock", "alice", addr); !strings.Contains(out, `Unlocked "alice" (realm "default")`) {
		t.Errorf("unlock:\n%s", out)
	}

	if out := cliOK(t, "disable", "alice", "--for", "24h", addr); !strings.Contains(out, `Two-factor disabled for "alice"`) {
		t.Errorf("disable:\n%s", out)
	}
	s.browser("alice").get("/app").expect(t, http.StatusOK).contains(t, "method=disabled")
	if out := cliOK(t, "revoke", "alice", addr); !strings.Contains(out, "Revoked 2 sessions and 1 trusted device") {
		t.Errorf("revoke:\n%s", out)
	}
	out = cliOK(t, "invite", "bob", "--expires", "2h", addr)
	if m := regexp.MustCompile(`(?m)^    (/\.2fa/invite/\S+)$`).FindStringSubmatch(out); m == nil || !reInviteURL.MatchString(m[1]) {
		t.Errorf("invite:\n%s", out)
	}
	if out := cliOK(t, "reset", "alice", addr); !strings.Contains(out, `Reset "alice" (realm "default")`) {
		t.Errorf("reset:\n%s", out)
	}
	s.browser("alice").get("/app").expectRedirect(t, "/.2fa/enroll")

	// The admin address from a config file, as caddy reload does it.
	cfgFile := t.TempDir() + "/Caddyfile"
	if err := os.WriteFile(cfgFile, []byte("{\n\tadmin "+s.admin+"\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := cliOK(t, "status", "ümlaut@x", "--config", cfgFile, "--adapter", "caddyfile"); !strings.Contains(out, "ümlaut@x") {
		t.Errorf("status with --config:\n%s", out)
	}

	// Errors, each with a message a person can act on.
	cliFails(t, `user "carol" not found in realm "default"`, "status", "carol", addr)
	cliFails(t, `user "carol" not found`, "revoke", "carol", addr)
	cliFails(t, `realm "nope" not found (known realms: default, staff)`, "list", "--realm", "nope", addr)
	cliFails(t, `for: invalid duration "soon"`, "disable", "alice", "--for", "soon", addr)
	cliFails(t, "disable needs --for", "disable", "alice", addr)
	cliFails(t, "status needs exactly one user name", "status", addr)
	cliFails(t, "list takes no arguments", "list", "alice", addr)
	dead := fmt.Sprintf("localhost:%d", freePort(t))
	cliFails(t, "cannot reach Caddy's admin endpoint at "+dead+": is Caddy running?", "list", "--address", dead)
}

// TestCLIExplainsErrors: the errors of caddycmd.AdminAPIRequest (strings)
// become messages for people; this pins the formats it is parsed from.
func TestCLIExplainsErrors(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`caddy responded with error: HTTP 404: {"error":"realm \"x\" not found"}` + "\n", `realm "x" not found`},
		{"caddy responded with error: HTTP 404: 404 page not found\n", "has no two-factor API: is this Caddy built with caddy-2fa?"},
		{"caddy responded with error: HTTP 502: bad gateway", "admin API error: HTTP 502: bad gateway"},
		{"performing request: dial tcp 127.0.0.1:1: connect: connection refused", "cannot reach Caddy's admin endpoint at localhost:1: is Caddy running?"},
		{"invalid admin address x: y", "invalid admin address x: y"},
	} {
		if got := explainAdminError("localhost:1", fmt.Errorf("%s", c.in)).Error(); !strings.Contains(got, c.want) {
			t.Errorf("%q → %q, want it to contain %q", c.in, got, c.want)
		}
	}
	// A route that does not exist on a live admin endpoint (this module
	// missing) gives the same message as pinned above.
	s := startAdminSite(t, "")
	if _, err := adminCall(s.admin, http.MethodGet, "/no-such-api/", nil); err == nil || !strings.Contains(err.Error(), "has no two-factor API") {
		t.Errorf("unknown admin route: %v", err)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
