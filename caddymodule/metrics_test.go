package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/caddy-2fa/caddy-2fa/sessions"
)

// startMetricsSite runs the gate the way ops would deploy it with metrics:
// the protected site, and Caddy's metrics handler on a separate internal
// listener (two_factor covers its whole site, and metrics do not belong
// behind a login anyway). It returns the site, the scrape URL and a
// function that loads the same config again (a reload).
func startMetricsSite(t *testing.T) (*site, string, func()) {
	t.Helper()
	port, metricsPort := freePort(t), freePort(t)
	store := t.TempDir() + "/store.db"
	cfg := fmt.Sprintf(`{
	admin off
	storage file_system %s
	skip_install_trust
	local_certs
	persist_config off
}
http://localhost:%d {
	basic_auth {
%s	}
	two_factor {
		store file %s
		issuer "Example Corp"
		max_attempts 3 5m 10m
	}
	respond "app user={http.two_factor.user} method={http.two_factor.method}" 200
}
http://localhost:%d {
	metrics
}
`, caddyStorage, port, bcryptLines, store, metricsPort)
	loadCaddyfile(t, cfg)
	t.Cleanup(func() { caddy.Stop() })
	s := &site{t: t, base: fmt.Sprintf("http://localhost:%d", port), store: store}
	return s, fmt.Sprintf("http://localhost:%d/metrics", metricsPort), func() { loadCaddyfile(t, cfg) }
}

// scrape fetches and parses the Prometheus text exposition at url.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	// A new connection per scrape: a config reload closes idle
	// keep-alive connections, and reusing one would read EOF.
	// A connection accepted just as a reload hands the listener to the
	// new server can still be closed by the old one (EOF): a scraper
	// tries again, and so does this, a few times, on transport errors
	// only (a wrong status or body still fails at once).
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	var resp *http.Response
	var err error
	for try := 0; ; try++ {
		if resp, err = client.Get(url); err == nil || try == 4 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("scraping %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scraping %s: status %d", url, resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing the scrape: %v", err)
	}
	return mfs
}

// sample returns the value of the counter, or the sample count of the
// histogram, name{labels} in mfs (0 if absent).
func sample(mfs map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	mf := mfs[name]
	if mf == nil {
		return 0
	}
next:
	for _, m := range mf.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	return 0
}

