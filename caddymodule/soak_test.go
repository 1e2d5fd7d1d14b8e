package caddymodule

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-2fa/caddy-2fa/internal/redistest"
)

// openFDs counts this process's open file descriptors (Linux), or -1.
func openFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}

// settle waits until f() is at most limit, polling for up to 10 seconds,
// and returns the last value.
func settle(limit int, f func() int) int {
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := f()
		if n <= limit || time.Now().After(deadline) {
			return n
		}
		runtime.GC()
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSoakNoLeaks: thousands of requests of every kind (verified hot
// path, redirects to the challenge, challenge pages, wrong and right
// codes, settings, logout, JSON 401s) from many concurrent browsers leave
// no goroutines and no file descriptors behind once the clients are gone
// (checklist item 63). Counts, not times: the test bounds leaks, not
// speed.
func TestSoakNoLeaks(t *testing.T) {
	s := startSite(t, siteOptions{gate: "max_attempts 100 1m 1m"})
	key, _ := s.browser("alice").enroll()
	s.browser("bob").enroll()
	advance(30 * time.Second)

	// One warm-up round so that pools and lazily started goroutines
	// exist before the baseline is taken.
	round := func(workers, perWorker int) {
		var wg sync.WaitGroup
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				user := []string{"alice", "bob"}[w%2]
				b := s.browser(user)
				defer b.client.CloseIdleConnections()
				verified := false
				for i := range perWorker {
					switch {
					case !verified && user == "alice" && i%5 == 4:
						r := b.challenge(totp(key, testNow()), false)
						verified = r.StatusCode == http.StatusSeeOther && r.location() == "/app"
					case !verified && i%10 == 0:
						b.challenge("000000", false)
					case !verified:
						b.get("/app")
					case i%50 == 49:
						page := b.get("/.2fa/logout")
						b.post("/.2fa/logout", url.Values{"csrf_token": {csrfOf(t, page)}})
						verified = false
					case i%10 == 0:
						b.get("/.2fa/settings")
					case i%7 == 0:
						b.do("GET", "/api", nil, http.Header{"Accept": {"application/json"}})
					default:
						b.get("/app")
					}
				}
			}()
		}
		wg.Wait()
	}
	round(4, 20)
	runtime.GC()
	time.Sleep(200 * time.Millisecond) // closed connections' goroutines end
	goroutines, fds := runtime.NumGoroutine(), openFDs()

	for range 5 {
		// Each round's codes belong to a new step, so one verification
		// per round can succeed per user; the rest are refused replays.
		advance(30 * time.Second)
		round(16, 60)
	}

	if g := settle(goroutines+5, runtime.NumGoroutine); g > goroutines+5 {
		buf := make([]byte, 1<<20)
		n := runtime.Stack(buf, true)
		t.Errorf("goroutines: %d before, %d after 4800 requests; stacks:\n%s", goroutines, g, buf[:n])
	}
	if fds >= 0 {
		if f := settle(fds+5, openFDs); f > fds+5 {
			t.Errorf("file descriptors: %d before, %d after 4800 requests", fds, f)
		}
	}
	t.Logf("goroutines %d, file descriptors %d before the soak", goroutines, fds)
}

