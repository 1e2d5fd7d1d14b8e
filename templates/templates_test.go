package templates

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"html"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

var testNow = time.Date(2025, 3, 4, 15, 4, 0, 0, time.UTC)

const (
	testQR  = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
	testURI = "otpauth://totp/intranet.example.com:alice?algorithm=SHA1&digits=6&issuer=intranet.example.com&period=30&secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
	testDL  = "data:text/plain;charset=utf-8,abcde-12345%0Afghij-67890%0A"
)

func base() Data {
	return Data{
		Title:     "Acme Intranet",
		Issuer:    "intranet.example.com",
		User:      "alice",
		Prefix:    "/.2fa",
		CSRFToken: "csrf-123",
		Return:    "/wiki/Home?x=1",
		Now:       testNow,
	}
}

// full returns representative data for page.
func full(page string) Data {
	d := base()
	switch page {
	case PageEnroll:
		d.Enroll = &Enroll{
			URI: testURI, QR: testQR,
			SecretGroups: []string{"JBSW", "Y3DP", "EHPK", "3PXP", "JBSW", "Y3DP", "EHPK", "3PXP"},
			Digits:       6, Period: 30, Expires: testNow.Add(10 * time.Minute),
		}
	case PageRecovery:
		d.Recovery = &Recovery{
			Codes:    []string{"abcde-12345", "fghij-67890"},
			Download: testDL, Filename: "acme-recovery-codes.txt", Continue: "/wiki/Home",
		}
	case PageChallenge:
		d.Challenge = &Challenge{TrustDevice: 30 * 24 * time.Hour, RecoveryCodes: true}
	case PageLocked:
		d.Locked = &Locked{Until: testNow.Add(15 * time.Minute), RetryIn: 15 * time.Minute}
	case PageError:
		d.Error = &Error{Status: 503, Kind: "unavailable"}
	case PageSettings:
		d.Settings = &Settings{
			Enrolled: true, Since: testNow.Add(-30 * 24 * time.Hour),
			Method: "totp", Verified: testNow.Add(-time.Hour),
			RecoveryCodes: true, RecoveryLeft: 7, RecoveryIssued: 10,
			TrustDevice: 30 * 24 * time.Hour,
			Devices: []TrustedDevice{
				{ID: "dev-1", Browser: "Chrome", OS: "Windows", Current: true, Created: testNow.Add(-48 * time.Hour), LastUsed: testNow.Add(-time.Hour), Expires: testNow.Add(28 * 24 * time.Hour), IP: "192.0.2.1"},
				{ID: "dev-2", Created: testNow.Add(-72 * time.Hour), LastUsed: testNow.Add(-72 * time.Hour), Expires: testNow.Add(27 * 24 * time.Hour), IP: "2001:db8::1"},
			},
			OtherSessions: 2, CanTurnOff: true,
		}
	}
	return d
}

func mustLoad(t *testing.T, dir string) *Set {
	t.Helper()
	s, err := Load(Options{Dir: dir})
	if err != nil {
		t.Fatalf("Load(%q): %v", dir, err)
	}
	return s
}

func render(t *testing.T, s *Set, page string, d Data) string {
	t.Helper()
	var b bytes.Buffer
	if err := s.Render(&b, page, d); err != nil {
		t.Fatalf("Render(%s): %v", page, err)
	}
	return b.String()
}

// tag returns the first start tag in out that contains attr (e.g.
// `id="code"`), or "".
func tag(out, attr string) string {
	i := strings.Index(out, attr)
	if i < 0 {
		return ""
	}
	start := strings.LastIndex(out[:i], "<")
	end := strings.Index(out[i:], ">")
	if start < 0 || end < 0 {
		return ""
	}
	return out[start : i+end+1]
}

var attrRE = regexp.MustCompile(`([a-zA-Z-]+)(?:="([^"]*)")?`)

// attrs parses the attributes of a start tag (values HTML-unescaped).
func attrs(tag string) map[string]string {
	m := map[string]string{}
	tag = strings.TrimPrefix(tag, "<")
	if i := strings.IndexAny(tag, " >"); i >= 0 {
		tag = tag[i:]
	}
	for _, a := range attrRE.FindAllStringSubmatch(tag, -1) {
		m[a[1]] = html.UnescapeString(a[2])
	}
	return m
}

var formRE = regexp.MustCompile(`(?s)<form\b[^>]*>.*?</form>`)

