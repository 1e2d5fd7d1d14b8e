package caddymodule

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"

	"github.com/caddy-2fa/caddy-2fa/challenge"
	"github.com/caddy-2fa/caddy-2fa/internal/redistest"
	"github.com/caddy-2fa/caddy-2fa/sessions/redisstore"
)

// budgetMax is max_attempts in the attempt-budget tests: the number of
// codes of one user the gate may check before the lockout. The client
// address's budget (4 × 5 = 20) is larger, so the user's applies.
const budgetMax = 5

// checkCounter counts, through the codeChecked hook, how many times the
// gate compared a code with a user's secret or recovery code hashes. It
// can hold the first few checks (until release) to keep them in flight
// while the test sends more.
type checkCounter struct {
	mu      sync.Mutex
	checks  map[string]int
	hold    int // checks to hold until release
	held    int
	release chan struct{}
	once    sync.Once
}

// countChecks installs a checkCounter for the test; it holds the first
// hold checks.
func countChecks(t *testing.T, hold int) *checkCounter {
	c := &checkCounter{checks: map[string]int{}, hold: hold, release: make(chan struct{})}
	codeChecked = c.check
	t.Cleanup(func() {
		c.open()
		codeChecked = nil
	})
	return c
}

func (c *checkCounter) check(user string) {
	c.mu.Lock()
	c.checks[user]++
	wait := c.held < c.hold
	if wait {
		c.held++
	}
	c.mu.Unlock()
	if wait {
		<-c.release
	}
}

func (c *checkCounter) open() { c.once.Do(func() { close(c.release) }) }

func (c *checkCounter) count(user string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.checks[user]
}

func (c *checkCounter) heldNow() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.held
}

// budgetSites starts n sites (gate instances) in the in-process Caddy, on
// ports of their own, all with the same secret, realm and store ("file"
// or a Redis server's socket), max_attempts budgetMax 5m 15m and
// otp_header X-OTP.
func budgetSites(t *testing.T, store string, realm string, n int) []*site {
	t.Helper()
	storeLine := "store file " + t.TempDir() + "/store.db"
	if store != "file" {
		storeLine = "store redis unix://" + store
	}
	var b strings.Builder
	fmt.Fprintf(&b, "{\n\tadmin off\n\tstorage file_system %s\n\tpersist_config off\n}\n", caddyStorage)
	var sites []*site
	for range n {
		port := freePort(t)
		fmt.Fprintf(&b, `http://localhost:%d {
	basic_auth {
%s	}
	two_factor {
		%s
		realm %s
		secret %q
		issuer "Example Corp"
		max_attempts %d 5m 15m
		otp_header X-OTP
	}
	respond "app user={http.two_factor.user} method={http.two_factor.method}" 200
}
`, port, bcryptLines, storeLine, realm, fuzzSecret, budgetMax)
		sites = append(sites, &site{t: t, base: fmt.Sprintf("http://localhost:%d", port)})
	}
	loadCaddyfile(t, b.String())
	t.Cleanup(func() { caddy.Stop() })
	return sites
}

// submission is one code sent by an attacker's client, by HTML form or by
// otp_header, to one of the sites.
type submission func(i int, code string) (int, error)

// htmlSubmissions returns a submission that posts the challenge form as
// one browser of user does: one page load (CSRF token and cookie), then
// every post with that token, spread over the sites like a load
// balancer.
func htmlSubmissions(t *testing.T, sites []*site, user string) submission {
	t.Helper()
	b := sites[0].browser(user)
	page := b.get("/.2fa/challenge").expect(t, http.StatusOK)
	return formSubmissions(sites, b, "/.2fa/challenge", url.Values{"csrf_token": {csrfOf(t, page)}, "rd": {"/app"}})
}

