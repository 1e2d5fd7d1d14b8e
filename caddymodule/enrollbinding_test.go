package caddymodule

import (
	"encoding/base32"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-2fa/caddy-2fa/internal/redistest"
)

// storeSite is a site of one of the two stores, with its audit log.
type storeSite struct {
	*site
	logFile string
}

// forEachStore runs fn against a site with the file store and against one
// with Redis (a real redis-server), both with the gate options gate and
// the audit log in a file.
func forEachStore(t *testing.T, gate string, fn func(t *testing.T, s storeSite)) {
	for _, kind := range []string{"file", "redis"} {
		t.Run(kind, func(t *testing.T) {
			logFile := t.TempDir() + "/caddy.log"
			global := fmt.Sprintf("\tlog {\n\t\toutput file %s\n\t\tlevel DEBUG\n\t}\n", logFile)
			var s *site
			if kind == "file" {
				s = startSite(t, siteOptions{gate: gate, global: global})
			} else {
				rs := redistest.Start(t)
				s = startCustomSite(t, global, fmt.Sprintf(`	basic_auth {
%s	}
	two_factor {
		secret %q
		store redis unix://%s
		issuer "Example Corp"
%s
	}
	respond "app user={http.two_factor.user} method={http.two_factor.method} cookie=[{http.request.header.Cookie}]" 200`, bcryptLines, fuzzSecret, rs.Socket, gate))
			}
			fn(t, storeSite{site: s, logFile: logFile})
		})
	}
}

// audits returns the audit lines of event for user logged so far.
func (s storeSite) audits(t *testing.T, event, user string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(s.logFile)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for line := range strings.SplitSeq(string(b), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil {
			continue
		}
		if m["event"] == event && m["user"] == user {
			out = append(out, m)
		}
	}
	return out
}

// countAudits counts the audit lines of event for user with result and
// reason ("" matches any reason).
func (s storeSite) countAudits(t *testing.T, event, user, result, reason string) int {
	t.Helper()
	n := 0
	for _, m := range s.audits(t, event, user) {
		if m["result"] == result && (reason == "" || m["reason"] == reason) {
			n++
		}
	}
	return n
}

// enrollPage opens the enrollment page in b and returns it with its key.
func enrollPage(t *testing.T, b *browser) (response, []byte) {
	t.Helper()
	r := b.get("/.2fa/enroll").expect(t, http.StatusOK)
	return r, secretOf(t, enrollmentURI(t, r))
}

// expectElsewhere checks that r is the "setup is in progress on another
// device" page and shows nothing of key: not the otpauth link, not the QR
// code, not the key in any spelling, and no code field.
func expectElsewhere(t *testing.T, r response, status int, key []byte, keyPage response) {
	t.Helper()
	r.expect(t, status).contains(t, "Setup is in progress on another device")
	enc := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(key)
	bad := []string{"otpauth://", "data:image/png", `name="code"`, enc, strings.ToLower(enc), enc[:4] + "</span><span>" + enc[4:8]}
	if keyPage.body != "" {
		if m := reQR.FindStringSubmatch(keyPage.body); m != nil {
			bad = append(bad, m[1][:64])
		}
	}
	for _, b := range bad {
		if strings.Contains(r.body, b) {
			t.Fatalf("%s %s: the other browser's setup leaks (%q):\n%s", r.Request.Method, r.Request.URL, b, trim(r.body))
		}
	}
}

