package caddymodule

import (
	"bytes"
	"encoding/base32"
	"encoding/base64"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// End-to-end tests in headless Chromium: the demo legacy app (its own
// login form) behind two_factor with app_login, as in Caddyfile.example.
// Codes come from the harness's own TOTP and fake clock. Helpers are in
// browser_chrome_test.go.

// checkPageLang turns on the assertion that <html lang> is the language
// the browser asked for (templates/locales has a catalog for each).
const checkPageLang = true

var reRecoveryCode = regexp.MustCompile(`^[0-9a-hjkmnp-tv-z]{5}-[0-9a-hjkmnp-tv-z]{5}$`)

// appPage checks that the tab shows the demo app's home page, passed by
// the gate as user with method.
func (c *chrome) appPage(user, method string) {
	c.t.Helper()
	if p := c.path(); p != "/" {
		c.t.Fatalf("at %s, want the app at /\n%s", p, c.bodyText())
	}
	want := "Two-factor gate passed as " + user + " via " + method + "."
	if got := c.text("#gate"); got != want {
		c.t.Fatalf("app says %q, want %q", got, want)
	}
}

// recoveryCodes reads the codes on a recovery codes page.
func (c *chrome) recoveryCodes() []string {
	c.t.Helper()
	codes := jsEval[[]string](c, `[...document.querySelectorAll("ul.codes li")].map(li => li.textContent.trim())`)
	if len(codes) != DefaultRecoveryCodes {
		c.t.Fatalf("%d recovery codes shown, want %d: %v", len(codes), DefaultRecoveryCodes, codes)
	}
	for _, code := range codes {
		if !reRecoveryCode.MatchString(code) {
			c.t.Errorf("recovery code %q is not xxxxx-xxxxx", code)
		}
	}
	return codes
}

// enrollInBrowser reads the key off the enrollment page the tab shows (the
// grouped key, checked against the otpauth link and the QR image) and
// confirms it with a code; it returns the key and the recovery codes.
func (c *chrome) enrollInBrowser() ([]byte, []string) {
	t := c.t
	t.Helper()
	groups := jsEval[[]string](c, `[...document.querySelectorAll("code.secret span")].map(s => s.textContent)`)
	if len(groups) == 0 {
		t.Fatalf("no grouped key on the enrollment page:\n%s", c.bodyText())
	}
	for i, g := range groups {
		if len(g) != 4 && !(i == len(groups)-1 && len(g) > 0 && len(g) < 4) {
			t.Errorf("key group %q is not four characters", g)
		}
	}
	secret := strings.Join(groups, "")
	key, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(secret)
	if err != nil {
		t.Fatalf("key %q: %v", secret, err)
	}
	link, err := url.Parse(jsEval[string](c, `document.querySelector('a[href^="otpauth:"]').href`))
	if err != nil || !strings.EqualFold(link.Query().Get("secret"), secret) {
		t.Fatalf("otpauth link %v does not carry the key shown (%v)", link, err)
	}
	type img struct {
		Src      string
		Complete bool
		Width    int
	}
	qr := jsEval[img](c, `(i => ({Src: i.src, Complete: i.complete, Width: i.naturalWidth}))(document.querySelector(".qr img"))`)
	data, ok := strings.CutPrefix(qr.Src, "data:image/png;base64,")
	if !ok {
		t.Fatalf("QR image is not a data:image/png URL: %.60s", qr.Src)
	}
	if png, err := base64.StdEncoding.DecodeString(data); err != nil || !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatalf("QR image is not a PNG (%v)", err)
	}
	if !qr.Complete || qr.Width == 0 {
		t.Fatalf("QR image did not render (complete %v, width %d): blocked by the page's CSP?", qr.Complete, qr.Width)
	}

	c.typeInto("code", totp(key, testNow()))
	resp := c.click(`form[action$="/enroll"] button[type="submit"]`)
	c.expectAt(resp, 200, "/.2fa/enroll")
	return key, c.recoveryCodes()
}