// formSubmissions returns a submission that posts fields and the code to
// path with browser b's cookies, spread over the sites.
func formSubmissions(sites []*site, b *browser, path string, fields url.Values) submission {
	return func(i int, code string) (int, error) {
		s := sites[i%len(sites)]
		form := url.Values{"code": {code}}
		for k, v := range fields {
			form[k] = v
		}
		req, err := http.NewRequest("POST", s.base+path, strings.NewReader(form.Encode()))
		if err != nil {
			return 0, err
		}
		req.SetBasicAuth(b.user, passwords[b.user])
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Accept", b.accept)
		req.Header.Set("Origin", s.base)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		return doStatus(b.client, req)
	}
}

// headerSubmissions returns a submission that sends the code in
// otp_header, as an API client does.
func headerSubmissions(sites []*site, user string) submission {
	client := sites[0].browser(user).client
	return func(i int, code string) (int, error) {
		s := sites[i%len(sites)]
		req, err := http.NewRequest("GET", s.base+"/app", nil)
		if err != nil {
			return 0, err
		}
		req.SetBasicAuth(user, passwords[user])
		req.Header.Set("Accept", "application/json")
		req.Header.Set("X-OTP", code)
		return doStatus(client, req)
	}
}

func doStatus(c *http.Client, req *http.Request) (int, error) {
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// burst sends n wrong codes at once through send and returns how many
// answers had each status.
func burst(t *testing.T, n int, send submission, code string, sent func()) map[int]int {
	t.Helper()
	var (
		mu       sync.Mutex
		statuses = map[int]int{}
		wg       sync.WaitGroup
	)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			status, err := send(i, code)
			if err != nil {
				t.Errorf("submission %d: %v", i, err)
			}
			mu.Lock()
			statuses[status]++
			mu.Unlock()
			if sent != nil {
				sent()
			}
		})
	}
	close(start)
	wg.Wait()
	return statuses
}

// budgetStores runs fn for the file store and for Redis.
func budgetStores(t *testing.T, fn func(t *testing.T, store string)) {
	t.Run("file", func(t *testing.T) { fn(t, "file") })
	rs := redistest.Start(t)
	t.Run("redis", func(t *testing.T) { fn(t, rs.Socket) })
}

// TestAttemptBudgetConcurrentWrongCodes (issue 12 §1): N wrong codes sent
// at once, through the challenge form or otp_header, to one gate instance
// or spread over two sharing the store, have exactly max_attempts codes
// checked (counted at the verifier, not inferred from timing); the
// answers are max_attempts - 1 "wrong code" and a lockout for all the
// others.
func TestAttemptBudgetConcurrentWrongCodes(t *testing.T) {
	clockOffset.Store(0)
	budgetStores(t, func(t *testing.T, store string) {
		for _, n := range []int{50, 300} {
			for _, instances := range []int{1, 2} {
				for _, path := range []string{"html", "otp_header"} {
					name := fmt.Sprintf("%s/n=%d/instances=%d", path, n, instances)
					t.Run(name, func(t *testing.T) {
						realm := strings.NewReplacer("/", "-", "=", "").Replace(name)
						sites := budgetSites(t, store, realm, instances)
						key, _ := sites[0].browser("alice").enroll()
						advance(30 * time.Second)
						send := headerSubmissions(sites, "alice")
						if path == "html" {
							send = htmlSubmissions(t, sites, "alice")
						}
						checks := countChecks(t, 0)
						statuses := burst(t, n, send, wrongCodeAt(key, testNow()), nil)
						if got := checks.count("alice"); got != budgetMax {
							t.Errorf("%d concurrent wrong codes: %d codes checked, want exactly the budget, %d (answers %v)", n, got, budgetMax, statuses)
						}
						if statuses[http.StatusUnauthorized] != budgetMax-1 || statuses[http.StatusTooManyRequests] != n-budgetMax+1 {
							t.Errorf("answers %v, want %d × 401 and %d × 429", statuses, budgetMax-1, n-budgetMax+1)
						}
						// The right code is refused now, from any client.
						advance(30 * time.Second)
						if st, err := send(1, totp(key, testNow())); err != nil || st != http.StatusTooManyRequests {
							t.Errorf("right code after the burst: %d, %v; want 429", st, err)
						}
						if got := checks.count("alice"); got != budgetMax {
							t.Errorf("the right code was checked during the lockout (%d checks)", got)
						}
					})
				}
			}
		}
	})
}

