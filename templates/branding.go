package templates

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"math"
	"net/url"
	"os"
	"regexp"
	"strings"
)

// Options are what Load applies on top of the embedded pages: overrides
// from a directory and branding that needs no template of its own.
type Options struct {
	// Dir is a directory of overrides: pages (<name>.html, layout.html,
	// style.css) and message catalogs (locales/<tag>.json). Empty: the
	// embedded ones alone.
	Dir string

	// Logo is shown in the page header in place of the product name,
	// which becomes its alt text. It is an https:// URL (its origin is
	// added to the CSP's img-src), a path on the same site such as
	// /static/logo.svg ('self' is added), or a local image file written
	// file:/etc/caddy/logo.svg (PNG, SVG, JPEG or WebP, at most
	// MaxLogoSize), read at Load and inlined as a data: URL. An SVG in
	// an <img> runs no script. Empty: no logo.
	Logo string

	// Accent is a hex colour, #rgb or #rrggbb, for buttons, links and
	// focus rings in light and dark mode. Button text is white or
	// near-black, whichever contrasts more; an accent that reaches less
	// than 4.5:1 (WCAG AA) with either is refused. Links and focus rings
	// use the accent darkened (light mode) or lightened (dark mode) just
	// enough for 4.5:1 against the page's backgrounds. Empty: the
	// stylesheet's own colours.
	Accent string
}

// MaxLogoSize is the largest logo file Load inlines.
const MaxLogoSize = 256 << 10

// logo is a checked Options.Logo.
type logo struct {
	src template.URL // what <img src> gets
	csp string       // an img-src source to allow besides data:, or ""
}

var (
	// originHostRE is what a logo URL's host (and port) may be: it goes
	// into the CSP, where spaces, semicolons and commas would change the
	// policy.
	originHostRE = regexp.MustCompile(`^(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$`)
	// sitePathRE is what a same-site logo path may contain.
	sitePathRE = regexp.MustCompile(`^/[A-Za-z0-9_.~!$&'()*+,;=:@%/-]*$`)
)

// CheckLogo checks the form of a logo option (see Options.Logo) without
// reading any file; Load does the rest.
func CheckLogo(s string) error {
	_, _, err := parseLogo(s)
	return err
}

// parseLogo sorts s into a remote URL, a site path or a file to read.
func parseLogo(s string) (l logo, file string, err error) {
	switch {
	case s == "":
		return logo{}, "", nil
	case strings.HasPrefix(s, "file:"):
		file = strings.TrimPrefix(s, "file:")
		if strings.HasPrefix(file, "//") {
			u, err := url.Parse(s)
			if err != nil || (u.Host != "" && u.Host != "localhost") {
				return logo{}, "", fmt.Errorf("logo: %q: a file: URL must name a local file, such as file:/etc/caddy/logo.svg", s)
			}
			file = u.Path
		}
		if file == "" {
			return logo{}, "", fmt.Errorf("logo: %q names no file", s)
		}
		return logo{}, file, nil
	case strings.HasPrefix(strings.ToLower(s), "http://"):
		return logo{}, "", fmt.Errorf("logo: %q: use https:// (browsers block an http:// image on an https:// page)", s)
	case strings.HasPrefix(strings.ToLower(s), "https://"):
		u, err := url.Parse(s)
		if err != nil || u.Host == "" || u.User != nil || !originHostRE.MatchString(u.Host) || strings.ContainsAny(s, " \t\r\n\"'<>\\") {
			return logo{}, "", fmt.Errorf("logo: %q is not a plain https:// URL (host, path, optional query; no user name)", s)
		}
		return logo{src: template.URL(u.String()), csp: "https://" + strings.ToLower(u.Host)}, "", nil
	case strings.HasPrefix(s, "/") && !strings.HasPrefix(s, "//"):
		if !sitePathRE.MatchString(s) {
			return logo{}, "", fmt.Errorf("logo: %q: a path on this site may only hold URL path characters", s)
		}
		return logo{src: template.URL(s), csp: "'self'"}, "", nil
	}
	return logo{}, "", fmt.Errorf("logo: %q is not an https:// URL, a path on this site (/static/logo.svg) or a file (file:/etc/caddy/logo.svg)", s)
}

// loadLogo checks Options.Logo and reads a logo file.
func loadLogo(s string) (logo, error) {
	l, file, err := parseLogo(s)
	if err != nil || file == "" {
		if err == nil && l.csp == "'self'" {
			// A path like /etc/caddy/logo.svg that is a file here was
			// most likely meant as one: the site would not serve it.
			if fi, statErr := os.Stat(s); statErr == nil && fi.Mode().IsRegular() {
				return logo{}, fmt.Errorf("logo: %s is a file on this machine, not a path the site serves: write file:%s to show it", s, s)
			}
		}
		return l, err
	}
	f, err := os.Open(file)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return logo{}, fmt.Errorf("logo: no such file: %s", file)
		}
		return logo{}, fmt.Errorf("logo: %v", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxLogoSize+1))
	if err != nil {
		return logo{}, fmt.Errorf("logo: %v", err)
	}
	if len(b) > MaxLogoSize {
		return logo{}, fmt.Errorf("logo: %s is larger than %d KiB, the limit for an image inlined in every page", file, MaxLogoSize>>10)
	}
	mime := sniffImage(b)
	if mime == "" {
		return logo{}, fmt.Errorf("logo: %s is not a PNG, SVG, JPEG or WebP image", file)
	}
	return logo{src: template.URL("data:" + mime + ";base64," + base64.StdEncoding.EncodeToString(b))}, nil
}