func TestEveryPageRenders(t *testing.T) {
	s := mustLoad(t, "")
	for _, page := range pageNames {
		for _, tc := range []struct {
			name string
			data Data
		}{
			{"full", full(page)},
			{"zero", Data{}},
			{"no sub-struct", base()},
		} {
			t.Run(page+"/"+tc.name, func(t *testing.T) {
				out := render(t, s, page, tc.data)
				for _, want := range []string{
					"<!DOCTYPE html>",
					`<html lang="en">`,
					`<meta charset="utf-8">`,
					`<meta name="viewport" content="width=device-width, initial-scale=1">`,
					`<meta name="referrer" content="no-referrer">`,
					`<meta name="color-scheme" content="light dark">`,
					"<title>", "<h1>", "<style>", "</html>",
				} {
					if !strings.Contains(out, want) {
						t.Errorf("missing %q", want)
					}
				}
				for _, bad := range []string{"ZgotmplZ", "<no value>", "<script", "%!"} {
					if strings.Contains(out, bad) {
						t.Errorf("output contains %q", bad)
					}
				}
				if tc.name == "zero" && !strings.Contains(out, "Two-factor authentication") {
					t.Error("default title not shown")
				}
				if tc.name != "zero" && !strings.Contains(out, "– Acme Intranet</title>") {
					t.Error("Title not in <title>")
				}
			})
		}
	}
}

func TestFormsCarryTokenAndReturn(t *testing.T) {
	s := mustLoad(t, "")
	for page, action := range map[string]string{
		PageEnroll:    "/.2fa/enroll",
		PageChallenge: "/.2fa/challenge",
		PageLogout:    "/.2fa/logout",
		PageSettings:  "/.2fa/settings",
	} {
		d := full(page)
		out := render(t, s, page, d)
		forms := formRE.FindAllString(out, -1)
		if len(forms) == 0 {
			t.Fatalf("%s: no form", page)
		}
		for _, f := range forms {
			a := attrs(f[:strings.Index(f, ">")+1])
			if a["method"] != "post" || a["action"] != action {
				t.Errorf("%s: form %v, want post to %s", page, a, action)
			}
			if !strings.Contains(f, `<input type="hidden" name="csrf_token" value="csrf-123">`) {
				t.Errorf("%s: form lacks csrf_token:\n%s", page, f)
			}
			if !strings.Contains(f, `<input type="hidden" name="rd" value="/wiki/Home?x=1">`) {
				t.Errorf("%s: form lacks rd:\n%s", page, f)
			}
			if !strings.Contains(f, `<button type="submit"`) {
				t.Errorf("%s: form lacks a submit button", page)
			}
		}
	}
	// Pages without forms.
	for _, page := range []string{PageRecovery, PageLocked, PageLoggedOut, PageError} {
		if out := render(t, s, page, full(page)); strings.Contains(out, "<form") {
			t.Errorf("%s: unexpected form", page)
		}
	}
}

func TestCodeInput(t *testing.T) {
	s := mustLoad(t, "")
	for _, page := range []string{PageEnroll, PageChallenge} {
		for _, problem := range []Problem{ProblemNone, ProblemWrongCode} {
			d := full(page)
			d.Problem = problem
			out := render(t, s, page, d)
			in := tag(out, `id="code"`)
			if in == "" {
				t.Fatalf("%s: no input id=code", page)
			}
			a := attrs(in)
			want := map[string]string{
				"type": "text", "name": "code", "autocomplete": "one-time-code",
				"inputmode": "numeric", "maxlength": "32", "spellcheck": "false",
				"autocapitalize": "off",
			}
			for k, v := range want {
				if a[k] != v {
					t.Errorf("%s (problem %q): %s=%q, want %q in %s", page, problem, k, a[k], v, in)
				}
			}
			if _, ok := a["required"]; !ok {
				t.Errorf("%s: code input not required", page)
			}
			_, autofocus := a["autofocus"]
			if wantAF := page == PageChallenge || problem != ""; autofocus != wantAF {
				t.Errorf("%s (problem %q): autofocus=%v, want %v", page, problem, autofocus, wantAF)
			}
			if !regexp.MustCompile(`<label for="code">[^<]+</label>`).MatchString(out) {
				t.Errorf("%s: no visible label for=code", page)
			}
			if problem != "" {
				if a["aria-invalid"] != "true" || !strings.Contains(a["aria-describedby"], "problem") {
					t.Errorf("%s: problem not tied to input: %s", page, in)
				}
				if !strings.Contains(out, `role="alert" id="problem"`) {
					t.Errorf("%s: no alert with id=problem", page)
				}
				if strings.Index(out, `id="problem"`) > strings.Index(out, `id="code"`) {
					t.Errorf("%s: alert is not above the code input", page)
				}
			} else if _, ok := a["aria-invalid"]; ok {
				t.Errorf("%s: aria-invalid without a problem", page)
			}
		}
	}
}

