package caddymodule

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
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
	info, _ := runningRealm("default")
	h := fuzzCookieHandler(t)
	planted, err := h.codecs.session.Encode(sessionCookie, []byte("attacker-chosen-session-id"))
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

// TestCodeInputHygiene: odd code inputs get a clean 4xx page (never a 5xx,
// never a pass); the well-formed ones count as failures.
func TestCodeInputHygiene(t *testing.T) {
	s := startSite(t, siteOptions{gate: "max_attempts 50 5m 15m"})
	key, _ := s.browser("alice").enroll()
	advance(30 * time.Second)
	good := totp(key, testNow())
	b := s.browser("alice")
	page := b.get("/.2fa/challenge").expect(t, http.StatusOK)
	tok := csrfOf(t, page)
	fullWidth := strings.Map(func(r rune) rune { return r - '0' + '０' }, good)
	for _, code := range []string{"", "12345", "1234567", "123456789", "000000", " 1 2 3 ", fullWidth, "１２３４５６", "' OR 1=1 --", "*", strings.Repeat("9", 5000), "%00", "\u202e123456"} {
		r := b.post("/.2fa/challenge", url.Values{"csrf_token": {tok}, "code": {code}})
		if r.StatusCode < 400 || r.StatusCode >= 500 {
			t.Errorf("code %q: status %d, want a 4xx", trim(code), r.StatusCode)
		}
	}
	// A 1 MB body and a JSON body: clean 4xx, nothing passes.
	big := "csrf_token=" + url.QueryEscape(tok) + "&code=" + strings.Repeat("1", 1<<20)
	r := b.do("POST", "/.2fa/challenge", strings.NewReader(big), http.Header{"Content-Type": {"application/x-www-form-urlencoded"}, "Sec-Fetch-Site": {"same-origin"}})
	if r.StatusCode < 400 || r.StatusCode >= 500 {
		t.Errorf("1 MB body: status %d", r.StatusCode)
	}
	r = b.do("POST", "/.2fa/challenge", strings.NewReader(`{"code":"`+good+`"}`), http.Header{"Content-Type": {"application/json"}, "Sec-Fetch-Site": {"same-origin"}})
	if r.StatusCode < 400 || r.StatusCode >= 500 {
		t.Errorf("JSON body: status %d", r.StatusCode)
	}
	b.get("/app").expectRedirect(t, "/.2fa/challenge")
	// The well-formed wrong ones were counted.
	info, _ := runningRealm("default")
	a, err := info.Store.Attempts(t.Context(), "default", failureKey("alice"), testNow())
	if err != nil || a.Failures < 10 {
		t.Fatalf("failures counted = %d (%v), want >= 10", a.Failures, err)
	}
	// And the right code still works afterwards (spaces allowed).
	b.post("/.2fa/challenge", url.Values{"csrf_token": {tok}, "code": {good[:3] + " " + good[3:]}}).expectRedirect(t, "/")
}

// TestMalformedRequestsFailClosed: malformed requests (invalid
// percent-encoding, absolute-form targets for other hosts, HTTP/1.0 without
// Host, over-long URIs, bad Host, NUL bytes) never reach the application.
func TestMalformedRequestsFailClosed(t *testing.T) {
	s := startSite(t, siteOptions{})
	addr := strings.TrimPrefix(s.base, "http://")
	auth := "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("alice:"+passwords["alice"])) + "\r\n"
	for name, raw := range map[string]string{
		"bad percent-encoding": "GET /app/%zz HTTP/1.1\r\nHost: " + addr + "\r\n" + auth + "\r\n",
		"absolute-form":        "GET http://evil.example/app HTTP/1.1\r\nHost: " + addr + "\r\n" + auth + "\r\n",
		"HTTP/1.0 no Host":     "GET /app HTTP/1.0\r\n" + auth + "\r\n",
		"over-long URI":        "GET /app?" + strings.Repeat("a", 2<<20) + " HTTP/1.1\r\nHost: " + addr + "\r\n" + auth + "\r\n",
		"bad Host":             "GET /app HTTP/1.1\r\nHost: [::1\r\n" + auth + "\r\n",
		"NUL in path":          "GET /app\x00x HTTP/1.1\r\nHost: " + addr + "\r\n" + auth + "\r\n",
	} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		go c.Write([]byte(raw))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			// (Requests for no configured host get Caddy's empty
			// default answer: no route of the site runs.)
			if strings.Contains(string(body), "app user=") || (resp.StatusCode == http.StatusOK && len(body) > 0) {
				t.Errorf("%s: %d %q reached the app", name, resp.StatusCode, trim(string(body)))
			}
		}
		c.Close()
	}
}

// TestPathTricksAroundAMatcher: with two_factor limited to /admin*, every
// spelling of an admin path that Caddy routes to the app is gated too.
func TestPathTricksAroundAMatcher(t *testing.T) {
	s := startSite(t, siteOptions{match: "/admin* "})
	b := s.browser("alice")
	b.accept = ""
	b.get("/public").expect(t, http.StatusOK).contains(t, "path=/public")
	for _, p := range []string{"/admin", "/admin/", "/admin/x", "//admin", "/./admin", "/%61dmin", "/admin%2f", "/admin;x", "/admin?x=/public", "/public/../admin", "/public/%2e%2e/admin", "/ADMIN/../admin", "/ADMIN", "/Admin/x", "/admin#x"} {
		r := b.get(p)
		if r.StatusCode != http.StatusUnauthorized || !strings.Contains(r.body, "two_factor_required") {
			t.Errorf("%s: %d %s, want the gate's 401", p, r.StatusCode, trim(r.body))
		}
	}
}

// TestIdentityHeaderAliasesStripped: when the identity comes from a header
// (e.g. forward_auth's Remote-User), a client-sent underscore variant that
// a FastCGI backend would read as the same variable never reaches the app.
// Caddy 2.11.9 already drops underscore headers by default (unless a
// server allowlists them); the gate's own stripping, checked directly at
// the end, also holds when an operator allowlists them.
func TestIdentityHeaderAliasesStripped(t *testing.T) {
	seen := make(chan http.Header, 1)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Clone()
	}))
	t.Cleanup(app.Close)
	s := startCustomSite(t, "", fmt.Sprintf(`	two_factor {
		store file %s
		user {http.request.header.Remote-User}
		exempt users alice
	}
	reverse_proxy %s`, t.TempDir()+"/s.db", strings.TrimPrefix(app.URL, "http://")))
	for _, alias := range []string{"Remote_User", "remote_user", "REMOTE_USER"} {
		req, _ := http.NewRequest("GET", s.base+"/app", nil)
		req.Header["Remote-User"] = []string{"alice"}
		req.Header[alias] = []string{"admin"}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d", alias, resp.StatusCode)
		}
		got := <-seen
		for k := range got {
			if k != "Remote-User" && headerAliasKey(k) == "remote-user" {
				t.Errorf("the app received %s: %v", k, got[k])
			}
		}
		if got.Get("Remote-User") != "alice" {
			t.Errorf("the app lost Remote-User: %v", got)
		}
	}
	h := http.Header{"Remote-User": {"alice"}, "Remote_user": {"admin"}, "X-Other": {"kept"}}
	stripHeaderAliases(h, "Remote-User")
	if h.Get("Remote-User") != "alice" || len(h["Remote_user"]) != 0 || h.Get("X-Other") != "kept" {
		t.Fatalf("after stripping: %v", h)
	}
}