// TestMetricsScrape drives enrollment, a success, the three kinds of
// failure ending in a lockout and a recovery code, then scrapes the
// metrics endpoint and checks every counter moved by exactly that much.
// The collectors are package-level (other tests move them too), so the
// test compares against a scrape taken before the flow.
func TestMetricsScrape(t *testing.T) {
	s, metricsURL, reload := startMetricsSite(t)
	before := scrape(t, metricsURL)
	for _, name := range []string{"caddy_two_factor_enrollments_total", "caddy_two_factor_lockouts_total", "caddy_two_factor_verifications_total", "caddy_two_factor_failures_total", "caddy_two_factor_store_duration_seconds", "caddy_two_factor_store_errors_total"} {
		if before[name] == nil {
			t.Errorf("%s is not exported before the first event", name)
		}
	}

	key, codes := s.browser("alice").enroll() // a totp verification too
	advance(30 * time.Second)
	b := s.browser("alice")
	code := totp(key, testNow())
	b.challenge(code, false).expectRedirect(t, "/app")
	b.get("/app").expect(t, http.StatusOK) // a session lookup

	c := s.browser("alice")
	c.challenge(code, false).expect(t, http.StatusUnauthorized)              // used_code
	c.challenge("12", false).expect(t, http.StatusBadRequest)                // bad_format
	c.challenge(wrongCode(key), false).expect(t, http.StatusTooManyRequests) // wrong_code, lockout
	advance(11 * time.Minute)
	c.challenge(codes[0], false).expectRedirect(t, "/app")

	after := scrape(t, metricsURL)
	for _, tc := range []struct {
		name   string
		labels []string
		delta  float64
	}{
		{"caddy_two_factor_enrollments_total", nil, 1},
		{"caddy_two_factor_lockouts_total", nil, 1},
		{"caddy_two_factor_verifications_total", []string{"method", "totp", "result", "success"}, 2},
		{"caddy_two_factor_verifications_total", []string{"method", "totp", "result", "failure"}, 3},
		{"caddy_two_factor_verifications_total", []string{"method", "recovery", "result", "success"}, 1},
		{"caddy_two_factor_verifications_total", []string{"method", "recovery", "result", "failure"}, 0},
		{"caddy_two_factor_verifications_total", []string{"method", "trusted_device", "result", "success"}, 0},
		{"caddy_two_factor_failures_total", []string{"reason", "used_code"}, 1},
		{"caddy_two_factor_failures_total", []string{"reason", "bad_format"}, 1},
		{"caddy_two_factor_failures_total", []string{"reason", "wrong_code"}, 1},
		{"caddy_two_factor_store_errors_total", []string{"op", "Session"}, 0},
	} {
		if got := sample(after, tc.name, tc.labels...) - sample(before, tc.name, tc.labels...); got != tc.delta {
			t.Errorf("%s%v moved by %v, want %v", tc.name, tc.labels, got, tc.delta)
		}
	}
	for _, op := range []string{"Session", "EnrollPending", "AcceptStep", "ReserveAttempt", "ReleaseAttempt", "UseRecoveryCode"} {
		if n := sample(after, "caddy_two_factor_store_duration_seconds", "op", op) - sample(before, "caddy_two_factor_store_duration_seconds", "op", op); n <= 0 {
			t.Errorf("store_duration_seconds_count{op=%q} did not move", op)
		}
	}

	// Nothing personal in any label of any metric.
	for name, mf := range after {
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if strings.Contains(strings.ToLower(lp.GetValue()), "alice") || strings.Contains(lp.GetValue(), "127.0.0.1") {
					t.Errorf("%s has label %s=%q", name, lp.GetName(), lp.GetValue())
				}
			}
		}
	}

	// A config reload brings a fresh registry: the collectors are
	// registered on it again and keep their values.
	reload()
	if got, want := sample(scrape(t, metricsURL), "caddy_two_factor_enrollments_total"), sample(after, "caddy_two_factor_enrollments_total"); got < want {
		t.Errorf("after a reload enrollments_total = %v, want at least %v", got, want)
	}
}

// fakeStore answers every call with err and zero values. It tests the
// instrumentation wrapper, not a backend.
type fakeStore struct{ err error }

var _ sessions.Store = fakeStore{}

func (f fakeStore) Enrollment(context.Context, string, string) (sessions.Enrollment, error) {
	return sessions.Enrollment{}, f.err
}

func (f fakeStore) Enroll(context.Context, string, string, sessions.Enrollment, []string) error {
	return f.err
}

func (f fakeStore) SetRecoveryCodes(context.Context, string, string, []string) error { return f.err }

func (f fakeStore) ReplaceSealedSecret(context.Context, string, string, []byte, []byte) (bool, error) {
	return false, f.err
}

func (f fakeStore) UseRecoveryCode(context.Context, string, string, string) (int, error) {
	return 0, f.err
}

func (f fakeStore) AcceptStep(context.Context, string, string, int64, time.Time) (bool, error) {
	return false, f.err
}
func (f fakeStore) ResetUser(context.Context, string, string) error { return f.err }
func (f fakeStore) PutPendingEnrollment(context.Context, string, string, sessions.PendingEnrollment) error {
	return f.err
}

func (f fakeStore) PendingEnrollment(context.Context, string, string) (sessions.PendingEnrollment, error) {
	return sessions.PendingEnrollment{}, f.err
}

func (f fakeStore) AddPendingEnrollment(context.Context, string, string, sessions.PendingEnrollment) (bool, error) {
	return false, f.err
}

func (f fakeStore) EnrollPending(context.Context, string, string, []byte, sessions.Enrollment, []string) error {
	return f.err
}

func (f fakeStore) Factors(context.Context, string, string) ([]sessions.Factor, error) {
	return nil, f.err
}

func (f fakeStore) AddFactor(context.Context, string, string, sessions.Factor, int) error {
	return f.err
}