func TestChallengeTrustAndRecovery(t *testing.T) {
	s := mustLoad(t, "")

	d := full(PageChallenge)
	out := render(t, s, PageChallenge, d)
	box := tag(out, `name="trust_device"`)
	a := attrs(box)
	if a["type"] != "checkbox" || a["value"] != "1" || a["id"] != "trust_device" {
		t.Errorf("trust_device checkbox wrong: %s", box)
	}
	if _, checked := a["checked"]; checked {
		t.Error("trust_device checked by default")
	}
	if !strings.Contains(out, `<label class="check" for="trust_device">`) || !strings.Contains(out, "Remember this device for 30 days") {
		t.Error("trust_device label missing")
	}
	if strings.Index(out, `name="trust_device"`) > strings.Index(out, "</form>") {
		t.Error("trust_device is not in the main form")
	}
	// Recovery codes enabled: a recovery field that allows letters.
	rec := attrs(tag(out, `id="recovery-code"`))
	if rec["name"] != "code" || rec["inputmode"] != "text" || rec["autocapitalize"] != "off" {
		t.Errorf("recovery code input: %v", rec)
	}
	if !strings.Contains(out, `<label for="recovery-code">`) || !strings.Contains(out, "recovery code") {
		t.Error("recovery codes not mentioned")
	}
	if strings.Contains(out, "<details open>") {
		t.Error("recovery section open without a problem")
	}
	d.Problem = ProblemWrongCode
	if out := render(t, s, PageChallenge, d); !strings.Contains(out, "<details open>") {
		t.Error("recovery section closed after a wrong code")
	}

	for _, c := range []*Challenge{nil, {}, {TrustDevice: 0, RecoveryCodes: false}} {
		d := base()
		d.Challenge = c
		out := render(t, s, PageChallenge, d)
		if strings.Contains(out, "trust_device") || strings.Contains(out, "Remember this device") {
			t.Errorf("Challenge %+v: trust_device shown", c)
		}
		if strings.Contains(out, "recovery-code") {
			t.Errorf("Challenge %+v: recovery field shown", c)
		}
		if n := strings.Count(out, `name="code"`); n != 1 {
			t.Errorf("Challenge %+v: %d code inputs", c, n)
		}
	}

	d = base()
	d.Challenge = &Challenge{TrustDevice: 12 * time.Hour}
	if out := render(t, s, PageChallenge, d); !strings.Contains(out, "Remember this device for 12 hours") {
		t.Error("12h trust not worded in hours")
	}
}

func TestEnrollPage(t *testing.T) {
	s := mustLoad(t, "")
	d := full(PageEnroll)
	out := render(t, s, PageEnroll, d)

	img := attrs(tag(out, "<img "))
	if img["src"] != testQR {
		t.Errorf("QR src changed:\n got %q\nwant %q", img["src"], testQR)
	}
	if img["alt"] != "QR code for setting up your authenticator app" || img["width"] == "" || img["height"] == "" {
		t.Errorf("QR img attributes: %v", img)
	}
	link := attrs(tag(out, `href="otpauth://`))
	if link["href"] != testURI {
		t.Errorf("otpauth link changed:\n got %q\nwant %q", link["href"], testURI)
	}
	for _, want := range []string{
		"<ol class=\"steps\">",
		"Google Authenticator", "Microsoft Authenticator", "1Password",
		"<span>JBSW</span><span>Y3DP</span>",
		"SHA1, 6 digits, 30 seconds",
		"Your authenticator app will show this site as <strong>intranet.example.com</strong>",
		"Signed in as <strong>alice</strong>",
		"expires at 15:14 UTC (in 10 minutes)",
		"will not be shown again",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("enroll page lacks %q", want)
		}
	}
	if !regexp.MustCompile(`<code class="secret">`).MatchString(out) {
		t.Error("secret not in a monospace element")
	}
}

