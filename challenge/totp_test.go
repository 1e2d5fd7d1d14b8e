package challenge

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"
	"time"
)

// RFC 6238 Appendix B seeds (erratum 2866: the seed is as long as the HMAC
// output), see SECURITY-TESTS.md §B.
var (
	seed20 = mustHex("3132333435363738393031323334353637383930")
	seed32 = mustHex("3132333435363738393031323334353637383930" + "313233343536373839303132")
	seed64 = mustHex(strings.Repeat("3132333435363738393031323334353637383930", 3) + "31323334")
)

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func seedFor(alg string) []byte {
	switch alg {
	case "SHA1":
		return seed20
	case "SHA256":
		return seed32
	case "SHA512":
		return seed64
	}
	panic("unknown algorithm " + alg)
}

var rfc6238Vectors = []struct {
	unix int64
	step int64
	code string
	alg  string
}{
	{59, 0x1, "94287082", "SHA1"},
	{59, 0x1, "46119246", "SHA256"},
	{59, 0x1, "90693936", "SHA512"},
	{1111111109, 0x23523EC, "07081804", "SHA1"},
	{1111111109, 0x23523EC, "68084774", "SHA256"},
	{1111111109, 0x23523EC, "25091201", "SHA512"},
	{1111111111, 0x23523ED, "14050471", "SHA1"},
	{1111111111, 0x23523ED, "67062674", "SHA256"},
	{1111111111, 0x23523ED, "99943326", "SHA512"},
	{1234567890, 0x273EF07, "89005924", "SHA1"},
	{1234567890, 0x273EF07, "91819424", "SHA256"},
	{1234567890, 0x273EF07, "93441116", "SHA512"},
	{2000000000, 0x3F940AA, "69279037", "SHA1"},
	{2000000000, 0x3F940AA, "90698825", "SHA256"},
	{2000000000, 0x3F940AA, "38618901", "SHA512"},
	{20000000000, 0x27BC86AA, "65353130", "SHA1"},
	{20000000000, 0x27BC86AA, "77737706", "SHA256"},
	{20000000000, 0x27BC86AA, "47863826", "SHA512"},
}

func TestRFC6238Vectors(t *testing.T) {
	if len(rfc6238Vectors) != 18 {
		t.Fatalf("want 18 RFC 6238 rows, have %d", len(rfc6238Vectors))
	}
	for _, v := range rfc6238Vectors {
		p := Params{Algorithm: v.alg, Digits: 8, Period: 30}
		now := time.Unix(v.unix, 0)
		secret := seedFor(v.alg)
		if got := Step(now, p); got != v.step {
			t.Errorf("%s T=%d: Step = %#x, want %#x", v.alg, v.unix, got, v.step)
		}
		if got := CodeAt(secret, v.step, p); got != v.code {
			t.Errorf("%s T=%d: CodeAt = %q, want %q", v.alg, v.unix, got, v.code)
		}
		if got := Code(secret, now, p); got != v.code {
			t.Errorf("%s T=%d: Code = %q, want %q", v.alg, v.unix, got, v.code)
		}
		step, ok := VerifyTOTP(secret, v.code, now, 0, p)
		if !ok || step != v.step {
			t.Errorf("%s T=%d: VerifyTOTP = (%#x, %v), want (%#x, true)", v.alg, v.unix, step, ok, v.step)
		}
		// The same code must not verify under another algorithm.
		for _, other := range []string{"SHA1", "SHA256", "SHA512"} {
			if other == v.alg {
				continue
			}
			q := p
			q.Algorithm = other
			if _, ok := VerifyTOTP(secret, v.code, now, 0, q); ok {
				t.Errorf("%s T=%d: code also accepted as %s", v.alg, v.unix, other)
			}
		}
	}
}

