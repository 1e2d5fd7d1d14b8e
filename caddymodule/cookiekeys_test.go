package caddymodule

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/gorilla/securecookie"
)

// TestLaterCookieHasItsOwnKeyAndLifetime: "remind me later" is signed
// with its own key and lives the 24 hours it is set for. It used to be
// signed with the CSRF cookie's codec, whose 12-hour lifetime refused it
// half-way through the day its Max-Age promised.
func TestLaterCookieHasItsOwnKeyAndLifetime(t *testing.T) {
	s := startSite(t, siteOptions{gate: "secret " + strconv.Quote(fuzzSecret) + "\n\t\tgrace 14d"})
	h := fuzzCookieHandler(t) // the site's codecs: same secret, same lifetimes
	b := s.browser("alice")
	b.get("/app").expectRedirect(t, "/.2fa/enroll")
	page := b.get("/.2fa/enroll").expect(t, http.StatusOK).contains(t, "Remind me later")
	r := b.post("/.2fa/later", url.Values{"csrf_token": {csrfOf(t, page)}, "rd": {"/app"}}).expectRedirect(t, "/app")

	var later *http.Cookie
	for _, c := range r.Cookies() {
		if c.Name == laterCookie {
			later = c
		}
	}
	if later == nil {
		t.Fatalf("no %s cookie set; Set-Cookie: %q", laterCookie, r.Header.Values("Set-Cookie"))
	}
	if later.MaxAge != int(laterTTL/time.Second) {
		t.Errorf("%s Max-Age = %d, want %d (asked again daily within a 14-day grace)", laterCookie, later.MaxAge, int(laterTTL/time.Second))
	}
	var raw []byte
	if err := h.codecs.later.Decode(laterCookie, later.Value, &raw); err != nil {
		t.Fatalf("the %s cookie does not decode with the later codec: %v", laterCookie, err)
	}
	secs, user, _ := strings.Cut(string(raw), "\n")
	until, err := strconv.ParseInt(secs, 10, 64)
	if err != nil || user != "alice" {
		t.Fatalf("the %s cookie holds %q, want <unix time>\\nalice", laterCookie, raw)
	}
	if d := time.Unix(until, 0).Sub(testNow()); d < laterTTL-time.Minute || d > laterTTL {
		t.Errorf("remind me later until %v from now, want %v", d, laterTTL)
	}
	// No other kind's codec takes it, under its name or theirs.
	for kind, codec := range map[string]*securecookie.SecureCookie{
		sessionCookie: h.codecs.session, deviceCookie: h.codecs.device, csrfCookie: h.codecs.csrf,
		enrollCookie: h.codecs.enroll, anonCookie: h.codecs.anon,
	} {
		for _, name := range []string{laterCookie, kind} {
			var got []byte
			if err := codec.Decode(name, later.Value, &got); err == nil {
				t.Errorf("the %s codec decodes the %s cookie as %s: %q", kind, laterCookie, name, got)
			}
		}
	}
	b.get("/app").expect(t, http.StatusOK).contains(t, "method=grace")

	// A choice made 23 hours ago still holds; 25 hours ago it does not.
	// (securecookie dates a value by the wall clock, so the values are
	// signed in the past rather than the clock moved.)
	value := []byte(strconv.FormatInt(testNow().Add(time.Hour).Unix(), 10) + "\nalice")
	for _, tc := range []struct {
		age  time.Duration
		pass bool
	}{{13 * time.Hour, true}, {23 * time.Hour, true}, {25 * time.Hour, false}} {
		c := s.browser("alice")
		c.setCookie(laterCookie, fuzzEncodeAt(h.keys.LaterMAC, laterCookie, value, time.Now().Add(-tc.age).Unix()))
		resp := c.get("/app")
		if tc.pass {
			resp.expect(t, http.StatusOK).contains(t, "method=grace")
		} else {
			resp.expectRedirect(t, "/.2fa/enroll")
		}
	}
	// Signed with the CSRF cookie's key, as it used to be: refused.
	c := s.browser("alice")
	c.setCookie(laterCookie, fuzzEncodeAt(h.keys.CSRFMAC, laterCookie, value, time.Now().Unix()))
	c.get("/app").expectRedirect(t, "/.2fa/enroll")
}

