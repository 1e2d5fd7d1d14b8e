package caddymodule

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestXSSInNamesAndParameters: user names, the title and return targets
// with markup are shown as text on every page that shows them.
func TestXSSInNamesAndParameters(t *testing.T) {
	evil := `<script>alert(1)</script>"><svg onload=alert(2)>{{.CSRFToken}}`
	s := startSite(t, siteOptions{noAuth: true, gate: "user {http.request.header.X-User}\n\t\ttitle \"<b>Evil</b> & co\""})
	b := s.browser("")
	h := http.Header{"X-User": {evil}}
	for _, p := range []string{"/.2fa/enroll?rd=" + url.QueryEscape(`/x"><script>alert(3)</script>`), "/.2fa/logout?rd=" + url.QueryEscape("javascript:alert(4)")} {
		r := b.do("GET", p, nil, h).expect(t, http.StatusOK)
		for _, bad := range []string{"<script>", "<svg", "<b>Evil", "javascript:"} {
			if strings.Contains(r.body, bad) {
				t.Errorf("%s: page contains unescaped %q", p, bad)
			}
		}
		if strings.Contains(p, "enroll") && !strings.Contains(r.body, "&lt;script&gt;") {
			t.Errorf("%s: user name not shown escaped", p)
		}
	}
}

// TestSessionFixation: a session cookie the browser brings (here one
// correctly signed, as if planted through a sibling site sharing the
// secret) is never honoured unless the server created it, and
// verification always issues a new ID.
func TestSessionFixation(t *testing.T) {
	s := startSite(t, siteOptions{gate: "secret " + strconv.Quote(fuzzSecret)})
	key, _ := s.browser("alice").enroll()
	info, _ := LookupRealm("default")
	h := fuzzCookieHandler(t)
	planted, err := h.sessionCodec.Encode(sessionCookie, []byte("attacker-chosen-session-id"))
	if err != nil {
		t.Fatal(err)
	}
	b := s.browser("alice")
	b.setCookie("2fa_session", planted)
	b.get("/app").expectRedirect(t, "/.2fa/challenge")
	advance(30 * time.Second)
	b.challenge(totp(key, testNow()), false).expectRedirect(t, "/app")
	if got := b.cookie("2fa_session"); got == planted || got == "" {
		t.Fatal("verification kept the planted session cookie")
	}
	b.get("/app").expect(t, http.StatusOK)
	// The planted ID was never made a session.
	if _, err := info.Store.Session(t.Context(), "default", "attacker-chosen-session-id"); err == nil {
		t.Fatal("planted session ID exists in the store")
	}
	replay := s.browser("alice")
	replay.setCookie("2fa_session", planted)
	replay.get("/app").expectRedirect(t, "/.2fa/challenge")
}