func TestRFC4226Vectors(t *testing.T) {
	want := []string{"755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"}
	p := DefaultParams()
	for counter, code := range want {
		if got := CodeAt(seed20, int64(counter), p); got != code {
			t.Errorf("counter %d: CodeAt = %q, want %q", counter, got, code)
		}
		// TOTP with period 30 is HOTP with counter = floor(t/30).
		now := time.Unix(int64(counter)*30+29, 0)
		if got := Code(seed20, now, p); got != code {
			t.Errorf("counter %d: Code = %q, want %q", counter, got, code)
		}
		step, ok := VerifyTOTP(seed20, code, now, 0, p)
		if !ok || step != int64(counter) {
			t.Errorf("counter %d: VerifyTOTP = (%d, %v), want (%d, true)", counter, step, ok, counter)
		}
	}
}

func TestStep(t *testing.T) {
	p := DefaultParams()
	cases := []struct {
		unix int64
		p    Params
		want int64
	}{
		{0, p, 0},
		{29, p, 0},
		{30, p, 1},
		{59, p, 1},
		{1 << 32, p, (1 << 32) / 30}, // beyond 32-bit time
		{20000000000, p, 0x27BC86AA},
		{-1, p, -1}, // floor, not truncation
		{-30, p, -1},
		{-31, p, -2},
		{59, Params{"SHA1", 6, 60}, 0},
		{60, Params{"SHA1", 6, 60}, 1},
		{7, Params{"SHA1", 6, 1}, 7},
		{100, Params{"SHA1", 6, 0}, 0},  // invalid period: no division by zero
		{100, Params{"SHA1", 6, -5}, 0}, // invalid period
	}
	for _, c := range cases {
		if got := Step(time.Unix(c.unix, 0), c.p); got != c.want {
			t.Errorf("Step(%d, period %d) = %d, want %d", c.unix, c.p.Period, got, c.want)
		}
	}
	// Sub-second precision must not matter.
	if got := Step(time.Unix(59, 999999999), p); got != 1 {
		t.Errorf("Step(59.999999999) = %d, want 1", got)
	}
}

func TestCodeAtRefusesBadInput(t *testing.T) {
	if got := CodeAt(seed20, -1, DefaultParams()); got != "" {
		t.Errorf("negative step: %q, want empty", got)
	}
	for _, p := range []Params{
		{"MD5", 6, 30}, {"sha1", 6, 30}, {"", 6, 30}, {"SHA1", 7, 30}, {"SHA1", 6, 0},
	} {
		if got := CodeAt(seed20, 1, p); got != "" {
			t.Errorf("CodeAt with %+v = %q, want empty", p, got)
		}
	}
	// Zero padding: find a step whose 6-digit code starts with '0'.
	p := DefaultParams()
	for s := int64(0); s < 1000; s++ {
		c := CodeAt(seed20, s, p)
		if len(c) != 6 {
			t.Fatalf("step %d: code %q has length %d", s, c, len(c))
		}
		if c[0] == '0' {
			return
		}
	}
	t.Error("no zero-padded code among 1000 steps")
}

func TestParamsValidate(t *testing.T) {
	d := DefaultParams()
	if d != (Params{Algorithm: "SHA1", Digits: 6, Period: 30}) {
		t.Fatalf("DefaultParams = %+v", d)
	}
	if !d.IsDefault() || (Params{"SHA256", 6, 30}).IsDefault() {
		t.Error("IsDefault wrong")
	}
	good := []Params{d, {"SHA256", 8, 30}, {"SHA512", 6, 60}, {"SHA1", 6, 1}, {"SHA1", 8, 300}}
	for _, p := range good {
		if err := p.Validate(); err != nil {
			t.Errorf("%+v: unexpected error %v", p, err)
		}
	}
	bad := []Params{
		{"MD5", 6, 30},
		{"sha1", 6, 30},
		{"SHA-1", 6, 30},
		{"", 6, 30},
		{"SHA1", 0, 30},
		{"SHA1", 7, 30},
		{"SHA1", 10, 30},
		{"SHA1", -6, 30},
		{"SHA1", 6, 0},
		{"SHA1", 6, -30},
		{"SHA1", 6, 301},
		{},
	}
	for _, p := range bad {
		err := p.Validate()
		if err == nil {
			t.Errorf("%+v: no error", p)
			continue
		}
		if msg := err.Error(); msg[:1] != strings.ToLower(msg[:1]) {
			t.Errorf("error not lower case: %q", msg)
		}
	}
}