// TestCookieCodecsPerKind: every gate cookie has its own codec, each with
// its kind's lifetime, for the current secret and for each previous one;
// the session, device, CSRF and "remind me later" cookies each have their
// own key.
func TestCookieCodecsPerKind(t *testing.T) {
	h := provisionedHandler(t, &Handler{Secret: rotB, PreviousSecrets: []string{rotA, rotC}, SessionTTL: caddy.Duration(2 * time.Hour), TrustDevice: durationPtr(7 * 24 * time.Hour)})
	if len(h.prevCodecs) != 2 {
		t.Fatalf("%d sets of previous codecs, want 2", len(h.prevCodecs))
	}
	lifetimes := map[string]time.Duration{
		sessionCookie: 2 * time.Hour, deviceCookie: 7 * 24 * time.Hour, csrfCookie: csrfTTL,
		laterCookie: laterTTL, enrollCookie: enrollCookieTTL, anonCookie: anonSessionTTL,
	}
	keyOf := map[string]string{sessionCookie: "session", deviceCookie: "device", csrfCookie: "csrf", laterCookie: "later", enrollCookie: "csrf", anonCookie: "csrf"}
	for i, set := range append([]cookieCodecs{h.codecs}, h.prevCodecs...) {
		secret := []string{rotB, rotA, rotC}[i]
		k := deriveKeys(t, secret)
		macs := map[string][]byte{"session": k.SessionMAC, "device": k.DeviceMAC, "csrf": k.CSRFMAC, "later": k.LaterMAC}
		seen := map[*securecookie.SecureCookie]string{}
		for base, life := range lifetimes {
			codec := set.of(base)
			if codec == nil {
				t.Fatalf("secret %d: no codec for %s", i, base)
			}
			if other, dup := seen[codec]; dup {
				t.Errorf("secret %d: %s and %s share a codec", i, base, other)
			}
			seen[codec] = base
			value := []byte("value of " + base)
			key := macs[keyOf[base]]
			for _, tc := range []struct {
				age time.Duration
				ok  bool
			}{{life - time.Minute, true}, {life + time.Minute, false}} {
				var got []byte
				err := codec.Decode(base, fuzzEncodeAt(key, base, value, time.Now().Add(-tc.age).Unix()), &got)
				if (err == nil) != tc.ok {
					t.Errorf("secret %d: %s signed %v ago: decode error %v, want ok=%v", i, base, tc.age, err, tc.ok)
				}
			}
		}
		// The four kinds with keys of their own refuse each other's
		// values even under the same name.
		for _, base := range []string{sessionCookie, deviceCookie, csrfCookie, laterCookie} {
			for kind, mac := range macs {
				if kind == keyOf[base] {
					continue
				}
				var got []byte
				if set.of(base).Decode(base, fuzzEncodeAt(mac, base, []byte("x"), time.Now().Unix()), &got) == nil {
					t.Errorf("secret %d: the %s codec takes a value signed with the %s key", i, base, kind)
				}
			}
		}
	}
	if h.setCookie(nil, nil, "2fa_unknown", []byte("x"), time.Hour) == nil {
		t.Error("setCookie signed a cookie kind it has no codec for")
	}
}

// TestReloadForgetsVerifiedCookies: the memory of verified cookie values
// is the handler's. A value verified a moment ago under a previous secret
// is refused by the handler of a reload that no longer lists that secret,
// within the second the memory would otherwise have vouched for it.
func TestReloadForgetsVerifiedCookies(t *testing.T) {
	s := startRotationSite(t, "secret "+rotA)
	a := s.browser("alice")
	a.enroll()
	a.get("/app").expect(t, http.StatusOK).contains(t, "method=totp")
	session := a.cookie("2fa_session")
	if !decodes(t, rotA, "2fa_session", session) {
		t.Fatal("the session cookie is not signed with secret A")
	}

	s.reload("secret " + rotB + "\n\t\tprevious_secrets " + rotA)
	x := s.browser("alice")
	x.setCookie("2fa_session", session)
	x.get("/app").expect(t, http.StatusOK).contains(t, "method=totp") // verified under A, now remembered

	s.reload("secret " + rotB)
	start := time.Now()
	// Right after a reload, Caddy's previous server can still accept a
	// new connection on the shared listener for a moment (the resets of
	// issue 18, item 7), and that server rightly knows A. So each try is
	// a fresh browser on a fresh connection, and the answer must become
	// the challenge; a new handler that took A would answer 200 every
	// time.
	var r response
	for try := 0; try < 20; try++ {
		y := s.browser("alice")
		y.setCookie("2fa_session", session)
		if r = y.get("/app"); r.StatusCode == http.StatusSeeOther {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.expectRedirect(t, "/.2fa/challenge")
	t.Logf("asked %v after the reload (the memory lasts %v)", time.Since(start), verifiedCookieTTL)

	// The same holds handler by handler, without the clock in play: a
	// handler provisioned like the reload starts with an empty memory and
	// refuses what the previous one remembered.
	old := provisionedHandler(t, &Handler{Secret: rotB, PreviousSecrets: []string{rotA}})
	req := func() *http.Request {
		r, _ := http.NewRequest("GET", "http://localhost/app", nil)
		r.AddCookie(&http.Cookie{Name: sessionCookie, Value: session})
		return r
	}
	if raw, prev := old.readCookieKey(req(), sessionCookie); raw == nil || !prev {
		t.Fatalf("the handler with previous_secrets A reads %q (previous key: %v)", raw, prev)
	}
	if n := len(old.verified.m); n != 1 {
		t.Fatalf("the handler remembers %d values, want 1", n)
	}
	reloaded := provisionedHandler(t, &Handler{Secret: rotB})
	if n := len(reloaded.verified.m); n != 0 {
		t.Fatalf("a new handler starts with %d remembered values", n)
	}
	if raw := reloaded.readCookie(req(), sessionCookie); raw != nil {
		t.Fatalf("the reloaded handler took A's cookie as %q", raw)
	}
}

// provisionedHandler provisions h on a file store of its own, as Caddy
// would, and cleans it up when the test ends.
func provisionedHandler(t *testing.T, h *Handler) *Handler {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	if h.Store == nil {
		h.Store = &StoreConfig{Path: t.TempDir() + "/s.db"}
	}
	if err := h.Provision(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := h.Validate(); err != nil {
		cancel()
		h.Cleanup()
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Cleanup(); cancel() })
	return h
}

func durationPtr(d time.Duration) *caddy.Duration { c := caddy.Duration(d); return &c }
