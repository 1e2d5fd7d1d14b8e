package caddymodule

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"

	"github.com/caddy-2fa/caddy-2fa/challenge"
	"github.com/caddy-2fa/caddy-2fa/internal/redistest"
	"github.com/caddy-2fa/caddy-2fa/keyring"
	"github.com/caddy-2fa/caddy-2fa/sessions"
)

// identitySecret is the secret of identitySite's gate, so that tests can
// seal records the way an earlier version would have.
const identitySecret = "identity-test-secret-at-least-32-bytes"

// identitySite runs a gate whose user comes from the X-User header (as
// from forward_auth or an LDAP-backed proxy that accepts case variants),
// on storeLine, with gate options, in front of an app that echoes what it
// receives.
func identitySite(t *testing.T, storeLine, gate string) *site {
	t.Helper()
	return startCustomSite(t, "", fmt.Sprintf(`	two_factor {
		user {http.request.header.X-User}
		%s
		secret %q
		issuer "Example Corp"
		%s
	}
	respond "app user=[{http.two_factor.user}] method={http.two_factor.method} cookie=[{http.request.header.Cookie}]" 200`, storeLine, identitySecret, gate))
}

// as sends a request as user (X-User) from browser b.
func (b *browser) as(user, method, path string, form url.Values) response {
	b.t.Helper()
	h := http.Header{"X-User": {user}}
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
		h.Set("Content-Type", "application/x-www-form-urlencoded")
		h.Set("Origin", b.s.base)
		h.Set("Sec-Fetch-Site", "same-origin")
	}
	return b.do(method, path, body, h)
}

// enrollAs enrolls user (X-User) on a fresh browser and returns the key.
func enrollAs(t *testing.T, s *site, user string) []byte {
	t.Helper()
	b := s.browser("")
	page := b.as(user, "GET", "/.2fa/enroll", nil).expect(t, http.StatusOK)
	key := secretOf(t, enrollmentURI(t, page))
	b.as(user, "POST", "/.2fa/enroll", url.Values{"csrf_token": {csrfOf(t, page)}, "code": {totp(key, testNow())}}).expect(t, http.StatusOK)
	return key
}

// nameVariants are spellings of "alice" that a first factor folding case
// or width (case-insensitive LDAP, a login form that lower-cases) accepts
// for alice's account.
var nameVariants = []string{"Alice", "ALICE", "aLiCe", "ａｌｉｃｅ", "ＡＬＩＣＥ"}

