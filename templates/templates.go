package templates

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html"
	"html/template"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"text/template/parse"
	"time"

	"golang.org/x/text/language"
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

// Set is a parsed set of pages in every language it has a catalog for,
// ready to render. It is safe for concurrent use.
type Set struct {
	langs   []string // served languages, English first
	matcher language.Matcher
	cats    map[string]*catalog
	pages   map[string]map[string]*template.Template // language → page → template
	csp     string
}

// source is one file's contents and where it came from, for error messages.
type source struct {
	name string // display name: "embedded pages/x.html" or the override path
	text []byte
}

// Load parses the embedded pages and message catalogs, with the branding
// of o (Options.Logo, Options.Accent); if o.Dir is not empty, a file there
// named like an embedded one (<name>.html, layout.html, style.css)
// replaces it, and catalogs in o.Dir/locales
// (<tag>.json, e.g. ja.json or pt-BR.json) replace single messages of a
// language or add a language. A new language need not be complete: what
// it lacks is shown in English. Other files in dir are ignored. Errors
// name the file.
//
// An override page defines "heading" (the <h1> text, also used in <title>)
// and "content", and may use the layout's "hidden" (the csrf_token and rd
// inputs) and "problem" (the alert for Data.Problem). Templates may call
// t (a catalog message: {{t "challenge.heading"}}, with arguments as name,
// value pairs: {{t "layout.signed_in_as" "user" .User}}), lang (the page's
// language tag), stylesheet (the <style> element), span (a duration in
// words, "30 days"), clock (a time as "15:04 UTC"), date ("2 January
// 2006"), datetime ("2 Jan 2006, 15:04 UTC"), until (the duration
// between two times) and logo (the logo's URL, empty without one); the
// words and formats come from the catalog.
//
// Errors about the logo or the accent start with the option's name
// ("logo: ...", "accent: ..."), the others with "templates:".
//
// Every {{t "key" ...}} in the pages is checked against the catalogs: the
// key must exist and the call must pass every {placeholder} its message
// uses in each language. Each page is also executed once in every language
// with sample data, so that an override which refers to a missing field or
// puts a value where html/template cannot escape it fails here rather than
// on a user's request.
func Load(o Options) (*Set, error) {
	dir := o.Dir
	accent, err := accentCSS(o.Accent)
	if err != nil {
		return nil, err
	}
	logo, err := loadLogo(o.Logo)
	if err != nil {
		return nil, err
	}
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

	cats, err := loadCatalogs(dir)
	if err != nil {
		return nil, fmt.Errorf("templates: %w", err)
	}

	style, err := read(styleFile)
	if err != nil {
		return nil, err
	}
	if i := bytes.Index(bytes.ToLower(style.text), []byte("</style")); i >= 0 {
		return nil, fmt.Errorf("templates: %s: the stylesheet must not contain %q", style.name, style.text[i:i+7])
	}
	// The <style> element's content is exactly the stylesheet's bytes and
	// the accent's custom properties after them, so the CSP hash is
	// theirs: each accent makes its own hash.
	css := string(style.text) + accent
	sum := sha256.Sum256([]byte(css))
	shared := look{style: template.HTML("<style>" + css + "</style>"), logo: logo.src}
	imgSrc := "data:"
	if logo.csp != "" {
		imgSrc += " " + logo.csp
	}

	layout, err := read(layoutFile)
	if err != nil {
		return nil, err
	}

	s := &Set{
		cats:  make(map[string]*catalog, len(cats)),
		pages: make(map[string]map[string]*template.Template, len(cats)),
		csp: "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) +
			"'; img-src " + imgSrc + "; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
	}
	tags := make([]language.Tag, 0, len(cats))
	for _, c := range cats {
		if err := c.checkFormats(); err != nil {
			return nil, fmt.Errorf("templates: %w", err)
		}
		s.langs = append(s.langs, c.name)
		s.cats[c.name] = c
		s.pages[c.name] = make(map[string]*template.Template, len(pageNames))
		tags = append(tags, c.tag)
	}
	s.matcher = language.NewMatcher(tags)

	sample := sampleData()
	for _, name := range pageNames {
		page, err := read(name + ".html")
		if err != nil {
			return nil, err
		}
		// The layout is parsed first so that a page's definitions (such as
		// "who") replace the layout's defaults. This parsed set is only
		// cloned, once per language, never executed.
		t, err := template.New(layoutFile).Funcs(cats[0].funcs(shared)).Parse(string(layout.text))
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
		files := map[string]string{layoutFile: layout.name, name + ".html": page.name}
		if err := checkMessages(t, cats, files); err != nil {
			return nil, err
		}
		for _, c := range cats {
			lt, err := t.Clone()
			if err != nil {
				return nil, fmt.Errorf("templates: %s: %w", page.name, err)
			}
			lt.Funcs(c.funcs(shared))
			if err := lt.Execute(io.Discard, sample); err != nil {
				return nil, fmt.Errorf("templates: %s (with %s, language %s): %w", page.name, layout.name, c.name, err)
			}
			s.pages[c.name][name] = lt
		}
	}
	for _, c := range cats {
		if _, err := c.recoveryFile("example.com", "alice", []string{"abcde-12345"}, sample.Now); err != nil {
			return nil, fmt.Errorf("templates: locales: %s: recovery codes file: %w", c.name, err)
		}
	}
	return s, nil
}

