package keyring

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef")

func TestDeriveRejectsShortSecret(t *testing.T) {
	if _, err := Derive([]byte("short")); err == nil {
		t.Fatal("Derive accepted a 5-byte secret")
	}
}

func TestDeriveIsDeterministicAndSeparatesPurposes(t *testing.T) {
	a, err := Derive(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Derive(testSecret)
	if !bytes.Equal(a.SessionMAC, b.SessionMAC) || !bytes.Equal(a.RecoveryMAC, b.RecoveryMAC) {
		t.Fatal("same secret gave different keys")
	}
	keys := [][]byte{a.SessionMAC, a.DeviceMAC, a.CSRFMAC, a.LaterMAC, a.RecoveryMAC, a.DeviceID, a.RecordMAC, a.StoreID, a.EnrollBrowser}
	for i := range keys {
		for j := i + 1; j < len(keys); j++ {
			if bytes.Equal(keys[i][:32], keys[j][:32]) {
				t.Fatalf("keys %d and %d are equal", i, j)
			}
		}
	}
	c, _ := Derive(append([]byte("x"), testSecret...))
	if bytes.Equal(a.SessionMAC, c.SessionMAC) {
		t.Fatal("different secrets gave the same key")
	}
}

func TestSealBindsRealmAndUser(t *testing.T) {
	k, _ := Derive(testSecret)
	secret := []byte("totp secret bytes!!!")
	ct, err := k.Seal("default", "alice", secret)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(ct, secret) {
		t.Fatal("ciphertext contains the plaintext")
	}
	pt, err := k.Open("default", "alice", ct)
	if err != nil || !bytes.Equal(pt, secret) {
		t.Fatalf("Open = %q, %v", pt, err)
	}
	for _, c := range []struct{ realm, user string }{{"default", "bob"}, {"other", "alice"}, {"default:a", "lice"}, {"defaul", "talice"}} {
		if _, err := k.Open(c.realm, c.user, ct); err == nil {
			t.Errorf("ciphertext for default/alice opened as %s/%s", c.realm, c.user)
		}
	}
	other, _ := Derive(bytes.Repeat([]byte("z"), 32))
	if _, err := other.Open("default", "alice", ct); err == nil {
		t.Error("ciphertext opened with another secret")
	}
	tampered := append([]byte(nil), ct...)
	tampered[len(tampered)-1] ^= 1
	if _, err := k.Open("default", "alice", tampered); err == nil {
		t.Error("tampered ciphertext opened")
	}
	for _, short := range [][]byte{nil, {1}, ct[:12], ct[:27]} {
		if _, err := k.Open("default", "alice", short); err == nil {
			t.Errorf("truncated ciphertext (%d bytes) opened", len(short))
		}
	}
	ct2, _ := k.Seal("default", "alice", secret)
	if bytes.Equal(ct, ct2) {
		t.Error("two seals of the same plaintext are identical (nonce reuse)")
	}
}

func TestLoadOrCreateSecret(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "secret")
	s1, err := LoadOrCreateSecret(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(s1) < MinSecretLen {
		t.Fatalf("generated secret is %d bytes", len(s1))
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret file mode %v, want 0600", fi.Mode().Perm())
	}
	s2, err := LoadOrCreateSecret(path)
	if err != nil || !bytes.Equal(s1, s2) {
		t.Fatalf("second load gave another secret (%v)", err)
	}
	if err := os.WriteFile(path, []byte("not base64!"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateSecret(path); err == nil {
		t.Fatal("damaged secret file accepted")
	}
}

func TestDeviceKey(t *testing.T) {
	k, _ := Derive(testSecret)
	a, b := k.DeviceKey([]byte("token-a")), k.DeviceKey([]byte("token-b"))
	if a == b || len(a) != 64 || a != k.DeviceKey([]byte("token-a")) {
		t.Fatalf("DeviceKey: %q %q", a, b)
	}
}

// TestRecordTag: a tag verifies only for the same kind and fields, under
// the same secret; moving bytes between fields or changing the kind breaks
// it (the fields are length-prefixed).
func TestRecordTag(t *testing.T) {
	k, _ := Derive(testSecret)
	other, _ := Derive(append([]byte("x"), testSecret...))
	tag := k.RecordTag("session", []byte("key"), []byte("alice"))
	if len(tag) != RecordTagLen {
		t.Fatalf("tag is %d bytes, want %d", len(tag), RecordTagLen)
	}
	if !k.CheckRecordTag(tag, "session", []byte("key"), []byte("alice")) {
		t.Fatal("a tag does not verify with the same fields")
	}
	for name, ok := range map[string]bool{
		"other user":    k.CheckRecordTag(tag, "session", []byte("key"), []byte("mallory")),
		"other key":     k.CheckRecordTag(tag, "session", []byte("key2"), []byte("alice")),
		"shifted bytes": k.CheckRecordTag(tag, "session", []byte("keya"), []byte("lice")),
		"other kind":    k.CheckRecordTag(tag, "device", []byte("key"), []byte("alice")),
		"other secret":  other.CheckRecordTag(tag, "session", []byte("key"), []byte("alice")),
		"truncated":     k.CheckRecordTag(tag[:8], "session", []byte("key"), []byte("alice")),
		"no tag":        k.CheckRecordTag(nil, "session", []byte("key"), []byte("alice")),
	} {
		if ok {
			t.Errorf("%s: the tag verified", name)
		}
	}
}

// TestStoreKey: keyed, deterministic, separated by kind, 22 characters.
func TestStoreKey(t *testing.T) {
	k, _ := Derive(testSecret)
	other, _ := Derive(append([]byte("x"), testSecret...))
	a := k.StoreKey("session", "id-1")
	if len(a) != 22 || a != k.StoreKey("session", "id-1") {
		t.Fatalf("StoreKey %q: want 22 characters, the same each time", a)
	}
	for name, b := range map[string]string{
		"other id":     k.StoreKey("session", "id-2"),
		"other kind":   k.StoreKey("invite", "id-1"),
		"other secret": other.StoreKey("session", "id-1"),
	} {
		if a == b {
			t.Errorf("%s gives the same store key", name)
		}
	}
}

// TestEnrollBrowserKey: the binding of a pending enrollment depends on
// the token, the realm, the user and the secret, and on nothing else.
func TestEnrollBrowserKey(t *testing.T) {
	k, _ := Derive(testSecret)
	other, _ := Derive([]byte("another-secret-0123456789abcdef0123456789"))
	a := k.EnrollBrowserKey("realm", "alice", []byte("token"))
	if len(a) != 64 || a != k.EnrollBrowserKey("realm", "alice", []byte("token")) {
		t.Fatalf("EnrollBrowserKey not a stable 64-hex hash: %q", a)
	}
	for name, b := range map[string]string{
		"other token":   k.EnrollBrowserKey("realm", "alice", []byte("token2")),
		"other user":    k.EnrollBrowserKey("realm", "bob", []byte("token")),
		"other realm":   k.EnrollBrowserKey("realm2", "alice", []byte("token")),
		"shifted names": k.EnrollBrowserKey("realmalice", "", []byte("token")),
		"other secret":  other.EnrollBrowserKey("realm", "alice", []byte("token")),
		"device key":    k.DeviceKey([]byte("token")),
	} {
		if b == a {
			t.Errorf("%s: same hash", name)
		}
	}
}

// TestRingOpen: a ring opens what its current or a previous secret sealed,
// says which, and refuses what none of them sealed.
func TestRingOpen(t *testing.T) {
	derive := func(s string) *Keys {
		k, err := Derive([]byte(s + "-0123456789abcdef0123456789abcdef"))
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	a, b, c := derive("a"), derive("b"), derive("c")
	ring := &Ring{Current: b, Previous: []*Keys{a}}
	for _, tc := range []struct {
		name    string
		by      *Keys
		current bool
		opens   bool
	}{
		{"current", b, true, true},
		{"previous", a, false, true},
		{"unlisted", c, false, false},
	} {
		sealed, err := tc.by.Seal("realm", "alice", []byte("totp secret"))
		if err != nil {
			t.Fatal(err)
		}
		pt, current, err := ring.Open("realm", "alice", sealed)
		if !tc.opens {
			if err != ErrOpen || pt != nil {
				t.Errorf("%s: Open = %q, %v; want ErrOpen", tc.name, pt, err)
			}
			continue
		}
		if err != nil || string(pt) != "totp secret" || current != tc.current {
			t.Errorf("%s: Open = %q, current %v, %v; want the secret, current %v", tc.name, pt, current, err, tc.current)
		}
		// Bound to realm and user under every key.
		if _, _, err := ring.Open("realm", "bob", sealed); err != ErrOpen {
			t.Errorf("%s: another user's record opened: %v", tc.name, err)
		}
	}
	// Without previous keys, what the old secret sealed is unreadable.
	if _, _, err := (&Ring{Current: b}).Open("realm", "alice", must(a.Seal("realm", "alice", []byte("x")))); err != ErrOpen {
		t.Errorf("a ring without previous keys opened an old record: %v", err)
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}