// TestNameVariantsMeetOnePolicy: under require users alice, require
// enrolled and enrollment invite, every spelling of alice's name is
// challenged (or sent to enroll) as alice is; none passes as not_required,
// none gets an enrollment of its own, and the app sees the name the first
// factor gave.
func TestNameVariantsMeetOnePolicy(t *testing.T) {
	stores := map[string]func(t *testing.T) string{
		"file":  func(t *testing.T) string { return "store file " + t.TempDir() + "/store.db" },
		"redis": func(t *testing.T) string { return "store redis unix://" + redistest.Start(t).Socket },
	}
	for name, storeLine := range stores {
		t.Run(name, func(t *testing.T) {
			t.Run("require users alice, not enrolled", func(t *testing.T) {
				s := identitySite(t, storeLine(t), "require users alice")
				for _, v := range nameVariants {
					s.browser("").as(v, "GET", "/app", nil).expectRedirect(t, "/.2fa/enroll")
				}
				s.browser("").as("bob", "GET", "/app", nil).expect(t, http.StatusOK).contains(t, "method=not_required")
			})
			t.Run("require users Alice (the rule folded too)", func(t *testing.T) {
				s := identitySite(t, storeLine(t), "require users Alice ＢＯＢ")
				for _, v := range append(nameVariants, "alice", "bob", "Bob") {
					s.browser("").as(v, "GET", "/app", nil).expectRedirect(t, "/.2fa/enroll")
				}
			})
			t.Run("require enrolled", func(t *testing.T) {
				s := identitySite(t, storeLine(t), "require enrolled")
				key := enrollAs(t, s, "alice")
				for _, v := range nameVariants {
					s.browser("").as(v, "GET", "/app", nil).expectRedirect(t, "/.2fa/challenge")
					// Nor can a variant start an enrollment of its own.
					s.browser("").as(v, "GET", "/.2fa/enroll", nil).expectRedirect(t, "/.2fa/challenge")
				}
				// One enrollment, alice's: a variant passes with her code,
				// and the app sees the name as the first factor gave it.
				advance(30 * time.Second)
				b := s.browser("")
				page := b.as("ＡＬＩＣＥ", "GET", "/.2fa/challenge", nil).expect(t, http.StatusOK)
				b.as("ＡＬＩＣＥ", "POST", "/.2fa/challenge", url.Values{"csrf_token": {csrfOf(t, page)}, "code": {totp(key, testNow())}, "rd": {"/app"}}).expectRedirect(t, "/app")
				b.as("ＡＬＩＣＥ", "GET", "/app", nil).expect(t, http.StatusOK).contains(t, "user=[ＡＬＩＣＥ] method=totp")
				// The same session for every spelling: it is alice's.
				b.as("Alice", "GET", "/app", nil).expect(t, http.StatusOK).contains(t, "user=[Alice] method=totp")
				// Bob is still free to skip it.
				s.browser("").as("bob", "GET", "/app", nil).expect(t, http.StatusOK).contains(t, "method=not_required")
				info, _ := runningRealm("default")
				users, err := info.Store.Users(t.Context(), "default")
				if err != nil {
					t.Fatal(err)
				}
				for _, u := range users {
					if u != "alice" && u != "bob" {
						t.Errorf("the store holds user %q: a spelling got records of its own", u)
					}
				}
			})
			t.Run("enrollment invite", func(t *testing.T) {
				s := identitySite(t, storeLine(t), "require users alice\n\t\tenrollment invite")
				for _, v := range nameVariants {
					s.browser("").as(v, "GET", "/app", nil).expectRedirect(t, "/.2fa/enroll")
					r := s.browser("").as(v, "GET", "/.2fa/enroll", nil).expect(t, http.StatusForbidden)
					if strings.Contains(r.body, "otpauth://") {
						t.Fatalf("%q was shown a secret without an invite", v)
					}
				}
				// An invite made for "Alice" is alice's, whatever spelling
				// opens it; and she is challenged from then on under every
				// spelling.
				info, _ := runningRealm("default")
				link, _, err := createInvite(t.Context(), "default", info, "Alice", 0)
				if err != nil {
					t.Fatal(err)
				}
				b := s.browser("")
				b.as("ａｌｉｃｅ", "GET", link, nil).expectRedirect(t, "/.2fa/enroll")
				page := b.as("ALICE", "GET", "/.2fa/enroll", nil).expect(t, http.StatusOK)
				if u := enrollmentURI(t, page); !strings.HasSuffix(u.Path, ":alice") {
					t.Errorf("enrolling %q, want the canonical name alice", u.Path)
				}
				key := secretOf(t, enrollmentURI(t, page))
				b.as("alice", "POST", "/.2fa/enroll", url.Values{"csrf_token": {csrfOf(t, page)}, "code": {totp(key, testNow())}}).expect(t, http.StatusOK)
				for _, v := range nameVariants {
					s.browser("").as(v, "GET", "/app", nil).expectRedirect(t, "/.2fa/challenge")
				}
			})
			t.Run("exempt users folded", func(t *testing.T) {
				s := identitySite(t, storeLine(t), "exempt users Guest*")
				for _, v := range []string{"guest1", "GUEST1", "Ｇｕｅｓｔ1"} {
					s.browser("").as(v, "GET", "/app", nil).expect(t, http.StatusOK).contains(t, "method=exempt")
				}
				s.browser("").as("alice", "GET", "/app", nil).expectRedirect(t, "/.2fa/enroll")
			})
		})
	}
}