// TestBrowserEnrollment: the app's login form, then enrollment from what
// the page shows, the recovery codes, and on to the app.
func TestBrowserEnrollment(t *testing.T) {
	s := startAppSite(t, "", "")
	c := newChrome(t, browserTestContext(t), s, "en")
	c.expectAt(c.appLogin("alice", "wonderland"), 200, "/.2fa/enroll")
	key, _ := c.enrollInBrowser()
	c.click(`a.button:not(.secondary)`)
	c.appPage("alice", "totp")

	// The key the page showed is the one the gate checks.
	advance(30 * time.Second)
	other := newChrome(t, c.ctx, s, "en")
	other.appLogin("alice", "wonderland")
	other.typeInto("code", totp(key, testNow()))
	other.click(`form[action$="/challenge"] button[type="submit"]`)
	other.appPage("alice", "totp")
}

// TestBrowserNewDeviceTrusted: a new browser gets the challenge with the
// focus on the code field; ticking "remember this device" lets the next
// login on it through without a prompt.
func TestBrowserNewDeviceTrusted(t *testing.T) {
	s := startAppSite(t, "", "")
	_, key := appEnroll(t, s, "alice", "wonderland")
	advance(30 * time.Second)

	c := newChrome(t, browserTestContext(t), s, "en")
	c.expectAt(c.appLogin("alice", "wonderland"), 200, "/.2fa/challenge")
	c.waitFocus("code")
	c.do(chromedp.Click(chromedp.ID("trust_device"), chromedp.NodeVisible))
	if !jsEval[bool](c, `document.getElementById("trust_device").checked`) {
		t.Fatal("trust_device not ticked by a click on it")
	}
	c.typeInto("code", totp(key, testNow()))
	c.click(`form[action$="/challenge"] button[type="submit"]`)
	c.appPage("alice", "totp")

	// Log out of the app (its own link) and in again: no prompt.
	c.expectAt(c.click(`a[href="/logout"]`), 200, "/login")
	c.appLogin("alice", "wonderland")
	c.appPage("alice", "trusted_device")
}

// TestBrowserWrongCodeAndLockout: a wrong code shows the problem as an
// alert tied to the field; enough of them lead to the lockout page.
func TestBrowserWrongCodeAndLockout(t *testing.T) {
	s := startAppSite(t, "max_attempts 3 5m 15m", "")
	_, key := appEnroll(t, s, "alice", "wonderland")
	advance(30 * time.Second)

	c := newChrome(t, browserTestContext(t), s, "en")
	c.appLogin("alice", "wonderland")
	c.typeInto("code", wrongCode(key))
	c.expectAt(c.click(`form[action$="/challenge"] button[type="submit"]`), 401, "/.2fa/challenge")

	if got := c.text("#problem"); !strings.Contains(got, "That code did not match.") {
		t.Fatalf("problem shown: %q", got)
	}
	alert := c.axNode("#problem")
	if role := axString(alert.Role); role != "alert" {
		t.Errorf("problem has role %q for assistive technology, want alert", role)
	}
	field := c.axNode("#code")
	if inv := axProperty(field, "invalid"); inv != "true" {
		t.Errorf("code field: invalid = %q, want true", inv)
	}
	if d := axString(field.Description); !strings.Contains(d, "That code did not match.") {
		t.Errorf("code field's description %q does not include the problem", d)
	}
	c.waitFocus("code")

	// Two more wrong codes: the third failure locks.
	c.typeInto("code", wrongCode(key))
	c.expectAt(c.click(`form[action$="/challenge"] button[type="submit"]`), 401, "/.2fa/challenge")
	c.typeInto("code", wrongCode(key))
	resp := c.click(`form[action$="/challenge"] button[type="submit"]`)
	c.expectAt(resp, 429, "/.2fa/challenge")
	if h := c.text("h1"); h != "Too many attempts" {
		t.Fatalf("heading %q after the last wrong code, want the lockout page", h)
	}
	if role := axString(c.axNode(".alert").Role); role != "alert" {
		t.Errorf("lockout message has role %q, want alert", role)
	}
	if jsEval[bool](c, `!!document.getElementById("code")`) {
		t.Error("the lockout page still offers a code field")
	}
}

