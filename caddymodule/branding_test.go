package caddymodule

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

var (
	reStyle   = regexp.MustCompile(`(?s)<style>(.*?)</style>`)
	reLogoImg = regexp.MustCompile(`<img class="logo" src="([^"]*)" alt="([^"]*)">`)
)

// styleAllowed reports whether the page's one stylesheet is allowed by
// the CSP header's hash.
func styleAllowed(t *testing.T, r response) bool {
	t.Helper()
	m := reStyle.FindAllStringSubmatch(r.body, -1)
	if len(m) != 1 {
		t.Fatalf("%d <style> elements", len(m))
	}
	sum := sha256.Sum256([]byte(m[0][1]))
	return strings.Contains(r.Header.Get("Content-Security-Policy"), "style-src 'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"';")
}

// TestBrandingRemoteLogoAndAccent: a logo URL is shown with the title as
// its alt text and its origin, nothing more, is added to img-src; the
// accent is in the stylesheet the CSP hash allows.
func TestBrandingRemoteLogoAndAccent(t *testing.T) {
	s := startSite(t, siteOptions{gate: "title \"Acme Intranet\"\n\t\tlogo https://cdn.example.com/brand/logo.svg\n\t\taccent \"#0b6e4f\""})
	b := s.browser("alice")
	for _, path := range []string{"/.2fa/enroll?rd=%2Fapp", "/.2fa/nothing-here"} {
		r := b.get(path)
		csp := r.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "; img-src data: https://cdn.example.com;") {
			t.Errorf("%s: CSP %q does not allow exactly the logo's origin", path, csp)
		}
		if !styleAllowed(t, r) {
			t.Errorf("%s: CSP %q does not allow the page's stylesheet", path, csp)
		}
		r.contains(t, "--accent:#0b6e4f;--accent-text:#ffffff")
		m := reLogoImg.FindStringSubmatch(r.body)
		if m == nil || m[1] != "https://cdn.example.com/brand/logo.svg" || m[2] != "Acme Intranet" {
			t.Errorf("%s: logo %v", path, m)
		}
	}
	// In Japanese too, with the same CSP.
	r := b.getLang("/.2fa/enroll?rd=%2Fapp", "ja").expect(t, http.StatusOK)
	if m := reLogoImg.FindStringSubmatch(r.body); m == nil || m[2] != "Acme Intranet" || !styleAllowed(t, r) {
		t.Errorf("Japanese page: logo %v", m)
	}
}

// TestBrandingFileLogo: a local file is inlined: the CSP stays img-src
// data: alone, and without a title the alt text is the translated product
// name.
func TestBrandingFileLogo(t *testing.T) {
	png := "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
	file := filepath.Join(t.TempDir(), "logo.png")
	if err := os.WriteFile(file, []byte(png), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startSite(t, siteOptions{gate: "logo file:" + file})
	b := s.browser("alice")
	for lang, alt := range map[string]string{"en": "Two-factor authentication", "ja": "二要素認証"} {
		r := b.getLang("/.2fa/enroll?rd=%2Fapp", lang).expect(t, http.StatusOK)
		if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "; img-src data:;") {
			t.Errorf("CSP %q: img-src is not data: alone", csp)
		}
		m := reLogoImg.FindStringSubmatch(r.body)
		if m == nil || m[1] != "data:image/png;base64,"+base64.StdEncoding.EncodeToString([]byte(png)) || m[2] != alt {
			t.Errorf("%s: logo %.120v", lang, m)
		}
	}
}

// TestBrandingLoadErrors: a logo file that is missing, too big or not an
// image, and an accent without enough contrast, fail the config at load,
// naming the option.
func TestBrandingLoadErrors(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.png")
	os.WriteFile(big, append([]byte("\x89PNG\r\n\x1a\n"), make([]byte, 256<<10)...), 0o644)
	notImage := filepath.Join(dir, "logo.svg")
	os.WriteFile(notImage, []byte("<html>not an image</html>"), 0o644)
	for _, tc := range []struct {
		h    Handler
		want string
	}{
		{Handler{Logo: "file:" + big}, "logo: " + big + " is larger than 256 KiB"},
		{Handler{Logo: "file:" + filepath.Join(dir, "missing.png")}, "logo: no such file: " + filepath.Join(dir, "missing.png")},
		{Handler{Logo: "file:" + notImage}, "logo: " + notImage + " is not a PNG, SVG, JPEG or WebP image"},
		{Handler{Logo: big}, "logo: " + big + " is a file on this machine, not a path the site serves: write file:" + big},
		{Handler{Accent: "#7a7a7a"}, "accent: #7a7a7a reaches a contrast of only 4.29:1 with white button text"},
	} {
		ctx, cancel := caddy.NewContext(caddy.Context{Context: t.Context()})
		h := tc.h
		h.Store = &StoreConfig{Path: t.TempDir() + "/s.db"}
		err := h.Provision(ctx)
		cancel()
		h.Cleanup()
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("Provision(%+v) = %v, want %q", tc.h, err, tc.want)
		}
	}
}
