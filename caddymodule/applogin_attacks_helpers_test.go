package caddymodule

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-2fa/caddy-2fa/internal/demoapp"
)

// attackUsers are the demo app's users in the attack table: alice the
// victim, bob another enrolled user, mallory an insider with her own
// second factor, carol a user who never enrolled.
var attackUsers = map[string]string{"alice": "wonderland", "bob": "builder", "mallory": "insider", "carol": "carol-pw"}

// attackVariant is one shape of the demo app behind the gate.
type attackVariant struct {
	name     string
	opts     demoapp.Options
	appLogin string // the lines inside app_login { }
}

// attackSite is a running attackVariant: the gate on base, the app in
// this process (its session table readable through app).
type attackSite struct {
	attackVariant
	*site
	app    *demoapp.App
	cookie string // the app's session cookie name

	ready  bool                // setup (enrolling everyone) succeeded
	users  map[string]*browser // verified browsers, by user
	keys   map[string][]byte   // TOTP keys, by user
	client *http.Client        // no jar, no redirects: for hand-made Cookie headers
}

// startAttackSites runs every variant, each with its own gate, store and
// app, in one Caddy config (one load for the whole table).
func startAttackSites(t *testing.T, variants []attackVariant) []*attackSite {
	t.Helper()
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "{\n\tadmin off\n\tstorage file_system %s\n\tpersist_config off\n}\n", caddyStorage)
	var sites []*attackSite
	for _, v := range variants {
		opts := v.opts
		opts.Users = attackUsers
		app := demoapp.New(opts)
		srv := httptest.NewServer(app)
		t.Cleanup(srv.Close)
		port := freePort(t)
		store := t.TempDir() + "/store.db"
		fmt.Fprintf(&cfg, `http://localhost:%d {
	two_factor {
		store file %s
		realm %s
		issuer "Example Corp"
		app_login {
%s
		}
	}
	reverse_proxy %s {
		header_up X-2FA-User {http.two_factor.user}
		header_up X-2FA-Method {http.two_factor.method}
	}
}
`, port, store, v.name, v.appLogin, strings.TrimPrefix(srv.URL, "http://"))
		sites = append(sites, &attackSite{
			attackVariant: v,
			site:          &site{t: t, base: fmt.Sprintf("http://localhost:%d", port), store: store},
			app:           app,
			cookie:        app.CookieName(),
			users:         map[string]*browser{},
			keys:          map[string][]byte{},
			client: &http.Client{
				Timeout:       10 * time.Second,
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			},
		})
	}
	loadCaddyfile(t, cfg.String())
	t.Cleanup(func() { caddy.Stop() })
	return sites
}

// use points the site and its long-lived browsers at the (sub)test t, so
// their failures end t and not the parent.
func (s *attackSite) use(t *testing.T) {
	s.site.t = t
	for _, b := range s.users {
		b.t = t
	}
}

func (s *attackSite) front() bool { return s.opts.FrontController }

// url returns the app's URL for a page: home, account, api_me, login,
// logout, rotate.
func (s *attackSite) url(page string) string {
	if s.front() {
		return "/index.php?page=" + page
	}
	switch page {
	case "home":
		return "/"
	case "api_me":
		return "/api/me"
	}
	return "/" + page
}

// field returns the login form's name for username or password.
func (s *attackSite) field(name string) string {
	if s.opts.ArrayLoginForm {
		return "login[" + name + "]"
	}
	return name
}

var reDemoCSRF = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

// csrf returns the app's CSRF token from a page (the pre-login session's
// token on the login form), "" if the page has none.
func demoCSRF(body string) string {
	if m := reDemoCSRF.FindStringSubmatch(body); m != nil {
		return m[1]
	}
	return ""
}

// loginForm returns the app's login form fields for user, fetching the
// login page first (through the gate) when the app keeps a CSRF token in
// its pre-login session.
func (s *attackSite) loginForm(b *browser, user, password string) url.Values {
	b.t.Helper()
	form := url.Values{s.field("username"): {user}, s.field("password"): {password}}
	if s.opts.PreLoginSession {
		r := b.get(s.url("login"))
		if r.StatusCode != http.StatusOK {
			b.t.Fatalf("%s: login page: status %d (the anonymous session must reach the app)\n%s", s.name, r.StatusCode, trim(r.body))
		}
		token := demoCSRF(r.body)
		if token == "" {
			b.t.Fatalf("%s: login page without a CSRF token:\n%s", s.name, trim(r.body))
		}
		form.Set("csrf", token)
	}
	return form
}