// TestEnrollElsewherePage: when setup is in progress in another browser,
// the enrollment page shows none of the key (even if the data carried
// it), no code form, says why, and offers "start over here" (with the
// CSRF token) or, where that is not allowed, a new invitation.
func TestEnrollElsewherePage(t *testing.T) {
	s := mustLoad(t, "")
	for _, startOver := range []bool{true, false} {
		d := full(PageEnroll)
		d.Enroll.Elsewhere, d.Enroll.StartOver = true, startOver
		out := render(t, s, PageEnroll, d)
		for _, bad := range []string{"otpauth://", "data:image/png", "JBSW", `name="code"`, "Confirm and turn on"} {
			if strings.Contains(out, bad) {
				t.Errorf("start over %v: page shows %q", startOver, bad)
			}
		}
		for _, want := range []string{"Setup is in progress on another device", "shown only there", "someone else may know your password"} {
			if !strings.Contains(out, want) {
				t.Errorf("start over %v: page lacks %q", startOver, want)
			}
		}
		forms := formRE.FindAllString(out, -1)
		if !startOver {
			if len(forms) != 0 || !strings.Contains(out, "new invitation link") {
				t.Errorf("no start over: forms %q, invitation hint missing", forms)
			}
			continue
		}
		if len(forms) != 1 {
			t.Fatalf("start over: %d forms, want 1", len(forms))
		}
		f := forms[0]
		for _, want := range []string{`action="/.2fa/enroll"`, `method="post"`, `name="action" value="start_over"`, `name="csrf_token" value="` + d.CSRFToken + `"`, "Start over here"} {
			if !strings.Contains(f, want) {
				t.Errorf("start over form lacks %q:\n%s", want, f)
			}
		}
	}
	// Why this browser's own setup stopped working.
	d := full(PageEnroll)
	d.Enroll.Elsewhere, d.Problem = true, ProblemStartedOver
	if out := render(t, s, PageEnroll, d); !strings.Contains(out, `role="alert"`) || !strings.Contains(out, "started over on another device") {
		t.Error("started_over problem not shown")
	}
	d.Problem = ProblemStartOverLimit
	if out := render(t, s, PageEnroll, d); !strings.Contains(out, "too many times") {
		t.Error("start_over_limit problem not shown")
	}
}

func TestRecoveryPage(t *testing.T) {
	s := mustLoad(t, "")
	out := render(t, s, PageRecovery, full(PageRecovery))
	for _, want := range []string{
		"<li>abcde-12345</li>", "<li>fghij-67890</li>",
		"Save these now: they will not be shown again",
		"works once",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("recovery page lacks %q", want)
		}
	}
	dl := attrs(tag(out, " download="))
	if dl["href"] != testDL || dl["download"] != "acme-recovery-codes.txt" {
		t.Errorf("download link: %v", dl)
	}
	if !strings.Contains(out, `href="/wiki/Home"`) {
		t.Error("no Continue link")
	}
}

func TestLockedPage(t *testing.T) {
	s := mustLoad(t, "")
	out := render(t, s, PageLocked, full(PageLocked))
	for _, want := range []string{"15 minutes", "15:19 UTC", "recovery code", "administrator"} {
		if !strings.Contains(out, want) {
			t.Errorf("locked page lacks %q", want)
		}
	}
	d := full(PageLocked)
	d.Locked.RetryIn = time.Minute
	if out := render(t, s, PageLocked, d); !strings.Contains(out, "1 minute<") {
		t.Error("singular minute")
	}
}

func TestLogoutPages(t *testing.T) {
	s := mustLoad(t, "")
	out := render(t, s, PageLogout, full(PageLogout))
	if !strings.Contains(out, "Sign out of two-factor on this device?") || !strings.Contains(out, "Signed in as <strong>alice</strong>") {
		t.Error("logout page copy")
	}
	out = render(t, s, PageLoggedOut, full(PageLoggedOut))
	if !strings.Contains(out, "You are signed out") || !strings.Contains(out, `href="/"`) {
		t.Error("logged_out page copy or link")
	}
	if strings.Contains(out, "Signed in as") {
		t.Error("logged_out page says signed in")
	}
}

