package caddymodule

import (
	"bytes"
	"encoding/base32"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// auditSchema are the fields of every audit line besides zap's own
// (level, ts, logger, msg): the stable schema in README "Audit log".
var auditSchema = []string{"event", "realm", "user", "client_ip", "method", "result"}

// auditDetails are the documented extra fields of some events
// (docs/audit.md).
var auditDetails = map[string][]string{
	"recovery_code_used": {"remaining"},
}

// TestAuditEventsSchema: a full flow writes one audit line per event, each
// with exactly the stable schema (event, realm, user, client_ip, method,
// result, and reason when there is one), for enrollment, verification
// success and failure, replay, lockout, recovery-code use, trusted-device
// grant, use and removal, sign-out of other sessions and logout; and no
// line holds a code, a secret, a token or a cookie value (checklist items
// 14, 24 and 64).
func TestAuditEventsSchema(t *testing.T) {
	logFile := t.TempDir() + "/caddy.log"
	s := startSite(t, siteOptions{
		gate:   "max_attempts 3 5m 10m",
		global: fmt.Sprintf("\tlog {\n\t\toutput file %s\n\t\tlevel DEBUG\n\t}\n", logFile),
	})
	var secrets []string
	a := s.browser("alice")
	key, codes := a.enroll()
	secrets = append(secrets, codes...)
	secrets = append(secrets, a.cookie("2fa_session"), a.cookie("2fa_csrf"), base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(key))

	// Replay of the enrollment code on another browser, then a wrong code,
	// then the lockout.
	b := s.browser("alice")
	used := totp(key, testNow())
	b.challenge(used, false).expect(t, http.StatusUnauthorized)
	b.challenge(wrongCode(key), false).expect(t, http.StatusUnauthorized)
	b.challenge(wrongCode(key), false).expect(t, http.StatusTooManyRequests)
	advance(11 * time.Minute)

	// A recovery code; a trusted device granted, then used.
	c := s.browser("alice")
	c.challenge(codes[0], false).expectRedirect(t, "/app")
	secrets = append(secrets, c.cookie("2fa_session"))
	advance(30 * time.Second)
	d := s.browser("alice")
	code := totp(key, testNow())
	d.challenge(code, true).expectRedirect(t, "/app")
	device := d.cookie("2fa_device")
	secrets = append(secrets, code, device, d.cookie("2fa_session"))
	e := s.browser("alice")
	e.setCookie("2fa_device", device)
	e.get("/app").expect(t, http.StatusOK)
	secrets = append(secrets, e.cookie("2fa_session"))

	// Settings: sign out the others, remove this device; then log out.
	page := d.get("/.2fa/settings").expect(t, http.StatusOK)
	tok := csrfOf(t, page)
	secrets = append(secrets, tok)
	d.post("/.2fa/settings", url.Values{"csrf_token": {tok}, "action": {"sign_out_others"}}).expect(t, http.StatusOK)
	dev := regexp.MustCompile(`name="device" value="([^"]+)"`).FindStringSubmatch(d.get("/.2fa/settings").body)
	if dev == nil {
		t.Fatal("no trusted device on the settings page")
	}
	d.post("/.2fa/settings", url.Values{"csrf_token": {tok}, "action": {"remove_device"}, "device": {dev[1]}}).expect(t, http.StatusOK)
	out := d.get("/.2fa/logout")
	d.post("/.2fa/logout", url.Values{"csrf_token": {csrfOf(t, out)}}).expect(t, http.StatusOK)
	caddy.Stop()

	data, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	type event struct{ event, method, result, reason string }
	var got []event
	for line := range bytes.SplitSeq(data, []byte("\n")) {
		var m map[string]any
		if json.Unmarshal(line, &m) != nil || m["logger"] != "http.handlers.two_factor" || m["event"] == nil {
			continue
		}
		for _, f := range auditSchema {
			if _, ok := m[f].(string); !ok {
				t.Errorf("audit line without %s: %s", f, line)
			}
		}
		for k := range m {
			if !slices.Contains(auditSchema, k) && !slices.Contains([]string{"level", "ts", "logger", "msg", "reason"}, k) && !slices.Contains(auditDetails[m["event"].(string)], k) {
				t.Errorf("audit line with an extra field %q: %s", k, line)
			}
		}
		if m["realm"] != "default" || m["user"] != "alice" || m["client_ip"] != "127.0.0.1" {
			t.Errorf("audit line with wrong realm, user or client_ip: %s", line)
		}
		if want := "two-factor " + m["event"].(string); m["msg"] != want {
			t.Errorf("audit line msg = %v, want %q", m["msg"], want)
		}
		level := "info"
		if m["result"] != "success" {
			level = "warn"
		}
		if m["level"] != level {
			t.Errorf("audit line level = %v, want %s: %s", m["level"], level, line)
		}
		reason, _ := m["reason"].(string)
		got = append(got, event{m["event"].(string), m["method"].(string), m["result"].(string), reason})
	}
	want := []event{
		{"enroll", "totp", "success", ""},
		{"verify", "totp", "failure", "used_code"},
		{"verify", "totp", "failure", "wrong_code"},
		{"verify", "totp", "failure", "wrong_code"},
		{"lockout", "totp", "locked", "wrong_code"},
		{"recovery_code_used", "recovery", "success", ""},
		{"verify", "recovery", "success", ""},
		{"verify", "totp", "success", ""},
		{"trust_device", "", "success", ""},
		{"verify", "trusted_device", "success", ""},
		{"settings_sign_out_others", "", "success", ""},
		{"settings_remove_device", "", "success", ""},
		{"logout", "", "success", ""},
	}
	for _, w := range want {
		i := slices.Index(got, w)
		if i < 0 {
			t.Errorf("no audit line %+v in order; lines:\n%+v", w, got)
			break
		}
		got = got[i+1:]
	}

	for _, sec := range secrets {
		if sec == "" {
			t.Fatal("empty secret in the list: test setup broken")
		}
		if bytes.Contains(data, []byte(sec)) || (strings.Contains(sec, "-") && bytes.Contains(data, []byte(strings.ReplaceAll(sec, "-", "")))) {
			t.Errorf("the log contains a secret value %q", sec)
		}
	}
	for _, c := range []string{used, wrongCode(key)} {
		if regexp.MustCompile(`[^0-9]` + c + `[^0-9]`).Match(data) {
			t.Errorf("the log contains the code %s", c)
		}
	}
}