// TestPendingSecretBoundToBrowser (issue 12 §2): the secret on the
// enrollment page goes only to the browser that started the setup.
// Another browser of the same user (someone with only the password) gets
// no secret, and a code it sends is not even checked; the first browser
// finishes undisturbed.
func TestPendingSecretBoundToBrowser(t *testing.T) {
	forEachStore(t, "", func(t *testing.T, s storeSite) {
		a := s.browser("alice")
		a.get("/app").expectRedirect(t, "/.2fa/enroll")
		pageA, keyA := enrollPage(t, a)

		b := s.browser("alice")
		b.get("/app").expectRedirect(t, "/.2fa/enroll")
		pageB := b.get("/.2fa/enroll")
		expectElsewhere(t, pageB, http.StatusConflict, keyA, pageA)
		pageB.contains(t, "Start over here")

		// B's POST with A's valid code: refused before any code check.
		r := b.post("/.2fa/enroll", url.Values{"csrf_token": {csrfOf(t, pageB)}, "code": {totp(keyA, testNow())}, "rd": {"/app"}})
		expectElsewhere(t, r, http.StatusConflict, keyA, pageA)
		if codes := reRecovery.FindAllString(r.body, -1); len(codes) > 0 {
			t.Fatalf("the other browser got recovery codes: %v", codes)
		}
		b.get("/app").expectRedirect(t, "/.2fa/enroll")
		if n := s.countAudits(t, "verify", "alice", "failure", ""); n != 0 {
			t.Errorf("%d code checks logged for the other browser's POST, want 0", n)
		}
		if n := s.countAudits(t, "enroll", "alice", "refused", "other_browser"); n != 2 {
			t.Errorf("%d enroll/refused/other_browser lines, want 2 (GET and POST)", n)
		}

		// A still sees its own key, and confirms it.
		again, key := enrollPage(t, a)
		if string(key) != string(keyA) {
			t.Fatal("the first browser's key changed")
		}
		a.post("/.2fa/enroll", url.Values{"csrf_token": {csrfOf(t, again)}, "code": {totp(keyA, testNow())}, "rd": {"/app"}}).
			expect(t, http.StatusOK).contains(t, "Save your recovery codes")
		a.get("/app").expect(t, http.StatusOK).contains(t, "method=totp")
		if c := a.cookie("2fa_enroll"); c != "" {
			t.Error("the enrollment cookie outlived the enrollment")
		}
		// Enrolled: B is asked for a code like any new browser.
		b.get("/.2fa/enroll").expectRedirect(t, "/.2fa/challenge")
	})
}

// TestEnrollCookieNotForwarded: the enrollment cookie is a gate cookie,
// removed before the application sees the request.
func TestEnrollCookieNotForwarded(t *testing.T) {
	s := startSite(t, siteOptions{gate: "require enrolled"})
	b := s.browser("alice")
	enrollPage(t, b)
	if b.cookie("2fa_enroll") == "" {
		t.Fatal("no enrollment cookie set")
	}
	r := b.get("/app").expect(t, http.StatusOK).contains(t, "method=not_required")
	if strings.Contains(r.body, "2fa_enroll") {
		t.Errorf("the app received the enrollment cookie: %s", r.body)
	}
}

// TestStartOverInvalidatesOtherBrowser: "start over here" moves the
// setup to this browser with a new key; the first browser's key stops
// working, and it is told why. Start-overs are audited and limited.
func TestStartOverInvalidatesOtherBrowser(t *testing.T) {
	forEachStore(t, "", func(t *testing.T, s storeSite) {
		a := s.browser("alice")
		pageA, keyA := enrollPage(t, a)
		b := s.browser("alice")
		pageB := b.get("/.2fa/enroll")
		expectElsewhere(t, pageB, http.StatusConflict, keyA, pageA)

		// Without the CSRF token, nothing happens.
		b.post("/.2fa/enroll", url.Values{"action": {"start_over"}}).expect(t, http.StatusForbidden)
		b.post("/.2fa/enroll", url.Values{"csrf_token": {csrfOf(t, pageB)}, "action": {"start_over"}, "rd": {"/app"}}).
			expectRedirect(t, "/.2fa/enroll?rd=%2Fapp")
		pageB2, keyB := enrollPage(t, b)
		if string(keyB) == string(keyA) {
			t.Fatal("start over kept the old key")
		}
		if n := s.countAudits(t, "enroll_start_over", "alice", "success", ""); n != 1 {
			t.Errorf("%d enroll_start_over successes logged, want 1", n)
		}

		// A's confirmation with A's (right) code: refused, and A learns
		// that the setup was started over elsewhere.
		r := a.post("/.2fa/enroll", url.Values{"csrf_token": {csrfOf(t, pageA)}, "code": {totp(keyA, testNow())}})
		expectElsewhere(t, r, http.StatusConflict, keyB, pageB2)
		r.contains(t, "started over on another device")
		// Nor does B's key work from A's browser.
		r = a.post("/.2fa/enroll", url.Values{"csrf_token": {csrfOf(t, pageA)}, "code": {totp(keyB, testNow())}})
		expectElsewhere(t, r, http.StatusConflict, keyB, pageB2)
		expectElsewhere(t, a.get("/.2fa/enroll"), http.StatusConflict, keyB, pageB2)

		b.post("/.2fa/enroll", url.Values{"csrf_token": {csrfOf(t, pageB2)}, "code": {totp(keyB, testNow())}}).
			expect(t, http.StatusOK).contains(t, "Save your recovery codes")
		// Enrolled with B's key: A's key never passes.
		advance(30 * time.Second)
		s.browser("alice").challenge(totp(keyA, testNow()), false).expect(t, http.StatusUnauthorized)
		s.browser("alice").challenge(totp(keyB, testNow()), false).expectRedirect(t, "/app")

		// The limit: three start-overs a day per user; the fourth is
		// refused and changes nothing.
		c, d := s.browser("bob"), s.browser("bob")
		_, keyC := enrollPage(t, c)
		var last []byte
		for i := range startOverLimit.Max {
			who := d
			if i%2 == 1 {
				who = c
			}
			page := who.get("/.2fa/enroll").expect(t, http.StatusConflict)
			who.post("/.2fa/enroll", url.Values{"csrf_token": {csrfOf(t, page)}, "action": {"start_over"}}).expectRedirect(t, "/.2fa/enroll")
			_, last = enrollPage(t, who)
			if string(last) == string(keyC) {
				t.Fatal("start over kept the old key")
			}
		}
		other := c // the browser that does not hold the setup now
		if startOverLimit.Max%2 == 0 {
			other = d
		}
		page := other.get("/.2fa/enroll").expect(t, http.StatusConflict)
		other.post("/.2fa/enroll", url.Values{"csrf_token": {csrfOf(t, page)}, "action": {"start_over"}}).
			expect(t, http.StatusTooManyRequests).contains(t, "too many times")
		if n := s.countAudits(t, "enroll_start_over", "bob", "refused", "limit"); n != 1 {
			t.Errorf("%d enroll_start_over refusals logged, want 1", n)
		}
		holder := d
		if other == d {
			holder = c
		}
		if _, key := enrollPage(t, holder); string(key) != string(last) {
			t.Fatal("a refused start-over changed the setup")
		}
	})
}

