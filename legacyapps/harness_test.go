//go:build linux

package legacyapps

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base32"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"html"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/caddy-2fa/caddy-2fa/caddymodule"
)

// caddyStorage is where Caddy keeps its data in these tests.
var caddyStorage string

// TestMain points Caddy's data and config directories at a temporary
// directory, so the tests never touch $HOME.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "caddy-2fa-legacyapps-")
	if err != nil {
		panic(err)
	}
	for _, v := range []string{"GOCACHE", "GOMODCACHE", "GOPATH"} {
		if out, err := exec.Command("go", "env", v).Output(); err == nil && os.Getenv(v) == "" {
			os.Setenv(v, strings.TrimSpace(string(out)))
		}
	}
	os.Setenv("XDG_DATA_HOME", dir+"/data")
	os.Setenv("XDG_CONFIG_HOME", dir+"/config")
	caddyStorage = dir + "/caddy-storage"
	code := m.Run()
	caddy.Stop()
	os.RemoveAll(dir)
	os.Exit(code)
}

// app is one legacy application under test.
type app struct {
	name string
	// files are paths that its Debian packages install; aptPackages
	// installs them.
	files       []string
	aptPackages string
	// mariadb says the application needs the local MariaDB.
	mariadb bool
	// setup installs the application into dir for the site at port and
	// returns the site block's body (the lines after two_factor) and the
	// two_factor block's app_login recipe. It runs before Caddy starts.
	setup func(t *testing.T, dir string, port int, fpmSocket func(ini string) string) (recipe, siteBody string)
	// suite runs against the started site.
	suite func(t *testing.T, s *site)
}

// needed reports whether the application's packages are installed; a
// missing one skips (or, under CI=true, fails) the test.
func (a *app) needed(t *testing.T) bool {
	t.Helper()
	for _, f := range a.files {
		if _, err := os.Stat(f); err != nil {
			msg := fmt.Sprintf("%s is not installed (%s missing): sudo apt-get install -y %s", a.name, f, a.aptPackages)
			if os.Getenv("CI") == "true" {
				t.Errorf("%s", msg)
			} else {
				t.Logf("skipping: %s", msg)
			}
			return false
		}
	}
	if a.mariadb {
		if out, err := mysqlCommand("SELECT 1").CombinedOutput(); err != nil {
			msg := fmt.Sprintf("%s needs MariaDB, and its root cannot connect over the local socket (%v: %s): sudo service mariadb start", a.name, err, strings.TrimSpace(string(out)))
			if os.Getenv("CI") == "true" {
				t.Errorf("%s", msg)
			} else {
				t.Logf("skipping: %s", msg)
			}
			return false
		}
	}
	return true
}

// selected reports whether LEGACYAPPS (a comma-separated list) names the
// application, or is unset.
func selected(name string) bool {
	sel := os.Getenv("LEGACYAPPS")
	if sel == "" {
		return true
	}
	for _, s := range strings.Split(sel, ",") {
		if strings.TrimSpace(s) == name {
			return true
		}
	}
	return false
}

// TestLegacyApps installs every available application, starts one Caddy
// with a site per application (in-process Caddy is one configuration per
// process, so the sites are loaded together), and runs each
// application's suite in parallel.
func TestLegacyApps(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: real applications under php-fpm")
	}
	apps := []*app{wordpressApp(), mediawikiApp(), phpmyadminApp()}
	type running struct {
		a    *app
		site *site
	}
	var runs []running
	var blocks strings.Builder
	for _, a := range apps {
		if !selected(a.name) || !a.needed(t) {
			continue
		}
		start := time.Now()
		dir := t.TempDir()
		port := freePort(t)
		recipe, body := a.setup(t, dir, port, func(ini string) string { return startFPM(t, dir, ini) })
		fmt.Fprintf(&blocks, `http://localhost:%d {
	two_factor {
		store file %s/gate.db
		issuer "%s test"
		skew 3
		realm %s
		app_login {
%s
		}
	}
%s
}
`, port, dir, a.name, a.name, indent(recipe, "\t\t\t"), indent(body, "\t"))
		t.Logf("%s installed in %v", a.name, time.Since(start).Round(time.Millisecond))
		runs = append(runs, running{a, &site{base: fmt.Sprintf("http://localhost:%d", port), name: a.name}})
	}
	if len(runs) == 0 {
		if os.Getenv("CI") != "true" {
			t.Skip("no legacy application installed")
		}
		return
	}
	cfg := fmt.Sprintf("{\n\tadmin off\n\tstorage file_system %s\n\tpersist_config off\n}\n%s", caddyStorage, blocks.String())
	loadCaddyfile(t, cfg)
	t.Cleanup(func() { caddy.Stop() })
	for _, r := range runs {
		t.Run(r.a.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			r.a.suite(t, r.site)
			t.Logf("%s suite ran in %v", r.a.name, time.Since(start).Round(time.Millisecond))
		})
	}
}

