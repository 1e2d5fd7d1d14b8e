package challenge

import (
	"bytes"
	"image"
	"image/png"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

func TestKeyURIExample(t *testing.T) {
	got := KeyURI("Example Corp", "alice@example.com", seed20, DefaultParams())
	want := "otpauth://totp/Example%20Corp:alice@example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Example%20Corp&algorithm=SHA1&digits=6&period=30"
	if got != want {
		t.Errorf("KeyURI =\n%s\nwant\n%s", got, want)
	}
	got = KeyURI("", "alice", seed20, Params{"SHA256", 8, 60})
	want = "otpauth://totp/alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&algorithm=SHA256&digits=8&period=60"
	if got != want {
		t.Errorf("KeyURI without issuer =\n%s\nwant\n%s", got, want)
	}
}

// rawLabel returns the still-encoded label of an otpauth URI.
func rawLabel(t *testing.T, uri string) string {
	t.Helper()
	rest, ok := strings.CutPrefix(uri, "otpauth://totp/")
	if !ok {
		t.Fatalf("bad prefix: %q", uri)
	}
	label, _, ok := strings.Cut(rest, "?")
	if !ok {
		t.Fatalf("no query: %q", uri)
	}
	return label
}

func TestKeyURIAwkwardNames(t *testing.T) {
	secret, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	p := DefaultParams()
	for _, n := range awkwardNames {
		uri := KeyURI(n.issuer, n.account, secret, p)
		for i := 0; i < len(uri); i++ {
			if c := uri[i]; c <= ' ' || c >= 0x7f {
				t.Errorf("%q: byte %#x is not printable ASCII", uri, c)
			}
		}
		if strings.Contains(uri, "+") {
			t.Errorf("%q: '+' is ambiguous (space or plus) in some parsers", uri)
		}

		// Label: exactly one raw ':' (the separator) with an issuer, none without.
		label := rawLabel(t, uri)
		var rawIssuer, rawAccount string
		if n.issuer != "" {
			if strings.Count(label, ":") != 1 {
				t.Errorf("%q: label %q must contain exactly one raw ':'", uri, label)
			}
			rawIssuer, rawAccount, _ = strings.Cut(label, ":")
		} else {
			if strings.Contains(label, ":") {
				t.Errorf("%q: raw ':' in label without issuer", uri)
			}
			rawAccount = label
		}
		if strings.ContainsAny(rawIssuer+rawAccount, " &#?/:") {
			t.Errorf("%q: unescaped special character in label parts", uri)
		}
		if got, err := url.PathUnescape(rawIssuer); err != nil || got != n.issuer {
			t.Errorf("%q: label issuer decodes to %q (%v), want %q", uri, got, err, n.issuer)
		}
		if got, err := url.PathUnescape(rawAccount); err != nil || got != n.account {
			t.Errorf("%q: label account decodes to %q (%v), want %q", uri, got, err, n.account)
		}

		// net/url.
		u, err := url.Parse(uri)
		if err != nil {
			t.Fatalf("url.Parse(%q): %v", uri, err)
		}
		if u.Scheme != "otpauth" || u.Host != "totp" {
			t.Errorf("%q: scheme %q host %q", uri, u.Scheme, u.Host)
		}
		wantPath := "/" + n.account
		if n.issuer != "" {
			wantPath = "/" + n.issuer + ":" + n.account
		}
		if u.Path != wantPath {
			t.Errorf("%q: decoded path %q, want %q", uri, u.Path, wantPath)
		}
		if u.Fragment != "" || u.RawFragment != "" {
			t.Errorf("%q: has a fragment %q", uri, u.Fragment)
		}
		q := u.Query()
		if got := q.Get("secret"); got != EncodeSecret(secret) || strings.Contains(got, "=") {
			t.Errorf("%q: secret %q", uri, got)
		}
		if n.issuer != "" {
			if got := q.Get("issuer"); got != n.issuer {
				t.Errorf("%q: issuer parameter %q, want %q", uri, got, n.issuer)
			}
			if rawQ := u.RawQuery; !strings.Contains(rawQ, "&issuer="+rawIssuer+"&") {
				t.Errorf("%q: issuer parameter not encoded like the label issuer %q", uri, rawIssuer)
			}
		} else if q.Has("issuer") {
			t.Errorf("%q: issuer parameter without issuer", uri)
		}
		if q.Get("algorithm") != "SHA1" || q.Get("digits") != "6" || q.Get("period") != "30" {
			t.Errorf("%q: parameters %v", uri, q)
		}
		for k, v := range q {
			if len(v) != 1 {
				t.Errorf("%q: parameter %s appears %d times", uri, k, len(v))
			}
		}
		if len(q) != 5-boolInt(n.issuer == "") {
			t.Errorf("%q: unexpected parameters %v", uri, q)
		}

		// pquerna/otp, the parser behind many Go tools.
		key, err := otp.NewKeyFromURL(uri)
		if err != nil {
			t.Fatalf("otp.NewKeyFromURL(%q): %v", uri, err)
		}
		// Without an issuer, otp.Key.Issuer falls back to the label text
		// before the first decoded ':', and AccountName to the text after
		// it: parsers that decode the path before splitting it cannot tell
		// an encoded ':' from the separator.
		wantIssuer, wantAccount := n.issuer, n.account
		if n.issuer == "" {
			if before, after, found := strings.Cut(n.account, ":"); found {
				wantIssuer, wantAccount = before, after
			}
		}
		if key.Type() != "totp" || key.Secret() != EncodeSecret(secret) || key.Issuer() != wantIssuer ||
			key.Algorithm() != otp.AlgorithmSHA1 || key.Digits() != otp.DigitsSix || key.Period() != 30 {
			t.Errorf("%q: otp key type %q secret %q issuer %q alg %v digits %v period %d",
				uri, key.Type(), key.Secret(), key.Issuer(), key.Algorithm(), key.Digits(), key.Period())
		}
		// otp.Key.AccountName splits the decoded path at its first ':', so it
		// can only be right when the issuer has no ':'.
		if !strings.Contains(n.issuer, ":") && key.AccountName() != wantAccount {
			t.Errorf("%q: otp AccountName %q, want %q", uri, key.AccountName(), wantAccount)
		}
		now := time.Now()
		code, err := totp.GenerateCode(key.Secret(), now)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := VerifyTOTP(secret, code, now, 0, p); !ok {
			t.Errorf("%q: code %s from pquerna/otp refused", uri, code)
		}
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestKeyURIParams(t *testing.T) {
	uri := KeyURI("I", "a", seed64, Params{"SHA512", 8, 60})
	key, err := otp.NewKeyFromURL(uri)
	if err != nil {
		t.Fatal(err)
	}
	if key.Algorithm() != otp.AlgorithmSHA512 || key.Digits() != otp.DigitsEight || key.Period() != 60 {
		t.Errorf("%s: alg %v digits %v period %d", uri, key.Algorithm(), key.Digits(), key.Period())
	}
	if got, err := DecodeSecret(key.Secret()); err != nil || !bytes.Equal(got, seed64) {
		t.Errorf("secret round trip: %x %v", got, err)
	}
}

func TestQRPNG(t *testing.T) {
	uri := KeyURI("Example Corp", "alice@example.com", seed20, DefaultParams())
	// With size 1 the image is the symbol plus quiet zone at one pixel per
	// module.
	b1, err := QRPNG(uri, 1)
	if err != nil {
		t.Fatal(err)
	}
	img1, err := png.Decode(bytes.NewReader(b1))
	if err != nil {
		t.Fatal(err)
	}
	minDim := img1.Bounds().Dx() // modules + 2 quiet zones
	if minDim < 21+2*qrQuietZone || (minDim-2*qrQuietZone-17)%4 != 0 {
		t.Fatalf("size 1 image is %d px: not a QR symbol (4k+17 modules) plus quiet zone", minDim)
	}
	for _, size := range []int{1, 50, minDim - 1, minDim, minDim + 1, 200, 256, 300, 1000, MaxQRSize} {
		b, err := QRPNG(uri, size)
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) {
			t.Fatalf("size %d: not a PNG", size)
		}
		img, err := png.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("size %d: decode: %v", size, err)
		}
		bounds := img.Bounds()
		if bounds.Dx() != bounds.Dy() {
			t.Errorf("size %d: not square: %v", size, bounds)
		}
		if size >= minDim && bounds.Dx() != size {
			t.Errorf("size %d: image is %v", size, bounds)
		}
		if size < minDim && bounds.Dx() != minDim {
			t.Errorf("size %d: image %v, want the %d px minimum", size, bounds, minDim)
		}
		checkQuietZone(t, img, size, minDim)
	}
}

// checkQuietZone asserts a white border of at least four modules: the rows
// above the first dark pixel (the finder pattern's corner) must number at
// least 4/minDim of the image width (minDim = modules + 8), and so must the
// columns left of it and the rows and columns after the last dark pixel.
func checkQuietZone(t *testing.T, img image.Image, size, minDim int) {
	t.Helper()
	b := img.Bounds()
	minX, minY, maxX, maxY := b.Max.X, b.Max.Y, -1, -1
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if r, _, _, _ := img.At(x, y).RGBA(); r < 0x8000 {
				minX, minY = min(minX, x), min(minY, y)
				maxX, maxY = max(maxX, x), max(maxY, y)
			}
		}
	}
	if maxX < 0 {
		t.Fatalf("size %d: no dark pixel", size)
	}
	want := b.Dx() * qrQuietZone / minDim
	for name, border := range map[string]int{
		"top": minY, "left": minX, "bottom": b.Max.Y - 1 - maxY, "right": b.Max.X - 1 - maxX,
	} {
		if border < want {
			t.Errorf("size %d: %s quiet zone %d px, want at least %d", size, name, border, want)
		}
	}
}

