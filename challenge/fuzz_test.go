package challenge

import (
	"strings"
	"testing"
	"time"
)

func FuzzClassify(f *testing.F) {
	for _, s := range []string{
		"", "123456", "123 456", "12345678", "１２３４５６", "abcde-fghjk", "ABCDE FGHJK",
		"0123456789", "ilo01-23456", "abcde-fghju", strings.Repeat("9", 65), "\xff\xfe", "\u212a",
	} {
		f.Add(s, uint8(6))
		f.Add(s, uint8(8))
	}
	f.Fuzz(func(t *testing.T, in string, digits uint8) {
		p := Params{"SHA1", int(digits), 30}
		kind, out := Classify(in, p)
		switch kind {
		case KindTOTP:
			if p.Validate() != nil || !isDigits(out, p.Digits) {
				t.Fatalf("Classify(%q, %d) = TOTP %q", in, digits, out)
			}
			if len(in) > maxInput {
				t.Fatalf("long input classified")
			}
		case KindRecovery:
			if n, ok := NormalizeRecoveryCode(out); !ok || n != out || len(out) != 10 {
				t.Fatalf("Classify(%q) = recovery %q, not canonical", in, out)
			}
			for i := 0; i < len(out); i++ {
				if !strings.ContainsRune(RecoveryAlphabet, rune(out[i])) {
					t.Fatalf("Classify(%q) = recovery %q outside alphabet", in, out)
				}
			}
		case KindInvalid:
			if out != "" {
				t.Fatalf("Classify(%q) = invalid with %q", in, out)
			}
		default:
			t.Fatalf("unknown kind %d", kind)
		}
	})
}

func FuzzVerifyTOTP(f *testing.F) {
	f.Add([]byte("12345678901234567890"), "287082", int64(59), 1, uint8(6))
	f.Add([]byte("12345678901234567890"), "94287082", int64(59), 0, uint8(8))
	f.Add([]byte("12345678901234567890"), "１２３４５６", int64(1700000000), 1, uint8(6))
	f.Add([]byte{}, "", int64(-1), -1, uint8(0))
	f.Add([]byte("0123456789abcdef"), "000000", int64(1<<62), 1<<30, uint8(6))
	f.Add([]byte("0123456789abcdef"), "000000", int64(-1<<62), -1<<30, uint8(6))
	f.Fuzz(func(t *testing.T, secret []byte, code string, unix int64, skew int, digits uint8) {
		p := Params{"SHA1", int(digits), 30}
		now := time.Unix(unix, 0)
		step, ok := VerifyTOTP(secret, code, now, skew, p)
		if !ok {
			if step != 0 {
				t.Fatalf("not ok but step %d", step)
			}
			return
		}
		if !isDigits(code, p.Digits) || len(secret) < MinSecretSize {
			t.Fatalf("accepted %q (secret %d bytes, %d digits)", code, len(secret), digits)
		}
		d := step - Step(now, p)
		limit := int64(min(max(skew, 0), MaxSkew))
		if d < -limit || d > limit || step < 0 {
			t.Fatalf("step %d outside window around %d (skew %d)", step, Step(now, p), skew)
		}
		if CodeAt(secret, step, p) != code {
			t.Fatalf("returned step %d has another code", step)
		}
	})
}