// sniffImage names the type of the image in b, or "" if it is none of
// the kinds a logo may be.
func sniffImage(b []byte) string {
	switch {
	case bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")):
		return "image/png"
	case bytes.HasPrefix(b, []byte{0xff, 0xd8, 0xff}):
		return "image/jpeg"
	case len(b) >= 12 && string(b[:4]) == "RIFF" && string(b[8:12]) == "WEBP":
		return "image/webp"
	}
	head := bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
	head = bytes.TrimLeft(head, " \t\r\n")
	if len(head) > 4096 {
		head = head[:4096]
	}
	head = bytes.ToLower(head)
	if (bytes.HasPrefix(head, []byte("<svg")) || bytes.HasPrefix(head, []byte("<?xml")) || bytes.HasPrefix(head, []byte("<!--")) || bytes.HasPrefix(head, []byte("<!doctype svg"))) &&
		bytes.Contains(head, []byte("<svg")) {
		return "image/svg+xml"
	}
	return ""
}

// rgb is a colour in sRGB.
type rgb struct{ r, g, b float64 } // 0..255

var hexColourRE = regexp.MustCompile(`^#(?:[0-9A-Fa-f]{3}|[0-9A-Fa-f]{6})$`)

func parseHex(s string) (rgb, bool) {
	if !hexColourRE.MatchString(s) {
		return rgb{}, false
	}
	h := s[1:]
	if len(h) == 3 {
		h = string([]byte{h[0], h[0], h[1], h[1], h[2], h[2]})
	}
	var c [3]float64
	for i := range c {
		var v int
		fmt.Sscanf(h[2*i:2*i+2], "%02x", &v)
		c[i] = float64(v)
	}
	return rgb{c[0], c[1], c[2]}, true
}

func (c rgb) hex() string {
	return fmt.Sprintf("#%02x%02x%02x", int(math.Round(c.r)), int(math.Round(c.g)), int(math.Round(c.b)))
}

// luminance is the relative luminance of WCAG 2.x.
func (c rgb) luminance() float64 {
	lin := func(v float64) float64 {
		v /= 255
		if v <= 0.04045 {
			return v / 12.92
		}
		return math.Pow((v+0.055)/1.055, 2.4)
	}
	return 0.2126*lin(c.r) + 0.7152*lin(c.g) + 0.0722*lin(c.b)
}

// contrast is the WCAG 2.x contrast ratio of two colours, 1 to 21.
func contrast(a, b rgb) float64 {
	la, lb := a.luminance(), b.luminance()
	if la < lb {
		la, lb = lb, la
	}
	return (la + 0.05) / (lb + 0.05)
}

// mix is c moved towards d by f (0..1).
func mix(c, d rgb, f float64) rgb {
	return rgb{c.r + (d.r-c.r)*f, c.g + (d.g-c.g)*f, c.b + (d.b-c.b)*f}
}

// minContrast is WCAG AA's contrast for normal text.
const minContrast = 4.5

// The colours the accent is measured against: button text (white or the
// stylesheet's near-black) and the backgrounds links sit on in light mode
// (card, soft, alert, notice) and dark mode.
var (
	white     = rgb{255, 255, 255}
	black     = rgb{0, 0, 0}
	nearBlack = rgb{0x0b, 0x13, 0x20}
	lightBgs  = []string{"#ffffff", "#eef1f5", "#fdeceb", "#fff6e0"}
	darkBgs   = []string{"#1b1f25", "#242a32", "#3a1b1a", "#33291a"}
)

// CheckAccent checks an accent option (see Options.Accent): its form and
// its contrast with the button text.
func CheckAccent(s string) error {
	_, err := accentCSS(s)
	return err
}

// accentCSS is the CSS that gives the pages the accent s: custom
// properties for light mode and for dark mode, to follow the stylesheet.
func accentCSS(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	c, ok := parseHex(s)
	if !ok {
		return "", fmt.Errorf("accent: %q is not a hex colour such as #1756b8 or #17b", s)
	}
	onWhite, onDark := contrast(c, white), contrast(c, nearBlack)
	text, best := white, onWhite
	if onDark > onWhite {
		text, best = nearBlack, onDark
	}
	if best < minContrast {
		return "", fmt.Errorf("accent: %s reaches a contrast of only %.2f:1 with white button text and %.2f:1 with dark text; WCAG AA needs %.1f:1, so choose a darker or lighter colour",
			c.hex(), onWhite, onDark, minContrast)
	}
	// Hover: further from the text colour, so the contrast only grows.
	hover := mix(c, black, 0.15)
	if text == nearBlack {
		hover = mix(c, white, 0.2)
	}
	lightLink := readableOn(c, lightBgs, black)
	darkLink := readableOn(c, darkBgs, white)
	vars := func(link rgb, linkHover rgb) string {
		return fmt.Sprintf("--accent:%s;--accent-text:%s;--accent-hover:%s;--link:%s;--link-hover:%s;--focus:%s",
			c.hex(), text.hex(), hover.hex(), link.hex(), linkHover.hex(), link.hex())
	}
	return "\n:root{" + vars(lightLink, readableOn(mix(lightLink, black, 0.15), lightBgs, black)) + "}\n" +
		"@media (prefers-color-scheme: dark){:root{" + vars(darkLink, readableOn(mix(darkLink, white, 0.2), darkBgs, white)) + "}}\n", nil
}

// readableOn is c moved towards to in small steps until it has at least
// minContrast with each of the backgrounds bgs.
func readableOn(c rgb, bgs []string, to rgb) rgb {
	for f := 0.0; f <= 1; f += 0.02 {
		m := mix(c, to, f)
		ok := true
		for _, bg := range bgs {
			b, _ := parseHex(bg)
			if contrast(rgb{math.Round(m.r), math.Round(m.g), math.Round(m.b)}, b) < minContrast {
				ok = false
				break
			}
		}
		if ok {
			return m
		}
	}
	return to
}