// indent prefixes every non-empty line of s.
func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = prefix + l
		}
	}
	return strings.Join(lines, "\n")
}

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

// loadCaddyfile adapts cfg and loads it into the in-process Caddy.
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
		t.Fatalf("loading config: %v\n%s", err, cfg)
	}
}

// randomHex returns n random bytes in hex: database names, passwords.
func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// run runs a command and fails the test with its output on error.
func run(t *testing.T, dir string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// mysqlCommand runs the mysql client as MariaDB's root over the local
// socket (unix_socket authentication: as the system's root, through
// sudo -n for other users).
func mysqlCommand(sql string) *exec.Cmd {
	args := []string{"-u", "root", "--protocol=socket", "-e", sql}
	if os.Getuid() == 0 {
		return exec.Command("mysql", args...)
	}
	return exec.Command("sudo", append([]string{"-n", "mysql"}, args...)...)
}

// mysql runs SQL as MariaDB's root and fails the test on error.
func mysql(t *testing.T, sql string) {
	t.Helper()
	if out, err := mysqlCommand(sql).CombinedOutput(); err != nil {
		t.Fatalf("mysql as root: %v\n%s", err, out)
	}
}

// mysqlUser creates a database and a user with all rights on it, both
// uniquely named for this run, and drops them when the test ends. It
// returns the names and the password.
func mysqlUser(t *testing.T, prefix string) (db, user, password string) {
	t.Helper()
	suffix := randomHex(4)
	db, user, password = prefix+"_"+suffix, prefix+"_"+suffix, randomHex(12)
	mysql(t, fmt.Sprintf("CREATE DATABASE `%s`; CREATE USER '%s'@'localhost' IDENTIFIED BY '%s'; GRANT ALL ON `%s`.* TO '%s'@'localhost';",
		db, user, password, db, user))
	t.Cleanup(func() {
		out, err := mysqlCommand(fmt.Sprintf("DROP DATABASE IF EXISTS `%s`; DROP USER IF EXISTS '%s'@'localhost';", db, user)).CombinedOutput()
		if err != nil {
			t.Logf("dropping %s: %v %s", db, err, out)
		}
	})
	return db, user, password
}

// shadowTree makes dst a copy of the application tree src that PHP sees
// as its own: PHP resolves symlinks in __FILE__, so a symlinked tree
// would read its configuration from src. Files are hard links where the
// file system allows (copies otherwise); symlinks are recreated pointing
// at their absolute targets. Paths in skip (relative to src) are left out,
// for the test to write its own.
func shadowTree(t *testing.T, src, dst string, skip ...string) {
	t.Helper()
	skipped := map[string]bool{}
	for _, s := range skip {
		skipped[s] = true
	}
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if skipped[rel] {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		out := filepath.Join(dst, rel)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if !filepath.IsAbs(target) {
				target = filepath.Join(filepath.Dir(p), target)
			}
			return os.Symlink(target, out)
		case d.IsDir():
			return os.MkdirAll(out, 0o755)
		default:
			if os.Link(p, out) == nil {
				return nil
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(out, data, 0o644)
		}
	})
	if err != nil {
		t.Fatalf("copying %s: %v", src, err)
	}
}

// fpmBinary finds Debian's php-fpm.
func fpmBinary(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"php-fpm8.2", "php-fpm"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
		if _, err := os.Stat("/usr/sbin/" + name); err == nil {
			return "/usr/sbin/" + name
		}
	}
	t.Fatal("no php-fpm binary (apt-get install php-fpm)")
	return ""
}

