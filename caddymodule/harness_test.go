package caddymodule

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base32"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
	"golang.org/x/crypto/bcrypt"
)

// clockOffset moves the gate's clock (and the codes the tests compute)
// forward without sleeping.
var clockOffset atomic.Int64

// caddyStorage is where Caddy keeps certificates in tests.
var caddyStorage string

func testNow() time.Time { return time.Now().Add(time.Duration(clockOffset.Load())) }

func advance(d time.Duration) { clockOffset.Add(int64(d)) }

// TestMain points Caddy's data and config directories at a temporary
// directory (tests never touch $HOME) and installs the test clock.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "caddy-2fa-test-")
	if err != nil {
		panic(err)
	}
	// Keep the Go caches where they are before HOME moves: the
	// multi-instance tests build ./cmd/caddy.
	for _, v := range []string{"GOCACHE", "GOMODCACHE", "GOPATH"} {
		if out, err := exec.Command("go", "env", v).Output(); err == nil && os.Getenv(v) == "" {
			os.Setenv(v, strings.TrimSpace(string(out)))
		}
	}
	os.Setenv("XDG_DATA_HOME", dir+"/data")
	os.Setenv("XDG_CONFIG_HOME", dir+"/config")
	os.Setenv("HOME", dir+"/home")
	now = testNow
	caddyStorage = dir + "/caddy-storage"
	code := m.Run()
	caddy.Stop()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Test users and their basic_auth passwords.
var passwords = map[string]string{"alice": "alice-password", "bob": "bob-password", "ümlaut:user": "umlaut-password"}

var bcryptLines = func() string {
	var b strings.Builder
	for u, p := range passwords {
		h, err := bcrypt.GenerateFromPassword([]byte(p), bcrypt.MinCost)
		if err != nil {
			panic(err)
		}
		fmt.Fprintf(&b, "\t\t%q %s\n", u, h)
	}
	return b.String()
}()

// freePort returns a TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// site is a running Caddy (in this process) with basic_auth, two_factor
// and a respond handler that echoes what the application would see.
type site struct {
	t     *testing.T
	base  string
	store string
}

// siteOptions configure startSite.
type siteOptions struct {
	gate   string // lines inside the two_factor block
	https  bool
	noAuth bool // no basic_auth (identity from elsewhere)
	port   int
	store  string
	extra  string // more directives in the site block
	global string // more global options
	match  string // a matcher for the two_factor directive
}

// startSite loads a Caddyfile config into the in-process Caddy.
func startSite(t *testing.T, o siteOptions) *site {
	t.Helper()
	if o.port == 0 {
		o.port = freePort(t)
	}
	if o.store == "" {
		o.store = t.TempDir() + "/store.db"
	}
	scheme := "http"
	tlsLine := ""
	if o.https {
		scheme = "https"
		tlsLine = "\ttls internal\n"
	}
	auth := ""
	if !o.noAuth {
		auth = "\tbasic_auth {\n" + bcryptLines + "\t}\n"
	}
	cfg := fmt.Sprintf(`{
	admin off
	storage file_system %s
	skip_install_trust
	local_certs
	persist_config off
%s}
%s://localhost:%d {
%s%s	two_factor %s{
		store file %s
		issuer "Example Corp"
%s
	}
%s	respond "app user={http.two_factor.user} method={http.two_factor.method} cookie=[{http.request.header.Cookie}] path={http.request.uri}" 200
}
`, caddyStorage, o.global, scheme, o.port, tlsLine, auth, o.match, o.store, o.gate, o.extra)
	loadCaddyfile(t, cfg)
	s := &site{t: t, base: fmt.Sprintf("%s://localhost:%d", scheme, o.port), store: o.store}
	t.Cleanup(func() { caddy.Stop() })
	if o.https {
		s.waitForTLS()
	}
	return s
}

// startCustomSite loads a site on a free port of localhost whose block
// is body (a two_factor block and whatever else the test needs), with
// the test's global options (no admin, the test storage) plus global, and
// stops it when the test ends.
func startCustomSite(t *testing.T, global, body string) *site {
	t.Helper()
	port := freePort(t)
	loadCaddyfile(t, fmt.Sprintf("{\n\tadmin off\n\tstorage file_system %s\n\tpersist_config off\n%s}\nhttp://localhost:%d {\n%s\n}\n", caddyStorage, global, port, body))
	t.Cleanup(func() { caddy.Stop() })
	return &site{t: t, base: fmt.Sprintf("http://localhost:%d", port)}
}