// fixedSecret is an arbitrary 20-byte secret for tests that need one.
var fixedSecret = []byte("skew-test-secret-20b")

func TestVerifySkew(t *testing.T) {
	p := DefaultParams()
	now := time.Unix(1700000000, 0)
	T := Step(now, p)
	codes := map[int64]string{}
	for d := int64(-3); d <= 3; d++ {
		codes[d] = CodeAt(fixedSecret, T+d, p)
	}
	// The test relies on the seven codes being distinct.
	seen := map[string]bool{}
	for _, c := range codes {
		if seen[c] {
			t.Fatalf("codes collide in test vector, pick another secret: %v", codes)
		}
		seen[c] = true
	}

	for _, d := range []int64{-1, 0, 1} {
		step, ok := VerifyTOTP(fixedSecret, codes[d], now, 1, p)
		if !ok || step != T+d {
			t.Errorf("skew 1, T%+d: (%d, %v), want (%d, true)", d, step, ok, T+d)
		}
	}
	for _, d := range []int64{-3, -2, 2, 3} {
		if step, ok := VerifyTOTP(fixedSecret, codes[d], now, 1, p); ok {
			t.Errorf("skew 1, T%+d accepted as step %d", d, step)
		}
	}
	if step, ok := VerifyTOTP(fixedSecret, codes[0], now, 0, p); !ok || step != T {
		t.Errorf("skew 0, T: (%d, %v)", step, ok)
	}
	for _, d := range []int64{-1, 1} {
		if _, ok := VerifyTOTP(fixedSecret, codes[d], now, 0, p); ok {
			t.Errorf("skew 0, T%+d accepted", d)
		}
		// Negative skew counts as 0.
		if _, ok := VerifyTOTP(fixedSecret, codes[d], now, -5, p); ok {
			t.Errorf("skew -5, T%+d accepted", d)
		}
	}
	// The step returned depends on the code, not on where now is inside the
	// period.
	for _, off := range []int64{0, 1, 15, 29} {
		n := time.Unix(T*30+off, 0)
		if step, ok := VerifyTOTP(fixedSecret, codes[1], n, 1, p); !ok || step != T+1 {
			t.Errorf("offset %d: (%d, %v)", off, step, ok)
		}
	}
	// A second secret does not accept the first secret's code.
	if _, ok := VerifyTOTP([]byte("another-secret-of-20"), codes[0], now, 1, p); ok {
		t.Error("code accepted for another secret")
	}
}

func TestVerifySkewIsClamped(t *testing.T) {
	p := DefaultParams()
	now := time.Unix(1800000000, 0)
	T := Step(now, p)
	edge := CodeAt(fixedSecret, T+MaxSkew, p)
	beyond := CodeAt(fixedSecret, T+MaxSkew+1, p)
	for s := T - MaxSkew; s <= T+MaxSkew; s++ {
		if CodeAt(fixedSecret, s, p) == beyond {
			t.Skip("code collision in test vector")
		}
	}
	if step, ok := VerifyTOTP(fixedSecret, edge, now, 1000, p); !ok || step != T+MaxSkew {
		t.Errorf("T+MaxSkew with skew 1000: (%d, %v)", step, ok)
	}
	if _, ok := VerifyTOTP(fixedSecret, beyond, now, 1000, p); ok {
		t.Error("T+MaxSkew+1 accepted: skew not clamped")
	}
}