// TestStartOverDuringConfirmation: a start-over that lands after the
// first browser's code was checked but before its enrollment is saved
// wins: the first browser's (checked) key is not enrolled, and the new
// one can be.
func TestStartOverDuringConfirmation(t *testing.T) {
	forEachStore(t, "", func(t *testing.T, s storeSite) {
		a, b := s.browser("alice"), s.browser("alice")
		pageA, keyA := enrollPage(t, a)
		pageB := b.get("/.2fa/enroll").expect(t, http.StatusConflict)
		var once sync.Once
		var restarted response
		enrollCheckedHook = func() {
			once.Do(func() {
				restarted = b.post("/.2fa/enroll", url.Values{"csrf_token": {csrfOf(t, pageB)}, "action": {"start_over"}})
			})
		}
		t.Cleanup(func() { enrollCheckedHook = nil })
		r := a.post("/.2fa/enroll", url.Values{"csrf_token": {csrfOf(t, pageA)}, "code": {totp(keyA, testNow())}})
		enrollCheckedHook = nil
		restarted.expectRedirect(t, "/.2fa/enroll")
		pageB2, keyB := enrollPage(t, b)
		expectElsewhere(t, r, http.StatusConflict, keyB, pageB2)
		r.contains(t, "started over on another device")
		advance(30 * time.Second)
		b.post("/.2fa/enroll", url.Values{"csrf_token": {csrfOf(t, pageB2)}, "code": {totp(keyB, testNow())}}).
			expect(t, http.StatusOK).contains(t, "Save your recovery codes")
		advance(30 * time.Second)
		s.browser("alice").challenge(totp(keyA, testNow()), false).expect(t, http.StatusUnauthorized)
		s.browser("alice").challenge(totp(keyB, testNow()), false).expectRedirect(t, "/app")
	})
}

