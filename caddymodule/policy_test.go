package caddymodule

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// TestPolicyMatrix: who must use 2FA under each require/exempt/groups
// setting, and what {http.two_factor.method} says for those who pass
// without it.
func TestPolicyMatrix(t *testing.T) {
	groups := func(g string) http.Header { return http.Header{"X-Groups": {g}} }
	for _, tc := range []struct {
		name   string
		gate   string
		user   string
		header http.Header
		want   string // "enroll" (must enroll) or the method it passes with
	}{
		{"default requires everyone", "", "bob", nil, "enroll"},
		{"require all", "require all", "bob", nil, "enroll"},
		{"require enrolled: optional", "require enrolled", "bob", nil, "not_required"},
		{"require users: listed", "require users al*", "alice", nil, "enroll"},
		{"require users: not listed", "require users al*", "bob", nil, "not_required"},
		{"require groups: member", "require groups admins\n\t\tgroups {http.request.header.X-Groups}", "bob", groups("staff, admins"), "enroll"},
		{"require groups: not member", "require groups admins\n\t\tgroups {http.request.header.X-Groups}", "bob", groups("staff"), "not_required"},
		{"require groups: no groups", "require groups admins\n\t\tgroups {http.request.header.X-Groups}", "bob", nil, "not_required"},
		{"exempt user glob", "exempt users b?b guest*", "bob", nil, "exempt"},
		{"exempt user not matching", "exempt users guest*", "bob", nil, "enroll"},
		{"exempt group", "exempt groups guests\n\t\tgroups {http.request.header.X-Groups}", "bob", groups("guests"), "exempt"},
		{"exempt wins over require", "require users bob\n\t\texempt users bob", "bob", nil, "exempt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startSite(t, siteOptions{gate: tc.gate})
			b := s.browser(tc.user)
			r := b.do("GET", "/app", nil, tc.header)
			if tc.want == "enroll" {
				r.expectRedirect(t, "/.2fa/enroll")
				return
			}
			r.expect(t, http.StatusOK).contains(t, "user="+tc.user+" method="+tc.want)
		})
	}
}

// TestOptionalTwoFactorOptIn: with require enrolled, a user who enrolls of
// their own accord is challenged from then on.
func TestOptionalTwoFactorOptIn(t *testing.T) {
	s := startSite(t, siteOptions{gate: "require enrolled"})
	b := s.browser("alice")
	b.get("/app").expect(t, http.StatusOK).contains(t, "method=not_required")
	page := b.get("/.2fa/enroll").expect(t, http.StatusOK)
	key := secretOf(t, enrollmentURI(t, page))
	b.post("/.2fa/enroll", url.Values{"csrf_token": {csrfOf(t, page)}, "code": {totp(key, testNow())}}).expect(t, http.StatusOK)
	b.get("/app").expect(t, http.StatusOK).contains(t, "method=totp")
	s.browser("alice").get("/app").expectRedirect(t, "/.2fa/challenge")
}

// TestEnrollmentByInvite: with enrollment invite nobody can enroll on first
// login; a one-time link lets exactly its user enroll, once.
func TestEnrollmentByInvite(t *testing.T) {
	s := startSite(t, siteOptions{gate: "enrollment invite"})
	b := s.browser("alice")
	r := b.get("/app").expectRedirect(t, "/.2fa/enroll")
	page := b.get(r.location()).expect(t, http.StatusForbidden).contains(t, "invitation")
	if strings.Contains(page.body, "otpauth://") {
		t.Fatal("enrollment page shown without an invite")
	}
	b.post("/.2fa/enroll", url.Values{"csrf_token": {"x"}, "code": {"123456"}}).expect(t, http.StatusForbidden)

	info, ok := runningRealm("default")
	if !ok {
		t.Fatal("realm default not registered")
	}
	// The gate has seen alice: admins can find her before she enrolls.
	if users, err := info.Store.Users(t.Context(), "default"); err != nil || len(users) != 1 || users[0] != "alice" {
		t.Fatalf("Users = %v, %v; want [alice]", users, err)
	}
	link, expires, err := createInvite(t.Context(), "default", info, "alice", 0)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(link, "/.2fa/invite/") || expires.Sub(testNow()) < 71*time.Hour {
		t.Fatalf("invite %q expires %v", link, expires)
	}
	// Bob cannot use alice's link, and trying does not spend it.
	s.browser("bob").get(link).expect(t, http.StatusForbidden).contains(t, "someone else")

	b.get(link).expectRedirect(t, "/.2fa/enroll")
	page = b.get("/.2fa/enroll").expect(t, http.StatusOK)
	key := secretOf(t, enrollmentURI(t, page))
	b.post("/.2fa/enroll", url.Values{"csrf_token": {csrfOf(t, page)}, "code": {totp(key, testNow())}}).expect(t, http.StatusOK)
	b.get("/app").expect(t, http.StatusOK)

	// Used once: gone.
	s.browser("alice").get(link).expect(t, http.StatusGone)
	// Expired links are gone too.
	link2, _, _ := createInvite(t.Context(), "default", info, "bob", time.Hour)
	advance(2 * time.Hour)
	s.browser("bob").get(link2).expect(t, http.StatusGone)
}

