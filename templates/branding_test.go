package templates

import (
	"encoding/base64"
	"math"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestContrast(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want float64
	}{
		{"#ffffff", "#000000", 21},
		{"#000", "#fff", 21},
		{"#777777", "#ffffff", 4.48},
		{"#767676", "#ffffff", 4.54}, // the classic lightest AA grey on white
		{"#1756b8", "#ffffff", 6.86},
		{"#ff0000", "#ffffff", 4.00},
		{"#123456", "#123456", 1},
	} {
		a, _ := parseHex(c.a)
		b, _ := parseHex(c.b)
		if got := contrast(a, b); math.Abs(got-c.want) > 0.01 {
			t.Errorf("contrast(%s, %s) = %.3f, want %.2f", c.a, c.b, got, c.want)
		}
	}
}

var cssVarRE = regexp.MustCompile(`--([a-z-]+):(#[0-9a-f]{6})`)

// accentVars parses the light and dark custom properties of an accent.
func accentVars(t *testing.T, css string) (light, dark map[string]string) {
	t.Helper()
	i := strings.Index(css, "@media (prefers-color-scheme: dark)")
	if i < 0 {
		t.Fatalf("no dark mode block in %q", css)
	}
	parse := func(s string) map[string]string {
		m := map[string]string{}
		for _, v := range cssVarRE.FindAllStringSubmatch(s, -1) {
			m[v[1]] = v[2]
		}
		return m
	}
	return parse(css[:i]), parse(css[i:])
}

func TestAccent(t *testing.T) {
	def := mustLoad(t, "")
	for _, c := range []struct {
		accent, text string
	}{
		{"#1756b8", "#ffffff"},
		{"#0B6E4F", "#ffffff"},
		{"#fc0", "#0b1320"},    // yellow: dark text
		{"#8ab4f8", "#0b1320"}, // light blue
		{"#ff0000", "#0b1320"}, // 4.0:1 with white, 5.0:1 with dark text
		{"#000000", "#ffffff"},
		{"#ffffff", "#0b1320"},
	} {
		s, err := Load(Options{Accent: c.accent})
		if err != nil {
			t.Fatalf("accent %s: %v", c.accent, err)
		}
		out := render(t, s, PageChallenge, full(PageChallenge))
		styles := styleRE.FindAllStringSubmatch(out, -1)
		if len(styles) != 1 {
			t.Fatalf("%s: %d <style> elements", c.accent, len(styles))
		}
		css := styles[0][1]
		if h := cspHash(css); !strings.Contains(s.CSP(), "style-src "+h+";") {
			t.Errorf("%s: CSP %q does not allow the emitted stylesheet (%s)", c.accent, s.CSP(), h)
		}
		if s.CSP() == def.CSP() {
			t.Errorf("%s: same CSP as without an accent", c.accent)
		}
		light, dark := accentVars(t, css[strings.LastIndex(css, "\n:root{"):])
		want, _ := parseHex(c.accent)
		for mode, vars := range map[string]map[string]string{"light": light, "dark": dark} {
			if vars["accent"] != want.hex() || vars["accent-text"] != c.text {
				t.Errorf("%s %s: accent %s on %s, want %s on %s", c.accent, mode, vars["accent"], vars["accent-text"], want.hex(), c.text)
			}
			acc, _ := parseHex(vars["accent"])
			txt, _ := parseHex(vars["accent-text"])
			hov, _ := parseHex(vars["accent-hover"])
			if contrast(acc, txt) < 4.5 || contrast(hov, txt) < 4.5 {
				t.Errorf("%s %s: button text contrast %.2f, hover %.2f", c.accent, mode, contrast(acc, txt), contrast(hov, txt))
			}
			bgs := lightBgs
			if mode == "dark" {
				bgs = darkBgs
			}
			for _, v := range []string{"link", "link-hover", "focus"} {
				col, ok := parseHex(vars[v])
				if !ok {
					t.Fatalf("%s %s: no --%s", c.accent, mode, v)
				}
				for _, bg := range bgs {
					b, _ := parseHex(bg)
					if r := contrast(col, b); r < 4.5 {
						t.Errorf("%s %s: --%s %s on %s: contrast %.2f", c.accent, mode, v, vars[v], bg, r)
					}
				}
			}
		}
	}
	// A readable accent is used for links as it is.
	s, _ := Load(Options{Accent: "#1756b8"})
	css := styleRE.FindStringSubmatch(render(t, s, PageLogout, Data{}))[1]
	light, _ := accentVars(t, css[strings.LastIndex(css, "\n:root{"):])
	if light["link"] != "#1756b8" {
		t.Errorf("light link %s, want the accent itself", light["link"])
	}

	for accent, want := range map[string]string{
		"#777777":                         "accent: #777777 reaches a contrast of only 4.48:1 with white button text and 4.16:1 with dark text; WCAG AA needs 4.5:1",
		"#7a7a7a":                         "accent: #7a7a7a reaches a contrast of only 4.29:1",
		"blue":                            `accent: "blue" is not a hex colour such as #1756b8 or #17b`,
		"1756b8":                          "is not a hex colour",
		"#12345":                          "is not a hex colour",
		"#ggg":                            "is not a hex colour",
		"#1756b8;--x:1}body{display:none": "is not a hex colour",
	} {
		_, err := Load(Options{Accent: accent})
		if err == nil || !strings.HasPrefix(err.Error(), "accent: ") || !strings.Contains(err.Error(), want) {
			t.Errorf("Load(accent %q) = %v, want %q", accent, err, want)
		}
		if err2 := CheckAccent(accent); err2 == nil || err2.Error() != err.Error() {
			t.Errorf("CheckAccent(%q) = %v, Load said %v", accent, err2, err)
		}
	}
}