// challengeIn answers the challenge page the tab shows with code, ticking
// "remember this device" if trust, and expects the app.
func (c *chrome) challengeIn(code string, trust bool) {
	c.t.Helper()
	if p := c.path(); !strings.HasPrefix(p, "/.2fa/challenge") {
		c.t.Fatalf("at %s, want the challenge\n%s", p, c.bodyText())
	}
	if trust {
		c.do(chromedp.Click(chromedp.ID("trust_device"), chromedp.NodeVisible))
	}
	c.typeInto("code", code)
	c.click(`form[action$="/challenge"] button[type="submit"]`)
}

// TestBrowserSettings: new recovery codes from the settings page (with a
// fresh code), and revoking another browser's trust, which then asks for
// a code again.
func TestBrowserSettings(t *testing.T) {
	s := startAppSite(t, "", "")
	_, key := appEnroll(t, s, "alice", "wonderland")
	ctx := browserTestContext(t)

	advance(30 * time.Second)
	laptop := newChrome(t, ctx, s, "en")
	laptop.appLogin("alice", "wonderland")
	laptop.challengeIn(totp(key, testNow()), true)
	laptop.appPage("alice", "totp")

	advance(30 * time.Second)
	c := newChrome(t, ctx, s, "en")
	c.appLogin("alice", "wonderland")
	c.challengeIn(totp(key, testNow()), false)
	c.appPage("alice", "totp")

	c.expectAt(c.open("/.2fa/settings"), 200, "/.2fa/settings")
	if n := jsEval[int](c, `document.querySelectorAll('form input[name="action"][value="remove_device"]').length`); n != 1 {
		t.Fatalf("%d trusted devices listed, want 1 (the other browser)", n)
	}

	// New recovery codes: open the section, a fresh code (codes are
	// single-use, so the next time step).
	advance(30 * time.Second)
	c.do(chromedp.Click(chromedp.CSS(`details:has(#code-recovery-codes) summary`), chromedp.NodeVisible))
	c.typeInto("code-recovery-codes", totp(key, testNow()))
	c.expectAt(c.click(`form:has(#code-recovery-codes) button[type="submit"]`), 200, "/.2fa/settings")
	if h := c.text("h1"); h != "Save your recovery codes" {
		t.Fatalf("heading %q, want the new recovery codes", h)
	}
	fresh := c.recoveryCodes()
	c.expectAt(c.click(`a.button:not(.secondary)`), 200, "/.2fa/settings")

	// Revoke the other browser: the list updates.
	c.expectAt(c.click(`form:has(input[value="remove_device"]) button[type="submit"]`), 200, "/.2fa/settings")
	if got := c.text(`.alert.notice[role="status"]`); !strings.HasPrefix(got, "Device removed.") {
		t.Fatalf("after removing: %q", got)
	}
	if n := jsEval[int](c, `document.querySelectorAll('input[name="action"][value="remove_device"]').length`); n != 0 {
		t.Fatalf("%d trusted devices still listed", n)
	}
	if !strings.Contains(c.bodyText(), "No trusted devices.") {
		t.Fatalf("the list does not say it is empty:\n%s", c.bodyText())
	}

	// The other browser logs in again: a code is needed, and one of the
	// new recovery codes works.
	laptop.click(`a[href="/logout"]`)
	laptop.expectAt(laptop.appLogin("alice", "wonderland"), 200, "/.2fa/challenge")
	laptop.do(chromedp.Click(chromedp.CSS(`details summary`), chromedp.NodeVisible))
	laptop.typeInto("recovery-code", fresh[0])
	laptop.click(`form:has(#recovery-code) button[type="submit"]`)
	laptop.appPage("alice", "recovery")
}

// TestBrowserGateLogout: signing out on the gate's logout page ends the
// second factor: the next app request asks for a code.
func TestBrowserGateLogout(t *testing.T) {
	s := startAppSite(t, "", "")
	_, key := appEnroll(t, s, "alice", "wonderland")
	advance(30 * time.Second)

	c := newChrome(t, browserTestContext(t), s, "en")
	c.appLogin("alice", "wonderland")
	c.challengeIn(totp(key, testNow()), true)
	c.appPage("alice", "totp")

	c.expectAt(c.open("/.2fa/logout"), 200, "/.2fa/logout")
	c.expectAt(c.click(`form[action$="/logout"] button[type="submit"]`), 200, "/.2fa/logout")
	if h := c.text("h1"); h != "You are signed out" {
		t.Fatalf("heading %q after signing out", h)
	}
	c.expectAt(c.open("/"), 200, "/.2fa/challenge")
	c.waitFocus("code")
}