// seedLegacy stores an enrollment for user exactly as spelled, the way
// the previous version did for whatever name the first factor gave (TOTP
// secret sealed with that spelling, recovery codes hashed with it), and
// returns the TOTP key and one recovery code.
func seedLegacy(t *testing.T, st sessions.Store, user string) ([]byte, string) {
	t.Helper()
	keys, err := keyring.Derive([]byte(identitySecret))
	if err != nil {
		t.Fatal(err)
	}
	secret, err := challenge.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := keys.Seal("default", user, secret)
	if err != nil {
		t.Fatal(err)
	}
	codes, err := challenge.NewRecoveryCodes(2)
	if err != nil {
		t.Fatal(err)
	}
	var hashes []string
	for _, c := range codes {
		n, _ := challenge.NormalizeRecoveryCode(c)
		hashes = append(hashes, challenge.HashRecoveryCode(keys.RecoveryMAC, "default", user, n))
	}
	p := challenge.DefaultParams()
	e := sessions.Enrollment{SealedSecret: sealed, Algorithm: p.Algorithm, Digits: p.Digits, Period: p.Period, Created: testNow()}
	if err := st.Enroll(t.Context(), "default", user, e, hashes); err != nil {
		t.Fatal(err)
	}
	return secret, codes[0]
}

// TestLegacySpellingKeepsItsEnrollment: an enrollment the previous version
// made under "Alice" keeps working, for every spelling, with its TOTP key
// and its recovery codes; it is never replaced by a new enrollment, and
// require enrolled never lets a variant through. Two spellings both
// enrolled (one may be an attacker's) are refused until an admin reset,
// which forgets both. Both stores.
func TestLegacySpellingKeepsItsEnrollment(t *testing.T) {
	stores := map[string]func(t *testing.T) string{
		"file":  func(t *testing.T) string { return "store file " + t.TempDir() + "/store.db" },
		"redis": func(t *testing.T) string { return "store redis unix://" + redistest.Start(t).Socket },
	}
	for name, storeLine := range stores {
		t.Run(name, func(t *testing.T) {
			line := storeLine(t)
			// Start once to open the store, seed it as the old version
			// would have, and start again: the gate reads the users list
			// when it is provisioned.
			identitySite(t, line, "require enrolled")
			info, _ := runningRealm("default")
			key, recovery := seedLegacy(t, info.Store, "Alice")
			s := identitySite(t, line, "require enrolled")

			for _, v := range append(nameVariants, "alice") {
				s.browser("").as(v, "GET", "/app", nil).expectRedirect(t, "/.2fa/challenge")
				s.browser("").as(v, "GET", "/.2fa/enroll", nil).expectRedirect(t, "/.2fa/challenge")
			}
			// Its key works under another spelling, and so do its
			// recovery codes.
			b := s.browser("")
			page := b.as("alice", "GET", "/.2fa/challenge", nil).expect(t, http.StatusOK)
			b.as("alice", "POST", "/.2fa/challenge", url.Values{"csrf_token": {csrfOf(t, page)}, "code": {totp(key, testNow())}, "rd": {"/app"}}).expectRedirect(t, "/app")
			b.as("ALICE", "GET", "/app", nil).expect(t, http.StatusOK).contains(t, "method=totp")
			c := s.browser("")
			page = c.as("ａｌｉｃｅ", "GET", "/.2fa/challenge", nil).expect(t, http.StatusOK)
			c.as("ａｌｉｃｅ", "POST", "/.2fa/challenge", url.Values{"csrf_token": {csrfOf(t, page)}, "code": {recovery}, "rd": {"/app"}}).expect(t, http.StatusSeeOther)
			c.as("ａｌｉｃｅ", "GET", "/app", nil).expect(t, http.StatusOK).contains(t, "method=recovery")
			if _, err := info.Store.Enrollment(t.Context(), "default", "alice"); err == nil {
				t.Error("a second enrollment appeared under the canonical name")
			}

			// Someone who had only the password enrolled "ALICE" with the
			// old version: two enrollments of one identity. Refused, for
			// every spelling, until an admin reset.
			_, _ = seedLegacy(t, info.Store, "ALICE")
			s = identitySite(t, line, "require enrolled")
			for _, v := range append(nameVariants, "alice") {
				r := s.browser("").as(v, "GET", "/app", nil).expect(t, http.StatusForbidden)
				r.contains(t, "administrator")
				if strings.Contains(r.body, "user=") {
					t.Fatalf("%q reached the app", v)
				}
			}
			// The session from before is refused too (the same browser,
			// at the restarted site: cookies go by host, not port).
			b.s = s
			b.as("Alice", "GET", "/app", nil).expect(t, http.StatusForbidden)

			info, _ = runningRealm("default")
			tg, err := resolveTarget(t.Context(), "default", info, "aLiCe", "reset")
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(tg.allNames(), ",") != "alice,ALICE,Alice" {
				t.Fatalf("reset would act on %v, want alice, ALICE and Alice", tg.allNames())
			}
			if _, err := resolveTarget(t.Context(), "default", info, "Alice", "status"); err == nil || !strings.Contains(err.Error(), "several spellings") {
				t.Fatalf("status of a conflicting user: %v, want a conflict", err)
			}
			for _, u := range tg.allNames() {
				if err := info.Store.ResetUser(t.Context(), "default", u); err != nil {
					t.Fatal(err)
				}
			}
			// After the reset: one identity, nothing enrolled, enrolls
			// afresh under the canonical name.
			s.browser("").as("Alice", "GET", "/app", nil).expect(t, http.StatusOK).contains(t, "method=not_required")
			enrollAs(t, s, "ALICE")
			if _, err := info.Store.Enrollment(t.Context(), "default", "alice"); err != nil {
				t.Fatalf("new enrollment not under the canonical name: %v", err)
			}
			for _, v := range nameVariants {
				s.browser("").as(v, "GET", "/app", nil).expectRedirect(t, "/.2fa/challenge")
			}
		})
	}
}

