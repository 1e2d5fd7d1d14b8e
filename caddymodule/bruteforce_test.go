package caddymodule

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// failSlowly submits n wrong codes for b's user, at most perWindow in each
// max_attempts window, so that the max_attempts counter never locks. It
// returns the response to the last submission.
func failSlowly(t *testing.T, b *browser, key []byte, n, perWindow int, window time.Duration) response {
	t.Helper()
	var r response
	for i := range n {
		if i > 0 && i%perWindow == 0 {
			advance(window + time.Second)
		}
		r = b.challenge(wrongCodeAt(key, testNow()), false)
		if i < n-1 && r.StatusCode != http.StatusUnauthorized {
			t.Fatalf("failure %d of %d: status %d, want 401 (only the consecutive cap may lock)", i+1, n, r.StatusCode)
		}
	}
	return r
}

// TestConsecutiveFailureCap: an attacker who stays one failure under
// max_attempts in every window is still stopped after 100 failures
// without a success (SECURITY.md §3; checklist items 15 and 16). A
// success before that clears the count; so does an administrator's
// unlock.
func TestConsecutiveFailureCap(t *testing.T) {
	s := startAdminSite(t, "max_attempts 5 5m 15m")
	key, _ := s.browser("alice").enroll()
	advance(30 * time.Second)
	b := s.browser("alice")

	// 99 failures, 4 per window: never locked.
	failSlowly(t, b, key, 99, 4, 5*time.Minute)
	// A success clears the consecutive count...
	advance(5*time.Minute + time.Second)
	b.challenge(totp(key, testNow()), false).expectRedirect(t, "/app")
	b = s.browser("alice")
	// ...so 99 more failures still do not lock.
	failSlowly(t, b, key, 99, 4, 5*time.Minute)

	// The 100th consecutive failure locks for a day, though the
	// max_attempts window has room.
	advance(5*time.Minute + time.Second)
	r := b.challenge(wrongCodeAt(key, testNow()), false).expect(t, http.StatusTooManyRequests)
	if ra := r.Header.Get("Retry-After"); ra == "" {
		t.Error("consecutive-failure lockout has no Retry-After")
	}
	near(t, "locked_until", s.user("alice").LockedUntil, testNow().Add(24*time.Hour))
	// The right code is refused while locked, from any browser.
	advance(time.Hour)
	b.challenge(totp(key, testNow()), false).expect(t, http.StatusTooManyRequests)
	s.browser("alice").challenge(totp(key, testNow()), false).expect(t, http.StatusTooManyRequests)
	// Bob has his own counters.
	s.browser("bob").enroll()

	// An administrator's unlock clears it.
	var res userAction
	s.ok("POST", "/two-factor/realms/default/users/alice/unlock", "", &res)
	if res.WasLocked == nil || !*res.WasLocked {
		t.Errorf("unlock answer = %s, want was_locked", mustJSON(res))
	}
	advance(30 * time.Second)
	b.challenge(totp(key, testNow()), false).expectRedirect(t, "/app")
}

// TestConsecutiveFailureCapExpires: without an unlock, the day-long
// lockout ends by itself, and the count starts again.
func TestConsecutiveFailureCapExpires(t *testing.T) {
	s := startSite(t, siteOptions{gate: "max_attempts 10 1m 1m"})
	key, _ := s.browser("alice").enroll()
	advance(30 * time.Second)
	b := s.browser("alice")
	r := failSlowly(t, b, key, 100, 9, time.Minute)
	r.expect(t, http.StatusTooManyRequests)
	advance(23 * time.Hour)
	b.challenge(totp(key, testNow()), false).expect(t, http.StatusTooManyRequests)
	advance(time.Hour + time.Minute)
	b.challenge(totp(key, testNow()), false).expectRedirect(t, "/app")
}

var reCSRFValue = regexp.MustCompile(`name="csrf_token" value="[^"]*"`)