// TestBrowserKeyboardOnly: the app's login and the challenge with the
// keyboard alone: the focus starts where typing goes, Tab reaches the
// code field, the checkbox and the button in that order, Space ticks
// the box and Enter submits.
func TestBrowserKeyboardOnly(t *testing.T) {
	s := startAppSite(t, "", "")
	_, key := appEnroll(t, s, "alice", "wonderland")
	advance(30 * time.Second)

	c := newChrome(t, browserTestContext(t), s, "en")
	c.open("/login")
	c.waitFocus("username")
	c.do(chromedp.KeyEvent("alice" + kb.Tab + "wonderland"))
	c.expectAt(c.navigate(chromedp.KeyEvent(kb.Enter)), 200, "/.2fa/challenge")

	c.waitFocus("code")
	var order []string
	for range 3 {
		c.do(chromedp.KeyEvent(kb.Tab))
		order = append(order, jsEval[string](c, `(e => e.id || e.tagName.toLowerCase() + ":" + e.type + ":" + e.textContent.trim())(document.activeElement)`))
	}
	if want := []string{"trust_device", "button:submit:Verify"}; strings.Join(order[:2], " ") != strings.Join(want, " ") {
		t.Fatalf("Tab from the code field goes to %v, want %v then the recovery code section", order, want)
	}
	// Back to the box, tick it, back to the field.
	c.do(chromedp.KeyEvent(kb.Tab, chromedp.KeyModifiers(chromedp.ModifierShift)))
	c.do(chromedp.KeyEvent(kb.Tab, chromedp.KeyModifiers(chromedp.ModifierShift)))
	if id := c.activeID(); id != "trust_device" {
		t.Fatalf("Shift+Tab went to %q, want trust_device", id)
	}
	c.do(chromedp.KeyEvent(" "))
	c.do(chromedp.KeyEvent(kb.Tab, chromedp.KeyModifiers(chromedp.ModifierShift)))
	if id := c.activeID(); id != "code" {
		t.Fatalf("Shift+Tab went to %q, want code", id)
	}
	if !jsEval[bool](c, `document.getElementById("trust_device").checked`) {
		t.Fatal("Space did not tick trust_device")
	}
	c.do(chromedp.KeyEvent(totp(key, testNow())))
	c.navigate(chromedp.KeyEvent(kb.Enter))
	c.appPage("alice", "totp")

	// Ticked with the keyboard, so trusted: the next login goes straight in.
	c.click(`a[href="/logout"]`)
	c.appLogin("alice", "wonderland")
	c.appPage("alice", "trusted_device")
}