// TestInviteBoundToFirstBrowser: an invite link is spent by the first
// browser that opens it, and the setup it starts belongs to that browser;
// under enrollment invite another browser cannot start over (only a new
// invite can).
func TestInviteBoundToFirstBrowser(t *testing.T) {
	forEachStore(t, "enrollment invite", func(t *testing.T, s storeSite) {
		info, ok := runningRealm("default")
		if !ok {
			t.Fatal("realm default not registered")
		}
		link, _, err := createInvite(t.Context(), "default", info, "alice", 0)
		if err != nil {
			t.Fatal(err)
		}
		a := s.browser("alice")
		a.get(link).expectRedirect(t, "/.2fa/enroll")
		pageA, keyA := enrollPage(t, a)

		b := s.browser("alice")
		b.get(link).expect(t, http.StatusGone)
		pageB := b.get("/.2fa/enroll")
		expectElsewhere(t, pageB, http.StatusConflict, keyA, pageA)
		pageB.contains(t, "new invitation link")
		if strings.Contains(pageB.body, `value="start_over"`) {
			t.Fatal("start over offered under enrollment invite")
		}
		// The page has no form: a token from another gate page, as a
		// crafted POST would use.
		tok := csrfOf(t, b.get("/.2fa/logout").expect(t, http.StatusOK))
		expectElsewhere(t, b.post("/.2fa/enroll", url.Values{"csrf_token": {tok}, "code": {totp(keyA, testNow())}}), http.StatusConflict, keyA, pageA)
		expectElsewhere(t, b.post("/.2fa/enroll", url.Values{"csrf_token": {tok}, "action": {"start_over"}}), http.StatusForbidden, keyA, pageA)
		if n := s.countAudits(t, "enroll_start_over", "alice", "refused", "invite_required"); n != 1 {
			t.Errorf("%d enroll_start_over refusals logged, want 1", n)
		}

		a.post("/.2fa/enroll", url.Values{"csrf_token": {csrfOf(t, pageA)}, "code": {totp(keyA, testNow())}}).
			expect(t, http.StatusOK).contains(t, "Save your recovery codes")
		a.get("/app").expect(t, http.StatusOK)

		// A new invite opened in B moves the setup there.
		link2, _, err := createInvite(t.Context(), "default", info, "bob", 0)
		if err != nil {
			t.Fatal(err)
		}
		c, d := s.browser("bob"), s.browser("bob")
		c.get(link2).expectRedirect(t, "/.2fa/enroll")
		pageC, keyC := enrollPage(t, c)
		link3, _, _ := createInvite(t.Context(), "default", info, "bob", 0)
		d.get(link3).expectRedirect(t, "/.2fa/enroll")
		pageD, keyD := enrollPage(t, d)
		r := c.post("/.2fa/enroll", url.Values{"csrf_token": {csrfOf(t, pageC)}, "code": {totp(keyC, testNow())}})
		expectElsewhere(t, r, http.StatusConflict, keyD, pageD)
		d.post("/.2fa/enroll", url.Values{"csrf_token": {csrfOf(t, pageD)}, "code": {totp(keyD, testNow())}}).expect(t, http.StatusOK)
	})
}

// TestReplaceAuthenticatorBoundToBrowser: the new key after "replace
// authenticator" is shown only in the browser that asked for it.
func TestReplaceAuthenticatorBoundToBrowser(t *testing.T) {
	forEachStore(t, "", func(t *testing.T, s storeSite) {
		a := s.browser("alice")
		oldKey, _ := a.enroll()
		advance(30 * time.Second)
		settingsAction(t, a, settingsGet(t, a), "replace_authenticator", url.Values{"code": {totp(oldKey, testNow())}}).
			expectRedirect(t, "/.2fa/enroll")
		pageA, newKey := enrollPage(t, a)

		b := s.browser("alice")
		b.get("/app").expectRedirect(t, "/.2fa/enroll")
		pageB := b.get("/.2fa/enroll")
		expectElsewhere(t, pageB, http.StatusConflict, newKey, pageA)
		advance(30 * time.Second)
		expectElsewhere(t, b.post("/.2fa/enroll", url.Values{"csrf_token": {csrfOf(t, pageB)}, "code": {totp(newKey, testNow())}}), http.StatusConflict, newKey, pageA)
		a.post("/.2fa/enroll", url.Values{"csrf_token": {csrfOf(t, pageA)}, "code": {totp(newKey, testNow())}}).
			expect(t, http.StatusOK).contains(t, "Save your recovery codes")
	})
}

