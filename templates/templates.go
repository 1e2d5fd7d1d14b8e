package templates

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

//go:embed pages/*.html pages/style.css
var embedded embed.FS

// File names shared by every page: the layout (defines the frame and shared
// pieces) and the stylesheet (inlined in a <style> element).
const (
	layoutFile = "layout.html"
	styleFile  = "style.css"
)

// pageNames lists every page Set.Render accepts.
var pageNames = []string{
	PageEnroll, PageRecovery, PageChallenge, PageLocked,
	PageLogout, PageLoggedOut, PageError, PageSettings,
}

// Set is a parsed set of pages, ready to render. It is safe for concurrent
// use.
type Set struct {
	pages map[string]*template.Template
	csp   string
}

// source is one file's contents and where it came from, for error messages.
type source struct {
	name string // display name: "embedded pages/x.html" or the override path
	text []byte
}

// Load parses the embedded pages; if dir is not empty, a file there named
// like an embedded one (<name>.html, layout.html, style.css) replaces it.
// Other files in dir are ignored. Parse errors name the file.
//
// An override page defines "heading" (the <h1> text, also used in <title>)
// and "content", and may use the layout's "hidden" (the csrf_token and rd
// inputs) and "problem" (the alert for Data.Problem). Templates may call
// stylesheet (the <style> element), span (a duration in words, "30 days"),
// clock (a time as "15:04 UTC") and until (the duration between two times).
//
// Each page is also executed once with sample data, so that an override
// which refers to a missing field or puts a value where html/template
// cannot escape it fails here rather than on a user's request.
func Load(dir string) (*Set, error) {
	if dir != "" {
		fi, err := os.Stat(dir)
		if err != nil {
			return nil, fmt.Errorf("templates: %w", err)
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("templates: %s is not a directory", dir)
		}
	}
	read := func(file string) (source, error) {
		if dir != "" {
			p := filepath.Join(dir, file)
			b, err := os.ReadFile(p)
			if err == nil {
				return source{name: p, text: b}, nil
			}
			if !errors.Is(err, fs.ErrNotExist) {
				return source{}, fmt.Errorf("templates: %w", err)
			}
		}
		b, err := embedded.ReadFile("pages/" + file)
		if err != nil {
			return source{}, fmt.Errorf("templates: embedded pages/%s: %w", file, err)
		}
		return source{name: "embedded pages/" + file, text: b}, nil
	}

	style, err := read(styleFile)
	if err != nil {
		return nil, err
	}
	if i := bytes.Index(bytes.ToLower(style.text), []byte("</style")); i >= 0 {
		return nil, fmt.Errorf("templates: %s: the stylesheet must not contain %q", style.name, style.text[i:i+7])
	}
	// The <style> element's content is exactly the stylesheet's bytes, so
	// the CSP hash is theirs.
	sum := sha256.Sum256(style.text)
	styleElem := template.HTML("<style>" + string(style.text) + "</style>")

	layout, err := read(layoutFile)
	if err != nil {
		return nil, err
	}

	funcs := template.FuncMap{
		// stylesheet is the <style> element with the stylesheet; its content
		// is what the CSP hash allows.
		"stylesheet": func() template.HTML { return styleElem },
		"span":       span,
		"clock":      clock,
		"until":      until,
	}

	s := &Set{
		pages: make(map[string]*template.Template, len(pageNames)),
		csp: "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) +
			"'; img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
	}
	sample := sampleData()
	for _, name := range pageNames {
		page, err := read(name + ".html")
		if err != nil {
			return nil, err
		}
		// The layout is parsed first so that a page's definitions (such as
		// "who") replace the layout's defaults.
		t, err := template.New(layoutFile).Funcs(funcs).Parse(string(layout.text))
		if err != nil {
			return nil, fmt.Errorf("templates: %s: %w", layout.name, err)
		}
		if _, err := t.New(name + ".html").Parse(string(page.text)); err != nil {
			return nil, fmt.Errorf("templates: %s: %w", page.name, err)
		}
		for _, need := range []string{"heading", "content"} {
			if t.Lookup(need) == nil {
				return nil, fmt.Errorf("templates: %s: no {{define %q}}", page.name, need)
			}
		}
		if err := t.Execute(io.Discard, sample); err != nil {
			return nil, fmt.Errorf("templates: %s (with %s): %w", page.name, layout.name, err)
		}
		s.pages[name] = t
	}
	return s, nil
}

