package redisstore

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/caddy-2fa/caddy-2fa/sessions"
)

func TestEscape(t *testing.T) {
	names := []string{"", "a", "b", ":", "%", "%3A", "{", "}", "{}", "a:b", "a%3Ab", "ü", "\x00", "\n", " ", "%25", strings.Repeat("x", 300)}
	seen := map[string]string{}
	for _, n := range names {
		e := escape(n)
		if prev, dup := seen[e]; dup {
			t.Fatalf("escape(%q) == escape(%q) == %q", n, prev, e)
		}
		seen[e] = n
		if strings.ContainsAny(e, ":{}") {
			t.Errorf("escape(%q) = %q contains a separator or brace", n, e)
		}
	}
	if got := escape("alice@example.com"); got != "alice@example.com" {
		t.Errorf("escape of a plain name = %q", got)
	}
	k := keys{prefix: escapePrefix("")}
	if got := k.user("default", "a:b{c}", sufEnrollment); got != "caddy2fa:{default:a%3Ab%7Bc%7D}:enr" {
		t.Errorf("user key = %q", got)
	}
	if got := k.token("r", "csrf:x", "id/1"); got != "caddy2fa:r:t:csrf%3Ax:id/1" {
		t.Errorf("token key = %q", got)
	}
	if got := escapePrefix("app:{2fa}%"); got != "app:%7B2fa%7D%25" {
		t.Errorf("escapePrefix = %q", got)
	}
	// (realm, user) pairs never share keys.
	pairs := [][2]string{{"a", "b:c"}, {"a:b", "c"}, {"a", "b}c"}, {"a}", "bc"}, {"", ":"}, {":", ""}}
	got := map[string][2]string{}
	for _, p := range pairs {
		key := k.user(p[0], p[1], sufEnrollment)
		if prev, dup := got[key]; dup {
			t.Fatalf("%q and %q share key %q", p, prev, key)
		}
		got[key] = p
	}
}

func TestSessionCodec(t *testing.T) {
	base := time.Date(2026, 11, 23, 10, 0, 0, 123456789, time.UTC)
	for _, s := range []sessions.Session{
		{},
		{
			User: "alice", Method: "totp", Created: base, Expires: base.Add(12 * time.Hour), LastSeen: base,
			ClientIP: "192.0.2.1", UserAgent: "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0",
		},
		{
			User: "ü\x00", Method: "webauthn", Created: time.Unix(-1, 5), Expires: time.Unix(math.MaxInt64/2, 999999999),
			LastSeen: time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC), ClientIP: "2001:db8::1", UserAgent: "curl/8.5.0 \xff",
		},
		{User: "bob", Method: "recovery", Expires: base, ClientIP: "::ffff:192.0.2.1", UserAgent: ""},
		{User: "bob", Method: "trusted_device", Expires: base, ClientIP: "fe80::1%eth0"},
		{User: "bob", Method: "", Expires: base, ClientIP: "not an IP", UserAgent: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"},
		{User: "bob", Expires: base, ClientIP: "192.000.002.001", UserAgent: "\x80\x81"},
		{User: "carol", Method: "totp", Expires: base, ClientIP: "192.0.2.1", UserAgent: "Firefox", MAC: []byte("0123456789abcdef")},
		{
			User: "carol", Method: "trusted_device", Expires: base, UserAgent: "Firefox", MAC: []byte("0123456789abcdef"),
			Device: "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
		},
		{User: "carol", Method: "trusted_device", Expires: base, Device: "not-a-hex-key", MAC: []byte{1}},
		{User: "carol", Method: "trusted_device", Expires: base, Device: "00112233445566778899AABBCCDDEEFF00112233445566778899aabbccddeeff"},
	} {
		v := encodeSession(s)
		got, err := decodeSession(v)
		if err != nil {
			t.Fatalf("decodeSession(encodeSession(%+v)): %v", s, err)
		}
		if d := sessionDiff(got, s); d != "" {
			t.Errorf("round trip of %+v: %s", s, d)
		}
		if s.Expires.IsZero() && !got.Expires.IsZero() {
			t.Errorf("zero time came back as %v", got.Expires)
		}
		if !strings.HasPrefix(string(v), ownerPrefix(fmtSession, s.User)) {
			t.Errorf("value does not start with the owner prefix")
		}
		if _, err := decodeDevice(v); err == nil {
			t.Errorf("a session decodes as a device")
		}
		// Every truncation is an error, never a different session.
		for i := range len(v) {
			if _, err := decodeSession(v[:i]); err == nil && i < len(v)-len(s.UserAgent) {
				t.Errorf("truncated to %d of %d bytes: no error", i, len(v))
			} else if err != nil && !errors.Is(err, errCorrupt) {
				t.Errorf("truncated: error %v is not errCorrupt", err)
			}
		}
	}
	for _, d := range []sessions.Device{
		{User: "alice", Created: base, Expires: base.Add(720 * time.Hour), LastUsed: base.Add(900 * time.Hour), ClientIP: "192.0.2.9", UserAgent: "Firefox"},
		{User: "alice", Expires: base, UserAgent: "Firefox", MAC: []byte("0123456789abcdef")},
	} {
		got, err := decodeDevice(encodeDevice(d))
		if err != nil || deviceDiff(got, d) != "" || !bytes.Equal(got.MAC, d.MAC) {
			t.Errorf("device round trip: %+v, %v", got, err)
		}
	}
}