// login submits the app's login form as a browser does.
func (s *attackSite) login(b *browser, user, password string) response {
	b.t.Helper()
	return b.post(s.url("login"), s.loginForm(b, user, password))
}

// enrollUser logs user in on a fresh browser, enrolls, and checks the app
// page: the normal flow through the gate.
func (s *attackSite) enrollUser(t *testing.T, user string) {
	t.Helper()
	b := s.browser("")
	b.t = t
	r := s.login(b, user, attackUsers[user]).expectRedirect(t, "/.2fa/enroll")
	page := b.get(r.location()).expect(t, http.StatusOK)
	key := secretOf(t, enrollmentURI(t, page))
	b.post("/.2fa/enroll", url.Values{"csrf_token": {csrfOf(t, page)}, "code": {totp(key, testNow())}}).expect(t, http.StatusOK)
	b.get(s.url("home")).expect(t, http.StatusOK).contains(t, "Hello, "+user)
	if b.cookie(s.cookie) == "" {
		t.Fatalf("%s: no %s in the browser after login", s.name, s.cookie)
	}
	s.users[user], s.keys[user] = b, key
}

// revive logs user's verified browser in again if an earlier attack that
// reached the app ended or rotated its session (so that one failure does
// not hide the next rows' results).
func (s *attackSite) revive(t *testing.T, user string) {
	t.Helper()
	b := s.users[user]
	if v := b.cookie(s.cookie); v != "" {
		if u, ok := s.app.UserOf(v); ok && u == user {
			return
		}
	}
	t.Logf("%s: %s's session was ended by an earlier attack that reached the app: logging in again", s.name, user)
	r := s.login(b, user, attackUsers[user])
	if r.StatusCode == http.StatusSeeOther && strings.HasPrefix(r.location(), "/.2fa/challenge") {
		advance(30 * time.Second)
		b.challenge(totp(s.keys[user], testNow()), false)
	}
	b.get(s.url("home")).expect(t, http.StatusOK).contains(t, "Hello, "+user)
}

// stolen returns the victim's current application cookie.
func (s *attackSite) stolen(t *testing.T, user string) string {
	t.Helper()
	v := s.users[user].cookie(s.cookie)
	if v == "" {
		t.Fatalf("%s: %s has no application cookie", s.name, user)
	}
	if u, ok := s.app.UserOf(v); !ok || u != user {
		t.Fatalf("%s: %s's cookie is not %s's session in the app (%q, %v)", s.name, user, user, u, ok)
	}
	return v
}

// gateCookies returns the Cookie header part for b's cookies other than
// the app's session cookie (the gate's own cookies).
func (s *attackSite) gateCookies(b *browser) string {
	u, _ := url.Parse(s.base)
	var parts []string
	for _, c := range b.client.Jar.Cookies(u) {
		if c.Name != s.cookie {
			parts = append(parts, c.Name+"="+c.Value)
		}
	}
	return strings.Join(parts, "; ")
}