// TestAdminActsOnTheCanonicalName: "reset Alice" through the admin API
// resets alice.
func TestAdminActsOnTheCanonicalName(t *testing.T) {
	s := startAdminSite(t, "")
	s.browser("alice").enroll()
	var u userSummary
	s.ok("GET", "/two-factor/realms/default/users/ALICE", "", &u)
	if u.User != "alice" || !u.Enrolled {
		t.Fatalf("status ALICE = %+v, want alice, enrolled", u)
	}
	var res userAction
	s.ok("POST", "/two-factor/realms/default/users/Alice/reset", "", &res)
	if res.User != "alice" {
		t.Fatalf("reset acted on %q, want alice", res.User)
	}
	if u := s.user("alice"); u.Enrolled {
		t.Fatal("alice still enrolled after reset Alice")
	}
	s.browser("alice").get("/app").expectRedirect(t, "/.2fa/enroll")
	s.fails("GET", "/two-factor/realms/default/users/"+strings.Repeat("a", 700), "", http.StatusBadRequest, "longer than 256 bytes")
}

// TestLongUserName: a name over 256 bytes (after folding) is refused with
// a page that says so, not a 503, at both identity sources; a name at the
// limit, in the most expensive characters to encode, still gets its QR
// code.
func TestLongUserName(t *testing.T) {
	s := identitySite(t, "store file "+t.TempDir()+"/store.db", "")
	long := strings.Repeat("a", 700)
	for _, path := range []string{"/app", "/.2fa/enroll", "/.2fa/challenge"} {
		r := s.browser("").as(long, "GET", path, nil).expect(t, http.StatusForbidden)
		r.contains(t, "too long", "256 bytes")
	}
	// 85 three-byte letters plus one byte: 256 bytes, each percent-
	// encoded in the QR code's URI.
	edge := strings.Repeat("あ", 85) + "x"
	if len(edge) != maxUserName {
		t.Fatalf("edge name is %d bytes", len(edge))
	}
	page := s.browser("").as(edge, "GET", "/.2fa/enroll", nil).expect(t, http.StatusOK)
	if !reQR.MatchString(page.body) {
		t.Fatal("no QR code for a name at the limit")
	}
	// Full-width letters fold to one byte each: 300 of them (900 bytes as
	// given) are 300 bytes folded, still too long; 200 (600 bytes) fold
	// to 200 and are fine.
	s.browser("").as(strings.Repeat("Ａ", 300), "GET", "/app", nil).expect(t, http.StatusForbidden)
	s.browser("").as(strings.Repeat("Ａ", 200), "GET", "/app", nil).expectRedirect(t, "/.2fa/enroll")

	// app_login: refused at login, before the application sees it.
	a := startAppSite(t, "", "")
	b := a.browser("")
	r := b.appLogin(long, "wonderland").expect(t, http.StatusBadRequest)
	r.contains(t, "too long")
	if b.cookie("DEMOSESSID") != "" {
		t.Fatal("the application started a session for a name the gate refuses")
	}
}