func loadCaddyfile(t *testing.T, cfg string) {
	t.Helper()
	adapter := caddyconfig.GetAdapter("caddyfile")
	js, warnings, err := adapter.Adapt([]byte(cfg), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		t.Fatalf("adapting Caddyfile: %v\n%s", err, cfg)
	}
	for _, w := range warnings {
		if !strings.Contains(w.Message, "not formatted") {
			t.Logf("adapter warning: %s", w.String())
		}
	}
	if err := caddy.Load(js, true); err != nil {
		t.Fatalf("loading config: %v", err)
	}
}

// waitForTLS waits (boundedly) until Caddy has issued its internal
// certificate for the site.
func (s *site) waitForTLS() {
	s.t.Helper()
	b := s.browser("")
	deadline := time.Now().Add(20 * time.Second)
	for {
		req, _ := http.NewRequest("HEAD", s.base+"/", nil)
		resp, err := b.client.Do(req)
		if err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("no TLS certificate after 20s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// browser is a cookie-keeping HTTP client that does not follow redirects,
// so each step of a flow can be checked.
type browser struct {
	t      *testing.T
	s      *site
	user   string
	client *http.Client
	accept string
}

func (s *site) browser(user string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{
		t:    s.t,
		s:    s,
		user: user,
		client: &http.Client{
			Jar:           jar,
			Timeout:       10 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			Transport:     &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
		},
		accept: "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
	}
}

type response struct {
	*http.Response
	body string
}

func (b *browser) do(method, path string, body io.Reader, header http.Header) response {
	b.t.Helper()
	req, err := http.NewRequest(method, b.s.base+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if b.user != "" {
		req.SetBasicAuth(b.user, passwords[b.user])
	}
	if b.accept != "" {
		req.Header.Set("Accept", b.accept)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	return response{resp, string(data)}
}

func (b *browser) get(path string) response { b.t.Helper(); return b.do("GET", path, nil, nil) }

// post submits a form the way a browser does from a same-origin page.
func (b *browser) post(path string, form url.Values) response {
	b.t.Helper()
	return b.do("POST", path, strings.NewReader(form.Encode()), http.Header{
		"Content-Type":   {"application/x-www-form-urlencoded"},
		"Origin":         {b.s.base},
		"Sec-Fetch-Site": {"same-origin"},
	})
}

// cookie returns the value of the named cookie in the jar ("" if none).
func (b *browser) cookie(name string) string {
	u, _ := url.Parse(b.s.base)
	for _, c := range b.client.Jar.Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// setCookie puts a cookie in the jar, as an attacker or a copied profile would.
func (b *browser) setCookie(name, value string) {
	u, _ := url.Parse(b.s.base)
	b.client.Jar.SetCookies(u, []*http.Cookie{{Name: name, Value: value, Path: "/"}})
}

func (r response) expect(t *testing.T, status int) response {
	t.Helper()
	if r.StatusCode != status {
		t.Fatalf("%s %s: status %d, want %d\n%v\n%s", r.Request.Method, r.Request.URL, r.StatusCode, status, r.Header, trim(r.body))
	}
	return r
}

func (r response) location() string { return r.Header.Get("Location") }

func (r response) expectRedirect(t *testing.T, prefix string) response {
	t.Helper()
	r.expect(t, http.StatusSeeOther)
	if !strings.HasPrefix(r.location(), prefix) {
		t.Fatalf("%s %s: redirect to %q, want %q...", r.Request.Method, r.Request.URL, r.location(), prefix)
	}
	return r
}

func (r response) contains(t *testing.T, subs ...string) response {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(r.body, s) {
			t.Fatalf("%s %s: body lacks %q:\n%s", r.Request.Method, r.Request.URL, s, trim(r.body))
		}
	}
	return r
}

func trim(s string) string {
	if len(s) > 3000 {
		return s[:3000] + "…"
	}
	return s
}

var (
	reCSRF     = regexp.MustCompile(`<input[^>]*name="csrf_token"[^>]*>`)
	reValue    = regexp.MustCompile(`value="([^"]*)"`)
	reURI      = regexp.MustCompile(`href="(otpauth://[^"]+)"`)
	reQR       = regexp.MustCompile(`<img[^>]*src="data:image/png;base64,([^"]+)"`)
	reRecovery = regexp.MustCompile(`\b[0-9a-hjkmnp-tv-z]{5}-[0-9a-hjkmnp-tv-z]{5}\b`)
)

func csrfOf(t *testing.T, r response) string {
	t.Helper()
	in := reCSRF.FindString(r.body)
	m := reValue.FindStringSubmatch(in)
	if m == nil || m[1] == "" {
		t.Fatalf("no csrf_token in page:\n%s", trim(r.body))
	}
	return html.UnescapeString(m[1])
}

// enrollmentURI returns the otpauth URI linked from an enrollment page.
func enrollmentURI(t *testing.T, r response) *url.URL {
	t.Helper()
	m := reURI.FindStringSubmatch(r.body)
	if m == nil {
		t.Fatalf("no otpauth link in page:\n%s", trim(r.body))
	}
	u, err := url.Parse(html.UnescapeString(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func secretOf(t *testing.T, u *url.URL) []byte {
	t.Helper()
	s := u.Query().Get("secret")
	key, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.ToUpper(s))
	if err != nil {
		t.Fatalf("secret %q: %v", s, err)
	}
	return key
}

// totp computes an RFC 6238 code (HMAC-SHA1, 6 digits, 30 s) independently
// of the code under test.
func totp(key []byte, t time.Time) string { return totpWith(sha1.New, key, t, 6, 30) }

// totpWith is an independent RFC 6238 code with the given HMAC hash.
func totpWith(hf func() hash.Hash, key []byte, t time.Time, digits, period int) string {
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], uint64(t.Unix()/int64(period)))
	m := hmac.New(hf, key)
	m.Write(msg[:])
	sum := m.Sum(nil)
	off := sum[len(sum)-1] & 0xf
	v := binary.BigEndian.Uint32(sum[off:off+4]) & 0x7fffffff
	mod := uint32(1)
	for range digits {
		mod *= 10
	}
	return fmt.Sprintf("%0*d", digits, v%mod)
}

// enroll takes a fresh browser of user through enrollment and returns the
// TOTP key and the recovery codes.
func (b *browser) enroll() ([]byte, []string) {
	t := b.t
	t.Helper()
	r := b.get("/app").expectRedirect(t, "/.2fa/enroll")
	r = b.get(r.location()).expect(t, http.StatusOK)
	key := secretOf(t, enrollmentURI(t, r))
	r = b.post("/.2fa/enroll", url.Values{"csrf_token": {csrfOf(t, r)}, "code": {totp(key, testNow())}, "rd": {"/app"}}).expect(t, http.StatusOK)
	codes := reRecovery.FindAllString(r.body, -1)
	codes = uniq(codes)
	if len(codes) == 0 {
		t.Fatalf("no recovery codes shown:\n%s", trim(r.body))
	}
	return key, codes
}

// challenge answers the challenge page with code (and optionally trusts
// the device) and returns the response to the POST.
func (b *browser) challenge(code string, trust bool) response {
	t := b.t
	t.Helper()
	r := b.get("/.2fa/challenge?rd=%2Fapp")
	if r.StatusCode != http.StatusOK {
		return r
	}
	form := url.Values{"csrf_token": {csrfOf(t, r)}, "code": {code}, "rd": {"/app"}}
	if trust {
		form.Set("trust_device", "1")
	}
	return b.post("/.2fa/challenge", form)
}

func uniq(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

func decodeJSON(t *testing.T, r response) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(r.body), &m); err != nil {
		t.Fatalf("body is not JSON: %v\n%s", err, r.body)
	}
	return m
}

// toolMissing skips a test that needs an outside tool (a browser, PHP),
// or fails it under CI, where .ci/run installs every such tool.
func toolMissing(t *testing.T, what, install string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not found, and CI=true: %s", what, install)
	}
	t.Skipf("%s not found: skipping (%s)", what, install)
}