// look is what every language's pages share: the <style> element and the
// logo.
type look struct {
	style template.HTML
	logo  template.URL
}

// funcs are the template functions, speaking c's language.
func (c *catalog) funcs(l look) template.FuncMap {
	return template.FuncMap{
		// stylesheet is the <style> element with the stylesheet; its content
		// is what the CSP hash allows.
		"stylesheet": func() template.HTML { return l.style },
		// logo is the logo's URL (checked at Load: https, a site path or
		// an inlined image), or empty.
		"logo": func() template.URL { return l.logo },
		// t is a message: its text is trusted (it comes from the catalogs,
		// ours or the operator's, and holds at most a little inline markup),
		// its string arguments are escaped. In an attribute html/template
		// strips the markup, leaving plain text.
		"t": func(key string, args ...any) (template.HTML, error) {
			s, err := c.format(key, args, true)
			return template.HTML(s), err
		},
		"lang":     func() string { return c.name },
		"span":     c.span,
		"clock":    c.clock,
		"date":     c.date,
		"datetime": c.datetime,
		"until":    until,
	}
}

// checkMessages checks every {{t "key" ...}} call in t's templates, in
// branches the sample data does not reach too: the key must be in the
// catalog, and where the argument names are literal they must cover the
// placeholders of the message in every language. files maps template file
// names to display names for errors.
func checkMessages(t *template.Template, cats []*catalog, files map[string]string) error {
	var err error
	for _, tt := range t.Templates() {
		if tt.Tree == nil || tt.Tree.Root == nil {
			continue
		}
		file := files[tt.Tree.ParseName]
		if file == "" {
			file = tt.Tree.ParseName
		}
		walkCommands(tt.Tree.Root, func(cmd *parse.CommandNode) {
			if err != nil || len(cmd.Args) == 0 {
				return
			}
			if id, ok := cmd.Args[0].(*parse.IdentifierNode); !ok || id.Ident != "t" {
				return
			}
			if len(cmd.Args) < 2 {
				err = fmt.Errorf("templates: %s: {{t}} needs a message key", file)
				return
			}
			k, ok := cmd.Args[1].(*parse.StringNode)
			if !ok {
				return // a key computed at run time is checked then
			}
			key := k.Text
			if _, ok := cats[0].msgs[key]; !ok {
				err = fmt.Errorf("templates: %s: {{t %q}}: no such message in the catalog", file, key)
				return
			}
			rest := cmd.Args[2:]
			if len(rest)%2 != 0 {
				err = fmt.Errorf("templates: %s: {{t %q}}: arguments must come in name, value pairs", file, key)
				return
			}
			var given []string
			for i := 0; i < len(rest); i += 2 {
				n, ok := rest[i].(*parse.StringNode)
				if !ok {
					return // names computed at run time are checked then
				}
				given = append(given, n.Text)
			}
			for _, c := range cats {
				m := c.msgs[key]
				for _, a := range m.args {
					if !slices.Contains(given, a) {
						err = fmt.Errorf("templates: %s: {{t %q}} does not pass %q, which the message in %s uses", file, key, a, m.source)
						return
					}
				}
			}
		})
	}
	return err
}

// walkCommands calls f for every command in the tree under n.
func walkCommands(n parse.Node, f func(*parse.CommandNode)) {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return
		}
		for _, c := range n.Nodes {
			walkCommands(c, f)
		}
	case *parse.ActionNode:
		walkCommands(n.Pipe, f)
	case *parse.PipeNode:
		if n == nil {
			return
		}
		for _, c := range n.Cmds {
			walkCommands(c, f)
		}
	case *parse.CommandNode:
		f(n)
		for _, a := range n.Args {
			walkCommands(a, f)
		}
	case *parse.IfNode:
		walkBranch(&n.BranchNode, f)
	case *parse.RangeNode:
		walkBranch(&n.BranchNode, f)
	case *parse.WithNode:
		walkBranch(&n.BranchNode, f)
	case *parse.TemplateNode:
		walkCommands(n.Pipe, f)
	}
}