// startFPM starts a private php-fpm in the foreground with its own pool
// on a unix socket in dir, running as the current user, with the extra
// pool lines in ini; it returns the socket path and stops php-fpm when
// the test ends.
func startFPM(t *testing.T, dir, ini string) string {
	t.Helper()
	for _, d := range []string{"sessions", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	sock := filepath.Join(dir, "fpm.sock")
	asUser := ""
	args := []string{"-F", "-y", filepath.Join(dir, "php-fpm.conf"), "-p", dir}
	if os.Getuid() == 0 {
		// php-fpm refuses root unless told twice.
		asUser = "user = root\ngroup = root\n"
		args = append(args, "-R")
	}
	conf := fmt.Sprintf(`[global]
pid = %[1]s/fpm.pid
error_log = %[1]s/fpm.log
daemonize = no

[app]
%[2]slisten = %[3]s
pm = static
pm.max_children = 4
clear_env = yes
env[PATH] = /usr/local/bin:/usr/bin:/bin
env[TMPDIR] = %[1]s/tmp
catch_workers_output = yes
php_admin_flag[display_errors] = off
php_admin_flag[log_errors] = on
php_admin_value[error_log] = %[1]s/php-errors.log
php_admin_value[session.save_path] = %[1]s/sessions
php_admin_value[upload_tmp_dir] = %[1]s/tmp
php_admin_value[sys_temp_dir] = %[1]s/tmp
php_admin_value[memory_limit] = 256M
%[4]s
`, dir, asUser, sock, ini)
	if err := os.WriteFile(filepath.Join(dir, "php-fpm.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(fpmBinary(t), args...)
	// If the test binary dies (a timeout, ^C), php-fpm goes with it rather
	// than keep a pool running (Pdeathsig fires when the starting thread
	// exits, which Go only does for locked threads; none are here).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	logf, _ := os.Create(filepath.Join(dir, "fpm.stderr"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting php-fpm: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			for _, f := range []string{"fpm.log", "fpm.stderr", "php-errors.log"} {
				if data, err := os.ReadFile(filepath.Join(dir, f)); err == nil && len(data) > 0 {
					t.Logf("%s:\n%s", f, trim(string(data)))
				}
			}
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return sock
		}
		select {
		case <-done:
			data, _ := os.ReadFile(filepath.Join(dir, "fpm.stderr"))
			t.Fatalf("php-fpm exited:\n%s", data)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("php-fpm did not open its socket in 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// site is one application's site in the running Caddy.
type site struct {
	base string
	name string
}

// browser is a cookie-keeping HTTP client that does not follow redirects
// by itself, so each step of a flow can be checked.
type browser struct {
	t      *testing.T
	s      *site
	jar    *cookiejar.Jar
	client *http.Client
	accept string
}

// browser returns a new browser with an empty cookie jar.
func (s *site) browser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{
		t:   t,
		s:   s,
		jar: jar,
		client: &http.Client{
			Jar:           jar,
			Timeout:       30 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		accept: "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
	}
}

type response struct {
	*http.Response
	body string
}

// url resolves target (a path or an absolute URL) against the site.
func (b *browser) url(target string) string {
	if strings.HasPrefix(target, "http://") || strings.HasPrefix(target, "https://") {
		return target
	}
	return b.s.base + target
}

// do sends a request with the jar's cookies and reads the answer.
func (b *browser) do(method, target string, body io.Reader, header http.Header) response {
	b.t.Helper()
	req, err := http.NewRequest(method, b.url(target), body)
	if err != nil {
		b.t.Fatal(err)
	}
	if b.accept != "" {
		req.Header.Set("Accept", b.accept)
	}
	req.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) caddy-2fa-legacyapps")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	return response{resp, string(data)}
}

// get is a GET with the jar's cookies.
func (b *browser) get(target string) response { b.t.Helper(); return b.do("GET", target, nil, nil) }

// sameOrigin are the headers a browser sends with a same-origin form post.
func (b *browser) sameOrigin(contentType string) http.Header {
	return http.Header{
		"Content-Type":   {contentType},
		"Origin":         {b.s.base},
		"Sec-Fetch-Site": {"same-origin"},
	}
}

// post submits a form the way a browser does from a same-origin page.
func (b *browser) post(target string, form url.Values) response {
	b.t.Helper()
	return b.postRaw(target, form.Encode())
}

// postRaw posts an already encoded form body, for bodies url.Values
// cannot express (field order, odd names).
func (b *browser) postRaw(target, body string) response {
	b.t.Helper()
	return b.do("POST", target, strings.NewReader(body), b.sameOrigin("application/x-www-form-urlencoded"))
}

// follow follows redirects (with GET) from r, at most n of them, and
// returns the last response.
func (b *browser) follow(r response, n int) response {
	b.t.Helper()
	for i := 0; i < n && r.StatusCode >= 300 && r.StatusCode < 400 && r.location() != ""; i++ {
		next, err := r.Request.URL.Parse(r.location())
		if err != nil {
			b.t.Fatalf("bad Location %q: %v", r.location(), err)
		}
		r = b.get(next.String())
	}
	return r
}

// cookies returns the cookies the browser would send to path.
func (b *browser) cookies(path string) []*http.Cookie {
	u, _ := url.Parse(b.s.base + path)
	return b.jar.Cookies(u)
}

// setCookie puts a cookie in the jar for path, as an attacker or a copied
// profile would.
func (b *browser) setCookie(name, value, path string) {
	u, _ := url.Parse(b.s.base + path)
	b.jar.SetCookies(u, []*http.Cookie{{Name: name, Value: value, Path: path}})
}

// isGateCookie reports whether a cookie belongs to the gate, not to the
// application.
func isGateCookie(name string) bool { return strings.HasPrefix(name, "2fa_") }

// gateSession returns the gate's session cookies in the browser (their
// names carry the realm), for a test that replays them with old
// application cookies.
func (b *browser) gateSession() []*http.Cookie {
	var out []*http.Cookie
	for _, c := range b.cookies("/") {
		if strings.HasPrefix(c.Name, "2fa_session") {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		b.t.Fatal("the browser holds no gate session")
	}
	return out
}

// stealAppCookies copies from's application cookies (not the gate's) for
// each of paths into a fresh browser, as a thief with a copy of the
// cookie store would.
func (from *browser) stealAppCookies(t *testing.T, paths ...string) *browser {
	thief := from.s.browser(t)
	n := 0
	for _, p := range paths {
		for _, c := range from.cookies(p) {
			if !isGateCookie(c.Name) {
				thief.setCookie(c.Name, c.Value, p)
				n++
			}
		}
	}
	if n == 0 {
		t.Fatal("nothing to steal: the browser holds no application cookie")
	}
	return thief
}

// expect fails unless r has the status.
func (r response) expect(t *testing.T, status int) response {
	t.Helper()
	if r.StatusCode != status {
		t.Fatalf("%s %s: status %d, want %d\n%v\n%s", r.Request.Method, r.Request.URL, r.StatusCode, status, r.Header, trim(r.body))
	}
	return r
}

// location is the answer's Location header.
func (r response) location() string { return r.Header.Get("Location") }

// contains fails unless the body holds every one of subs.
func (r response) contains(t *testing.T, subs ...string) response {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(r.body, s) {
			t.Fatalf("%s %s: status %d, body lacks %q:\n%s", r.Request.Method, r.Request.URL, r.StatusCode, s, trim(r.body))
		}
	}
	return r
}

// toGate reports whether the gate stopped the request: a redirect to its
// pages, its 401/400 JSON answers, its 400 refusal page.
func (r response) toGate() bool {
	switch {
	case r.StatusCode >= 300 && r.StatusCode < 400 && strings.Contains(r.location(), "/.2fa/"):
		return true
	case r.StatusCode == http.StatusSeeOther:
		// The gate's own redirects (the applications here use 302):
		// "log in again" for an application session it does not know.
		return true
	case r.StatusCode == http.StatusUnauthorized && strings.Contains(r.body, "two_factor_required"):
		return true
	case r.StatusCode == http.StatusBadRequest && strings.Contains(r.body, "ambiguous_request"):
		return true
	case (r.StatusCode == http.StatusBadRequest || r.StatusCode == http.StatusForbidden) &&
		strings.Contains(r.body, "Two-factor authentication</title>"):
		// The gate's own error pages (e.g. "could not be read safely").
		return true
	}
	return false
}

// trim shortens a body for a failure message.
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
	reRecovery = regexp.MustCompile(`\b[0-9a-hjkmnp-tv-z]{5}-[0-9a-hjkmnp-tv-z]{5}\b`)
)

// csrfOf returns the gate page's CSRF token.
func csrfOf(t *testing.T, r response) string {
	t.Helper()
	m := reValue.FindStringSubmatch(reCSRF.FindString(r.body))
	if m == nil || m[1] == "" {
		t.Fatalf("no csrf_token in page:\n%s", trim(r.body))
	}
	return html.UnescapeString(m[1])
}

// totpKey is an enrolled TOTP secret and the steps already used with it:
// the gate accepts each step once and only newer steps afterwards.
type totpKey struct {
	mu     sync.Mutex
	secret []byte
	last   int64
}

// next returns a code the gate has not seen yet, waiting for a new time
// step when the skew window (±3 steps, the site's skew) is used up.
func (k *totpKey) next() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	for {
		now := time.Now().Unix() / 30
		step := max(now-2, k.last+1)
		if step <= now+2 {
			k.last = step
			return hotp(k.secret, step)
		}
		time.Sleep(time.Until(time.Unix((now+1)*30, 0)) + 100*time.Millisecond)
	}
}

// hotp is RFC 4226 with HMAC-SHA1 and 6 digits, independent of the code
// under test.
func hotp(key []byte, counter int64) string {
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], uint64(counter))
	m := hmac.New(sha1.New, key)
	m.Write(msg[:])
	sum := m.Sum(nil)
	off := sum[len(sum)-1] & 0xf
	v := binary.BigEndian.Uint32(sum[off:off+4]) & 0x7fffffff
	return fmt.Sprintf("%06d", v%1000000)
}

