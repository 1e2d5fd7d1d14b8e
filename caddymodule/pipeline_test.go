package caddymodule

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-2fa/caddy-2fa/internal/demoapp"
	"github.com/caddy-2fa/caddy-2fa/sessions"
)

// appRecorder is the application behind the gate in the pipeline tests:
// it notes what each request that reached it carried, then hands it to
// the real application.
type appRecorder struct {
	next   http.Handler
	mu     sync.Mutex
	hits   int
	method string   // X-2FA-Method of the last request
	otp    []string // otp_header spellings that ever reached it
}

func (a *appRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	a.hits++
	a.method = r.Header.Get("X-2fa-Method")
	for k := range r.Header {
		if headerAliasKey(k) == "x-otp" {
			a.otp = append(a.otp, k)
		}
	}
	a.mu.Unlock()
	a.next.ServeHTTP(w, r)
}

func (a *appRecorder) seen() (int, string, []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.hits, a.method, append([]string(nil), a.otp...)
}

// pipeSource is one identity source under the shared situation table:
// how to start a site with it, and how a client becomes alice there.
type pipeSource struct {
	name string
	// start runs Caddy with the gate (gate holds extra two_factor lines,
	// global extra global options) in front of app, and returns the site
	// (its store path set).
	start func(t *testing.T, global, gate string, app http.Handler) *site
	app   func() http.Handler
	// header is sent on every request (the identity, for the placeholder
	// source).
	header http.Header
	// login identifies a fresh client as alice at the first factor.
	login func(t *testing.T, c *pipeClient)
}

// pipeClient is a browser of a pipeSource's site.
type pipeClient struct {
	*browser
	src *pipeSource
}

func (c *pipeClient) req(method, path string, body io.Reader, h http.Header) response {
	c.t.Helper()
	all := http.Header{}
	for k, v := range c.src.header {
		all[k] = v
	}
	for k, v := range h {
		all[k] = v
	}
	return c.do(method, path, body, all)
}

func (c *pipeClient) form(path string, form url.Values) response {
	c.t.Helper()
	return c.req("POST", path, strings.NewReader(form.Encode()), http.Header{
		"Content-Type":   {"application/x-www-form-urlencoded"},
		"Origin":         {c.s.base},
		"Sec-Fetch-Site": {"same-origin"},
	})
}

// enroll enrolls alice from c (which ends with a verified session) and
// returns her TOTP key.
func (c *pipeClient) enroll(t *testing.T) []byte {
	t.Helper()
	page := c.req("GET", "/.2fa/enroll", nil, nil).expect(t, http.StatusOK)
	key := secretOf(t, enrollmentURI(t, page))
	c.form("/.2fa/enroll", url.Values{"csrf_token": {csrfOf(t, page)}, "code": {totp(key, testNow())}}).expect(t, http.StatusOK)
	return key
}

// challenge answers the challenge page from c.
func (c *pipeClient) challenge(t *testing.T, code string, trust bool) {
	t.Helper()
	page := c.req("GET", "/.2fa/challenge", nil, nil).expect(t, http.StatusOK)
	form := url.Values{"csrf_token": {csrfOf(t, page)}, "code": {code}}
	if trust {
		form.Set("trust_device", "1")
	}
	if r := c.form("/.2fa/challenge", form); r.StatusCode >= 400 {
		t.Fatalf("challenge: status %d\n%s", r.StatusCode, trim(r.body))
	}
}

func (c *pipeClient) dropCookie(name string) {
	u, _ := url.Parse(c.s.base)
	c.client.Jar.SetCookies(u, []*http.Cookie{{Name: name, Value: "x", Path: "/", MaxAge: -1}})
}

func pipeSources() []*pipeSource {
	return []*pipeSource{
		{
			name:   "user placeholder",
			header: http.Header{"X-User": {"alice"}},
			app: func() http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "app") })
			},
			start: func(t *testing.T, global, gate string, app http.Handler) *site {
				return startPipeSite(t, global, "user {http.request.header.X-User}\n"+gate, app)
			},
			login: func(*testing.T, *pipeClient) {},
		},
		{
			name: "app_login",
			app:  func() http.Handler { return demoapp.New(demoapp.Options{}) },
			start: func(t *testing.T, global, gate string, app http.Handler) *site {
				return startPipeSite(t, global, "app_login {\n\t\t\tpath /login\n\t\t\tusername_field username\n\t\t\tsession_cookie DEMOSESSID\n\t\t\tlogout_path /logout\n\t\t}\n"+gate, app)
			},
			login: func(t *testing.T, c *pipeClient) {
				t.Helper()
				accept := c.accept
				c.accept = "text/html"
				c.appLogin("alice", "wonderland")
				c.accept = accept
				if c.cookie("DEMOSESSID") == "" {
					t.Fatal("the application did not log alice in")
				}
			},
		},
	}
}

