package challenge

import (
	"strings"
	"testing"
	"time"
)

func TestClassify(t *testing.T) {
	p6 := DefaultParams()
	p8 := Params{"SHA1", 8, 30}
	bad := Params{"MD5", 6, 30}
	cases := []struct {
		in   string
		p    Params
		kind Kind
		out  string
	}{
		{"123456", p6, KindTOTP, "123456"},
		{"000000", p6, KindTOTP, "000000"},
		{"123 456", p6, KindTOTP, "123456"},
		{"  123456  ", p6, KindTOTP, "123456"},
		{"1 2 3 4 5 6", p6, KindTOTP, "123456"},
		{"123\t456", p6, KindTOTP, "123456"},
		{"12345678", p8, KindTOTP, "12345678"},
		{"1234 5678", p8, KindTOTP, "12345678"},

		// Wrong digit counts for the enrollment.
		{"12345678", p6, KindInvalid, ""},
		{"123456", p8, KindInvalid, ""},
		{"12345", p6, KindInvalid, ""},
		{"1234567", p6, KindInvalid, ""},
		{"123456789", p8, KindInvalid, ""},
		{"123456", bad, KindInvalid, ""}, // invalid params: never TOTP

		// Not ASCII digits.
		{"１２３４５６", p6, KindInvalid, ""},
		{"١٢٣٤٥٦", p6, KindInvalid, ""},
		{"12345a", p6, KindInvalid, ""},
		{"+12345", p6, KindInvalid, ""},
		{"-123456", p6, KindInvalid, ""},
		{"123-456", p6, KindInvalid, ""},
		{"123456\x00", p6, KindInvalid, ""},
		{"123456\n", p6, KindInvalid, ""},

		// Empty and blank.
		{"", p6, KindInvalid, ""},
		{" ", p6, KindInvalid, ""},
		{"      ", p6, KindInvalid, ""},
		{"-", p6, KindInvalid, ""},

		// Recovery codes.
		{"abcde-fghjk", p6, KindRecovery, "abcdefghjk"},
		{"ABCDE-FGHJK", p6, KindRecovery, "abcdefghjk"},
		{"abcdefghjk", p6, KindRecovery, "abcdefghjk"},
		{" abcde fghjk ", p6, KindRecovery, "abcdefghjk"},
		{"ilo00-abcde", p6, KindRecovery, "11000abcde"},
		{"abcde-fghjk", bad, KindRecovery, "abcdefghjk"},

		// Ambiguous-looking: all-digit recovery codes have 10 characters,
		// which no TOTP length matches.
		{"01234-56789", p6, KindRecovery, "0123456789"},
		{"0123456789", p6, KindRecovery, "0123456789"},
		{"0123456789", p8, KindRecovery, "0123456789"},
		{"12345 67890", p8, KindRecovery, "1234567890"},
		{"oooooooooo", p6, KindRecovery, "0000000000"},
		{"ollll-11111", p6, KindRecovery, "0111111111"},
		{"12345-6", p6, KindInvalid, ""},   // dash: not TOTP; 6 chars: not recovery
		{"1234-5678", p8, KindInvalid, ""}, // same for 8 digits
		{"o23456", p6, KindInvalid, ""},    // look-alikes only map for recovery codes
		{"12345678ab", p6, KindRecovery, "12345678ab"},
		{"abcde-fghju", p6, KindInvalid, ""},
		{"abcde-fghj", p6, KindInvalid, ""},

		// Length limit.
		{strings.Repeat(" ", 58) + "123456", p6, KindTOTP, "123456"}, // 64 bytes
		{strings.Repeat(" ", 59) + "123456", p6, KindInvalid, ""},    // 65 bytes
		{strings.Repeat(" ", 54) + "abcdefghjk", p6, KindRecovery, "abcdefghjk"},
		{strings.Repeat(" ", 55) + "abcdefghjk", p6, KindInvalid, ""},
		{strings.Repeat("1", 1<<20), p6, KindInvalid, ""},
	}
	for _, c := range cases {
		kind, out := Classify(c.in, c.p)
		if kind != c.kind || out != c.out {
			t.Errorf("Classify(%.30q, %d digits %s) = (%v, %q), want (%v, %q)", c.in, c.p.Digits, c.p.Algorithm, kind, out, c.kind, c.out)
		}
	}
}

func TestClassifyThenVerify(t *testing.T) {
	p := DefaultParams()
	now := time.Unix(1700000000, 0)
	code := Code(fixedSecret, now, p)
	kind, digits := Classify(" "+code[:3]+" "+code[3:]+" ", p)
	if kind != KindTOTP || digits != code {
		t.Fatalf("Classify = (%v, %q)", kind, digits)
	}
	if _, ok := VerifyTOTP(fixedSecret, digits, now, DefaultSkew, p); !ok {
		t.Error("classified code refused")
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{KindInvalid: "invalid", KindTOTP: "totp", KindRecovery: "recovery", Kind(42): "invalid"} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", int(k), got, want)
		}
	}
	if KindInvalid != 0 {
		t.Error("KindInvalid must be the zero value")
	}
}
