package caddymodule

import (
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-2fa/caddy-2fa/keyring"
)

var reBase32ID = regexp.MustCompile(`^[A-Z2-7]{26}$`)

// TestCookieLifetimesAndIDStrength: the session cookie lives exactly
// session_ttl and the device cookie exactly trust_device (Max-Age), on
// HTTPS with every safety attribute; the session ID inside the signed
// cookie has 130 random bits (26 base32 characters) and the device token
// 256, distinct every time; and neither the raw session ID nor the device
// token ever appears in the log (checklist items 31, 33 and 64).
func TestCookieLifetimesAndIDStrength(t *testing.T) {
	logFile := t.TempDir() + "/caddy.log"
	s := startSite(t, siteOptions{
		https:  true,
		gate:   "secret " + strconv.Quote(fuzzSecret) + "\n\t\tsession_ttl 2h\n\t\ttrust_device 7d",
		global: fmt.Sprintf("\tlog {\n\t\toutput file %s\n\t\tlevel DEBUG\n\t}\n", logFile),
	})
	h := fuzzCookieHandler(t)
	key, _ := s.browser("alice").enroll()

	ids := map[string]bool{}
	tokens := map[string]bool{}
	var raw []string
	for i := range 5 {
		advance(30 * time.Second)
		b := s.browser("alice")
		r := b.challenge(totp(key, testNow()), true).expectRedirect(t, "/app")
		var sawSession, sawDevice bool
		for _, sc := range r.Header.Values("Set-Cookie") {
			c, err := http.ParseSetCookie(sc)
			if err != nil {
				t.Fatalf("Set-Cookie %q: %v", sc, err)
			}
			if !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Domain != "" {
				t.Errorf("cookie %s lacks an attribute: %s", c.Name, sc)
			}
			switch c.Name {
			case "__Host-2fa_session":
				sawSession = true
				if c.MaxAge != 2*3600 {
					t.Errorf("session cookie Max-Age = %d, want 7200 (session_ttl 2h)", c.MaxAge)
				}
				var id []byte
				if err := h.codecs.session.Decode(sessionCookie, c.Value, &id); err != nil {
					t.Fatalf("session cookie does not decode with the site's key: %v", err)
				}
				if !reBase32ID.Match(id) {
					t.Errorf("session ID %q is not 26 base32 characters (130 bits)", id)
				}
				if ids[string(id)] {
					t.Errorf("session ID repeated")
				}
				ids[string(id)] = true
				raw = append(raw, string(id))
			case "__Host-2fa_device":
				sawDevice = true
				if c.MaxAge != 7*24*3600 {
					t.Errorf("device cookie Max-Age = %d, want %d (trust_device 7d)", c.MaxAge, 7*24*3600)
				}
				var tok []byte
				if err := h.codecs.device.Decode(deviceCookie, c.Value, &tok); err != nil {
					t.Fatalf("device cookie does not decode with the site's key: %v", err)
				}
				if len(tok) != 32 {
					t.Errorf("device token is %d bytes, want 32 (256 bits)", len(tok))
				}
				if tokens[string(tok)] {
					t.Errorf("device token repeated")
				}
				tokens[string(tok)] = true
				raw = append(raw, string(tok), fmt.Sprintf("%x", tok))
			}
		}
		if !sawSession || !sawDevice {
			t.Fatalf("round %d: session cookie %v, device cookie %v", i, sawSession, sawDevice)
		}
		b.get("/app").expect(t, http.StatusOK)
	}

	logs, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, sec := range raw {
		if strings.Contains(string(logs), sec) {
			t.Errorf("the log contains a raw session ID or device token")
		}
	}
}

// TestGateCookiesNeverReachTheApp: on HTTPS (the __Host- names) the
// application receives none of the gate's cookies, session, device or
// CSRF, and keeps its own (checklist item 54).
func TestGateCookiesNeverReachTheApp(t *testing.T) {
	s := startSite(t, siteOptions{https: true})
	key, _ := s.browser("alice").enroll()
	advance(30 * time.Second)
	b := s.browser("alice")
	b.challenge(totp(key, testNow()), true).expectRedirect(t, "/app")
	b.setCookie("APPSESSION", "kept")
	for _, name := range []string{"__Host-2fa_session", "__Host-2fa_device", "__Host-2fa_csrf"} {
		if b.cookie(name) == "" {
			t.Fatalf("the browser has no %s", name)
		}
	}
	r := b.get("/app").expect(t, http.StatusOK)
	m := regexp.MustCompile(`cookie=\[([^\]]*)\]`).FindStringSubmatch(r.body)
	if m == nil {
		t.Fatalf("the app did not echo its cookies: %q", r.body)
	}
	if strings.Contains(m[1], "2fa_") {
		t.Errorf("the app received gate cookies: %q", m[1])
	}
	if !strings.Contains(m[1], "APPSESSION=kept") {
		t.Errorf("the app lost its own cookie: %q", m[1])
	}
	// A trusted device alone (new session from the device cookie).
	c := s.browser("alice")
	c.setCookie("__Host-2fa_device", b.cookie("__Host-2fa_device"))
	r = c.get("/app").expect(t, http.StatusOK)
	if strings.Contains(r.body, "2fa_") {
		t.Errorf("the app received gate cookies on a trusted-device pass: %q", r.body)
	}
}

// TestVerifiedCookiesArePerHandler: the memory of verified cookie values
// never lets a value through for a handler whose keys did not sign it,
// and a value changed in one character is checked (and refused) even
// while the original is remembered.
func TestVerifiedCookiesArePerHandler(t *testing.T) {
	a := fuzzCookieHandler(t)
	keys, err := keyring.Derive([]byte("another secret, also at least 32 bytes long"))
	if err != nil {
		t.Fatal(err)
	}
	b := &Handler{keys: keys, codecs: newCookieCodecs(keys, time.Hour, time.Hour), verified: newVerifiedCookies()}

	enc, err := a.codecs.session.Encode(sessionCookie, []byte("session-of-a"))
	if err != nil {
		t.Fatal(err)
	}
	req := func(value string) *http.Request {
		r, _ := http.NewRequest("GET", "http://localhost/app", nil)
		r.AddCookie(&http.Cookie{Name: sessionCookie, Value: value})
		return r
	}
	for range 2 { // the second time from memory
		if got := a.readCookie(req(enc), sessionCookie); string(got) != "session-of-a" {
			t.Fatalf("handler a reads %q", got)
		}
	}
	if got := b.readCookie(req(enc), sessionCookie); got != nil {
		t.Fatalf("handler b took a's cookie as %q", got)
	}
	if got := a.readCookie(req(enc), deviceCookie); got != nil {
		t.Fatal("a session cookie value was read as a device cookie")
	}
	tampered := enc[:len(enc)-3] + "AAA"
	if tampered == enc {
		tampered = enc[:len(enc)-3] + "BBB"
	}
	if got := a.readCookie(req(tampered), sessionCookie); got != nil {
		t.Fatalf("a tampered value was read as %q", got)
	}
	// What a caller does with the bytes does not change the memory.
	got := a.readCookie(req(enc), sessionCookie)
	got[0] = 'X'
	if again := a.readCookie(req(enc), sessionCookie); string(again) != "session-of-a" {
		t.Fatalf("the remembered value changed to %q", again)
	}
}