// TestAttemptBudgetEveryPath (issue 12 §1): the other paths that check a
// code spend the same budget: 50 wrong codes at once on the enrollment
// confirmation, 50 wrong recovery codes on the challenge, and 50 wrong
// codes on a settings form that asks for a fresh code each have exactly
// max_attempts codes checked.
func TestAttemptBudgetEveryPath(t *testing.T) {
	clockOffset.Store(0)
	const n = 50
	budgetStores(t, func(t *testing.T, store string) {
		for _, path := range []string{"enroll", "recovery", "settings"} {
			t.Run(path, func(t *testing.T) {
				sites := budgetSites(t, store, "every-"+path, 2)
				b := sites[0].browser("alice")
				var send submission
				code := "000000"
				switch path {
				case "enroll":
					page := b.get("/.2fa/enroll").expect(t, http.StatusOK)
					key := secretOf(t, enrollmentURI(t, page))
					code = wrongCodeAt(key, testNow())
					send = formSubmissions(sites, b, "/.2fa/enroll", url.Values{"csrf_token": {csrfOf(t, page)}})
				case "recovery":
					b.enroll()
					advance(30 * time.Second)
					c := sites[0].browser("alice")
					page := c.get("/.2fa/challenge").expect(t, http.StatusOK)
					code = "aaaaa-bbbbb" // a well-formed recovery code that is not one of hers
					send = formSubmissions(sites, c, "/.2fa/challenge", url.Values{"csrf_token": {csrfOf(t, page)}})
				case "settings":
					key, _ := b.enroll()
					advance(30 * time.Second)
					page := settingsGet(t, b)
					code = wrongCodeAt(key, testNow())
					send = formSubmissions(sites, b, "/.2fa/settings", url.Values{"csrf_token": {csrfOf(t, page)}, "action": {"new_recovery_codes"}})
				}
				checks := countChecks(t, 0)
				statuses := burst(t, n, send, code, nil)
				if got := checks.count("alice"); got != budgetMax {
					t.Errorf("%d concurrent wrong codes on %s: %d codes checked, want exactly %d (answers %v)", n, path, got, budgetMax, statuses)
				}
				if statuses[http.StatusTooManyRequests] != n-budgetMax+1 {
					t.Errorf("answers %v, want %d × 429", statuses, n-budgetMax+1)
				}
			})
		}
	})
}

// TestAttemptBudgetRightCodeInBurst (issue 12 §1): a right code sent while
// a burst of wrong codes has used the budget but is still being checked
// is refused. The verifier hook holds the checks in flight, which is the
// moment the old read-check-count order let the right code through: the
// lockout had not been counted yet.
func TestAttemptBudgetRightCodeInBurst(t *testing.T) {
	clockOffset.Store(0)
	const n = 50
	budgetStores(t, func(t *testing.T, store string) {
		for _, instances := range []int{1, 2} {
			for _, path := range []string{"html", "otp_header"} {
				name := fmt.Sprintf("%s/instances=%d", path, instances)
				t.Run(name, func(t *testing.T) {
					realm := "inburst-" + strings.ReplaceAll(name, "/", "-")
					sites := budgetSites(t, store, realm, instances)
					key, _ := sites[0].browser("alice").enroll()
					advance(30 * time.Second)
					send := headerSubmissions(sites, "alice")
					if path == "html" {
						send = htmlSubmissions(t, sites, "alice")
					}
					checks := countChecks(t, n)
					var (
						mu       sync.Mutex
						answered int
					)
					done := make(chan map[int]int)
					go func() {
						done <- burst(t, n, send, wrongCodeAt(key, testNow()), func() {
							mu.Lock()
							answered++
							mu.Unlock()
						})
					}()
					// Wait until every wrong code is either held at the
					// verifier or answered.
					deadline := time.Now().Add(30 * time.Second)
					for {
						mu.Lock()
						settled := answered + checks.heldNow()
						mu.Unlock()
						if settled >= n {
							break
						}
						if time.Now().After(deadline) {
							checks.open()
							t.Fatalf("burst did not settle: %d answered, %d held", answered, checks.heldNow())
						}
						time.Sleep(5 * time.Millisecond)
					}
					st, err := send(0, totp(key, testNow()))
					checks.open()
					statuses := <-done
					if err != nil || st != http.StatusTooManyRequests {
						t.Errorf("right code inside a burst of %d wrong ones: %d, %v; want 429 (lockout)", n, st, err)
					}
					if got := checks.count("alice"); got > budgetMax {
						t.Errorf("%d codes checked, budget %d (answers %v)", got, budgetMax, statuses)
					}
				})
			}
		}
	})
}