func (f fakeStore) RenameFactor(context.Context, string, string, string, string) error { return f.err }

func (f fakeStore) RemoveFactor(context.Context, string, string, string, bool) error { return f.err }

func (f fakeStore) MarkFactorUsed(context.Context, string, string, string, time.Time) error {
	return f.err
}

func (f fakeStore) AcceptFactorStep(context.Context, string, string, string, int64, time.Time) (bool, error) {
	return false, f.err
}

func (f fakeStore) AddFailure(context.Context, string, string, time.Time, sessions.Limit) (sessions.Attempts, error) {
	return sessions.Attempts{}, f.err
}

func (f fakeStore) Attempts(context.Context, string, string, time.Time) (sessions.Attempts, error) {
	return sessions.Attempts{}, f.err
}
func (f fakeStore) ClearFailures(context.Context, string, string) error { return f.err }
func (f fakeStore) ReserveAttempt(context.Context, string, time.Time, ...sessions.Counter) (sessions.Attempts, bool, error) {
	return sessions.Attempts{}, false, f.err
}

func (f fakeStore) ReleaseAttempt(context.Context, string, string, time.Time, sessions.Limit) error {
	return f.err
}

func (f fakeStore) PutSession(context.Context, string, string, sessions.Session) error {
	return f.err
}

func (f fakeStore) Session(context.Context, string, string) (sessions.Session, error) {
	return sessions.Session{}, f.err
}
func (f fakeStore) TouchSession(context.Context, string, string, time.Time) error { return f.err }
func (f fakeStore) DeleteSession(context.Context, string, string) error           { return f.err }

func (f fakeStore) UserSessions(context.Context, string, string) (int, error) { return 0, f.err }

func (f fakeStore) DeleteUserSessions(context.Context, string, string, ...string) (int, error) {
	return 0, f.err
}

func (f fakeStore) PutDevice(context.Context, string, string, sessions.Device) error { return f.err }

func (f fakeStore) Device(context.Context, string, string) (sessions.Device, error) {
	return sessions.Device{}, f.err
}
func (f fakeStore) TouchDevice(context.Context, string, string, time.Time) error { return f.err }
func (f fakeStore) DeleteDevice(context.Context, string, string) error           { return f.err }
func (f fakeStore) UserDevices(context.Context, string, string) ([]sessions.Device, error) {
	return nil, f.err
}

func (f fakeStore) DeleteUserDevices(context.Context, string, string) (int, error) { return 0, f.err }

func (f fakeStore) PutToken(context.Context, string, string, string, []byte, time.Time) error {
	return f.err
}

func (f fakeStore) ConsumeToken(context.Context, string, string, string) ([]byte, error) {
	return nil, f.err
}
func (f fakeStore) Users(context.Context, string) ([]string, error) { return nil, f.err }
func (f fakeStore) Profile(context.Context, string, string) (sessions.Profile, error) {
	return sessions.Profile{}, f.err
}

func (f fakeStore) SeeUser(context.Context, string, string, time.Time) (sessions.Profile, error) {
	return sessions.Profile{}, f.err
}

func (f fakeStore) RecordVerification(context.Context, string, string, string, time.Time) error {
	return f.err
}
func (f fakeStore) SetDisabled(context.Context, string, string, time.Time) error { return f.err }
func (f fakeStore) Ping(context.Context) error                                   { return f.err }

// opCounts reads store_duration_seconds_count and store_errors_total of op.
func opCounts(t *testing.T, op string) (calls uint64, errs float64) {
	t.Helper()
	var m dto.Metric
	if err := storeDuration.WithLabelValues(op).(interface{ Write(*dto.Metric) error }).Write(&m); err != nil {
		t.Fatal(err)
	}
	calls = m.GetHistogram().GetSampleCount()
	m.Reset()
	if err := storeErrorsTotal.WithLabelValues(op).Write(&m); err != nil {
		t.Fatal(err)
	}
	return calls, m.GetCounter().GetValue()
}