// screenshotDir is where the tour saves its screenshots: docs/screenshots
// with UPDATE_SCREENSHOTS=1 (to commit them), a temporary directory
// otherwise.
func screenshotDir(t *testing.T) string {
	if os.Getenv("UPDATE_SCREENSHOTS") == "1" {
		dir := "../docs/screenshots"
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	return t.TempDir()
}

// Viewports of the screenshots, in CSS pixels.
const (
	desktopWidth, desktopHeight = 1280, 800
	phoneWidth, phoneHeight     = 390, 844
)

// tour checks every page it is shown and takes its screenshots.
type tour struct {
	t    *testing.T
	dir  string
	lang string
	seen []string
}

// check runs the checks on the page c shows, named name, and saves its
// screenshots as <name>-<lang>-<light|dark>-<phone|desktop>.png.
func (tr *tour) check(c *chrome, name string) {
	t := tr.t
	t.Helper()
	tr.seen = append(tr.seen, name)
	label := name + " (" + tr.lang + ")"
	c.checkLabels(label)
	if checkPageLang {
		if got := jsEval[string](c, `document.documentElement.lang`); got != tr.lang {
			t.Errorf("%s: <html lang=%q>, want %q", label, got, tr.lang)
		}
	}
	for _, scheme := range []string{"light", "dark"} {
		c.scheme(scheme)
		c.viewport(desktopWidth, desktopHeight, 1, false)
		c.checkAxe(label + " " + scheme)
		c.screenshot(tr.dir, fmt.Sprintf("%s-%s-%s-desktop", name, tr.lang, scheme))
		c.viewport(phoneWidth, phoneHeight, 1, true)
		c.screenshot(tr.dir, fmt.Sprintf("%s-%s-%s-phone", name, tr.lang, scheme))
	}
	c.scheme("light")

	// Reflow (WCAG 1.4.10): 320 CSS pixels wide, as a 1280 px window at
	// 400 %. Zoom (1.4.4): a 1280 px window at 200 % is 640 CSS pixels at
	// device scale 2; and text alone at 200 % (the browser's font size
	// setting doubled) on a desktop window.
	c.viewport(320, 640, 1, false)
	c.checkNoOverflow(label + " at 320 px")
	c.viewport(640, 400, 2, false)
	c.checkNoOverflow(label + " at 200 % zoom")
	c.viewport(desktopWidth, desktopHeight, 1, false)
	c.fontSize(32, 26)
	c.checkNoOverflow(label + " with 200 % text")
	c.fontSize(16, 13)
}

// tourPages are the gate pages the tour must visit.
var tourPages = []string{"enroll", "recovery-codes", "challenge", "challenge-error", "settings", "not-found", "logout", "logged-out", "locked"}

// TestBrowserPages visits every page of the flows, in English and in
// Japanese: axe-core (WCAG 2.1 A and AA) finds nothing in light and dark,
// every field has a label, nothing scrolls sideways at 320 px or at 200 %
// zoom, and screenshots are taken.
func TestBrowserPages(t *testing.T) {
	dir := screenshotDir(t)
	for _, lang := range []string{"en", "ja"} {
		t.Run(lang, func(t *testing.T) {
			tr := &tour{t: t, dir: dir, lang: lang}
			s := startAppSite(t, "max_attempts 3 5m 15m", "")
			ctx := browserTestContext(t)

			// First login: enrollment and recovery codes.
			c := newChrome(t, ctx, s, lang)
			c.expectAt(c.appLogin("alice", "wonderland"), 200, "/.2fa/enroll")
			tr.check(c, "enroll")
			key, _ := c.enrollInBrowser()
			tr.check(c, "recovery-codes")
			c.click(`a.button:not(.secondary)`)
			c.appPage("alice", "totp")

			// A new device: the challenge, a wrong code, the right one.
			advance(30 * time.Second)
			d := newChrome(t, ctx, s, lang)
			d.expectAt(d.appLogin("alice", "wonderland"), 200, "/.2fa/challenge")
			tr.check(d, "challenge")
			d.typeInto("code", wrongCode(key))
			d.expectAt(d.click(`form[action$="/challenge"] button[type="submit"]`), 401, "/.2fa/challenge")
			tr.check(d, "challenge-error")
			d.challengeIn(totp(key, testNow()), true)
			d.appPage("alice", "totp")

			d.expectAt(d.open("/.2fa/settings"), 200, "/.2fa/settings")
			tr.check(d, "settings")
			d.expectAt(d.open("/.2fa/no-such-page"), 404, "/.2fa/no-such-page")
			tr.check(d, "not-found")
			d.expectAt(d.open("/.2fa/logout"), 200, "/.2fa/logout")
			tr.check(d, "logout")
			d.expectAt(d.click(`form[action$="/logout"] button[type="submit"]`), 200, "/.2fa/logout")
			tr.check(d, "logged-out")

			// Wrong codes until the lockout (the wrong code above counts).
			d.expectAt(d.open("/"), 200, "/.2fa/challenge")
			var resp int64
			for i := 0; i < 5 && resp != 429; i++ {
				d.typeInto("code", wrongCode(key))
				resp = d.click(`form[action$="/challenge"] button[type="submit"]`).Status
			}
			if resp != 429 {
				t.Fatalf("no lockout after 5 more wrong codes (status %d)", resp)
			}
			tr.check(d, "locked")

			if strings.Join(tr.seen, " ") != strings.Join(tourPages, " ") {
				t.Errorf("visited %v, want %v", tr.seen, tourPages)
			}
		})
	}
}