// raw sends a request with exactly the Cookie header given (no jar); a
// "\n" in cookie starts another Cookie header line.
func (s *attackSite) raw(t *testing.T, method, target, cookie string, body io.Reader, hdr http.Header) response {
	t.Helper()
	req, err := http.NewRequest(method, s.base+target, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
	for k, v := range hdr {
		req.Header[k] = v
	}
	if cookie != "" {
		// "\n" separates Cookie header lines (HTTP/1.1 allows several).
		req.Header["Cookie"] = strings.Split(cookie, "\n")
	}
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{resp, string(data)}
}

// shape is one kind of request an attacker can make to the app.
type shape struct {
	name   string
	method string
	target string
	form   url.Values // POST body (urlencoded); nil for GET
	api    bool       // an API client (Accept: application/json)
}

// shapes returns every URL shape of the variant: pages, API, form posts
// (the login path among them, without the user field), and for a front
// controller the script with any query. Rotation comes last: if it ever
// reached the app it would change the victim's session ID.
func (s *attackSite) shapes() []shape {
	var out []shape
	if s.front() {
		out = []shape{
			{"script", "GET", "/index.php", nil, false},
			{"script HEAD", "HEAD", "/index.php?page=account", nil, false},
			{"root", "GET", "/", nil, false},
			{"home", "GET", "/index.php?page=home", nil, false},
			{"account", "GET", "/index.php?page=account", nil, false},
			{"api", "GET", "/index.php?page=api_me", nil, true},
			{"api as browser", "GET", "/index.php?page=api_me", nil, false},
			{"login page", "GET", "/index.php?page=login", nil, false},
			{"login page next", "GET", "/index.php?page=login&next=%2Findex.php%3Fpage%3Daccount", nil, false},
			{"any query", "GET", "/index.php?page=account&x=1&page=home", nil, false},
			{"unknown page", "GET", "/index.php?page=nope", nil, false},
			{"path info", "GET", "/index.php/x?page=account", nil, false},
			{"login post no user field", "POST", "/index.php?page=login", url.Values{"next": {"/index.php?page=account"}}, false},
			{"script post no user field", "POST", "/index.php", url.Values{"do": {"login"}, "password": {"x"}}, false},
			{"account form", "POST", "/index.php?page=account", url.Values{"email": {"mallory@evil.example"}, "csrf": {"x"}}, false},
			{"account form do=", "POST", "/index.php", url.Values{"do": {"save_email"}, "email": {"mallory@evil.example"}, "csrf": {"x"}}, false},
			{"account form api", "POST", "/index.php?page=account", url.Values{"email": {"mallory@evil.example"}, "csrf": {"x"}}, true},
			{"rotate", "GET", "/index.php?page=rotate", nil, false},
			{"rotate post", "POST", "/index.php?page=rotate", url.Values{}, false},
		}
	} else {
		out = []shape{
			{"home", "GET", "/", nil, false},
			{"account", "GET", "/account", nil, false},
			{"account HEAD", "HEAD", "/account", nil, false},
			{"account query", "GET", "/account?x=1", nil, false},
			{"api", "GET", "/api/me", nil, true},
			{"api as browser", "GET", "/api/me", nil, false},
			{"login page", "GET", "/login", nil, false},
			{"login page next", "GET", "/login?next=%2Faccount", nil, false},
			{"login post no user field", "POST", "/login", url.Values{"next": {"/account"}, "password": {"x"}}, false},
			{"unknown path", "GET", "/nope", nil, false},
		}
		if s.opts.PreLoginSession {
			out = append(out,
				shape{"account form", "POST", "/account", url.Values{"email": {"mallory@evil.example"}, "csrf": {"x"}}, false},
				shape{"account form api", "POST", "/account", url.Values{"email": {"mallory@evil.example"}, "csrf": {"x"}}, true})
		}
		out = append(out,
			shape{"rotate", "GET", "/rotate", nil, false},
			shape{"rotate post", "POST", "/rotate", url.Values{}, false})
	}
	return out
}

// send makes the request of sh with the given Cookie header.
func (s *attackSite) send(t *testing.T, sh shape, cookie string) response {
	t.Helper()
	hdr := http.Header{}
	if sh.api {
		hdr.Set("Accept", "application/json")
	}
	var body io.Reader
	if sh.form != nil {
		body = strings.NewReader(sh.form.Encode())
		hdr.Set("Content-Type", "application/x-www-form-urlencoded")
		hdr.Set("Origin", s.base)
		hdr.Set("Sec-Fetch-Site", "same-origin")
	}
	return s.raw(t, sh.method, sh.target, cookie, body, hdr)
}

// notAsVictim runs f and fails t if the app acted as victim meanwhile or
// the victim's e-mail changed.
func (s *attackSite) notAsVictim(t *testing.T, victim, what string, f func() response) response {
	t.Helper()
	before, email := s.app.ActedAs(victim), s.app.EmailOf(victim)
	r := f()
	if after := s.app.ActedAs(victim); after != before {
		t.Errorf("%s: %s: the app acted as %s (status %d, %s)", s.name, what, victim, r.StatusCode, short(r.body))
	}
	if e := s.app.EmailOf(victim); e != email {
		t.Errorf("%s: %s: %s's e-mail changed to %q", s.name, what, victim, e)
	}
	return r
}

// notForwarded runs f and fails t if the request reached the app.
func (s *attackSite) notForwarded(t *testing.T, what string, f func() response) response {
	t.Helper()
	before := s.app.Requests()
	r := f()
	if after := s.app.Requests(); after != before {
		t.Errorf("%s: %s: the request reached the app (status %d)", s.name, what, r.StatusCode)
	}
	return r
}

// expectGate checks the answer to a request carrying a bound application
// cookie whose user has no second factor in this browser: a redirect to
// the gate for browsers, 401 two_factor_required for API clients.
func expectGate(t *testing.T, name string, sh shape, r response) {
	t.Helper()
	if sh.api {
		if r.StatusCode != http.StatusUnauthorized || !strings.Contains(r.body, `"two_factor_required"`) {
			t.Errorf("%s: %s: status %d, want 401 two_factor_required (%s)", name, sh.name, r.StatusCode, short(r.body))
		}
		return
	}
	if r.StatusCode != http.StatusSeeOther || !strings.HasPrefix(r.location(), "/.2fa/challenge") {
		t.Errorf("%s: %s: status %d Location %q, want 303 to /.2fa/challenge", name, sh.name, r.StatusCode, r.location())
	}
}

// expectAmbiguous checks the gate's refusal of a request it cannot read
// unambiguously.
func expectAmbiguous(t *testing.T, name, what string, r response) {
	t.Helper()
	if r.StatusCode != http.StatusBadRequest {
		t.Errorf("%s: %s: status %d, want 400 ambiguous_request (%s)", name, what, r.StatusCode, short(r.body))
		return
	}
	if strings.Contains(r.Header.Get("Content-Type"), "json") && !strings.Contains(r.body, `"ambiguous_request"`) {
		t.Errorf("%s: %s: JSON error %s, want ambiguous_request", name, what, short(r.body))
	}
}

// padCookies returns a Cookie header of n ';'-separated parts (as Go's
// parser counts them): the given cookies, then empty parts. Empty parts
// cost one byte each, so even 5000 fit in Caddy's default header limit;
// PHP skips them.
func padCookies(n int, first ...string) string {
	return strings.Join(first, "; ") + strings.Repeat(";", n-len(first))
}

// fillerCookies returns n-1 small cookies "p<i>=x" then last.
func fillerCookies(n int, last string) string {
	parts := make([]string, 0, n)
	for i := range n - 1 {
		parts = append(parts, fmt.Sprintf("p%d=x", i))
	}
	return strings.Join(append(parts, last), "; ")
}

// lookAlikes returns names the app's platform could read as name but a
// literal comparison would not: PHP's mangling of '_' (from ' ', '.',
// '['), a leading space, case variants.
func lookAlikes(name string) []string {
	out := []string{" " + name, strings.ToLower(name), strings.ToUpper(name)}
	if i := strings.IndexByte(name, '_'); i >= 0 {
		for _, c := range []string{".", " ", "["} {
			out = append(out, name[:i]+c+name[i+1:])
		}
		if j := strings.LastIndexByte(name, '_'); j != i {
			out = append(out, name[:j]+"."+name[j+1:], strings.ReplaceAll(name, "_", "."))
		}
	}
	var uniq []string
	seen := map[string]bool{name: true}
	for _, n := range out {
		if !seen[n] {
			seen[n] = true
			uniq = append(uniq, n)
		}
	}
	return uniq
}

var reTitle = regexp.MustCompile(`<title>([^<]*)</title>`)

// short summarises a response body for a failure message: the page's
// title, or its first 120 bytes.
func short(body string) string {
	if m := reTitle.FindStringSubmatch(body); m != nil {
		return "page " + strconvQuote(m[1])
	}
	if len(body) > 120 {
		body = body[:120] + "…"
	}
	return strconvQuote(strings.TrimSpace(body))
}

func strconvQuote(s string) string { return fmt.Sprintf("%q", s) }