// startPipeSite runs the gate in front of app (over reverse_proxy, which
// passes the method the gate chose in X-2FA-Method).
func startPipeSite(t *testing.T, global, gate string, app http.Handler) *site {
	t.Helper()
	backend := httptest.NewServer(app)
	t.Cleanup(backend.Close)
	port := freePort(t)
	store := t.TempDir() + "/store.db"
	loadCaddyfile(t, fmt.Sprintf(`{
	admin off
	storage file_system %s
	persist_config off
%s
}
http://localhost:%d {
	two_factor {
		store file %s
		otp_header X-Otp
		%s
	}
	reverse_proxy %s {
		header_up X-2FA-Method {http.two_factor.method}
	}
}
`, caddyStorage, global, port, store, gate, strings.TrimPrefix(backend.URL, "http://")))
	t.Cleanup(func() { caddy.Stop() })
	return &site{t: t, base: fmt.Sprintf("http://localhost:%d", port), store: store}
}

// siteStore is the store the site's gate opened, from the store pool (not
// through the realm registry, so that it does not depend on its API).
func siteStore(t *testing.T, s *site) sessions.Store {
	t.Helper()
	var st sessions.Store
	stores.Range(func(k, v any) bool {
		if k == "file:"+s.store {
			st = v.(pooledStore).Store
			return false
		}
		return true
	})
	if st == nil {
		t.Fatal("store not in pool")
	}
	return st
}

// breakStore closes the site's store under the running gate, as
// TestStoreFailureFailsClosed does, and lets the session cache expire.
func breakStore(t *testing.T, s *site) {
	t.Helper()
	v, ok := stores.LoadOrStore("file:"+s.store, nil)
	if !ok {
		t.Fatal("store not in pool")
	}
	stores.Delete("file:" + s.store)
	if err := v.(pooledStore).close(); err != nil {
		t.Fatal(err)
	}
	advance(sessionCacheTTL + time.Millisecond)
}