// TestAttemptBudgetTwoProcesses (issue 12 §1): two Caddy processes on one
// Redis, 300 wrong codes over both at once: the audit logs of both
// together show exactly max_attempts failed verifications (every checked
// code is logged, a refused attempt is not checked).
func TestAttemptBudgetTwoProcesses(t *testing.T) {
	gate := fmt.Sprintf("max_attempts %d 5m 15m\n\t\totp_header X-OTP", budgetMax)
	_, a, b := twoInstancesOnRedis(t, gate)
	sites := []*site{&a.site, &b.site}
	for path, user := range map[string]string{"html": "alice", "otp_header": "bob"} {
		key, _ := a.browser(user).enroll()
		send := headerSubmissions(sites, user)
		if path == "html" {
			send = htmlSubmissions(t, sites, user)
		}
		statuses := burst(t, 300, send, wrongCodeAt(key, time.Now()), nil)
		failures := 0
		for _, in := range []*instance{a, b} {
			log, err := os.ReadFile(in.log)
			if err != nil {
				t.Fatal(err)
			}
			for _, line := range strings.Split(string(log), "\n") {
				if strings.Contains(line, `"msg":"two-factor verify"`) && strings.Contains(line, `"result":"failure"`) && strings.Contains(line, `"user":"`+user+`"`) {
					failures++
				}
			}
		}
		if failures != budgetMax {
			t.Errorf("%s: 300 concurrent wrong codes over two processes: %d failed verifications logged, want exactly %d (answers %v)", path, failures, budgetMax, statuses)
		}
		if statuses[http.StatusTooManyRequests] != 300-budgetMax+1 {
			t.Errorf("%s: answers %v, want %d × 429", path, statuses, 300-budgetMax+1)
		}
	}
}

// headerIdentity makes every request of a client carry user in X-User,
// the identity header of a forward_auth-style setup.
type headerIdentity struct {
	user string
	next http.RoundTripper
}

func (h headerIdentity) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-User", h.user)
	return h.next.RoundTrip(r)
}

// TestResetOfCounterNamedUser (issue 12 §4): a user whose name looks like
// a counter key ("user:alice", possible with forward_auth or app_login)
// replaces their own authenticator, which resets them; alice's lockout
// must survive it. Counters live in a name space no user name reaches.
func TestResetOfCounterNamedUser(t *testing.T) {
	s := startSite(t, siteOptions{noAuth: true, gate: "user {http.request.header.X-User}\n\t\tmax_attempts 3 5m 10m"})
	as := func(user string) *browser {
		b := s.browser("")
		b.client.Transport = headerIdentity{user, b.client.Transport}
		return b
	}
	key, _ := as("alice").enroll()
	attackerKey, _ := as("user:alice").enroll()
	advance(30 * time.Second)
	b := as("alice")
	for range 2 {
		b.challenge(wrongCode(key), false).expect(t, http.StatusUnauthorized)
	}
	b.challenge(wrongCode(key), false).expect(t, http.StatusTooManyRequests)

	// "user:alice" resets their own two-factor.
	m := as("user:alice")
	m.challenge(totp(attackerKey, testNow()), false).expectRedirect(t, "/app")
	advance(30 * time.Second)
	page := settingsGet(t, m)
	settingsAction(t, m, page, "replace_authenticator", url.Values{"code": {totp(attackerKey, testNow())}}).expectRedirect(t, "/.2fa/enroll")

	// alice is still locked out: her right code is refused.
	b.challenge(totp(key, testNow()), false).expect(t, http.StatusTooManyRequests)
}

