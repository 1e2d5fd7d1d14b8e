package caddymodule

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"

	"github.com/caddy-2fa/caddy-2fa/internal/redistest"
	"github.com/caddy-2fa/caddy-2fa/sessions/redisstore"
)

// caddyBinary builds ./cmd/caddy once per test run: the multi-instance
// tests run real, separate Caddy processes, as ops would.
var caddyBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "caddy-2fa-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "caddy")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/caddy")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/caddy: %v\n%s", err, out)
	}
	return bin, nil
})

// instance is one Caddy process.
type instance struct {
	site
	cmd *exec.Cmd
	log string
}

// twoInstancesOnRedis starts a redis-server (with redisArgs) and two built
// Caddy processes whose two_factor sites share it, each with gate's extra
// lines. It skips under -short, and puts the test clock back on the real
// one: the Caddy processes run on it, and so must the codes.
func twoInstancesOnRedis(t *testing.T, gate string, redisArgs ...string) (*redistest.Server, *instance, *instance) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs Caddy binaries")
	}
	clockOffset.Store(0)
	rs := redistest.Start(t, redisArgs...)
	storeLine := "store redis unix://" + rs.Socket
	return rs, startInstance(t, storeLine, gate), startInstance(t, storeLine, gate)
}

// startInstance runs the built Caddy with a two_factor site on a free port,
// using the given store lines, and waits until it serves.
func startInstance(t *testing.T, storeLines, gate string) *instance {
	t.Helper()
	bin, err := caddyBinary()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	port := freePort(t)
	cfg := fmt.Sprintf(`{
	admin off
	persist_config off
}
http://localhost:%d {
	basic_auth {
%s	}
	two_factor {
		%s
		secret "a-shared-secret-of-at-least-32-bytes!!"
		issuer "Example Corp"
%s
	}
	respond "app user={http.two_factor.user} method={http.two_factor.method}" 200
}
`, port, bcryptLines, storeLines, gate)
	if err := os.WriteFile(filepath.Join(dir, "Caddyfile"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "caddy.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--config", filepath.Join(dir, "Caddyfile"), "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+dir+"/data", "XDG_CONFIG_HOME="+dir+"/config", "HOME="+dir)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	in := &instance{site: site{t: t, base: fmt.Sprintf("http://localhost:%d", port)}, cmd: cmd, log: logPath}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logFile.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("log of %s:\n%s", in.base, b)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logPath)
			t.Fatalf("caddy on port %d did not start: %v\n%s", port, err, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return in
}

// on makes b talk to instance in (cookies are per host, not per port, so
// the browser's cookies go to either instance, like a load balancer).
func (b *browser) on(in *instance) *browser {
	b.s = &in.site
	return b
}

// TestTwoInstancesOneRedis: two Caddy processes share one Redis; a user
// verified on one is verified on both, a code used on one is refused on
// the other, failures add up, logout is global, a Redis outage makes both
// answer 503 (never pass) and both recover by themselves, and data comes
// back from Redis's AOF after a Redis restart.
func TestTwoInstancesOneRedis(t *testing.T) {
	rs, a, bInst := twoInstancesOnRedis(t, "max_attempts 4 5m 15m", "--appendonly", "yes", "--appendfsync", "always")

	// Enroll on A, pass on B.
	alice := a.browser("alice")
	alice.s = &a.site
	key, _ := alice.enroll()
	enrolledAt := time.Now()
	alice.get("/app").expect(t, http.StatusOK)
	alice.on(bInst).get("/app").expect(t, http.StatusOK).contains(t, "user=alice method=totp")

	// A code used on A is refused on B (and counts as a failure).
	next := totp(key, enrolledAt.Add(30*time.Second))
	c := a.browser("alice")
	c.s = &a.site
	c.challenge(next, false).expectRedirect(t, "/app")
	d := a.browser("alice")
	d.on(bInst).challenge(next, false).expect(t, http.StatusUnauthorized)

	// Redis stops: both instances refuse (503), never pass, never enroll
	// — once the last second's cached sessions (sessionCacheTTL) are stale.
	rs.Stop()
	time.Sleep(sessionCacheTTL + 100*time.Millisecond)
	for _, in := range []*instance{a, bInst} {
		r := alice.on(in).get("/app").expect(t, http.StatusServiceUnavailable)
		if strings.Contains(r.body, "app user=") {
			t.Fatal("request passed while Redis was down")
		}
		x := in.browser("bob")
		x.accept = "application/json"
		if m := decodeJSON(t, x.get("/app").expect(t, http.StatusServiceUnavailable)); m["error"] != "two_factor_unavailable" {
			t.Fatalf("JSON = %v", m)
		}
	}
	// Redis comes back with its AOF: sessions and enrollments are there,
	// and both instances recover without a restart.
	rs.Restart()
	alice.on(a).get("/app").expect(t, http.StatusOK)
	alice.on(bInst).get("/app").expect(t, http.StatusOK)
	e := bInst.browser("alice")
	e.s = &bInst.site
	e.get("/app").expectRedirect(t, "/.2fa/challenge")

	// Failures on A and B add up to one lockout: the replay on B above
	// was the first failure, these are the second to fourth.
	wrong := wrongCodeAt(key, time.Now())
	e.on(a).challenge(wrong, false).expect(t, http.StatusUnauthorized)
	e.on(bInst).challenge(wrong, false).expect(t, http.StatusUnauthorized)
	e.on(a).challenge(wrong, false).expect(t, http.StatusTooManyRequests)
	e.on(bInst).get("/.2fa/challenge").expect(t, http.StatusTooManyRequests)

	// Logout on A ends the session on B.
	// (The old cookie is replayed on B: the browser itself forgets it.)
	replay := bInst.browser("alice")
	replay.s = &bInst.site
	replay.setCookie("2fa_session", alice.cookie("2fa_session"))
	replay.get("/app").expect(t, http.StatusOK)
	page := alice.on(a).get("/.2fa/logout").expect(t, http.StatusOK)
	alice.post("/.2fa/logout", url.Values{"csrf_token": {csrfOf(t, page)}}).expect(t, http.StatusOK)
	// B may serve its cached copy for up to sessionCacheTTL: revocation
	// must reach it within that.
	revoked := time.Now()
	for replay.get("/app").StatusCode == http.StatusOK {
		if time.Since(revoked) > sessionCacheTTL+500*time.Millisecond {
			t.Fatalf("logout on A not effective on B after %v", time.Since(revoked))
		}
		time.Sleep(50 * time.Millisecond)
	}
	replay.get("/app").expectRedirect(t, "/.2fa/challenge")
	alice.on(bInst).get("/app").expectRedirect(t, "/.2fa/challenge")

	for _, in := range []*instance{a, bInst} {
		logs, _ := os.ReadFile(in.log)
		if !strings.Contains(string(logs), "store unavailable: refusing request") {
			t.Errorf("instance %s did not log the store failure", in.base)
		}
		if strings.Contains(string(logs), "a-shared-secret") {
			t.Errorf("instance %s logged the secret", in.base)
		}
	}
}

// wrongCodeAt is a six-digit code that is none of the codes accepted
// around t.
func wrongCodeAt(key []byte, t time.Time) string {
	bad := map[string]bool{}
	for i := -3; i <= 3; i++ {
		bad[totp(key, t.Add(time.Duration(i)*30*time.Second))] = true
	}
	for _, c := range []string{"000000", "111111", "123456", "654321"} {
		if !bad[c] {
			return c
		}
	}
	return "999999"
}

// TestDockerCaddyfile loads the compose demo's Caddyfile against a real
// Redis, so the file in docker/ cannot rot.
func TestDockerCaddyfile(t *testing.T) {
	rs := redistest.Start(t)
	raw, err := os.ReadFile("../docker/Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	cfg := strings.Replace(string(raw), "\n:80 {", fmt.Sprintf("\nhttp://localhost:%d {", port), 1)
	cfg = strings.Replace(cfg, "reverse_proxy app:80", "reverse_proxy 127.0.0.1:9", 1)
	if cfg == string(raw) {
		t.Fatal("docker/Caddyfile changed shape: update this test")
	}
	t.Setenv("TWO_FACTOR_SECRET", "compose-demo-secret-at-least-32-bytes-long")
	t.Setenv("REDIS_URL", "unix://"+rs.Socket)
	loadCaddyfile(t, cfg)
	t.Cleanup(func() { caddy.Stop() })
	s := &site{t: t, base: fmt.Sprintf("http://localhost:%d", port)}
	passwords["alice"], passwords["saved"] = "wonderland", passwords["alice"]
	defer func() { passwords["alice"] = passwords["saved"]; delete(passwords, "saved") }()
	b := s.browser("alice")
	r := b.get("/").expectRedirect(t, "/.2fa/enroll")
	b.get(r.location()).expect(t, http.StatusOK).contains(t, "caddy-2fa compose demo")
}

// TestConcurrentCodesTwoInstances fires 20 concurrent submissions of one
// valid TOTP code, and then of one recovery code, through two Caddy
// instances sharing Redis: exactly one of each succeeds.
func TestConcurrentCodesTwoInstances(t *testing.T) {
	_, a, b := twoInstancesOnRedis(t, "max_attempts 100 5m 15m")
	first := a.browser("alice")
	first.s = &a.site
	key, codes := first.enroll()
	enrolledAt := time.Now()

	race := func(code string) int {
		var browsers []*browser
		var tokens []string
		for i := range 20 {
			in := a
			if i%2 == 1 {
				in = b
			}
			br := in.browser("alice")
			br.s = &in.site
			page := br.get("/.2fa/challenge").expect(t, http.StatusOK)
			browsers = append(browsers, br)
			tokens = append(tokens, csrfOf(t, page))
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins := 0
		start := make(chan struct{})
		for i, br := range browsers {
			wg.Go(func() {
				<-start
				req, _ := http.NewRequest("POST", br.s.base+"/.2fa/challenge", strings.NewReader(url.Values{"csrf_token": {tokens[i]}, "code": {code}}.Encode()))
				req.SetBasicAuth("alice", passwords["alice"])
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("Sec-Fetch-Site", "same-origin")
				resp, err := br.client.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode == http.StatusSeeOther {
					mu.Lock()
					wins++
					mu.Unlock()
				}
			})
		}
		close(start)
		wg.Wait()
		return wins
	}
	if n := race(totp(key, enrolledAt.Add(30*time.Second))); n != 1 {
		t.Errorf("one TOTP code, 20 concurrent submissions over two instances: %d successes, want 1", n)
	}
	if n := race(codes[0]); n != 1 {
		t.Errorf("one recovery code, 20 concurrent submissions over two instances: %d successes, want 1", n)
	}
}

// revokedWithin polls b's request to /app until it is sent to the
// challenge, failing if that takes longer than the session cache's second
// (plus a margin for the polling and a busy machine).
func revokedWithin(t *testing.T, what string, b *browser) {
	t.Helper()
	revoked := time.Now()
	for {
		r := b.get("/app")
		if r.StatusCode == http.StatusSeeOther {
			break
		}
		if time.Since(revoked) > sessionCacheTTL+500*time.Millisecond {
			t.Fatalf("%s: the other instance still passes the session after %v", what, time.Since(revoked))
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.get("/app").expectRedirect(t, "/.2fa/challenge")
}

// TestRevocationReachesOtherInstance: every kind of revocation made
// through one instance (or, for the admin API, against the shared store as
// another node's admin endpoint does) ends the session on the other
// instance within one second, although that instance has just read it into
// its session cache: "sign out everywhere else" on the settings page,
// admin revoke and admin reset (issue 7; logout is in
// TestTwoInstancesOneRedis).
func TestRevocationReachesOtherInstance(t *testing.T) {
	rs, a, bInst := twoInstancesOnRedis(t, "")
	client := redis.NewClient(&redis.Options{Network: "unix", Addr: rs.Socket})
	t.Cleanup(func() { client.Close() })
	// The store as the instances see it (same key prefix as the default).
	st := redisstore.New(client, redisstore.Options{})

	alice := a.browser("alice")
	alice.s = &a.site
	_, codes := alice.enroll()
	// A second browser of alice's, verified (with a recovery code, so no
	// waiting for the next TOTP step), in use on B.
	verifyOn := func(in *instance) *browser {
		b := in.browser("alice")
		b.s = &in.site
		b.challenge(codes[0], false).expectRedirect(t, "/app")
		codes = codes[1:]
		b.get("/app").expect(t, http.StatusOK)
		return b
	}

	// "Sign out everywhere else" on A.
	other := verifyOn(bInst)
	page := alice.get("/.2fa/settings").expect(t, http.StatusOK)
	other.get("/app").expect(t, http.StatusOK) // B has it cached now
	alice.post("/.2fa/settings", url.Values{"csrf_token": {csrfOf(t, page)}, "action": {"sign_out_others"}}).expect(t, http.StatusOK)
	revokedWithin(t, "sign out everywhere else", other)
	alice.get("/app").expect(t, http.StatusOK) // this browser stays signed in

	// Admin revoke (as another node's admin API does it: in the store).
	other = verifyOn(bInst)
	other.get("/app").expect(t, http.StatusOK)
	if _, err := st.DeleteUserSessions(t.Context(), "default", "alice"); err != nil {
		t.Fatal(err)
	}
	revokedWithin(t, "admin revoke", other)

	// Admin reset.
	other = verifyOn(bInst)
	other.get("/app").expect(t, http.StatusOK)
	if err := st.ResetUser(t.Context(), "default", "alice"); err != nil {
		t.Fatal(err)
	}
	revoked := time.Now()
	for other.get("/app").StatusCode == http.StatusOK {
		if time.Since(revoked) > sessionCacheTTL+500*time.Millisecond {
			t.Fatalf("admin reset: the other instance still passes the session after %v", time.Since(revoked))
		}
		time.Sleep(50 * time.Millisecond)
	}
	// After a reset alice is not enrolled: the next stop is enrollment.
	other.get("/app").expectRedirect(t, "/.2fa/enroll")
}