// TestOpenEnrollmentRace: two browsers of a new user racing through
// enrollment open, many times over: exactly one of them is shown a key,
// exactly one enrollment comes out of a confirmation racing a start-over,
// and the key of the browser that did not enroll never passes.
func TestOpenEnrollmentRace(t *testing.T) {
	forEachStore(t, "", func(t *testing.T, s storeSite) {
		info, _ := runningRealm("default")
		ctx := t.Context()
		const rounds = 8
		outcomes := map[bool]int{} // did the first browser shown a key enroll?
		for round := range rounds {
			// A new user each round.
			for _, err := range []error{
				info.Store.ResetUser(ctx, "default", "alice"),
				clearUserFailures(ctx, info.Store, "default", "alice"),
				info.Store.ClearFailures(ctx, "default", startOverKey("alice")),
			} {
				if err != nil {
					t.Fatal(err)
				}
			}
			advance(2 * time.Minute)
			br := [2]*browser{s.browser("alice"), s.browser("alice")}
			var pages [2]response
			var wg sync.WaitGroup
			for i := range br {
				wg.Go(func() { pages[i] = br[i].get("/.2fa/enroll") })
			}
			wg.Wait()
			shown := 0
			var winner int
			for i, p := range pages {
				switch p.StatusCode {
				case http.StatusOK:
					shown++
					winner = i
				case http.StatusConflict:
					if strings.Contains(p.body, "otpauth://") {
						t.Fatalf("round %d: a refused browser was shown a key", round)
					}
				default:
					t.Fatalf("round %d: GET /enroll answered %d", round, p.StatusCode)
				}
			}
			if shown != 1 {
				t.Fatalf("round %d: %d browsers were shown a key, want exactly 1", round, shown)
			}
			loser := 1 - winner
			keys := [2][]byte{}
			keys[winner] = secretOf(t, enrollmentURI(t, pages[winner]))

			// The winner confirms while the loser starts over and
			// confirms its own key (a code of the next step: each step
			// is accepted once per user).
			var got [2]response
			wg.Go(func() {
				got[winner] = br[winner].post("/.2fa/enroll", url.Values{"csrf_token": {csrfOf(t, pages[winner])}, "code": {totp(keys[winner], testNow())}})
			})
			wg.Go(func() {
				r := br[loser].post("/.2fa/enroll", url.Values{"csrf_token": {csrfOf(t, pages[loser])}, "action": {"start_over"}})
				if r.StatusCode != http.StatusSeeOther || !strings.HasPrefix(r.location(), "/.2fa/enroll") {
					got[loser] = r // enrolled meanwhile: sent to the challenge
					return
				}
				page := br[loser].get("/.2fa/enroll")
				if page.StatusCode != http.StatusOK {
					got[loser] = page
					return
				}
				keys[loser] = secretOf(t, enrollmentURI(t, page))
				got[loser] = br[loser].post("/.2fa/enroll", url.Values{"csrf_token": {csrfOf(t, page)}, "code": {totp(keys[loser], testNow().Add(30*time.Second))}})
			})
			wg.Wait()
			enrolled := -1
			for i, r := range got {
				if r.StatusCode == http.StatusOK && strings.Contains(r.body, "Save your recovery codes") {
					if enrolled >= 0 {
						t.Fatalf("round %d: both browsers enrolled", round)
					}
					enrolled = i
				}
			}
			if enrolled < 0 {
				t.Fatalf("round %d: no browser enrolled (%d, %d)", round, got[0].StatusCode, got[1].StatusCode)
			}
			outcomes[enrolled == winner]++
			if _, err := info.Store.Enrollment(ctx, "default", "alice"); err != nil {
				t.Fatalf("round %d: not enrolled: %v", round, err)
			}
			// The enrolled key passes; the other browser's key (if it
			// got one) never does.
			advance(90 * time.Second)
			if other := keys[1-enrolled]; other != nil {
				s.browser("alice").challenge(totp(other, testNow()), false).expect(t, http.StatusUnauthorized)
			}
			s.browser("alice").challenge(totp(keys[enrolled], testNow()), false).expectRedirect(t, "/app")
		}
		t.Logf("the first browser enrolled in %d rounds, the one that started over in %d", outcomes[true], outcomes[false])
		if n := s.countAudits(t, "enroll", "alice", "success", ""); n != rounds {
			t.Errorf("%d enrollments logged over %d rounds, want %d", n, rounds, rounds)
		}
	})
}

// TestEnrollBindingTwoInstances: two Caddy processes share one Redis; a
// setup started on one belongs to its browser on both, a start-over on one
// invalidates the first browser's key on the other, and the browser that
// holds the setup confirms it on either.
func TestEnrollBindingTwoInstances(t *testing.T) {
	_, one, two := twoInstancesOnRedis(t, "")

	a := one.browser("alice")
	pageA, keyA := enrollPage(t, a)
	b := two.browser("alice")
	pageB := b.get("/.2fa/enroll")
	expectElsewhere(t, pageB, http.StatusConflict, keyA, pageA)
	b.post("/.2fa/enroll", url.Values{"csrf_token": {csrfOf(t, pageB)}, "action": {"start_over"}}).expectRedirect(t, "/.2fa/enroll")
	pageB2, keyB := enrollPage(t, b.on(one))

	r := a.on(two).post("/.2fa/enroll", url.Values{"csrf_token": {csrfOf(t, pageA)}, "code": {totp(keyA, time.Now())}})
	expectElsewhere(t, r, http.StatusConflict, keyB, pageB2)
	r.contains(t, "started over on another device")
	b.on(two).post("/.2fa/enroll", url.Values{"csrf_token": {csrfOf(t, pageB2)}, "code": {totp(keyB, time.Now())}}).
		expect(t, http.StatusOK).contains(t, "Save your recovery codes")
	b.on(one).get("/app").expect(t, http.StatusOK).contains(t, "method=totp")
}