// TestRedisPoolExhaustion: with a Redis connection pool of 2 and 64
// concurrent browsers, every request is answered (a page, a redirect or
// a 503, never a hang or a pass without a session), and once the burst is
// over the gate serves normally (checklist item 63).
func TestRedisPoolExhaustion(t *testing.T) {
	rs := redistest.Start(t)
	s := startCustomSite(t, "", fmt.Sprintf(`	basic_auth {
%s	}
	two_factor {
		secret %q
		store redis {
			addrs %s
			pool_size 2
			dial_timeout 1s
			read_timeout 1s
		}
	}
	respond "app user={http.two_factor.user}" 200`, bcryptLines, fuzzSecret, rs.Socket))
	key, _ := s.browser("alice").enroll()

	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := s.browser("alice")
			defer b.client.CloseIdleConnections()
			for range 10 {
				r := b.get("/app")
				if strings.Contains(r.body, "app user=") {
					t.Errorf("a request without a 2FA session reached the app")
				}
				mu.Lock()
				statuses[r.StatusCode]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for code := range statuses {
		if code != http.StatusSeeOther && code != http.StatusServiceUnavailable {
			t.Errorf("status %d under pool exhaustion (all: %v)", code, statuses)
		}
	}
	t.Logf("statuses under pool exhaustion: %v", statuses)
	if statuses[http.StatusSeeOther] == 0 {
		t.Errorf("no request was served under load: %v", statuses)
	}
	// Afterwards the pool recovers: a full verification works.
	advance(30 * time.Second)
	b := s.browser("alice")
	b.challenge(totp(key, testNow()), false).expectRedirect(t, "/app")
	b.get("/app").expect(t, http.StatusOK).contains(t, "app user=alice")
}

// TestRedisOutageDuringCodeSubmission: Redis goes away between showing a
// form and receiving it. A right code on the challenge page, a right code
// on the enrollment page and an API client's header code all get 503
// (never a pass, never "wrong code"), the refusal is logged, nothing is
// spent, and once Redis is back the same codes work (checklist items 13
// and 56).
func TestRedisOutageDuringCodeSubmission(t *testing.T) {
	rs := redistest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
	logFile := t.TempDir() + "/caddy.log"
	s := startCustomSite(t, fmt.Sprintf("\tlog {\n\t\toutput file %s\n\t}\n", logFile), fmt.Sprintf(`	basic_auth {
%s	}
	two_factor {
		secret %q
		otp_header X-OTP
		store redis {
			addrs %s
			dial_timeout 300ms
			read_timeout 300ms
		}
	}
	respond "app user={http.two_factor.user}" 200`, bcryptLines, fuzzSecret, rs.Socket))
	key, _ := s.browser("alice").enroll()
	advance(30 * time.Second)

	a := s.browser("alice")
	page := a.get("/.2fa/challenge").expect(t, http.StatusOK)
	bob := s.browser("bob")
	enrollPage := bob.get("/.2fa/enroll").expect(t, http.StatusOK)
	bobKey := secretOf(t, enrollmentURI(t, enrollPage))

	rs.Stop()
	code := totp(key, testNow())
	r := a.post("/.2fa/challenge", url.Values{"csrf_token": {csrfOf(t, page)}, "code": {code}, "rd": {"/app"}})
	if r.StatusCode != http.StatusServiceUnavailable || strings.Contains(r.body, "app user=") {
		t.Errorf("challenge during the outage: %d %s, want 503", r.StatusCode, r.location())
	}
	r = bob.post("/.2fa/enroll", url.Values{"csrf_token": {csrfOf(t, enrollPage)}, "code": {totp(bobKey, testNow())}})
	if r.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("enrollment during the outage: %d, want 503", r.StatusCode)
	}
	api := s.browser("alice")
	api.accept = "application/json"
	r = api.do("GET", "/api", nil, http.Header{"X-Otp": {code}})
	if r.StatusCode != http.StatusServiceUnavailable || !strings.Contains(r.body, "two_factor_unavailable") {
		t.Errorf("header code during the outage: %d %q, want 503 two_factor_unavailable", r.StatusCode, r.body)
	}
	a.get("/app").expect(t, http.StatusServiceUnavailable)

	rs.Restart()
	// The gate reconnects by itself (no reload): wait until it answers.
	for i := 0; a.get("/.2fa/challenge").StatusCode != http.StatusOK; i++ {
		if i == 100 {
			t.Fatal("the gate did not recover within 10 s of Redis coming back")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Nothing was spent: the same step's code and Bob's setup still work.
	a.post("/.2fa/challenge", url.Values{"csrf_token": {csrfOf(t, page)}, "code": {code}, "rd": {"/app"}}).expectRedirect(t, "/app")
	a.get("/app").expect(t, http.StatusOK)
	bob.post("/.2fa/enroll", url.Values{"csrf_token": {csrfOf(t, enrollPage)}, "code": {totp(bobKey, testNow())}}).expect(t, http.StatusOK)

	caddy.Stop()
	logs, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(logs), "two-factor store unavailable"); n < 3 {
		t.Errorf("%d store-unavailable log lines, want at least 3", n)
	}
}