// Minimal images of each kind a logo may be.
var (
	pngLogo  = []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89")
	jpegLogo = []byte("\xff\xd8\xff\xe0\x00\x10JFIF\x00")
	webpLogo = []byte("RIFF\x1a\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00")
	svgLogo  = []byte("\xef\xbb\xbf<?xml version=\"1.0\"?>\n<!-- logo -->\n<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 10 10\"><script>alert(1)</script><rect width=\"10\" height=\"10\"/></svg>\n")
)

var imgSrcRE = regexp.MustCompile(`img-src ([^;]*);`)

func TestLogo(t *testing.T) {
	dir := t.TempDir()
	files := map[string][]byte{"logo.png": pngLogo, "logo.jpg": jpegLogo, "logo.webp": webpLogo, "logo.svg": svgLogo}
	for name, b := range files {
		writeFile(t, dir, name, string(b))
	}
	for _, c := range []struct {
		logo, src, imgSrc string
	}{
		{"https://cdn.example.com/brand/logo.svg?v=2", "https://cdn.example.com/brand/logo.svg?v=2", "data: https://cdn.example.com"},
		{"https://CDN.example.com:8443/logo.png", "https://CDN.example.com:8443/logo.png", "data: https://cdn.example.com:8443"},
		{"/static/logo.svg", "/static/logo.svg", "data: 'self'"},
		{"/assets/brand_logo-2.png", "/assets/brand_logo-2.png", "data: 'self'"},
		{"file:" + filepath.Join(dir, "logo.png"), "data:image/png;base64,", "data:"},
		{"file://" + filepath.Join(dir, "logo.jpg"), "data:image/jpeg;base64,", "data:"},
		{"file:" + filepath.Join(dir, "logo.webp"), "data:image/webp;base64,", "data:"},
		{"file:" + filepath.Join(dir, "logo.svg"), "data:image/svg+xml;base64,", "data:"},
	} {
		s, err := Load(Options{Logo: c.logo})
		if err != nil {
			t.Fatalf("logo %s: %v", c.logo, err)
		}
		if m := imgSrcRE.FindStringSubmatch(s.CSP()); m == nil || m[1] != c.imgSrc {
			t.Errorf("logo %s: CSP %q, want img-src %s", c.logo, s.CSP(), c.imgSrc)
		}
		for _, lang := range []string{"en", "ja"} {
			d := full(PageChallenge)
			d.Lang = lang
			out := render(t, s, PageChallenge, d)
			img := attrs(tag(out, `class="logo"`))
			if !strings.HasPrefix(img["src"], c.src) || img["alt"] != "Acme Intranet" {
				t.Errorf("logo %s (%s): img %v, want src %s… alt Acme Intranet", c.logo, lang, img, c.src)
			}
			if strings.Contains(out, `<p class="product">Acme Intranet`) {
				t.Errorf("logo %s: product name shown as text too", c.logo)
			}
			d.Title = ""
			want := map[string]string{"en": "Two-factor authentication", "ja": "二要素認証"}[lang]
			if a := attrs(tag(render(t, s, PageChallenge, d), `class="logo"`)); a["alt"] != want {
				t.Errorf("logo %s (%s): alt %q without a title, want %q", c.logo, lang, a["alt"], want)
			}
			d.Title = `"><svg onload=alert(1)>`
			if out := render(t, s, PageChallenge, d); strings.Contains(out, "<svg") {
				t.Errorf("title not escaped in alt")
			}
		}
	}
	// The inlined file is the file, byte for byte.
	s := mustLoadOpts(t, Options{Logo: "file:" + filepath.Join(dir, "logo.svg")})
	src := attrs(tag(render(t, s, PageLogout, base()), `class="logo"`))["src"]
	if want := "data:image/svg+xml;base64," + b64(svgLogo); src != want {
		t.Errorf("inlined SVG src %.80s…, want %.80s…", src, want)
	}
	// No logo: the product name, and img-src data: alone.
	if out := render(t, mustLoad(t, ""), PageLogout, base()); strings.Contains(out, `class="logo"`) || !strings.Contains(out, `<p class="product">Acme Intranet</p>`) {
		t.Error("a logo without the option")
	}

	big := writeFile(t, dir, "big.png", string(pngLogo)+strings.Repeat("\x00", MaxLogoSize))
	text := writeFile(t, dir, "logo.txt", "hello")
	gif := writeFile(t, dir, "logo.gif", "GIF89a\x01\x00\x01\x00")
	html := writeFile(t, dir, "logo.html", "<html><svg></svg></html>")
	existing := writeFile(t, dir, "on-disk.png", string(pngLogo))
	for logo, want := range map[string]string{
		"file:" + big:                           "logo: " + big + " is larger than 256 KiB",
		"file:" + filepath.Join(dir, "x"):       "logo: no such file: " + filepath.Join(dir, "x"),
		"file:" + text:                          "is not a PNG, SVG, JPEG or WebP image",
		"file:" + gif:                           "is not a PNG, SVG, JPEG or WebP image",
		"file:" + html:                          "is not a PNG, SVG, JPEG or WebP image",
		"file:" + dir:                           "logo:",
		"file:":                                 "names no file",
		"file://evil.example/logo.png":          "must name a local file",
		existing:                                "is a file on this machine, not a path the site serves: write file:" + existing,
		"http://cdn.example.com/l.png":          "use https://",
		"https://user:pw@cdn.example.com/l.png": "is not a plain https:// URL",
		"https://cdn.example.com;script-src *":  "is not a plain https:// URL",
		"https://cdn.example.com/a b.png":       "is not a plain https:// URL",
		"https:///logo.png":                     "is not a plain https:// URL",
		`/static/"logo.png`:                     "may only hold URL path characters",
		"//evil.example/logo.png":               "is not an https:// URL, a path on this site",
		"javascript:alert(1)":                   "is not an https:// URL, a path on this site",
		"data:image/png;base64,AAAA":            "is not an https:// URL, a path on this site",
		"logo.png":                              "is not an https:// URL, a path on this site (/static/logo.svg) or a file (file:/etc/caddy/logo.svg)",
	} {
		_, err := Load(Options{Logo: logo})
		if err == nil || !strings.HasPrefix(err.Error(), "logo: ") || !strings.Contains(err.Error(), want) {
			t.Errorf("Load(logo %q) = %v, want %q", logo, err, want)
		}
	}
	// CheckLogo looks at the form only: a missing file is Load's business.
	if err := CheckLogo("file:/nonexistent/logo.png"); err != nil {
		t.Errorf("CheckLogo(missing file) = %v", err)
	}
	if err := CheckLogo("http://x/l.png"); err == nil {
		t.Error("CheckLogo(http://) passed")
	}
}