// TestReplayMarkerSurvivesClockSkew (issue 12 §4): instances sharing Redis
// write the replay marker's expiry with their own clocks. A code accepted
// on an instance whose clock is 55 s fast, or checked later on one whose
// clock is 55 s slow, must still be refused by the other for as long as
// that one could accept the code's step: the marker in Redis outlives the
// reader's whole acceptance window, and the reader refuses the step.
func TestReplayMarkerSurvivesClockSkew(t *testing.T) {
	rs := redistest.Start(t)
	client := redis.NewClient(&redis.Options{Network: "unix", Addr: rs.Socket})
	t.Cleanup(func() { client.Close() })
	p := challenge.DefaultParams()
	for i, tc := range []struct {
		name           string
		writer, reader time.Duration // clock offsets of the two instances
	}{
		{"writer 55s fast", 55 * time.Second, 0},
		{"reader 55s slow", 0, -55 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prefix := fmt.Sprintf("skew%d", i)
			instance := func(off time.Duration) *Handler {
				st := redisstore.New(client, redisstore.Options{KeyPrefix: prefix, Now: func() time.Time { return time.Now().Add(off) }})
				return &Handler{store: st, Realm: "default", skew: 1}
			}
			w, rd := instance(tc.writer), instance(tc.reader)
			req := httptest.NewRequest("POST", "/.2fa/challenge", nil)
			// The code the phone shows now: both instances accept its
			// step (each is within one step of it on its own clock).
			real := time.Now()
			step := real.Unix() / int64(p.Period)
			if ok, reason, err := w.claimStep(req, "alice", step, p); !ok || err != nil {
				t.Fatalf("first claim: %v, %q, %v", ok, reason, err)
			}
			// The reader accepts the step until the end of step+skew on
			// its own clock.
			readerLast := time.Unix((step+2)*int64(p.Period), 0).Add(-tc.reader)
			keys := client.Keys(t.Context(), prefix+":*").Val()
			if len(keys) != 1 {
				t.Fatalf("keys after one claim: %q, want the step marker only", keys)
			}
			ttl := client.PTTL(t.Context(), keys[0]).Val()
			if gone := real.Add(ttl); gone.Before(readerLast) {
				t.Errorf("the marker leaves Redis at %v, %v before the reader stops accepting the step (%v)", gone.Format(time.TimeOnly), readerLast.Sub(gone).Round(time.Second), readerLast.Format(time.TimeOnly))
			}
			if ok, reason, err := rd.claimStep(req, "alice", step, p); ok || err != nil || reason != "used_code" {
				t.Errorf("second claim of the same step on the other instance: %v, %q, %v; want used_code", ok, reason, err)
			}
		})
	}
}

// TestClockSkewWarning: an instance whose clock is 55 s away from the
// Redis server's says so in its log at start-up.
func TestClockSkewWarning(t *testing.T) {
	rs := redistest.Start(t)
	logFile := t.TempDir() + "/caddy.log"
	saved := clockOffset.Load()
	clockOffset.Store(int64(55 * time.Second))
	defer clockOffset.Store(saved)
	startCustomSite(t, fmt.Sprintf("\tlog {\n\t\toutput file %s\n\t}\n", logFile), fmt.Sprintf(`	two_factor {
		secret %q
		store redis unix://%s
	}
	respond "app" 200`, fuzzSecret, rs.Socket))
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(logFile)
		if line := grepLine(string(b), "clock differs from the Redis server"); line != "" {
			if !strings.Contains(line, `"level":"warn"`) || !strings.Contains(line, `"offset"`) {
				t.Errorf("clock warning = %s, want a warning with the offset", line)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no clock warning within 10 s:\n%s", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// grepLine returns the first line of s that contains sub ("" if none).
func grepLine(s, sub string) string {
	for _, line := range strings.Split(s, "\n") {
		if strings.Contains(line, sub) {
			return line
		}
	}
	return ""
}