// TestVerifyNewestStep finds two steps of one secret with the same 6-digit
// code and checks that VerifyTOTP reports the newer one.
func TestVerifyNewestStep(t *testing.T) {
	p := DefaultParams()
	last := map[string]int64{}
	for s := int64(0); s < 3_000_000; s++ {
		c := CodeAt(fixedSecret, s, p)
		if prev, ok := last[c]; ok && s-prev <= 2*MaxSkew {
			dist := s - prev
			mid := prev + dist/2
			skew := int(dist - dist/2)
			now := time.Unix(mid*30, 0)
			step, ok := VerifyTOTP(fixedSecret, c, now, skew, p)
			if !ok || step != s {
				t.Fatalf("code %s of steps %d and %d, now step %d skew %d: (%d, %v), want newest %d",
					c, prev, s, mid, skew, step, ok, s)
			}
			return
		}
		last[c] = s
		if testing.Short() && s > 200_000 {
			t.Skip("no collision found quickly; skipped in -short mode")
		}
	}
	t.Fatal("no two nearby steps with the same code found")
}

func TestVerifyRejectsMalformedCodes(t *testing.T) {
	p := DefaultParams()
	now := time.Unix(1700000000, 0)
	good := Code(fixedSecret, now, p)
	if _, ok := VerifyTOTP(fixedSecret, good, now, 1, p); !ok {
		t.Fatalf("control: good code %q refused", good)
	}
	bad := []string{
		"",
		good[:5],
		good + "0",
		" " + good,
		good + " ",
		good[:3] + " " + good[3:],
		good[:3] + "-" + good[3:],
		"+" + good[1:],
		"-" + good[1:],
		good[:5] + "a",
		"abcdef",
		"１２３４５６",
		toFullWidth(good),
		good[:5] + "\x00",
		strings.Repeat("1", 1<<20),
		strings.Repeat(good, 1<<17),
	}
	for _, c := range bad {
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("panic for %.20q: %v", c, r)
				}
			}()
			if step, ok := VerifyTOTP(fixedSecret, c, now, 1, p); ok {
				t.Errorf("%.20q (len %d) accepted as step %d", c, len(c), step)
			}
		}()
	}
	// 8-digit params refuse the 6-digit code and vice versa.
	p8 := Params{"SHA1", 8, 30}
	if _, ok := VerifyTOTP(fixedSecret, good, now, 1, p8); ok {
		t.Error("6-digit code accepted with 8-digit params")
	}
	good8 := Code(fixedSecret, now, p8)
	if _, ok := VerifyTOTP(fixedSecret, good8, now, 1, p8); !ok {
		t.Error("control: 8-digit code refused")
	}
	if _, ok := VerifyTOTP(fixedSecret, good8, now, 1, p); ok {
		t.Error("8-digit code accepted with 6-digit params")
	}
}

func TestVerifyRefusesBadParamsAndSecrets(t *testing.T) {
	now := time.Unix(1700000000, 0)
	p := DefaultParams()
	short := fixedSecret[:MinSecretSize-1]
	if c := Code(short, now, p); c == "" {
		t.Fatal("Code refused a short secret; the test below would be vacuous")
	} else if _, ok := VerifyTOTP(short, c, now, 1, p); ok {
		t.Error("secret shorter than MinSecretSize accepted")
	}
	min := fixedSecret[:MinSecretSize]
	if _, ok := VerifyTOTP(min, Code(min, now, p), now, 1, p); !ok {
		t.Error("MinSecretSize secret refused")
	}
	if _, ok := VerifyTOTP(nil, Code(nil, now, p), now, 1, p); ok {
		t.Error("empty secret accepted")
	}
	for _, bp := range []Params{{"MD5", 6, 30}, {"SHA1", 7, 30}, {"SHA1", 6, 0}, {}} {
		if _, ok := VerifyTOTP(fixedSecret, "000000", now, 1, bp); ok {
			t.Errorf("%+v: accepted", bp)
		}
	}
	// Times before 1970 give negative steps; nothing matches them.
	if _, ok := VerifyTOTP(fixedSecret, CodeAt(fixedSecret, 0, p), time.Unix(-31, 0), 1, p); ok {
		t.Error("step 0 code accepted at step -2")
	}
	if step, ok := VerifyTOTP(fixedSecret, CodeAt(fixedSecret, 0, p), time.Unix(-1, 0), 1, p); !ok || step != 0 {
		t.Errorf("step 0 code at step -1 with skew 1: (%d, %v)", step, ok)
	}
}

