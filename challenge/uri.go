package challenge

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/png"
	"strconv"
	"strings"

	"github.com/boombuler/barcode/qr"
)

// KeyURI builds the otpauth provisioning URI that authenticator apps scan:
//
//	otpauth://totp/<issuer>:<account>?secret=<base32>&issuer=<issuer>&algorithm=SHA1&digits=6&period=30
//
// following the Google Authenticator Key Uri Format. The secret is base32
// without padding. The label issuer and the issuer parameter are equal
// (the format recommends using both). Both label parts and the issuer
// parameter are percent-encoded byte by byte: everything except ASCII
// letters, digits, '-', '.', '_', '~' and '@' is escaped, so a space is
// %20 (never '+'), a ':' inside a part is %3A and the only raw ':' in the
// label is the separator; names with '&', '#', '%', '?', '/' or non-ASCII
// characters round-trip. The URI is pure ASCII.
//
// If issuer is empty the label is just the account and there is no issuer
// parameter. algorithm, digits and period are always written, taken from p
// as is: call p.Validate first.
func KeyURI(issuer, account string, secret []byte, p Params) string {
	var b strings.Builder
	b.WriteString("otpauth://totp/")
	if issuer != "" {
		b.WriteString(escapeURIPart(issuer))
		b.WriteByte(':')
	}
	b.WriteString(escapeURIPart(account))
	b.WriteString("?secret=")
	b.WriteString(EncodeSecret(secret))
	if issuer != "" {
		b.WriteString("&issuer=")
		b.WriteString(escapeURIPart(issuer))
	}
	b.WriteString("&algorithm=")
	b.WriteString(escapeURIPart(p.Algorithm))
	b.WriteString("&digits=")
	b.WriteString(strconv.Itoa(p.Digits))
	b.WriteString("&period=")
	b.WriteString(strconv.Itoa(p.Period))
	return b.String()
}

// escapeURIPart percent-encodes s for use as a label part or a query value.
func escapeURIPart(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '@' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// QR code rendering limits.
const (
	// qrQuietZone is the light border in modules that the QR specification
	// requires around the symbol; scanners often fail without it.
	qrQuietZone = 4
	// MaxQRSize bounds the size argument of QRPNG, so that a bad
	// configuration cannot make the gate allocate huge images.
	MaxQRSize = 2048
	// maxQRInput bounds the input of QRPNG; provisioning URIs are far shorter.
	maxQRInput = 2048
)

// QRPNG renders uri as a QR code PNG: error correction level M (what
// otpauth enrollment QR codes conventionally use), byte mode, the bytes of
// uri exactly (no ECI header, no re-encoding), black on white with the
// four-module quiet zone included. The image is size×size pixels with whole
// pixels per module, centred; if size is too small for one pixel per module
// the image is as large as that needs. size must be 1..MaxQRSize.
//
// Render it server-side and serve it inline (a data: URI or a no-store
// response): never send the URI, which contains the secret, to a
// third-party QR service.
func QRPNG(uri string, size int) ([]byte, error) {
	if uri == "" {
		return nil, errors.New("qr: empty content")
	}
	if len(uri) > maxQRInput {
		return nil, errors.New("qr: content too long")
	}
	if size < 1 || size > MaxQRSize {
		return nil, errors.New("qr: size out of range")
	}
	code, err := qr.Encode(uri, qr.M, qr.Unicode)
	if err != nil {
		return nil, errors.New("qr: " + strings.ToLower(err.Error()))
	}
	n := code.Bounds().Dx()
	total := n + 2*qrQuietZone
	scale := max(size/total, 1)
	dim := max(size, total*scale)
	off := (dim - n*scale) / 2

	img := image.NewPaletted(image.Rect(0, 0, dim, dim), color.Palette{color.White, color.Black})
	// Index 0 (white) is the zero value, so the background is already white.
	for y := 0; y < n; y++ {
		for x := 0; x < n; x++ {
			if r, _, _, _ := code.At(x, y).RGBA(); r != 0 {
				continue // light module
			}
			for dy := 0; dy < scale; dy++ {
				row := img.Pix[(off+y*scale+dy)*img.Stride:]
				for dx := 0; dx < scale; dx++ {
					row[off+x*scale+dx] = 1
				}
			}
		}
	}
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestCompression}
	if err := enc.Encode(&buf, img); err != nil {
		return nil, errors.New("qr: encode png: " + err.Error())
	}
	return buf.Bytes(), nil
}