// TestSessionCodecCompactTag: a tagged session started by a trusted
// device costs the tag and the device key's 32 bytes, not its 64 hex
// digits, so that a session stays well under the memory bar.
func TestSessionCodecCompactTag(t *testing.T) {
	base := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	s := sessions.Session{User: "alice", Method: "totp", Expires: base, Created: base, LastSeen: base, UserAgent: "x"}
	plain := len(encodeSession(s))
	s.MAC = make([]byte, 16)
	s.Device = strings.Repeat("ab", 32)
	if got, want := len(encodeSession(s)), plain+1+16+1+32; got != want {
		t.Errorf("tagged session with a device: %d bytes, want %d", got, want)
	}
}

func sessionDiff(a, b sessions.Session) string {
	var d []string
	if a.User != b.User || a.Method != b.Method || a.ClientIP != b.ClientIP || a.UserAgent != b.UserAgent || a.Device != b.Device {
		d = append(d, "strings differ")
	}
	if !a.Created.Equal(b.Created) || !a.Expires.Equal(b.Expires) || !a.LastSeen.Equal(b.LastSeen) {
		d = append(d, "times differ")
	}
	if !bytes.Equal(a.MAC, b.MAC) {
		d = append(d, "MACs differ")
	}
	return strings.Join(d, ", ")
}

func deviceDiff(a, b sessions.Device) string {
	return sessionDiff(
		sessions.Session{User: a.User, Created: a.Created, Expires: a.Expires, LastSeen: a.LastUsed, ClientIP: a.ClientIP, UserAgent: a.UserAgent},
		sessions.Session{User: b.User, Created: b.Created, Expires: b.Expires, LastSeen: b.LastUsed, ClientIP: b.ClientIP, UserAgent: b.UserAgent})
}

func TestUserAgentCompression(t *testing.T) {
	if len(uaTokens) > 128 {
		t.Fatalf("%d user agent tokens, at most 128 fit", len(uaTokens))
	}
	for _, ua := range []string{
		"Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
		"Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
		"curl/8.5.0",
		"x",
	} {
		c, ok := compressUA(ua)
		if !ok {
			if len(ua) > 12 {
				t.Errorf("%q not compressed", ua)
			}
			continue
		}
		back, err := expandUA(c)
		if err != nil || back != ua {
			t.Errorf("expandUA(compressUA(%q)) = %q, %v", ua, back, err)
		}
		t.Logf("%3d -> %2d bytes: %.50s", len(ua), len(c), ua)
	}
	if _, ok := compressUA("Mozilla/5.0 (\xff"); ok {
		t.Error("a user agent with a non-ASCII byte was compressed")
	}
	if _, err := expandUA([]byte{0xff}); !errors.Is(err, errCorrupt) {
		t.Errorf("unknown token: %v", err)
	}
	// Tokens are distinct.
	seen := map[string]bool{}
	for _, tok := range uaTokens {
		if seen[tok] || tok == "" {
			t.Errorf("token %q duplicated or empty", tok)
		}
		seen[tok] = true
	}
}

func TestTextRecords(t *testing.T) {
	if _, err := decodeAttempts("1 2 3"); !errors.Is(err, errCorrupt) {
		t.Errorf("short counter: %v", err)
	}
	if _, err := decodeAttempts("1 2 1000000000 0 0"); !errors.Is(err, errCorrupt) {
		t.Errorf("bad nanoseconds: %v", err)
	}
	a, err := decodeAttempts("3 1700000000 5 -62135596800 0")
	if err != nil || a.Failures != 3 || !a.WindowEnds.Equal(time.Unix(1700000000, 5)) || !a.LockedUntil.IsZero() {
		t.Errorf("decodeAttempts = %+v, %v", a, err)
	}
	for d, want := range map[time.Duration]string{
		time.Hour:                    "3600 0",
		1500 * time.Millisecond:      "1 500000000",
		-1500 * time.Millisecond:     "-2 500000000",
		0:                            "0 0",
		time.Duration(math.MaxInt64): "9223372036 854775807",
	} {
		if got := durationFields(d); got != want {
			t.Errorf("durationFields(%v) = %q, want %q", d, got, want)
		}
	}
	if got := scoreSeconds(time.Unix(10, 1)); got != 11 {
		t.Errorf("scoreSeconds rounds down: %d", got)
	}
	if got := scoreSeconds(time.Unix(10, 0)); got != 10 {
		t.Errorf("scoreSeconds(10s) = %d", got)
	}
	now := time.Unix(100, 0)
	for exp, want := range map[time.Time]int64{
		now.Add(-time.Second):            0,
		now:                              0,
		now.Add(time.Nanosecond):         1,
		now.Add(1500 * time.Microsecond): 2,
		now.Add(time.Hour):               3600000,
		time.Date(9999, 1, 1, 0, 0, 0, 1, time.UTC): maxTTLMillis,
	} {
		if got := ttlMillis(exp, now); got != want {
			t.Errorf("ttlMillis(%v) = %d, want %d", exp.Sub(now), got, want)
		}
	}
}