func toFullWidth(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= '0' && r <= '9' {
			r += '０' - '0'
		}
		b.WriteRune(r)
	}
	return b.String()
}

func TestNewSecret(t *testing.T) {
	seen := map[string]bool{}
	var perPos [20]map[byte]bool // values seen at each byte position
	for i := range perPos {
		perPos[i] = map[byte]bool{}
	}
	ones := 0
	for i := 0; i < 1000; i++ {
		s, err := NewSecret()
		if err != nil {
			t.Fatal(err)
		}
		if len(s) != 20 {
			t.Fatalf("secret length %d, want 20", len(s))
		}
		if seen[string(s)] {
			t.Fatalf("duplicate secret after %d", i)
		}
		seen[string(s)] = true
		for j, c := range s {
			perPos[j][c] = true
			for ; c != 0; c &= c - 1 {
				ones++
			}
		}
	}
	// Every byte must be random, not only a prefix: about 250 of 256 values
	// appear at each position in 1000 secrets; half of the 160000 bits are set.
	for j, vals := range perPos {
		if len(vals) < 200 {
			t.Errorf("byte %d took only %d distinct values", j, len(vals))
		}
	}
	if ones < 78000 || ones > 82000 {
		t.Errorf("%d of 160000 bits set, want about 80000", ones)
	}
}

func TestEncodeDecodeSecret(t *testing.T) {
	if got := EncodeSecret(seed20); got != "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ" {
		t.Errorf("EncodeSecret(RFC seed) = %q", got)
	}
	for n := 1; n <= 64; n++ {
		secret := bytes.Repeat([]byte{byte(n * 37)}, n)
		secret[0] ^= 0x5a
		enc := EncodeSecret(secret)
		if strings.Contains(enc, "=") {
			t.Errorf("len %d: padding in %q", n, enc)
		}
		if enc != strings.ToUpper(enc) {
			t.Errorf("len %d: not upper case: %q", n, enc)
		}
		padded := enc
		if r := len(enc) % 8; r != 0 {
			padded += strings.Repeat("=", 8-r)
		}
		forms := []string{
			enc,
			strings.ToLower(enc),
			padded,
			strings.ToLower(padded),
			strings.Join(GroupSecret(enc), " "),
			strings.ToLower(strings.Join(GroupSecret(enc), " ")),
			strings.Join(GroupSecret(enc), "-"),
			"  " + enc + "\n",
		}
		for _, f := range forms {
			got, err := DecodeSecret(f)
			if err != nil {
				t.Errorf("len %d: DecodeSecret(%q): %v", n, f, err)
				continue
			}
			if !bytes.Equal(got, secret) {
				t.Errorf("len %d: DecodeSecret(%q) = %x, want %x", n, f, got, secret)
			}
		}
	}
	for _, bad := range []string{"", "   ", "====", "GEZDGNB1", "GEZDGNB8", "A", "GEZ=DGNB", "GEZDGNBVGY3TQOJQ!", "ＧEZDGNBV", strings.Repeat("A", 2000)} {
		if got, err := DecodeSecret(bad); err == nil {
			t.Errorf("DecodeSecret(%.20q) = %x, want error", bad, got)
		} else if msg := err.Error(); strings.ToLower(msg[:1]) != msg[:1] {
			t.Errorf("error not lower case: %q", msg)
		}
	}
}

func TestGroupSecret(t *testing.T) {
	cases := []struct {
		in   string
		want []string
	}{
		{"", []string{}},
		{"ABC", []string{"ABC"}},
		{"ABCD", []string{"ABCD"}},
		{"ABCDE", []string{"ABCD", "E"}},
		{"ABCDEFGHIJ", []string{"ABCD", "EFGH", "IJ"}},
		{"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", []string{"GEZD", "GNBV", "GY3T", "QOJQ", "GEZD", "GNBV", "GY3T", "QOJQ"}},
	}
	for _, c := range cases {
		got := GroupSecret(c.in)
		if strings.Join(got, "|") != strings.Join(c.want, "|") || len(got) != len(c.want) {
			t.Errorf("GroupSecret(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