// TestGracePeriod: a user who must enroll may press "remind me later"
// until the grace period (from the first time the gate saw them) ends.
func TestGracePeriod(t *testing.T) {
	s := startSite(t, siteOptions{gate: "grace 7d"})
	b := s.browser("alice")
	r := b.get("/app").expectRedirect(t, "/.2fa/enroll")
	page := b.get(r.location()).expect(t, http.StatusOK).contains(t, "Remind me later", "7 days")
	b.post("/.2fa/later", url.Values{"csrf_token": {csrfOf(t, page)}, "rd": {"/app"}}).expectRedirect(t, "/app")
	if r := b.get("/app").expect(t, http.StatusOK).contains(t, "method=grace"); strings.Contains(r.body, "2fa_") {
		t.Errorf("the app saw a gate cookie: %s", r.body)
	}
	// Without the CSRF token, nothing.
	c := s.browser("alice")
	c.post("/.2fa/later", url.Values{"rd": {"/app"}}).expect(t, http.StatusForbidden)
	c.get("/app").expectRedirect(t, "/.2fa/enroll")

	advance(3 * 24 * time.Hour)
	page = s.browser("alice").get("/.2fa/enroll").expect(t, http.StatusOK)
	if !strings.Contains(page.body, "4 days") {
		t.Errorf("grace countdown not shown:\n%s", trim(page.body))
	}
	advance(5 * 24 * time.Hour)
	b.get("/app").expectRedirect(t, "/.2fa/enroll")
	page = b.get("/.2fa/enroll").expect(t, http.StatusOK)
	if strings.Contains(page.body, "Remind me later") {
		t.Error("grace offered after it ended")
	}
	b.post("/.2fa/later", url.Values{"csrf_token": {csrfOf(t, page)}, "rd": {"/app"}}).expect(t, http.StatusForbidden)
}

// TestInviteGraceHasNoLater (issue 12 §5): under enrollment invite no page
// offers "remind me later", so POST /later with a CSRF token taken from
// another gate page must not let the user through as grace either.
func TestInviteGraceHasNoLater(t *testing.T) {
	s := startSite(t, siteOptions{gate: "enrollment invite\n\t\tgrace 7d"})
	b := s.browser("alice")
	b.get("/app").expectRedirect(t, "/.2fa/enroll")
	page := b.get("/.2fa/enroll").expect(t, http.StatusForbidden)
	if strings.Contains(page.body, "Remind me later") || strings.Contains(page.body, "/later") {
		t.Fatal("the invite-required page offers remind me later")
	}
	logout := b.get("/.2fa/logout").expect(t, http.StatusOK)
	b.post("/.2fa/later", url.Values{"csrf_token": {csrfOf(t, logout)}, "rd": {"/app"}}).expect(t, http.StatusForbidden)
	if b.cookie("2fa_later") != "" {
		t.Fatal("a remind-me-later cookie was set")
	}
	r := b.get("/app")
	if strings.Contains(r.body, "app user=") {
		t.Fatalf("passed without a second factor: %s", r.body)
	}
	r.expectRedirect(t, "/.2fa/enroll")

	// After opening an invite, the enrollment page offers no later either.
	info, _ := runningRealm("default")
	link, _, err := createInvite(t.Context(), "default", info, "alice", 0)
	if err != nil {
		t.Fatal(err)
	}
	b.get(link).expectRedirect(t, "/.2fa/enroll")
	if page, _ := enrollPage(t, b); strings.Contains(page.body, "Remind me later") {
		t.Fatal("the enrollment page offers remind me later under enrollment invite")
	}
}