func TestQRPNGErrors(t *testing.T) {
	for _, c := range []struct {
		uri  string
		size int
	}{
		{"", 200},
		{"otpauth://totp/x", 0},
		{"otpauth://totp/x", -1},
		{"otpauth://totp/x", MaxQRSize + 1},
		{strings.Repeat("x", 5000), 200},
	} {
		if _, err := QRPNG(c.uri, c.size); err == nil {
			t.Errorf("QRPNG(len %d, %d): no error", len(c.uri), c.size)
		} else if msg := err.Error(); strings.ToLower(msg) != msg {
			t.Errorf("error not lower case: %q", msg)
		}
	}
}

// TestQRPNGErrorCorrectionM reads the format information next to the
// top-left finder pattern (ISO/IEC 18004 §7.9, read in the order ZXing
// uses) and checks that it is one of the eight level-M format words.
func TestQRPNGErrorCorrectionM(t *testing.T) {
	b, err := QRPNG(KeyURI("Example Corp", "alice@example.com", seed20, DefaultParams()), 1)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	dark := func(x, y int) bool {
		r, _, _, _ := img.At(x+qrQuietZone, y+qrQuietZone).RGBA()
		return r < 0x8000
	}
	var bits uint16
	read := func(x, y int) {
		bits <<= 1
		if dark(x, y) {
			bits |= 1
		}
	}
	for x := 0; x < 6; x++ {
		read(x, 8)
	}
	read(7, 8)
	read(8, 8)
	read(8, 7)
	for y := 5; y >= 0; y-- {
		read(8, y)
	}
	// Masked format words: level M with data masks 0..7, then level L.
	levelM := []uint16{0x5412, 0x5125, 0x5E7C, 0x5B4B, 0x45F9, 0x40CE, 0x4F97, 0x4AA0}
	levelL := []uint16{0x77C4, 0x72F3, 0x7DAA, 0x789D, 0x662F, 0x6318, 0x6C41, 0x6976}
	for _, w := range levelM {
		if bits == w {
			return
		}
	}
	for _, w := range levelL {
		if bits == w {
			t.Fatalf("format word %015b is error correction level L, want M", bits)
		}
	}
	t.Fatalf("format word %015b is not a level M word", bits)
}