func TestIdentify(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		long     bool
	}{
		{"alice", "alice", false},
		{" Alice ", "alice", false},
		{"ＡＬＩＣＥ", "alice", false},
		{"Straße", "strasse", false},
		{"   ", "", false},
		{strings.Repeat("a", 256), strings.Repeat("a", 256), false},
		{strings.Repeat("a", 257), "", true},
		{strings.Repeat(" ", 5000) + "bob", "bob", false},
		{strings.Repeat("𝐀", 256), strings.Repeat("a", 256), false}, // 1024 bytes folding to 256
		{strings.Repeat("𝐀", 257), "", true},
	} {
		got, err := identify(tc.in)
		if tc.long != (err == errNameTooLong) || got != tc.want {
			t.Errorf("identify(%.20q…) = %.20q, %v; want %.20q, too long %v", tc.in, got, err, tc.want, tc.long)
		}
	}
	for _, s := range []string{"", "alice", "a.b-c_d@example.com", "ümlaut:user", "Alice", "ALICE@EXAMPLE.COM", " a", "a\t", "\x01A", "ＡＢ", "Straße", "İ", "ǅ", "K", "ﬀ", "e\u0301", "Ω", "ᾼ", "\xff"} {
		slow := canonicalSlow(s)
		if got := canonicalUser(s); got != slow {
			t.Errorf("canonicalUser(%q) = %q, want %q (the full fold)", s, got, slow)
		}
	}
	// The fast paths agree with the full fold on every BMP code point,
	// alone and between letters of both cases.
	for r := rune(0); r < 0x10000; r++ {
		for _, s := range []string{string(r), "A" + string(r) + "b"} {
			if got, want := canonicalUser(s), canonicalSlow(s); got != want {
				t.Fatalf("canonicalUser(%q) = %q, want %q", s, got, want)
			}
		}
	}
	for name, want := range map[string]float64{"alice@example.com": 0, "Alice": 1, "ümlaut:user": 2} {
		if n := testing.AllocsPerRun(100, func() { canonicalUser(name) }); n > want {
			t.Errorf("canonicalUser(%q) allocates %v times, want at most %v", name, n, want)
		}
	}
}

// canonicalSlow is canonicalUser without its ASCII fast path.
func canonicalSlow(s string) string {
	return cases.Fold().String(norm.NFKC.String(strings.TrimSpace(s)))
}

// TestPolicyFoldsStoredSpellings: the policy helpers fold whatever name
// they are given, so a caller holding a stored spelling ("Alice", from an
// earlier version) meets the same rules as the canonical name (settings'
// "turn off" asks them too).
func TestPolicyFoldsStoredSpellings(t *testing.T) {
	h := &Handler{Require: &Requirement{Mode: "users", Users: []string{"Alice"}}, Exempt: &Exemption{Users: []string{"Guest*"}}}
	h.requireUsers, h.exemptUsers = foldGlobs(h.Require.Users), foldGlobs(h.Exempt.Users)
	for _, u := range append(nameVariants, "alice") {
		if !h.required(u, nil, false) {
			t.Errorf("required(%q) = false", u)
		}
	}
	if h.required("bob", nil, false) {
		t.Error("required(bob) = true")
	}
	for _, u := range []string{"guest", "GUEST7", "Ｇｕｅｓｔ"} {
		if !h.exempted(u, nil) {
			t.Errorf("exempted(%q) = false", u)
		}
	}
	if h.exempted("alice", nil) {
		t.Error("exempted(alice) = true")
	}
}