// TestBrandingWithOverrides: an accent follows an overridden stylesheet
// (one hash for both), and a logo works with an overridden layout that
// uses {{logo}}.
func TestBrandingWithOverrides(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "style.css", "body { color: rebeccapurple; }\n")
	s := mustLoadOpts(t, Options{Dir: dir, Accent: "#0b6e4f", Logo: "/brand.svg"})
	out := render(t, s, PageChallenge, full(PageChallenge))
	css := styleRE.FindStringSubmatch(out)[1]
	if !strings.HasPrefix(css, "body { color: rebeccapurple; }\n") || !strings.Contains(css, "--accent:#0b6e4f") {
		t.Errorf("stylesheet %q", css)
	}
	if !strings.Contains(s.CSP(), "style-src "+cspHash(css)+";") || !strings.Contains(s.CSP(), "img-src data: 'self';") {
		t.Errorf("CSP %q", s.CSP())
	}
	for _, bad := range []string{"script", "unsafe", "*"} {
		if strings.Contains(s.CSP(), bad) {
			t.Errorf("CSP %q allows %s", s.CSP(), bad)
		}
	}
}

func mustLoadOpts(t *testing.T, o Options) *Set {
	t.Helper()
	s, err := Load(o)
	if err != nil {
		t.Fatalf("Load(%+v): %v", o, err)
	}
	return s
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
