package caddymodule

// Fuzz targets for the inputs an attacker (or a careless operator) controls:
// the Caddyfile directive, the return target (rd) of the gate's pages, the
// legacy application's login body, and the gate's signed cookies.
//
// The seed corpora live in testdata/fuzz/<FuzzName>/ and run as ordinary
// subtests under `go test`; `go test -run '^$' -fuzz '^FuzzX$' -fuzztime 10s
// ./caddymodule/` explores further (.ci/run does this for each target).
// A failing input found by the fuzzer is written to the same directory
// and from then on is a regression test.

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-2fa/caddy-2fa/keyring"
)

// FuzzCaddyfile: the directive parser never panics on any token stream;
// whatever it accepts passes through Validate without a panic and
// survives the Caddyfile → JSON → config round trip Caddy itself does
// (same JSON, same validity).
func FuzzCaddyfile(f *testing.F) {
	f.Add("two_factor")
	f.Fuzz(func(t *testing.T, input string) {
		// caddyfile.NewTestDispenser calls log.Fatalf on a lexer error
		// (an unterminated quote, say), which would kill the fuzzer; such
		// input never reaches our parser in Caddy either.
		tokens, err := caddyfile.Tokenize([]byte(input), "Testfile")
		if err != nil {
			return
		}
		var h Handler
		if err := h.UnmarshalCaddyfile(caddyfile.NewDispenser(tokens)); err != nil {
			return
		}
		verr := h.Validate()
		js, err := json.Marshal(h)
		if err != nil {
			t.Fatalf("accepted config does not marshal: %v", err)
		}
		var h2 Handler
		if err := json.Unmarshal(js, &h2); err != nil {
			t.Fatalf("accepted config does not unmarshal from its own JSON %s: %v", js, err)
		}
		js2, err := json.Marshal(h2)
		if err != nil {
			t.Fatalf("round-tripped config does not marshal: %v", err)
		}
		if !bytes.Equal(js, js2) {
			t.Fatalf("JSON round trip changed the config:\nfirst  %s\nsecond %s", js, js2)
		}
		if verr2 := h2.Validate(); (verr == nil) != (verr2 == nil) {
			t.Fatalf("Validate differs after the JSON round trip: %v, then %v (config %s)", verr, verr2, js)
		}
	})
}

// fuzzPrefixes are the path_prefix values the return-target validator is
// checked with: the default, and a legal prefix with capitals.
var fuzzPrefixes = []string{DefaultPathPrefix, "/Auth/MFA"}

// FuzzSafeReturn: whatever comes in as rd, the gate redirects only to a
// same-host relative path that no browser or proxy can turn into another
// host (SECURITY-TESTS.md C8 item 46), and never back into its own pages
// (which would loop) except the settings page.
func FuzzSafeReturn(f *testing.F) {
	f.Add("/app?x=1")
	f.Fuzz(func(t *testing.T, target string) {
		for _, prefix := range fuzzPrefixes {
			checkSafeReturn(t, target, prefix)
		}
	})
}

