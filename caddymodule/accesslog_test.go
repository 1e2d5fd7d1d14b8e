package caddymodule

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// accessLogLines reads a JSON access log and returns its lines.
func accessLogLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("access log line is not JSON: %v\n%s", err, sc.Text())
		}
		lines = append(lines, m)
	}
	return lines
}

// requestHeaders returns the request headers of an access log line.
func requestHeaders(line map[string]any) map[string]any {
	req, _ := line["request"].(map[string]any)
	h, _ := req["headers"].(map[string]any)
	return h
}

// TestOTPHeaderNotInAccessLog: with Caddy's access log on, a code sent in
// otp_header or its FastCGI spelling X_Otp never appears in the log,
// whichever way the request goes: checked by the gate, refused, passed by
// a session cookie, a gate page, app_login mode; X_Otp dropped by Caddy
// before the gate runs (the default), or kept (expected_underscore_headers,
// which makes Caddy drop X-Otp instead). The log still has a line for each
// request, with the header REDACTED where the gate received it, and the
// application never receives the header.
func TestOTPHeaderNotInAccessLog(t *testing.T) {
	dir := t.TempDir()
	logFile := dir + "/access.log"
	port := freePort(t)
	appPort := freePort(t)
	echo := `respond "app user={http.two_factor.user} method={http.two_factor.method} otp=[{http.request.header.X-Otp}] alias=[{http.request.header.X_Otp}]" 200`
	loadCaddyfile(t, fmt.Sprintf(`{
	admin off
	storage file_system %s
	persist_config off
	servers :%d {
		expected_underscore_headers X_Otp
	}
}
http://localhost:%d {
	log {
		output file %s
	}
	basic_auth {
%s	}
	two_factor {
		store file %s/store.db
		otp_header X-Otp
	}
	%s
}
http://127.0.0.1:%d {
	log {
		output file %s
	}
	two_factor {
		realm apps
		store file %s/app.db
		otp_header X-Otp
		app_login {
			path /login
			username_field username
			session_cookie SID
		}
	}
	%s
}
`, caddyStorage, appPort, port, logFile, bcryptLines, dir, echo, appPort, logFile, dir, echo))
	t.Cleanup(func() { caddy.Stop() })
	s := &site{t: t, base: fmt.Sprintf("http://localhost:%d", port)}

	key, _ := s.browser("alice").enroll()
	advance(30 * time.Second)
	var codes []string
	send := func(b *browser, path string, h http.Header, status int) response {
		t.Helper()
		for _, v := range h {
			codes = append(codes, v...)
		}
		r := b.do("GET", path, nil, h).expect(t, status)
		if strings.Contains(r.body, "app user=") && !strings.Contains(r.body, "otp=[] alias=[]") {
			t.Errorf("the application received the code's header: %s", r.body)
		}
		return r
	}
	api := s.browser("alice")
	api.accept = "application/json"
	// Checked by the gate: a right code passes, and a wrong one is refused.
	send(api, "/api/1", http.Header{"X-Otp": {totp(key, testNow())}}, http.StatusOK).contains(t, "method=totp")
	other := s.browser("alice")
	other.accept = "application/json"
	send(other, "/api/2", http.Header{"X-Otp": {wrongCodeAt(key, testNow())}}, http.StatusUnauthorized)
	// Passed by the session cookie while carrying a code (the next one, so
	// that it is still valid and unused).
	advance(30 * time.Second)
	send(api, "/api/3", http.Header{"X-Otp": {totp(key, testNow())}}, http.StatusOK).contains(t, "method=totp")
	// The FastCGI spelling, which this server drops (Caddy's default)
	// after cloning the request for its access log.
	send(api, "/api/4", http.Header{"X_Otp": {totp(key, testNow().Add(30*time.Second))}}, http.StatusOK)
	// A gate page.
	send(s.browser("bob"), "/.2fa/enroll", http.Header{"X-Otp": {totp(key, testNow().Add(-30*time.Second))}}, http.StatusOK)
	// app_login mode, not signed in to the application: passed on. This
	// server keeps X_Otp and drops X-Otp.
	app := &site{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", appPort)}
	send(app.browser(""), "/app/5", http.Header{"X-Otp": {"246813"}, "X_Otp": {"135792"}}, http.StatusOK)
	caddy.Stop()

	raw, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range codes {
		if strings.Contains(string(raw), `"`+c+`"`) {
			t.Errorf("access log contains the code %s", c)
		}
	}
	logged, redactedIn := map[string]bool{}, map[string]bool{}
	for _, line := range accessLogLines(t, logFile) {
		req, _ := line["request"].(map[string]any)
		uri, _ := req["uri"].(string)
		logged[uri] = true
		for k, v := range requestHeaders(line) {
			if headerAliasKey(k) != "x-otp" {
				continue
			}
			if vs, _ := v.([]any); len(vs) != 1 || vs[0] != redacted {
				t.Errorf("%s: header %s logged as %v", uri, k, v)
			}
			redactedIn[uri] = true
		}
	}
	for _, uri := range []string{"/api/1", "/api/2", "/api/3", "/api/4", "/.2fa/enroll", "/app/5"} {
		if !logged[uri] {
			t.Errorf("no access log line for %s:\n%s", uri, raw)
		}
		if !redactedIn[uri] && uri != "/api/4" {
			t.Errorf("no access log line for %s with the header redacted:\n%s", uri, raw)
		}
	}
}

// BenchmarkHotPathAccessLog is the hot path on a site with otp_header and
// Caddy's access log on, where the gate writes the access-log line in
// Caddy's place (to a JSON encoder writing to io.Discard): compare with
// BenchmarkHotPathFile for what that costs. Caddy's own line, which it
// then skips, costs about as much.
func BenchmarkHotPathAccessLog(b *testing.B) {
	h, cookie := benchGate(b, &StoreConfig{Backend: "file", Path: b.TempDir() + "/bench.db"})
	h.OTPHeader = "X-Otp"
	h.accessLog = zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(io.Discard), zapcore.InfoLevel)).Named("http.log.access")
	srv := &caddyhttp.Server{Logs: &caddyhttp.ServerLogConfig{}}
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r := httptest.NewRequest("GET", "/app", nil)
		r.Header.Set("Cookie", cookie)
		repl := caddy.NewReplacer()
		repl.Set("http.auth.user.id", "alice")
		ctx := context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl)
		ctx = context.WithValue(ctx, caddyhttp.ServerCtxKey, srv)
		ctx = context.WithValue(ctx, caddyhttp.VarsCtxKey, map[string]any{caddyhttp.ClientIPVarKey: "127.0.0.1"})
		r = r.WithContext(ctx)
		w := httptest.NewRecorder()
		if err := h.ServeHTTP(w, r, next); err != nil || w.Code != http.StatusNoContent {
			b.Fatalf("status %d, err %v", w.Code, err)
		}
		if skip, _ := caddyhttp.GetVar(r.Context(), caddyhttp.LogSkipVar).(bool); !skip {
			b.Fatal("Caddy's access-log line was not skipped")
		}
	}
}