// bufs holds render buffers for reuse.
var bufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// Render executes page (one of the Page* names) with data into w. The page
// is rendered into a buffer first: on a template error nothing is written.
func (s *Set) Render(w io.Writer, page string, data Data) error {
	t, ok := s.pages[page]
	if !ok {
		return fmt.Errorf("templates: unknown page %q", page)
	}
	buf := bufs.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= 64<<10 {
			bufs.Put(buf)
		}
	}()
	if err := t.Execute(buf, data); err != nil {
		return fmt.Errorf("templates: rendering %s: %w", page, err)
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// CSP is the Content-Security-Policy header value for these pages: nothing
// is allowed by default; the one inline stylesheet is allowed by its
// sha256 hash; images only as data: URLs (the QR code); forms post only to
// this origin; the pages may not be framed; no <base>. No script at all.
func (s *Set) CSP() string { return s.csp }

// span says a duration in words for people: "30 days", "12 hours",
// "15 minutes". Durations that are not whole days or hours are rounded
// (minutes up, at least 1).
func span(d time.Duration) string {
	const day = 24 * time.Hour
	switch {
	case d >= day && d%day == 0:
		return plural(int64(d/day), "day")
	case d >= 2*day:
		return plural(int64((d+day/2)/day), "day")
	case d >= time.Hour && d%time.Hour == 0:
		return plural(int64(d/time.Hour), "hour")
	case d >= 2*time.Hour:
		return plural(int64((d+time.Hour/2)/time.Hour), "hour")
	}
	m := int64((d + time.Minute - 1) / time.Minute)
	if m < 1 {
		m = 1
	}
	return plural(m, "minute")
}

// plural is "1 day", "2 days".
func plural(n int64, unit string) string {
	s := strconv.FormatInt(n, 10) + " " + unit
	if n != 1 {
		s += "s"
	}
	return s
}

// clock is the time of day in UTC, like "15:04 UTC".
func clock(t time.Time) string { return t.UTC().Format("15:04 UTC") }

// until is the time from from to to, or zero if to is not later.
func until(from, to time.Time) time.Duration {
	if d := to.Sub(from); d > 0 {
		return d
	}
	return 0
}

// sampleData is a fully populated Data used at Load to try every page once.
func sampleData() Data {
	now := time.Date(2025, 1, 2, 15, 4, 5, 0, time.UTC)
	return Data{
		Title:     "Two-factor authentication",
		Issuer:    "example.com",
		User:      "alice",
		Prefix:    "/.2fa",
		CSRFToken: "token",
		Return:    "/app/",
		Problem:   ProblemWrongCode,
		Now:       now,
		Enroll: &Enroll{
			URI:          "otpauth://totp/example.com:alice?secret=JBSWY3DPEHPK3PXP&issuer=example.com&algorithm=SHA1&digits=6&period=30",
			QR:           "data:image/png;base64,iVBORw0KGgo=",
			SecretGroups: []string{"JBSW", "Y3DP", "EHPK", "3PXP"},
			Digits:       6,
			Period:       30,
			Expires:      now.Add(10 * time.Minute),
		},
		Recovery: &Recovery{
			Codes:    []string{"abcde-12345", "fghij-67890"},
			Download: "data:text/plain;charset=utf-8,abcde-12345%0Afghij-67890%0A",
			Filename: "recovery-codes.txt",
			Continue: "/app/",
		},
		Challenge: &Challenge{TrustDevice: 30 * 24 * time.Hour, RecoveryCodes: true},
		Locked:    &Locked{Until: now.Add(15 * time.Minute), RetryIn: 15 * time.Minute},
		Error:     &Error{Status: 503, Kind: "unavailable"},
		Settings: &Settings{
			Enrolled: true, Since: now.Add(-30 * 24 * time.Hour),
			Method: "totp", Verified: now.Add(-time.Hour),
			RecoveryCodes: true, RecoveryLeft: 8, RecoveryIssued: 10,
			TrustDevice: 30 * 24 * time.Hour,
			Devices: []TrustedDevice{{
				ID: "0123abcd", Browser: "Chrome", OS: "Windows", Current: true,
				Created: now.Add(-48 * time.Hour), LastUsed: now.Add(-time.Hour), Expires: now.Add(28 * 24 * time.Hour),
				IP: "192.0.2.1",
			}},
			OtherSessions: 2, CanTurnOff: true,
			Done: "signed_out_others", Count: 2, Refused: "no_device",
			Form: "turn_off", RecoveryCode: true,
		},
	}
}