// TestLockoutRevealsNothingAboutTheCode: while a user is locked out, the
// answer to a submission is the same whether the code is right, wrong,
// already used, a valid or invalid recovery code, or malformed: the
// lockout says when to retry (so a user knows what to do) but nothing
// about the code (checklist items 17 and 20; SECURITY.md §2). The same
// holds for API clients using otp_header.
func TestLockoutRevealsNothingAboutTheCode(t *testing.T) {
	s := startSite(t, siteOptions{gate: "max_attempts 3 5m 10m\n\t\totp_header X-OTP"})
	key, recovery := s.browser("alice").enroll()
	advance(30 * time.Second)
	b := s.browser("alice")
	for range 2 {
		b.challenge(wrongCode(key), false).expect(t, http.StatusUnauthorized)
	}
	b.challenge(wrongCode(key), false).expect(t, http.StatusTooManyRequests)

	normalize := func(r response) string {
		return reCSRFValue.ReplaceAllString(r.body, `name="csrf_token" value=""`)
	}
	codes := map[string]string{
		"right":          totp(key, testNow()),
		"wrong":          wrongCode(key),
		"previous step":  totp(key, testNow().Add(-30*time.Second)),
		"recovery":       recovery[0],
		"wrong recovery": "abcde-fghjk",
		"malformed":      "12 34",
		"empty":          "",
		"huge":           string(make([]byte, 4000)),
	}
	var first, firstName string
	var firstRA string
	for name, code := range codes {
		r := b.challenge(code, false).expect(t, http.StatusTooManyRequests)
		body := normalize(r)
		ra := r.Header.Get("Retry-After")
		if first == "" {
			first, firstName, firstRA = body, name, ra
			continue
		}
		if body != first {
			t.Errorf("locked answer to the %s code differs from the answer to the %s code:\n%s\n---\n%s", name, firstName, trim(body), trim(first))
		}
		if ra != firstRA {
			t.Errorf("Retry-After for the %s code = %q, for the %s code %q", name, ra, firstName, firstRA)
		}
	}
	// The recovery code was not spent while locked.
	advance(11 * time.Minute)
	s.browser("alice").challenge(recovery[0], false).expectRedirect(t, "/app")

	// API clients: the same 429 body for a right and a wrong header code.
	advance(30 * time.Second)
	api := s.browser("alice")
	for range 3 {
		api.do("GET", "/app", nil, http.Header{"X-OTP": {wrongCode(key)}, "Accept": {"application/json"}})
	}
	right := api.do("GET", "/app", nil, http.Header{"X-OTP": {totp(key, testNow())}, "Accept": {"application/json"}}).expect(t, http.StatusTooManyRequests)
	wrong := api.do("GET", "/app", nil, http.Header{"X-OTP": {wrongCode(key)}, "Accept": {"application/json"}}).expect(t, http.StatusTooManyRequests)
	if right.body != wrong.body {
		t.Errorf("locked API answer differs: right code %q, wrong code %q", right.body, wrong.body)
	}
}

// TestHugeFormBodyCountsAsFailure: a code form body over the 16 KiB limit
// gets a clean 413 and, from this site, counts as a failed code, so huge
// bodies are no way around the failure limit (checklist item 19). The
// same body posted cross-site is refused without counting, so another
// site cannot lock a user out.
func TestHugeFormBodyCountsAsFailure(t *testing.T) {
	s := startSite(t, siteOptions{gate: "max_attempts 3 5m 10m"})
	key, _ := s.browser("alice").enroll()
	bobKey, _ := s.browser("bob").enroll()
	advance(30 * time.Second)
	huge := func(b *browser, site string) response {
		tok := csrfOf(t, b.get("/.2fa/challenge").expect(t, http.StatusOK))
		body := "csrf_token=" + tok + "&code=" + strings.Repeat("1", 1<<20)
		return b.do("POST", "/.2fa/challenge", strings.NewReader(body), http.Header{"Content-Type": {"application/x-www-form-urlencoded"}, "Sec-Fetch-Site": {site}})
	}

	b := s.browser("alice")
	huge(b, "same-origin").expect(t, http.StatusRequestEntityTooLarge)
	huge(b, "same-origin").expect(t, http.StatusRequestEntityTooLarge)
	huge(b, "same-origin").expect(t, http.StatusTooManyRequests)
	b.challenge(totp(key, testNow()), false).expect(t, http.StatusTooManyRequests)

	c := s.browser("bob")
	for range 5 {
		r := huge(c, "cross-site")
		if r.StatusCode == http.StatusTooManyRequests || r.StatusCode < 400 || r.StatusCode >= 500 {
			t.Fatalf("cross-site huge body: status %d, want a 4xx that is not a lockout", r.StatusCode)
		}
	}
	c.challenge(totp(bobKey, testNow()), false).expectRedirect(t, "/app")
}