func TestProblems(t *testing.T) {
	s := mustLoad(t, "")
	cases := map[Problem][]string{
		ProblemWrongCode:   {"did not match", "time", "recovery code"},
		ProblemUsedCode:    {"already used", "next code"},
		ProblemBadFormat:   {"6-digit code", "abcde-12345"},
		ProblemFormExpired: {"form expired", "try again"},
		ProblemEnrollGone:  {"setup expired", "new QR code"},
		Problem("other"):   {"try again"},
	}
	for p, wants := range cases {
		d := full(PageChallenge)
		d.Problem = p
		out := render(t, s, PageChallenge, d)
		alert := out[strings.Index(out, `role="alert"`):]
		alert = alert[:strings.Index(alert, "</div>")]
		for _, w := range wants {
			if !strings.Contains(alert, w) {
				t.Errorf("problem %q: alert lacks %q: %s", p, w, alert)
			}
		}
		d = full(PageEnroll)
		d.Problem = p
		if out := render(t, s, PageEnroll, d); !strings.Contains(out, `role="alert"`) {
			t.Errorf("enroll: problem %q not shown", p)
		}
	}
	// No recovery codes: do not suggest them.
	d := base()
	d.Challenge = &Challenge{}
	d.Problem = ProblemWrongCode
	if out := render(t, s, PageChallenge, d); strings.Contains(out, "recovery code") {
		t.Error("recovery codes suggested although disabled")
	}
	// No problem: no alert.
	for _, page := range []string{PageEnroll, PageChallenge} {
		if out := render(t, s, page, full(page)); strings.Contains(out, `role="alert"`) {
			t.Errorf("%s: alert without a problem", page)
		}
	}
}

func TestErrorKinds(t *testing.T) {
	s := mustLoad(t, "")
	cases := map[string]string{
		"no_identity": "The gate could not find who you are signed in as. This is a configuration problem: please contact your administrator.",
		"unavailable": "try again in a minute",
		"bad_request": "could not be read",
		"forbidden":   "refused",
		"method":      "cannot be used like that",
		"":            "Something went wrong",
		"whatever":    "Something went wrong",
	}
	for kind, want := range cases {
		d := base()
		d.User = ""
		d.Error = &Error{Status: 403, Kind: kind}
		out := render(t, s, PageError, d)
		if !strings.Contains(out, want) {
			t.Errorf("kind %q: lacks %q", kind, want)
		}
		if !strings.Contains(out, "Error 403") {
			t.Errorf("kind %q: no status", kind)
		}
	}
}

func TestEscaping(t *testing.T) {
	s := mustLoad(t, "")
	payloads := []string{
		`<script>alert(1)</script>`,
		`"><svg onload=alert(1)>`,
		`{{.CSRFToken}}`,
		`javascript:alert(1)`,
	}
	for _, p := range payloads {
		for _, page := range pageNames {
			d := full(page)
			d.User, d.Issuer, d.Title, d.Return = p, p, p, p
			d.CSRFToken = p
			if d.Recovery != nil {
				d.Recovery.Continue = p
				d.Recovery.Filename = p
				d.Recovery.Codes = []string{p}
			}
			if d.Enroll != nil {
				d.Enroll.SecretGroups = []string{p}
			}
			if d.Settings != nil {
				d.Settings.Devices[0].IP, d.Settings.Devices[0].ID = p, p
				d.Settings.Devices[1].Browser, d.Settings.Devices[1].OS = p, p
			}
			out := render(t, s, page, d)
			for _, bad := range []string{"<script", "<svg", `href="javascript:`} {
				if strings.Contains(out, bad) {
					t.Errorf("%s with %q: output contains %q", page, p, bad)
				}
			}
			if strings.Contains(p, "{{") && !strings.Contains(out, p) {
				t.Errorf("%s: %q not rendered as text", page, p)
			}
		}
	}
}

var styleRE = regexp.MustCompile(`(?s)<style>(.*?)</style>`)

func cspHash(content string) string {
	sum := sha256.Sum256([]byte(content))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}

func TestCSP(t *testing.T) {
	s := mustLoad(t, "")
	csp := s.CSP()
	for _, want := range []string{
		"default-src 'none'", "img-src data:", "form-action 'self'",
		"frame-ancestors 'none'", "base-uri 'none'", "style-src 'sha256-",
	} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "script") || strings.Contains(csp, "unsafe") {
		t.Errorf("CSP allows too much: %q", csp)
	}
	for _, page := range pageNames {
		out := render(t, s, page, full(page))
		styles := styleRE.FindAllStringSubmatch(out, -1)
		if len(styles) != 1 {
			t.Fatalf("%s: %d <style> elements", page, len(styles))
		}
		if h := cspHash(styles[0][1]); !strings.Contains(csp, "style-src "+h+";") {
			t.Errorf("%s: CSP %q does not allow the emitted stylesheet (%s)", page, csp, h)
		}
		if strings.Contains(out, " style=") {
			t.Errorf("%s: inline style attribute (blocked by the CSP)", page)
		}
		if strings.Contains(out, "<script") || regexp.MustCompile(`\son[a-z]+=`).MatchString(out) {
			t.Errorf("%s: script", page)
		}
	}
}