func checkSafeReturn(t *testing.T, target, prefix string) {
	t.Helper()
	got := safeReturn(target, prefix)
	if got != target && got != "/" {
		t.Fatalf("safeReturn(%q, %q) = %q: neither the input nor /", target, prefix, got)
	}
	if again := safeReturn(got, prefix); again != got {
		t.Fatalf("safeReturn not idempotent with prefix %q: %q → %q → %q", prefix, target, got, again)
	}
	fail := func(why string) {
		t.Helper()
		t.Fatalf("safeReturn(%q, %q) = %q: %s", target, prefix, got, why)
	}
	if !strings.HasPrefix(got, "/") {
		fail("not a path")
	}
	if strings.HasPrefix(got, "//") || strings.HasPrefix(got, `/\`) {
		fail("protocol-relative")
	}
	if strings.Contains(got, `\`) {
		fail("contains a backslash (browsers read it as /)")
	}
	for i := 0; i < len(got); i++ {
		if c := got[i]; c < 0x21 || c == 0x7f {
			fail(fmt.Sprintf("contains control character or space %#x", c))
		}
	}
	u, err := url.Parse(got)
	if err != nil {
		fail("does not parse: " + err.Error())
	}
	if u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		fail(fmt.Sprintf("has scheme %q host %q user %v opaque %q", u.Scheme, u.Host, u.User, u.Opaque))
	}
	// The decoded path as is, and with its dot segments resolved as
	// browsers do (they also read %2e as a dot) and http.Redirect does.
	lowerPrefix := strings.ToLower(prefix)
	for _, p := range []string{u.Path, path.Clean(u.Path)} {
		if strings.HasPrefix(p, "//") {
			fail(fmt.Sprintf("decoded path %q is protocol-relative", p))
		}
		lp := strings.ToLower(p)
		if (lp == lowerPrefix || strings.HasPrefix(lp, lowerPrefix+"/")) && p != prefix+"/settings" {
			fail(fmt.Sprintf("decoded path %q is a gate page", p))
		}
	}
}

// Fixed key material and cookie contents for FuzzSessionCookie. The seed
// corpus holds values signed with these (with a far-future timestamp so
// they never expire, and an expired one), built by fuzzEncodeAt.
const (
	fuzzSecret     = "caddy-2fa fuzz secret, not used anywhere else!"
	fuzzSessionID  = "FUZZKNOWNSESSION234567ABCD"
	fuzzDeviceTok  = "fuzz-known-device-token-32-bytes"
	fuzzCSRFToken  = "FUZZKNOWNCSRFTOKEN234567AB"
	fuzzCSRFUser   = "alice"
	fuzzLater      = "1700086400\nalice"
	fuzzFarFuture  = 4102444800 // 2100-01-01
	fuzzLongExpiry = 1700000000 // 2023-11-14: expired for every codec
)

// fuzzCookieHandler is a Handler with its cookie codecs set up as
// Provision does, from fuzzSecret, without Caddy or a store.
func fuzzCookieHandler(tb testing.TB) *Handler {
	tb.Helper()
	keys, err := keyring.Derive([]byte(fuzzSecret))
	if err != nil {
		tb.Fatal(err)
	}
	h := &Handler{keys: keys, SessionTTL: caddy.Duration(DefaultSessionTTL), trust: DefaultTrustDevice}
	h.codecs = newCookieCodecs(keys, time.Duration(h.SessionTTL), h.trust)
	h.verified = newVerifiedCookies()
	return h
}

// fuzzEncodeAt signs value for cookie name with key at Unix time ts, in
// securecookie's format (NopEncoder, HMAC-SHA256, no encryption).
func fuzzEncodeAt(key []byte, name string, value []byte, ts int64) string {
	b := base64.URLEncoding.EncodeToString(value)
	m := hmac.New(sha256.New, key)
	fmt.Fprintf(m, "%s|%d|%s", name, ts, b)
	return base64.URLEncoding.EncodeToString(append(fmt.Appendf(nil, "%d|%s|", ts, b), m.Sum(nil)...))
}

// fuzzCookieRequest is a request carrying value as cookie base (under its
// __Host- name when secure) for handler h.
func fuzzCookieRequest(h *Handler, base, value string, secure bool) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/app", nil)
	if secure {
		r.TLS = &tls.ConnectionState{}
	}
	r.Header["Cookie"] = []string{h.cookieName(r, base) + "=" + value}
	return r
}

// FuzzSessionCookie: no cookie value, however crafted, decodes to anything
// but what the gate itself signed. The only genuine values in the corpus
// carry fuzzSessionID, fuzzDeviceTok, fuzzCSRFToken for alice and
// fuzzLater, so a decoded session, device or "remind me later" cookie
// must be exactly those, and a CSRF cookie yields a token only for alice
// and only that token. Every value is tried as each of the four cookies (a value signed for one is
// worthless as another), over HTTP and HTTPS, and as the cookies of
// another realm sharing the secret (where the default realm's genuine
// values are refused).
func FuzzSessionCookie(f *testing.F) {
	h := fuzzCookieHandler(f)
	// Another realm sharing the secret: its cookie names carry a suffix,
	// which the MAC covers.
	other := fuzzCookieHandler(f)
	other.cookieSuffix = "_" + cookieSafe("staff")
	known := map[string][]byte{
		sessionCookie: []byte(fuzzSessionID),
		deviceCookie:  []byte(fuzzDeviceTok),
		csrfCookie:    []byte(fuzzCSRFToken + "\n" + fuzzCSRFUser),
		laterCookie:   []byte(fuzzLater),
	}
	macKey := map[string][]byte{sessionCookie: h.keys.SessionMAC, deviceCookie: h.keys.DeviceMAC, csrfCookie: h.keys.CSRFMAC, laterCookie: h.keys.LaterMAC}
	for base, v := range known {
		fresh, err := h.codecs.of(base).Encode(base, v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(fresh)
		// The harness itself must be right: genuine values decode, in
		// securecookie's format as fuzzEncodeAt writes it too, and
		// expired ones do not.
		if got := h.readCookie(fuzzCookieRequest(h, base, fresh, false), base); !bytes.Equal(got, v) {
			f.Fatalf("fresh %s cookie decodes to %q", base, got)
		}
		if got := h.readCookie(fuzzCookieRequest(h, base, fuzzEncodeAt(macKey[base], base, v, fuzzFarFuture), true), base); !bytes.Equal(got, v) {
			f.Fatalf("far-future %s cookie decodes to %q: fuzzEncodeAt no longer matches securecookie", base, got)
		}
		if got := h.readCookie(fuzzCookieRequest(h, base, fuzzEncodeAt(macKey[base], base, v, fuzzLongExpiry), false), base); got != nil {
			f.Fatalf("expired %s cookie decodes to %q", base, got)
		}
		if got := other.readCookie(fuzzCookieRequest(other, base, fresh, false), base); got != nil {
			f.Fatalf("%s cookie of the default realm accepted by realm staff (same secret): %q", base, got)
		}
	}
	f.Fuzz(func(t *testing.T, value string) {
		for _, secure := range []bool{false, true} {
			for _, base := range []string{sessionCookie, deviceCookie, csrfCookie, laterCookie} {
				r := fuzzCookieRequest(h, base, value, secure)
				if got := h.readCookie(r, base); got != nil && !bytes.Equal(got, known[base]) {
					t.Fatalf("forged %s cookie %q decoded to %q", base, value, got)
				}
				if got := other.readCookie(fuzzCookieRequest(other, base, value, secure), base); got != nil && !bytes.Equal(got, known[base]) {
					t.Fatalf("forged %s_staff cookie %q decoded to %q", base, value, got)
				}
				if base != csrfCookie {
					continue
				}
				if tok, ok := h.csrfFromCookie(r, fuzzCSRFUser); ok && tok != fuzzCSRFToken {
					t.Fatalf("forged CSRF cookie %q gave %s the token %q", value, fuzzCSRFUser, tok)
				}
				for _, u := range []string{"bob", "", "Alice", "alice\n", fuzzCSRFToken} {
					if tok, ok := h.csrfFromCookie(r, u); ok {
						t.Fatalf("CSRF cookie %q gave %q the token %q", value, u, tok)
					}
				}
			}
		}
	})
}