// TestMetricsStoreWrapper calls every sessions.Store method through the
// wrapper (found by reflection, so a method added to the interface is
// covered without touching this test) and checks that each call is timed
// under the method's own name and that only real failures count as errors.
func TestMetricsStoreWrapper(t *testing.T) {
	iface := reflect.TypeFor[sessions.Store]()
	boom := errors.New("connection refused")
	for _, tc := range []struct {
		err       error
		wantError bool
	}{
		{nil, false},
		{boom, true},
		{fmt.Errorf("wrapped: %w", boom), true},
		{context.DeadlineExceeded, true},
		{sessions.ErrNotFound, false},
		{fmt.Errorf("reading: %w", sessions.ErrNotFound), false},
		{sessions.ErrExists, false},
		{sessions.ErrTooManyFactors, false},
		{sessions.ErrLastFactor, false},
		{context.Canceled, false},
	} {
		s := reflect.ValueOf(instrumentStore(fakeStore{err: tc.err}))
		for i := range iface.NumMethod() {
			name := iface.Method(i).Name
			m := s.MethodByName(name)
			args := make([]reflect.Value, m.Type().NumIn())
			for j := range args {
				in := m.Type().In(j)
				if in == reflect.TypeFor[context.Context]() {
					args[j] = reflect.ValueOf(context.Background())
				} else {
					args[j] = reflect.Zero(in)
				}
			}
			calls, errs := opCounts(t, name)
			var out []reflect.Value
			if m.Type().IsVariadic() {
				out = m.CallSlice(args)
			} else {
				out = m.Call(args)
			}
			if got, _ := out[len(out)-1].Interface().(error); got != tc.err {
				t.Errorf("%s: the wrapper returned %v, want %v", name, got, tc.err)
			}
			calls2, errs2 := opCounts(t, name)
			if calls2 != calls+1 {
				t.Errorf("%s: store_duration_seconds{op=%q} count moved by %d, want 1", name, name, calls2-calls)
			}
			want := 0.0
			if tc.wantError {
				want = 1
			}
			if errs2-errs != want {
				t.Errorf("%s with %v: store_errors_total{op=%q} moved by %v, want %v", name, tc.err, name, errs2-errs, want)
			}
		}
	}
	if s := instrumentStore(fakeStore{}); instrumentStore(s) != s {
		t.Error("instrumentStore wraps an instrumented store again")
	}
}

// TestMetricsStoreWrapperAllocs: timing a Session lookup (the hot path of
// every gated request) allocates nothing.
func TestMetricsStoreWrapperAllocs(t *testing.T) {
	s := instrumentStore(fakeStore{})
	ctx := context.Background()
	if n := testing.AllocsPerRun(1000, func() { s.Session(ctx, "default", "id") }); n != 0 {
		t.Errorf("instrumented Session: %v allocations per call, want 0", n)
	}
	f := instrumentStore(fakeStore{err: errors.New("down")})
	if n := testing.AllocsPerRun(1000, func() { f.Session(ctx, "default", "id") }); n != 0 {
		t.Errorf("instrumented failing Session: %v allocations per call, want 0", n)
	}
}

// BenchmarkMetricsStoreWrapper measures the cost the wrapper adds to a
// store call.
func BenchmarkMetricsStoreWrapper(b *testing.B) {
	ctx := context.Background()
	for _, bc := range []struct {
		name string
		s    sessions.Store
	}{{"bare", fakeStore{}}, {"instrumented", instrumentStore(fakeStore{})}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				bc.s.Session(ctx, "default", "id")
			}
		})
	}
}

// TestMetricsRegisterTwice: several handlers of one config register on the
// same registry; the second registration is not an error, and a new config
// (a fresh registry) gets the collectors again.
func TestMetricsRegisterTwice(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	registerMetrics(ctx)
	registerMetrics(ctx)
	ctx2, cancel2 := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel2()
	registerMetrics(ctx2)
	for _, c := range []caddy.Context{ctx, ctx2} {
		mfs, err := c.GetMetricsRegistry().Gather()
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, mf := range mfs {
			if mf.GetName() == "caddy_two_factor_lockouts_total" {
				found = true
			}
		}
		if !found {
			t.Error("caddy_two_factor_lockouts_total not in the registry")
		}
	}
}