func writeFile(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestOverride(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "challenge.html", `{{define "heading"}}Custom code page{{end}}
{{define "content"}}<form method="post" action="{{.Prefix}}/challenge">{{template "hidden" .}}<label for="code">Token</label><input id="code" name="code"></form>{{end}}`)
	writeFile(t, dir, "style.css", "body { color: rebeccapurple; }\n")
	writeFile(t, dir, "unrelated.txt", "ignored")

	def := mustLoad(t, "")
	s := mustLoad(t, dir)
	out := render(t, s, PageChallenge, full(PageChallenge))
	if !strings.Contains(out, "Custom code page") || !strings.Contains(out, "<label for=\"code\">Token</label>") {
		t.Errorf("override not used:\n%s", out)
	}
	if !strings.Contains(out, `name="csrf_token" value="csrf-123"`) {
		t.Error("override cannot use the layout's pieces")
	}
	// Other pages keep the embedded versions.
	if a, b := render(t, def, PageEnroll, full(PageEnroll)), render(t, s, PageEnroll, full(PageEnroll)); styleRE.ReplaceAllString(a, "") != styleRE.ReplaceAllString(b, "") {
		t.Error("enroll page changed by an override of another page")
	}
	// The stylesheet and its hash follow the override.
	styles := styleRE.FindStringSubmatch(out)
	if styles == nil || styles[1] != "body { color: rebeccapurple; }\n" {
		t.Fatalf("stylesheet not overridden: %v", styles)
	}
	if h := cspHash(styles[1]); !strings.Contains(s.CSP(), h) {
		t.Errorf("CSP %q does not follow the new stylesheet %s", s.CSP(), h)
	}
	if s.CSP() == def.CSP() {
		t.Error("CSP unchanged by a new stylesheet")
	}

	// A layout override applies to every page.
	writeFile(t, dir, "layout.html", `<!DOCTYPE html><html lang="en"><head><title>{{template "heading" .}}</title>{{stylesheet}}</head><body><p>Company frame</p>{{template "content" .}}</body></html>
{{define "hidden"}}<input type="hidden" name="csrf_token" value="{{.CSRFToken}}"><input type="hidden" name="rd" value="{{.Return}}">{{end}}
{{define "problem"}}{{end}}`)
	s = mustLoad(t, dir)
	for _, page := range pageNames {
		if out := render(t, s, page, full(page)); !strings.Contains(out, "Company frame") {
			t.Errorf("%s: layout override not used", page)
		}
	}
}