// enroll follows r (the gate's redirect to its enrollment page after an
// application login), enrolls a TOTP authenticator for user from the
// page's otpauth URI, and returns the key and the response after the
// recovery codes page.
func (b *browser) enroll(r response, user string) *totpKey {
	t := b.t
	t.Helper()
	if !(r.StatusCode >= 300 && r.StatusCode < 400 && strings.Contains(r.location(), "/.2fa/enroll")) {
		t.Fatalf("%s %s: want a redirect to enrollment, got %d %q\n%s", r.Request.Method, r.Request.URL, r.StatusCode, r.location(), trim(r.body))
	}
	page := b.follow(r, 3).expect(t, http.StatusOK)
	m := reURI.FindStringSubmatch(page.body)
	if m == nil {
		t.Fatalf("no otpauth link in page:\n%s", trim(page.body))
	}
	u, err := url.Parse(html.UnescapeString(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	// The gate folds user names to lower case. An attacker enrolling a
	// decoy passes user "" (whoever the gate took him for).
	if user != "" && !strings.HasSuffix(strings.ToLower(u.Path), ":"+strings.ToLower(user)) {
		t.Fatalf("enrolling %q, want %s", u.Path, user)
	}
	secret, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.ToUpper(u.Query().Get("secret")))
	if err != nil {
		t.Fatalf("secret: %v", err)
	}
	key := &totpKey{secret: secret}
	form := url.Values{"csrf_token": {csrfOf(t, page)}, "code": {key.next()}}
	if rd := optionalInput(page, "rd"); rd != "" {
		form.Set("rd", rd)
	}
	done := b.post("/.2fa/enroll", form).expect(t, http.StatusOK)
	if len(reRecovery.FindAllString(done.body, -1)) == 0 {
		t.Fatalf("no recovery codes shown:\n%s", trim(done.body))
	}
	return key
}

// challenge follows r (the gate's redirect to its challenge page) and
// answers with the next code, trusting the device if asked. It returns
// the response to the POST.
func (b *browser) challenge(r response, key *totpKey, trust bool) response {
	t := b.t
	t.Helper()
	if !(r.StatusCode >= 300 && r.StatusCode < 400 && strings.Contains(r.location(), "/.2fa/challenge")) {
		t.Fatalf("%s %s: want a redirect to the challenge, got %d %q\n%s", r.Request.Method, r.Request.URL, r.StatusCode, r.location(), trim(r.body))
	}
	page := b.follow(r, 3).expect(t, http.StatusOK)
	form := url.Values{"csrf_token": {csrfOf(t, page)}, "code": {key.next()}}
	if rd := optionalInput(page, "rd"); rd != "" {
		form.Set("rd", rd)
	}
	if trust {
		form.Set("trust_device", "1")
	}
	return b.post("/.2fa/challenge", form)
}

// optionalInput is the value of the input named name, or "".
func optionalInput(r response, name string) string {
	re := regexp.MustCompile(`<input[^>]*name=["']` + regexp.QuoteMeta(name) + `["'][^>]*>`)
	m := reValue.FindStringSubmatch(re.FindString(r.body))
	if m == nil {
		return ""
	}
	return html.UnescapeString(m[1])
}

// manyCookies is a Cookie header with more than 3000 ';'-separated parts
// (Go's parser then returns no cookies at all; PHP skips the empty parts)
// followed by cookie. Empty parts keep it under Caddy's 16 KiB header limit.
func manyCookies(cookie string) string {
	return strings.Repeat(";", 3001) + " " + cookie
}

// rawCookies sends a request with exactly the Cookie header given (no
// jar), as an attacker's client would.
func (s *site) rawCookies(t *testing.T, method, target, cookie string, body string, header http.Header) response {
	t.Helper()
	b := s.browser(t)
	h := http.Header{"Cookie": {cookie}}
	if body != "" {
		h.Set("Content-Type", "application/x-www-form-urlencoded")
		h.Set("Origin", s.base)
		h.Set("Sec-Fetch-Site", "same-origin")
	}
	for k, v := range header {
		h[k] = v
	}
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	return b.do(method, target, r, h)
}

// stringReader is strings.NewReader, or nil for an empty body.
func stringReader(s string) io.Reader {
	if s == "" {
		return nil
	}
	return strings.NewReader(s)
}