// TestTemporarilyDisabled: a user an admin disabled for a while passes
// without a code, saying so, until the time is up.
func TestTemporarilyDisabled(t *testing.T) {
	s := startSite(t, siteOptions{})
	s.browser("alice").enroll()
	info, _ := runningRealm("default")
	if err := info.Store.SetDisabled(t.Context(), "default", "alice", testNow().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	s.browser("alice").get("/app").expect(t, http.StatusOK).contains(t, "method=disabled")
	s.browser("bob").get("/app").expectRedirect(t, "/.2fa/enroll")
	advance(61 * time.Minute)
	s.browser("alice").get("/app").expectRedirect(t, "/.2fa/challenge")
}

func TestPolicyConfigErrors(t *testing.T) {
	for _, tc := range []struct{ input, want string }{
		{"two_factor {\n require\n}", "require: expected all, enrolled, users <name...> or groups <name...>"},
		{"two_factor {\n require some\n}", `require: must be all, enrolled, users or groups, got "some"`},
		{"two_factor {\n require users\n}", "require users: needs at least one name"},
		{"two_factor {\n require all alice\n}", `require all: takes no names, got "alice"`},
		{"two_factor {\n require users [a\n}", `require users: "[a" is not a valid name or glob`},
		{"two_factor {\n exempt guests\n}", "exempt: expected users <name...> or groups <name...>"},
		{"two_factor {\n exempt users a\n exempt users b\n}", "exempt users: specified more than once"},
		{"two_factor {\n enrollment closed\n}", `enrollment: must be open or invite, got "closed"`},
		{"two_factor {\n grace soon\n}", `grace: invalid duration "soon"`},
	} {
		var h Handler
		err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.input))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.input, err, tc.want)
		}
	}
	var h Handler
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("two_factor {\n require groups admins ops\n groups {http.request.header.X-Groups}\n exempt users guest*\n exempt groups visitors\n enrollment invite\n grace 14d\n}")); err != nil {
		t.Fatal(err)
	}
	if h.Require.Mode != "groups" || len(h.Require.Groups) != 2 || h.Exempt.Users[0] != "guest*" || h.Exempt.Groups[0] != "visitors" || h.Enrollment != "invite" || time.Duration(h.Grace) != 14*24*time.Hour {
		t.Fatalf("parsed %+v %+v %+v", h.Require, h.Exempt, h)
	}
	// require groups without a groups placeholder fails at load.
	h2 := Handler{Require: &Requirement{Mode: "groups", Groups: []string{"a"}}}
	if err := h2.Validate(); err == nil || !strings.Contains(err.Error(), "needs the groups option") {
		t.Fatalf("Validate = %v", err)
	}
}

// enrollFailBrowsers keeps one browser per site and user for enrollFail:
// a setup belongs to the browser that started it.
var enrollFailBrowsers = map[*site]map[string]*browser{}

// enrollFail submits a wrong first code on the enrollment page as user
// (identity from the X-User header), from that user's one browser on s
// (one per canonical identity: the spellings of a name are one user, who
// would otherwise be told that setup is in progress in another browser),
// and returns the response.
func enrollFail(t *testing.T, s *site, user string) response {
	t.Helper()
	if enrollFailBrowsers[s] == nil {
		enrollFailBrowsers[s] = map[string]*browser{}
		t.Cleanup(func() { delete(enrollFailBrowsers, s) })
	}
	b := enrollFailBrowsers[s][canonicalUser(user)]
	if b == nil {
		b = s.browser("")
		enrollFailBrowsers[s][canonicalUser(user)] = b
	}
	h := http.Header{"X-User": {user}}
	page := b.do("GET", "/.2fa/enroll", nil, h)
	if page.StatusCode != http.StatusOK {
		return page
	}
	form := url.Values{"csrf_token": {csrfOf(t, page)}, "code": {"000000"}}
	return b.do("POST", "/.2fa/enroll", strings.NewReader(form.Encode()), http.Header{
		"X-User": {user}, "Content-Type": {"application/x-www-form-urlencoded"}, "Sec-Fetch-Site": {"same-origin"},
		"X-Forwarded-For": {"198.51.100." + user[len(user)-1:]}, // spoofed, must not matter
	})
}

// TestOneCounterPerCanonicalIdentity: case, width and surrounding space
// variants of a name spend one failure budget.
func TestOneCounterPerCanonicalIdentity(t *testing.T) {
	s := startSite(t, siteOptions{noAuth: true, gate: "user {http.request.header.X-User}\n\t\tmax_attempts 3 5m 15m"})
	enrollFail(t, s, "Alice").expect(t, http.StatusUnauthorized)
	enrollFail(t, s, "alice").expect(t, http.StatusUnauthorized)
	enrollFail(t, s, "ＡＬＩＣＥ").expect(t, http.StatusTooManyRequests)
	enrollFail(t, s, "alice").expect(t, http.StatusTooManyRequests)
	enrollFail(t, s, "bob").expect(t, http.StatusUnauthorized)
	if failureKey(" Alice ") != failureKey("ａｌｉｃｅ") || failureKey("alice") == failureKey("bob") {
		t.Fatal("failureKey does not canonicalize")
	}
}

// TestPerClientIPLimit: one client address failing for many accounts is
// locked out too, whatever X-Forwarded-For it sends.
func TestPerClientIPLimit(t *testing.T) {
	s := startSite(t, siteOptions{noAuth: true, gate: "user {http.request.header.X-User}\n\t\tmax_attempts 2 5m 15m"})
	// The address budget is max(20, 4 × 2) = 20: ten users × two failures.
	for i := range 10 {
		u := fmt.Sprintf("user%d", i)
		enrollFail(t, s, u).expect(t, http.StatusUnauthorized)
		enrollFail(t, s, u).expect(t, http.StatusTooManyRequests)
	}
	// A user who never failed, from the same address: refused.
	enrollFail(t, s, "fresh1").expect(t, http.StatusTooManyRequests)
	advance(16 * time.Minute)
	enrollFail(t, s, "fresh2").expect(t, http.StatusUnauthorized)
}