func walkBranch(b *parse.BranchNode, f func(*parse.CommandNode)) {
	walkCommands(b.Pipe, f)
	walkCommands(b.List, f)
	if b.ElseList != nil {
		walkCommands(b.ElseList, f)
	}
}

// Languages lists the languages the set has a catalog for, as BCP 47 tags,
// English first.
func (s *Set) Languages() []string { return slices.Clone(s.langs) }

// Match picks the language to show a browser that sent acceptLanguage (an
// Accept-Language header, with q-values): the best of Languages by
// CLDR's matching rules (ja-JP is served Japanese, en-GB English), English
// when none is acceptable.
func (s *Set) Match(acceptLanguage string) string {
	_, i := language.MatchStrings(s.matcher, acceptLanguage)
	return s.langs[i]
}

// Language returns the language among Languages that serves tag (as
// written in the lang option: "ja", "ja-JP", "en"), and false when there
// is no catalog for it.
func (s *Set) Language(tag string) (string, bool) {
	t, err := language.Parse(tag)
	if err != nil {
		return "", false
	}
	_, i, conf := s.matcher.Match(t)
	if conf < language.High {
		return "", false
	}
	return s.langs[i], true
}

// embeddedTags lists the languages of the embedded catalogs, English
// first.
var embeddedTags = sync.OnceValue(func() []language.Tag {
	files, err := readLocales(embeddedLocales, "")
	if err != nil {
		panic("templates: embedded locales: " + err.Error())
	}
	var tags []language.Tag
	for _, f := range files {
		tags = append(tags, f.tag)
	}
	slices.SortStableFunc(tags, func(a, b language.Tag) int { return compareBool(a != baseLanguage, b != baseLanguage) })
	return tags
})

// EmbeddedLanguages lists the languages built in, English first.
func EmbeddedLanguages() []string {
	var names []string
	for _, t := range embeddedTags() {
		names = append(names, t.String())
	}
	return names
}

// EmbeddedLanguage is Set.Language for the built-in catalogs alone: it
// returns the built-in language that serves tag, and false when there is
// none (an operator's templates directory may still add one).
func EmbeddedLanguage(tag string) (string, bool) {
	t, err := language.Parse(tag)
	if err != nil {
		return "", false
	}
	tags := embeddedTags()
	_, i, conf := language.NewMatcher(tags).Match(t)
	if conf < language.High {
		return "", false
	}
	return tags[i].String(), true
}

// RecoveryFile is the plain text of the recovery codes download in lang
// (see Render for how lang is chosen): a line naming the site and the
// user, when the codes were made, the codes, and a reminder.
func (s *Set) RecoveryFile(lang, issuer, user string, codes []string, created time.Time) string {
	text, _ := s.catalog(lang).recoveryFile(issuer, user, codes, created)
	return text
}

func (c *catalog) recoveryFile(issuer, user string, codes []string, created time.Time) (string, error) {
	title, err := c.format("recovery_file.title", []any{"issuer", issuer, "user", user}, false)
	if err != nil {
		return "", err
	}
	when, err := c.format("recovery_file.created", []any{"when", c.datetime(created)}, false)
	if err != nil {
		return "", err
	}
	note, err := c.format("recovery_file.note", nil, false)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString(plainText(title) + "\n" + plainText(when) + "\n\n")
	for _, code := range codes {
		b.WriteString(code + "\n")
	}
	b.WriteString("\n" + plainText(note) + "\n")
	return b.String(), nil
}

// plainText removes a message's inline markup and entities.
func plainText(s string) string {
	for _, m := range allowedMarkup {
		s = strings.ReplaceAll(s, m, "")
	}
	return html.UnescapeString(s)
}

// catalog returns the catalog of lang, or English's.
func (s *Set) catalog(lang string) *catalog {
	if c, ok := s.cats[lang]; ok {
		return c
	}
	return s.cats[s.langs[0]]
}

// bufs holds render buffers for reuse.
var bufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// Render executes page (one of the Page* names) with data into w, in the
// language data.Lang (one of Languages, as returned by Match or Language;
// English when empty or unknown). The page is rendered into a buffer
// first: on a template error nothing is written.
func (s *Set) Render(w io.Writer, page string, data Data) error {
	pages, ok := s.pages[data.Lang]
	if !ok {
		pages = s.pages[s.langs[0]]
	}
	t, ok := pages[page]
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
// sha256 hash; images only as data: URLs (the QR code, an inlined logo),
// plus the logo's origin or 'self' when Options.Logo is a URL; forms post
// only to this origin; the pages may not be framed; no <base>. No script
// at all.
func (s *Set) CSP() string { return s.csp }

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
