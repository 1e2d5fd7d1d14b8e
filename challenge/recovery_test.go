package challenge

import (
	"regexp"
	"strings"
	"testing"
)

var recoveryRE = regexp.MustCompile(`^[0-9a-hjkmnp-tv-z]{5}-[0-9a-hjkmnp-tv-z]{5}$`)

func TestRecoveryAlphabet(t *testing.T) {
	if len(RecoveryAlphabet) != 32 {
		t.Fatalf("alphabet has %d characters", len(RecoveryAlphabet))
	}
	seen := map[rune]bool{}
	for _, c := range RecoveryAlphabet {
		if seen[c] {
			t.Errorf("duplicate %q", c)
		}
		seen[c] = true
		if strings.ContainsRune("ilou", c) {
			t.Errorf("look-alike %q in alphabet", c)
		}
		if !recoveryRE.MatchString(strings.Repeat(string(c), 5) + "-" + strings.Repeat(string(c), 5)) {
			t.Errorf("%q not matched by the format regexp", c)
		}
	}
}

func TestNewRecoveryCodes(t *testing.T) {
	codes, err := NewRecoveryCodes(10)
	if err != nil {
		t.Fatal(err)
	}
	if len(codes) != 10 {
		t.Fatalf("got %d codes", len(codes))
	}
	seen := map[string]bool{}
	for _, c := range codes {
		if !recoveryRE.MatchString(c) {
			t.Errorf("bad format %q", c)
		}
		if seen[c] {
			t.Errorf("duplicate %q", c)
		}
		seen[c] = true
		n, ok := NormalizeRecoveryCode(c)
		if !ok || n != strings.ReplaceAll(c, "-", "") {
			t.Errorf("NormalizeRecoveryCode(%q) = %q, %v", c, n, ok)
		}
	}
	for _, n := range []int{0, -1, MaxRecoveryCodes + 1} {
		if _, err := NewRecoveryCodes(n); err == nil {
			t.Errorf("NewRecoveryCodes(%d): no error", n)
		}
	}
	if codes, err := NewRecoveryCodes(MaxRecoveryCodes); err != nil || len(codes) != MaxRecoveryCodes {
		t.Errorf("NewRecoveryCodes(Max): %d codes, %v", len(codes), err)
	}
}

// TestRecoveryDistribution is a rough check that every alphabet character
// is used about equally often; it catches a truncated alphabet, a modulo
// bias towards the first characters, or a stuck generator.
func TestRecoveryDistribution(t *testing.T) {
	counts := map[rune]int{}
	total := 0
	for i := 0; i < 20; i++ {
		codes, err := NewRecoveryCodes(50)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range codes {
			for _, r := range strings.ReplaceAll(c, "-", "") {
				counts[r]++
				total++
			}
		}
	}
	// 10000 characters: expected 312.5 each, standard deviation about 17.
	expected := float64(total) / 32
	for _, c := range RecoveryAlphabet {
		if n := counts[c]; float64(n) < expected*0.65 || float64(n) > expected*1.35 {
			t.Errorf("character %q appears %d times, expected about %.0f", c, n, expected)
		}
	}
	if len(counts) != 32 {
		t.Errorf("%d distinct characters used, want 32: %v", len(counts), counts)
	}
}

func TestNormalizeRecoveryCode(t *testing.T) {
	good := []struct{ in, want string }{
		{"abcde-fghjk", "abcdefghjk"},
		{"ABCDE-FGHJK", "abcdefghjk"},
		{"AbCdE-fGhJk", "abcdefghjk"},
		{"abcdefghjk", "abcdefghjk"},
		{"  abcde-fghjk  ", "abcdefghjk"},
		{"abcde fghjk", "abcdefghjk"},
		{"a b c d e - f g h j k", "abcdefghjk"},
		{"\tabcde-fghjk\r\n", "abcdefghjk"},
		{"ab-cde-fghjk", "abcdefghjk"},
		{"IL0O1-abcde", "11001abcde"},
		{"iloil-OLIOL", "1101101101"},
		{"01234-56789", "0123456789"},
		{"vwxyz-pqrst", "vwxyzpqrst"},
	}
	for _, g := range good {
		got, ok := NormalizeRecoveryCode(g.in)
		if !ok || got != g.want {
			t.Errorf("NormalizeRecoveryCode(%q) = %q, %v; want %q", g.in, got, ok, g.want)
		}
	}
	bad := []string{
		"",
		"-",
		"abcde-fghj",    // 9
		"abcde-fghjkm",  // 11
		"abcdefghjkabc", // 13
		"abcde-fghju",   // u is not Crockford
		"abcde_fghjk",
		"abcde.fghjk",
		"abcde-fghj!",
		"ａbcde-fghjk",      // full-width a
		"abcde-fghj\u212a", // Kelvin sign, lower-cases to k with Unicode rules
		"abcde-fghj\u0131", // dotless i
		"abcde-fghjk\x00",  // NUL
		"abcde" + strings.Repeat(" ", 60) + "fghjk", // over 64 bytes
		strings.Repeat("a", 1<<20),
	}
	for _, b := range bad {
		if got, ok := NormalizeRecoveryCode(b); ok || got != "" {
			t.Errorf("NormalizeRecoveryCode(%.30q) = %q, %v; want refused", b, got, ok)
		}
	}
}

func TestHashRecoveryCode(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	h := HashRecoveryCode(key, "realm", "alice", "abcdefghjk")
	if len(h) != 64 || strings.Trim(h, "0123456789abcdef") != "" {
		t.Fatalf("hash %q is not 64 hex digits", h)
	}
	if h != HashRecoveryCode(key, "realm", "alice", "abcdefghjk") {
		t.Error("hash not deterministic")
	}
	if strings.Contains(h, "abcdefghjk") {
		t.Error("hash contains the code")
	}
	others := map[string]string{
		"other user":         HashRecoveryCode(key, "realm", "bob", "abcdefghjk"),
		"other realm":        HashRecoveryCode(key, "realm2", "alice", "abcdefghjk"),
		"other key":          HashRecoveryCode([]byte("another key, also 32 bytes long!"), "realm", "alice", "abcdefghjk"),
		"nil key":            HashRecoveryCode(nil, "realm", "alice", "abcdefghjk"),
		"other code":         HashRecoveryCode(key, "realm", "alice", "abcdefghjm"),
		"realm/user moved":   HashRecoveryCode(key, "realma", "lice", "abcdefghjk"),
		"user/code moved":    HashRecoveryCode(key, "realm", "aliceabcde", "fghjk"),
		"realm/user swapped": HashRecoveryCode(key, "alice", "realm", "abcdefghjk"),
		"empty realm":        HashRecoveryCode(key, "", "realmalice", "abcdefghjk"),
	}
	seen := map[string]string{h: "original"}
	for name, o := range others {
		if prev, dup := seen[o]; dup {
			t.Errorf("%s: same hash as %s", name, prev)
		}
		seen[o] = name
	}
}