// TestPipelineSituations (issue 14): the same request situations give the
// same outcome whichever identity source names the user, and the
// application never sees the otp_header (or a FastCGI spelling of it),
// whichever way the request passes.
func TestPipelineSituations(t *testing.T) {
	type outcome struct {
		status int
		field  string // the JSON error, or the method the app was told
	}
	wrong := func(key []byte) string { return wrongCodeAt(key, testNow()) }
	for _, tc := range []struct {
		name string
		gate string
		// setup prepares alice's client c (and anything else) and
		// returns the headers of the request to judge.
		setup func(t *testing.T, s *site, src *pipeSource, c *pipeClient) http.Header
		want  outcome
	}{
		{"no cookie", "", func(t *testing.T, s *site, src *pipeSource, c *pipeClient) http.Header {
			enrolled(t, s, src)
			return nil
		}, outcome{401, "two_factor_required"}},
		{"not enrolled", "", func(t *testing.T, s *site, src *pipeSource, c *pipeClient) http.Header {
			return nil
		}, outcome{401, "two_factor_required"}},
		{"verified session", "", func(t *testing.T, s *site, src *pipeSource, c *pipeClient) http.Header {
			c.enroll(t)
			return nil
		}, outcome{200, MethodTOTP}},
		{"verified session, wrong otp header", "", func(t *testing.T, s *site, src *pipeSource, c *pipeClient) http.Header {
			key := c.enroll(t)
			return http.Header{"X-Otp": {wrong(key)}, "X_otp": {wrong(key)}}
		}, outcome{200, MethodTOTP}},
		{"trusted device", "", func(t *testing.T, s *site, src *pipeSource, c *pipeClient) http.Header {
			key := enrolled(t, s, src)
			advance(30 * time.Second)
			c.challenge(t, totp(key, testNow()), true)
			c.dropCookie(sessionCookie)
			return nil
		}, outcome{200, MethodTrustedDevice}},
		{"valid otp header", "", func(t *testing.T, s *site, src *pipeSource, c *pipeClient) http.Header {
			key := enrolled(t, s, src)
			advance(30 * time.Second)
			return http.Header{"X-Otp": {totp(key, testNow())}}
		}, outcome{200, MethodTOTP}},
		{"replayed otp header", "", func(t *testing.T, s *site, src *pipeSource, c *pipeClient) http.Header {
			key := enrolled(t, s, src)
			advance(30 * time.Second)
			code := totp(key, testNow())
			other := newPipeClient(t, s, src)
			other.req("GET", "/", nil, http.Header{"X-Otp": {code}}).expect(t, http.StatusOK)
			return http.Header{"X-Otp": {code}}
		}, outcome{401, "two_factor_invalid"}},
		{"wrong otp header", "", func(t *testing.T, s *site, src *pipeSource, c *pipeClient) http.Header {
			key := enrolled(t, s, src)
			return http.Header{"X-Otp": {wrong(key)}}
		}, outcome{401, "two_factor_invalid"}},
		{"exempt", "exempt users alice", func(t *testing.T, s *site, src *pipeSource, c *pipeClient) http.Header {
			return nil
		}, outcome{200, MethodExempt}},
		{"exempt, not enrolled, otp header", "exempt users alice", func(t *testing.T, s *site, src *pipeSource, c *pipeClient) http.Header {
			return http.Header{"X-Otp": {"123456"}}
		}, outcome{200, MethodExempt}},
		{"not enrolled, otp header", "", func(t *testing.T, s *site, src *pipeSource, c *pipeClient) http.Header {
			return http.Header{"X-Otp": {"123456"}}
		}, outcome{401, "two_factor_required"}},
		{"disabled", "", func(t *testing.T, s *site, src *pipeSource, c *pipeClient) http.Header {
			enrolled(t, s, src)
			if err := siteStore(t, s).SetDisabled(t.Context(), "default", "alice", testNow().Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			return nil
		}, outcome{200, MethodDisabled}},
		{"grace", "grace 7d", func(t *testing.T, s *site, src *pipeSource, c *pipeClient) http.Header {
			page := c.req("GET", "/.2fa/enroll", nil, nil).expect(t, http.StatusOK).contains(t, "Remind me later")
			c.form("/.2fa/later", url.Values{"csrf_token": {csrfOf(t, page)}, "rd": {"/"}}).expect(t, http.StatusSeeOther)
			return nil
		}, outcome{200, MethodGrace}},
		{"store down", "", func(t *testing.T, s *site, src *pipeSource, c *pipeClient) http.Header {
			key := c.enroll(t)
			breakStore(t, s)
			return http.Header{"X-Otp": {totp(key, testNow().Add(30*time.Second))}}
		}, outcome{503, "two_factor_unavailable"}},
	} {
		for _, src := range pipeSources() {
			t.Run(tc.name+"/"+src.name, func(t *testing.T) {
				rec := &appRecorder{next: src.app()}
				s := src.start(t, "", tc.gate, rec)
				c := newPipeClient(t, s, src)
				h := tc.setup(t, s, src, c)
				before, _, _ := rec.seen()
				c.accept = "application/json"
				r := c.req("GET", "/", nil, h)
				hits, method, otp := rec.seen()
				if len(otp) > 0 {
					t.Errorf("the application received the otp header as %v", otp)
				}
				got := outcome{status: r.StatusCode}
				if r.StatusCode == http.StatusOK {
					if hits != before+1 {
						t.Fatalf("200 but the application was not reached (%d requests before, %d after)", before, hits)
					}
					got.field = method
				} else {
					if hits != before {
						t.Errorf("status %d, yet the application was reached", r.StatusCode)
					}
					m := decodeJSON(t, r)
					got.field, _ = m["error"].(string)
				}
				if got != tc.want {
					t.Fatalf("got %+v, want %+v\n%s", got, tc.want, trim(r.body))
				}
				// A code that passed started a session: the next request
				// passes without one, by the same method.
				if h.Get("X-Otp") != "" && got.field == MethodTOTP {
					c.req("GET", "/", nil, nil).expect(t, http.StatusOK)
					if _, m, _ := rec.seen(); m != MethodTOTP {
						t.Errorf("after the code: method %q, want totp", m)
					}
				}
			})
		}
	}
}

func newPipeClient(t *testing.T, s *site, src *pipeSource) *pipeClient {
	t.Helper()
	c := &pipeClient{browser: s.browser(""), src: src}
	src.login(t, c)
	return c
}

// enrolled enrolls alice from a client of her own and returns her key.
func enrolled(t *testing.T, s *site, src *pipeSource) []byte {
	t.Helper()
	return newPipeClient(t, s, src).enroll(t)
}

// TestPipelineOTPHeaderAppLogin (issue 14): with app_login, a code in
// otp_header counts for the user the application session is bound to,
// as the challenge page would: the pending binding is verified and a 2FA
// session starts. A code sent with the application's logout ends with
// it: the session it started does not outlive the logout (or the next
// login on that client would be verified at once, without a code).
func TestPipelineOTPHeaderAppLogin(t *testing.T) {
	src := pipeSources()[1]
	rec := &appRecorder{next: src.app()}
	s := src.start(t, "", "", rec)
	key := enrolled(t, s, src)

	// The code of bob's client is not tried for alice, nor alice's for
	// bob: a code has no user without a bound application session.
	anon := s.browser("")
	anon.accept = "application/json"
	advance(30 * time.Second)
	code := totp(key, testNow())
	r := anon.do("GET", "/account", nil, http.Header{"X-Otp": {code}})
	if r.StatusCode == http.StatusOK || anon.cookie(sessionCookie) != "" {
		t.Fatalf("a code without an application session: status %d, 2FA session %q", r.StatusCode, anon.cookie(sessionCookie))
	}

	// A logged-in API client: one code, then its session carries it.
	api := newPipeClient(t, s, src)
	api.accept = "application/json"
	api.req("GET", "/account", nil, nil).expect(t, http.StatusUnauthorized)
	api.req("GET", "/account", nil, http.Header{"X-Otp": {code}}).expect(t, http.StatusOK)
	if _, m, _ := rec.seen(); m != MethodTOTP {
		t.Fatalf("method %q, want totp", m)
	}
	api.dropCookie(sessionCookie)
	// The binding was verified: without the 2FA session, the challenge
	// (not the application's login) is what is missing.
	if m := decodeJSON(t, api.req("GET", "/account", nil, nil).expect(t, http.StatusUnauthorized)); m["error"] != "two_factor_required" || !strings.Contains(fmt.Sprint(m["challenge"]), "/challenge") {
		t.Fatalf("after the code, without the session: %v", m)
	}

	// A code sent with the logout.
	out := newPipeClient(t, s, src)
	out.accept = "application/json"
	advance(30 * time.Second)
	before, _, _ := rec.seen()
	out.req("GET", "/logout", nil, http.Header{"X-Otp": {totp(key, testNow())}})
	if hits, _, _ := rec.seen(); hits != before+1 {
		t.Fatal("the logout did not reach the application")
	}
	if out.cookie(sessionCookie) != "" {
		t.Error("the 2FA session started by the code outlived the logout (cookie kept)")
	}
	out.accept = "text/html"
	out.appLogin("alice", "wonderland").expectRedirect(t, "/.2fa/challenge")
	if _, _, otp := rec.seen(); len(otp) > 0 {
		t.Errorf("the application received the otp header as %v", otp)
	}
}

// TestPipelineOTPAliasNeverReachesApp: where Caddy keeps the FastCGI
// spelling X_Otp (expected_underscore_headers), the gate removes it from
// requests that pass, by a session or by policy, from either identity
// source.
func TestPipelineOTPAliasNeverReachesApp(t *testing.T) {
	for _, src := range pipeSources() {
		t.Run(src.name, func(t *testing.T) {
			rec := &appRecorder{next: src.app()}
			s := src.start(t, "servers {\n\t\texpected_underscore_headers X_Otp\n\t}", "exempt users bob", rec)
			c := newPipeClient(t, s, src)
			key := c.enroll(t)
			c.accept = "application/json"
			before, _, _ := rec.seen()
			c.req("GET", "/", nil, http.Header{"X_Otp": {totp(key, testNow())}}).expect(t, http.StatusOK)
			if hits, m, _ := rec.seen(); hits != before+1 || m != MethodTOTP {
				t.Fatalf("passed by the session: %d requests, method %q", hits-before, m)
			}
			// bob is exempt: he passes by policy.
			bob := &pipeClient{browser: s.browser(""), src: src}
			if src.header != nil {
				bob.src = &pipeSource{header: http.Header{"X-User": {"bob"}}}
			} else {
				bob.appLogin("bob", "builder")
			}
			bob.accept = "application/json"
			bob.req("GET", "/", nil, http.Header{"X_Otp": {"123456"}}).expect(t, http.StatusOK)
			if _, m, otp := rec.seen(); m != MethodExempt || len(otp) > 0 {
				t.Fatalf("exempt pass: method %q, the application received %v", m, otp)
			}
		})
	}
}