func TestOverrideErrors(t *testing.T) {
	cases := []struct {
		file, text, want string
	}{
		{"enroll.html", `{{define "content"}}{{if .User}}oops{{end}`, "enroll.html"},
		{"layout.html", `<html>{{template "content" .}</html>`, "layout.html"},
		{"challenge.html", `{{define "heading"}}x{{end}}{{define "content"}}{{.NoSuchField}}{{end}}`, "challenge.html"},
		{"locked.html", `{{define "heading"}}x{{end}}`, "locked.html"},
		{"error.html", `{{define "heading"}}x{{end}}{{define "content"}}<a href={{.Return}}>{{end}}`, ""},
		{"style.css", "body{}</STYLE><script>alert(1)</script>", "style.css"},
	}
	for _, c := range cases {
		dir := t.TempDir()
		p := writeFile(t, dir, c.file, c.text)
		_, err := Load(Options{Dir: dir})
		if c.want == "" {
			// Valid (html/template quotes the unquoted attribute itself).
			if err != nil {
				t.Errorf("%s: %v", c.file, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: broken override accepted", c.file)
			continue
		}
		if !strings.Contains(err.Error(), p) {
			t.Errorf("%s: error does not name the file %s: %v", c.file, p, err)
		}
	}
	if _, err := Load(Options{Dir: filepath.Join(t.TempDir(), "missing")}); err == nil {
		t.Error("missing directory accepted")
	}
	f := writeFile(t, t.TempDir(), "file", "x")
	if _, err := Load(Options{Dir: f}); err == nil {
		t.Error("file as directory accepted")
	}
}

func TestRenderErrors(t *testing.T) {
	s := mustLoad(t, "")
	var b bytes.Buffer
	if err := s.Render(&b, "nope", Data{}); err == nil || b.Len() != 0 {
		t.Errorf("unknown page: err=%v, wrote %d bytes", err, b.Len())
	}
	// A template that fails half-way writes nothing.
	dir := t.TempDir()
	writeFile(t, dir, "enroll.html", `{{define "heading"}}x{{end}}{{define "content"}}<p>before</p>{{.Enroll.QR}}{{end}}`)
	s = mustLoad(t, dir)
	b.Reset()
	if err := s.Render(&b, PageEnroll, Data{}); err == nil || b.Len() != 0 {
		t.Errorf("failing template: err=%v, wrote %q", err, b.String())
	}
}

func TestConcurrentRender(t *testing.T) {
	s := mustLoad(t, "")
	done := make(chan error)
	for i := 0; i < 8; i++ {
		go func() {
			var err error
			for j := 0; j < 50 && err == nil; j++ {
				for _, page := range pageNames {
					var b bytes.Buffer
					if err = s.Render(&b, page, full(page)); err != nil {
						break
					}
				}
			}
			done <- err
		}()
	}
	for i := 0; i < 8; i++ {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

// settingsForms maps each settings form's action to the form's HTML.
func settingsForms(t *testing.T, out string) map[string][]string {
	t.Helper()
	forms := map[string][]string{}
	for _, f := range formRE.FindAllString(out, -1) {
		a := attrs(tag(f, `name="action"`))
		if a["type"] != "hidden" || a["value"] == "" {
			t.Fatalf("settings form without a hidden action:\n%s", f)
		}
		forms[a["value"]] = append(forms[a["value"]], f)
	}
	return forms
}

func TestSettingsPage(t *testing.T) {
	s := mustLoad(t, "")
	d := full(PageSettings)
	out := render(t, s, PageSettings, d)
	for _, want := range []string{
		"<h1>Two-factor settings</h1>",
		"Signed in as <strong>alice</strong>",
		"has been <strong>on</strong> since 2 February 2025",
		"7 of 10 recovery codes left",
		"verified with a code from your authenticator app on 4 Mar 2025, 14:04 UTC",
		"<strong>Chrome on Windows</strong> (this device)",
		"Trusted 2 Mar 2025, 15:04 UTC from 192.0.2.1. Last used 4 Mar 2025, 14:04 UTC. Trusted until 1 April 2025.",
		"<strong>Unknown browser</strong>",
		"2 other browsers",
		"Your old recovery codes stop working immediately",
		`href="/wiki/Home?x=1">Back to the site`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("settings page lacks %q", want)
		}
	}
	// The second device was never used after it was trusted.
	if strings.Count(out, "Last used") != 1 {
		t.Errorf("%d 'Last used' lines, want 1", strings.Count(out, "Last used"))
	}
	if strings.Contains(out, `role="alert"`) || strings.Contains(out, "<details open>") {
		t.Error("alert or open section without a problem")
	}

	forms := settingsForms(t, out)
	for action, n := range map[string]int{
		"remove_device": 2, "remove_all_devices": 1, "sign_out_others": 1,
		"new_recovery_codes": 1, "replace_authenticator": 1, "turn_off": 1,
	} {
		if len(forms[action]) != n {
			t.Errorf("%d %s forms, want %d", len(forms[action]), action, n)
		}
	}
	for i, id := range []string{"dev-1", "dev-2"} {
		if f := forms["remove_device"][i]; !strings.Contains(f, `<input type="hidden" name="device" value="`+id+`">`) {
			t.Errorf("remove_device form %d lacks device %s:\n%s", i, id, f)
		}
	}
	if !strings.Contains(forms["remove_device"][0], `aria-label="Remove Chrome on Windows (this device)"`) {
		t.Errorf("remove button has no accessible name naming the device:\n%s", forms["remove_device"][0])
	}
	// The forms that change the factor need a code, each with its own
	// labelled field; the others need none.
	for action, id := range map[string]string{
		"new_recovery_codes": "code-recovery-codes", "replace_authenticator": "code-replace", "turn_off": "code-turn-off",
	} {
		f := forms[action][0]
		a := attrs(tag(f, `id="`+id+`"`))
		for k, v := range map[string]string{"type": "text", "name": "code", "autocomplete": "one-time-code", "inputmode": "numeric"} {
			if a[k] != v {
				t.Errorf("%s: code input %s=%q, want %q", action, k, a[k], v)
			}
		}
		if _, ok := a["required"]; !ok {
			t.Errorf("%s: code not required", action)
		}
		if _, ok := a["autofocus"]; ok {
			t.Errorf("%s: autofocus without a problem", action)
		}
		if !strings.Contains(f, `<label for="`+id+`">`) {
			t.Errorf("%s: no label for %s", action, id)
		}
	}
	for _, action := range []string{"remove_device", "remove_all_devices", "sign_out_others"} {
		if strings.Contains(forms[action][0], `name="code"`) {
			t.Errorf("%s asks for a code", action)
		}
	}

	// A refused code: the alert is in the form it belongs to, which is
	// open, and only that field is marked and focused.
	d.Problem, d.Settings.Form = ProblemWrongCode, "turn_off"
	out = render(t, s, PageSettings, d)
	forms = settingsForms(t, out)
	if !strings.Contains(forms["turn_off"][0], `role="alert" id="problem"`) || strings.Count(out, `id="problem"`) != 1 {
		t.Error("problem not shown (once) in the turn_off form")
	}
	if !strings.Contains(out, "<details open>\n<summary>Turn off") || strings.Count(out, "<details open>") != 1 {
		t.Error("turn_off section not the one open")
	}
	if a := attrs(tag(out, `id="code-turn-off"`)); a["aria-invalid"] != "true" || a["aria-describedby"] != "problem" || a["autofocus"] != "" {
		t.Errorf("turn_off code field not marked: %v", a)
	} else if _, ok := attrs(tag(out, `id="code-replace"`))["aria-invalid"]; ok {
		t.Error("another code field marked invalid")
	}
	if !strings.Contains(out, "did not match") {
		t.Error("wrong code not explained")
	}
	d.Settings.RecoveryCode = true
	if out := render(t, s, PageSettings, d); !strings.Contains(out, "Recovery codes do not work here") {
		t.Error("recovery code not explained")
	}

	// Confirmations and refusals.
	for _, c := range []struct {
		done, refused string
		count         int
		want          string
	}{
		{"device_removed", "", 1, "Device removed."},
		{"this_device_removed", "", 1, "This device is no longer trusted."},
		{"devices_removed", "", 3, "3 trusted devices removed."},
		{"signed_out_others", "", 1, "Signed out of 1 other browser."},
		{"signed_out_others", "", 0, "No other browser was signed in."},
		{"", "form_expired", 0, "This form expired, so nothing was changed."},
		{"", "no_device", 0, "That device is not on your list"},
		{"", "turn_off_required", 0, "cannot be turned off"},
		{"", "recovery_disabled", 0, "Recovery codes are turned off"},
	} {
		d := full(PageSettings)
		d.Settings.Done, d.Settings.Refused, d.Settings.Count = c.done, c.refused, c.count
		if out := render(t, s, PageSettings, d); !strings.Contains(out, c.want) {
			t.Errorf("%s%s: lacks %q", c.done, c.refused, c.want)
		}
	}

	// Policy requires 2FA, recovery codes off, one device, no other
	// sessions: those forms are not offered.
	d = full(PageSettings)
	d.Settings.CanTurnOff, d.Settings.RecoveryCodes, d.Settings.OtherSessions = false, false, 0
	d.Settings.Devices = d.Settings.Devices[:1]
	out = render(t, s, PageSettings, d)
	forms = settingsForms(t, out)
	for _, action := range []string{"turn_off", "new_recovery_codes", "remove_all_devices", "sign_out_others"} {
		if len(forms[action]) != 0 {
			t.Errorf("%s offered", action)
		}
	}
	if len(forms["replace_authenticator"]) != 1 || !strings.Contains(out, "required for your account, so it cannot be turned off") {
		t.Error("replace form or the reason turn off is missing")
	}
	if strings.Contains(out, "recovery codes left") || strings.Contains(out, "Sign in with a recovery code") {
		t.Error("recovery codes mentioned although disabled")
	}
	d.Settings.Devices = nil
	if out := render(t, s, PageSettings, d); !strings.Contains(out, "No trusted devices. When you enter a code, you can tick “Remember this device” so that browser skips the code for 30 days.") {
		t.Error("no explanation of trusted devices")
	}

	// Not enrolled: an offer to set it up, and nothing else.
	d = base()
	d.Settings = &Settings{}
	out = render(t, s, PageSettings, d)
	if !strings.Contains(out, `<a class="button" href="/.2fa/enroll">Set up two-factor authentication</a>`) || !strings.Contains(out, "<strong>off</strong>") {
		t.Error("not enrolled: no offer to set up")
	}
	if strings.Contains(out, "<form") {
		t.Error("not enrolled: forms shown")
	}
	d.Settings.Invite = true
	if out := render(t, s, PageSettings, d); strings.Contains(out, "/.2fa/enroll") || !strings.Contains(out, "invitation link") {
		t.Error("invite only: links to enrollment or does not mention the invitation")
	}
}
