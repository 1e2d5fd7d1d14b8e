package templates

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"html/template"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/text/feature/plural"
	"golang.org/x/text/language"
)

// The message catalogs: one JSON file per language, locales/<tag>.json.
// English is the base: every key exists there, and a language that lacks
// a key falls back to the English text.
//
//go:embed locales/*.json
var embeddedLocales embed.FS

// baseLanguage is the language every catalog falls back to, and the one
// served when nothing better matches.
var baseLanguage = language.English

// keyRE is the shape of a catalog key: dotted lower-case words, such as
// "challenge.heading".
var keyRE = regexp.MustCompile(`^[a-z0-9_]+(\.[a-z0-9_]+)+$`)

// placeholderRE finds {name} placeholders in a message.
var placeholderRE = regexp.MustCompile(`\{([a-z_][a-z0-9_]*)\}`)

// allowedMarkup is the inline markup a message may contain. Anything else
// (attributes, links, scripts) belongs in the page templates, where
// html/template checks it.
var allowedMarkup = []string{"<strong>", "</strong>", "<em>", "</em>", "<code>", "</code>", "<kbd>", "</kbd>", "<br>"}

// pluralForms names the CLDR plural categories a message may give.
var pluralForms = map[string]plural.Form{
	"zero": plural.Zero, "one": plural.One, "two": plural.Two,
	"few": plural.Few, "many": plural.Many, "other": plural.Other,
}

// segment is a piece of a compiled message: literal text, or the name of
// an argument to put in its place.
type segment struct {
	text string
	arg  string
}

// message is one catalog entry, compiled: a plain text, or plural forms
// chosen by the "count" argument under the rules of lang (the language the
// text is written in, which for a fallback is English).
type message struct {
	forms  map[plural.Form][]segment // plural.Other alone when not plural
	plural bool
	lang   language.Tag
	args   []string // every placeholder name, sorted
	source string   // file the text came from, for error messages
}

// catalog is one language's messages, with English filled in for keys the
// language does not give.
type catalog struct {
	tag  language.Tag
	name string // the tag as served in <html lang>
	msgs map[string]*message
}

// compile parses one catalog value (a string or an object of plural
// forms) of key in file.
func compile(file, key string, raw json.RawMessage, tag language.Tag) (*message, error) {
	m := &message{forms: map[plural.Form][]segment{}, lang: tag, source: file}
	texts := map[plural.Form]string{}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		texts[plural.Other] = s
	} else {
		var forms map[string]string
		if err := json.Unmarshal(raw, &forms); err != nil {
			return nil, fmt.Errorf("%s: %s: must be a string or an object of plural forms (one, other, ...)", file, key)
		}
		m.plural = true
		for name, text := range forms {
			f, ok := pluralForms[name]
			if !ok {
				return nil, fmt.Errorf("%s: %s: unknown plural form %q (known: zero, one, two, few, many, other)", file, key, name)
			}
			texts[f] = text
		}
		if _, ok := texts[plural.Other]; !ok {
			return nil, fmt.Errorf("%s: %s: plural forms must include \"other\"", file, key)
		}
	}
	seen := map[string]bool{}
	for f, text := range texts {
		if err := checkMarkup(text); err != nil {
			return nil, fmt.Errorf("%s: %s: %v", file, key, err)
		}
		var segs []segment
		last := 0
		for _, loc := range placeholderRE.FindAllStringSubmatchIndex(text, -1) {
			if loc[0] > last {
				segs = append(segs, segment{text: text[last:loc[0]]})
			}
			name := text[loc[2]:loc[3]]
			segs = append(segs, segment{arg: name})
			if !seen[name] {
				seen[name] = true
				m.args = append(m.args, name)
			}
			last = loc[1]
		}
		if last < len(text) {
			segs = append(segs, segment{text: text[last:]})
		}
		m.forms[f] = segs
	}
	if m.plural && !seen["count"] {
		// The form is chosen by the count; a text that never shows it is
		// allowed ("No codes left"), but the argument must be passed.
		m.args = append(m.args, "count")
	}
	slices.Sort(m.args)
	return m, nil
}

// checkMarkup allows only the inline tags in allowedMarkup.
func checkMarkup(text string) error {
	for i := 0; i < len(text); i++ {
		if text[i] != '<' {
			continue
		}
		j := strings.IndexByte(text[i:], '>')
		if j < 0 {
			return fmt.Errorf("a '<' that starts no tag (write &lt; for the character)")
		}
		tag := text[i : i+j+1]
		if !slices.Contains(allowedMarkup, tag) {
			return fmt.Errorf("markup %s is not allowed (allowed: %s)", tag, strings.Join(allowedMarkup, " "))
		}
		i += j
	}
	return nil
}

// localeFile is one catalog file read from the embedded locales or from
// an operator's <dir>/locales.
type localeFile struct {
	name string // display name, for errors
	tag  language.Tag
	msgs map[string]json.RawMessage
}

// readLocales reads the *.json catalogs in fsys (the embedded ones) or,
// when dir is not empty, in the directory dir/locales (which may be
// missing).
func readLocales(fsys fs.FS, dir string) ([]localeFile, error) {
	display := "embedded locales/"
	if dir != "" {
		p := filepath.Join(dir, "locales")
		fi, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("%s is not a directory", p)
		}
		fsys, display = os.DirFS(p), p+string(filepath.Separator)
	} else {
		sub, err := fs.Sub(fsys, "locales")
		if err != nil {
			return nil, err
		}
		fsys = sub
	}
	names, err := fs.Glob(fsys, "*.json")
	if err != nil {
		return nil, err
	}
	var files []localeFile
	for _, n := range names {
		name := display + n
		tag, err := language.Parse(strings.TrimSuffix(n, ".json"))
		if err != nil {
			return nil, fmt.Errorf("%s: the file name must be a language tag such as ja.json or pt-BR.json: %v", name, err)
		}
		b, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, err
		}
		lf := localeFile{name: name, tag: tag}
		d := json.NewDecoder(bytes.NewReader(b))
		if err := d.Decode(&lf.msgs); err != nil {
			return nil, fmt.Errorf("%s: %v", name, err)
		}
		for key := range lf.msgs {
			if !keyRE.MatchString(key) {
				return nil, fmt.Errorf("%s: %q is not a key (dotted lower-case words, like \"challenge.heading\")", name, key)
			}
		}
		files = append(files, lf)
	}
	return files, nil
}

// loadCatalogs builds one catalog per language from the embedded files and
// the operator's dir/locales (dir may be empty). The operator's files
// replace single messages; English keys are the full set, so a key that
// English lacks is a typo and an error. The result starts with English.
func loadCatalogs(dir string) ([]*catalog, error) {
	files, err := readLocales(embeddedLocales, "")
	if err != nil {
		return nil, fmt.Errorf("locales: %w", err)
	}
	if dir != "" {
		extra, err := readLocales(nil, dir)
		if err != nil {
			return nil, fmt.Errorf("locales: %w", err)
		}
		files = append(files, extra...)
	}
	// English first, so the other languages can fall back to it and be
	// checked against it.
	slices.SortStableFunc(files, func(a, b localeFile) int {
		return compareBool(a.tag != baseLanguage, b.tag != baseLanguage)
	})
	if len(files) == 0 || files[0].tag != baseLanguage {
		return nil, fmt.Errorf("locales: no English catalog (en.json)")
	}
	var cats []*catalog
	byTag := map[language.Tag]*catalog{}
	for _, f := range files {
		c := byTag[f.tag]
		if c == nil {
			c = &catalog{tag: f.tag, name: f.tag.String(), msgs: map[string]*message{}}
			if f.tag != baseLanguage {
				// Start from English: missing keys fall back to it.
				for k, m := range cats[0].msgs {
					c.msgs[k] = m
				}
			}
			byTag[f.tag] = c
			cats = append(cats, c)
		}
		for key, raw := range f.msgs {
			m, err := compile(f.name, key, raw, f.tag)
			if err != nil {
				return nil, fmt.Errorf("locales: %w", err)
			}
			if f.tag != baseLanguage {
				en, ok := cats[0].msgs[key]
				if !ok {
					return nil, fmt.Errorf("locales: %s: %s: no such key in the English catalog (a new key must be added to en.json first)", f.name, key)
				}
				for _, a := range m.args {
					if !slices.Contains(en.args, a) {
						return nil, fmt.Errorf("locales: %s: %s: uses {%s}, which the English message does not have (it has %s)", f.name, key, a, argList(en.args))
					}
				}
			}
			c.msgs[key] = m
		}
	}
	return cats, nil
}

func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}

func argList(args []string) string {
	if len(args) == 0 {
		return "none"
	}
	return "{" + strings.Join(args, "}, {") + "}"
}

// format renders key with args (name, value pairs). With escape, string
// arguments are HTML-escaped and template.HTML ones inserted as they are
// (the message text itself is trusted); without, the result is plain text.
func (c *catalog) format(key string, args []any, escape bool) (string, error) {
	m, ok := c.msgs[key]
	if !ok {
		return "", fmt.Errorf("no message %q in the catalog", key)
	}
	if len(args)%2 != 0 {
		return "", fmt.Errorf("message %q: arguments must come in name, value pairs", key)
	}
	vals := make(map[string]string, len(args)/2)
	count, haveCount := 0, false
	for i := 0; i < len(args); i += 2 {
		name, ok := args[i].(string)
		if !ok {
			return "", fmt.Errorf("message %q: argument name %v is not a string", key, args[i])
		}
		var v string
		n, isInt := 0, false
		switch a := args[i+1].(type) {
		case string:
			v = a
			if escape {
				v = html.EscapeString(a)
			}
		case template.HTML:
			v = string(a)
		case int:
			v, n, isInt = strconv.Itoa(a), a, true
		case int64:
			v, n, isInt = strconv.FormatInt(a, 10), int(a), true
		default:
			return "", fmt.Errorf("message %q: argument %s has unsupported type %T", key, name, a)
		}
		if name == "count" {
			if !isInt {
				return "", fmt.Errorf("message %q: count must be a whole number, got %T", key, args[i+1])
			}
			count, haveCount = n, true
		}
		vals[name] = v
	}
	segs := m.forms[plural.Other]
	if m.plural {
		if !haveCount {
			return "", fmt.Errorf("message %q: plural forms need a count argument", key)
		}
		n := count
		if n < 0 {
			n = -n
		}
		if s, ok := m.forms[plural.Cardinal.MatchPlural(m.lang, n, 0, 0, 0, 0)]; ok {
			segs = s
		}
	}
	var b strings.Builder
	for _, s := range segs {
		if s.arg == "" {
			b.WriteString(s.text)
			continue
		}
		v, ok := vals[s.arg]
		if !ok {
			return "", fmt.Errorf("message %q: no value for {%s}", key, s.arg)
		}
		b.WriteString(v)
	}
	return b.String(), nil
}

// text is format for plain text, for messages known to be valid (the
// format and duration messages, checked at Load).
func (c *catalog) text(key string, args ...any) string {
	s, err := c.format(key, args, false)
	if err != nil {
		return ""
	}
	return s
}

// span says a duration in words for people: "30 days", "12 hours",
// "15 minutes" (in Japanese "30日間", "12時間", "15分"). Durations that are
// not whole days or hours are rounded (minutes up, at least 1).
func (c *catalog) span(d time.Duration) string {
	const day = 24 * time.Hour
	switch {
	case d >= day && d%day == 0:
		return c.text("duration.days", "count", int(d/day))
	case d >= 2*day:
		return c.text("duration.days", "count", int((d+day/2)/day))
	case d >= time.Hour && d%time.Hour == 0:
		return c.text("duration.hours", "count", int(d/time.Hour))
	case d >= 2*time.Hour:
		return c.text("duration.hours", "count", int((d+time.Hour/2)/time.Hour))
	}
	m := int((d + time.Minute - 1) / time.Minute)
	if m < 1 {
		m = 1
	}
	return c.text("duration.minutes", "count", m)
}

// clock is the time of day in UTC, like "15:04 UTC".
func (c *catalog) clock(t time.Time) string { return t.UTC().Format(c.text("format.time")) }

// date is a day in UTC, like "2 January 2006" ("2006年1月2日").
func (c *catalog) date(t time.Time) string { return t.UTC().Format(c.text("format.date")) }

// datetime is a day and time in UTC, like "2 Jan 2006, 15:04 UTC".
func (c *catalog) datetime(t time.Time) string { return t.UTC().Format(c.text("format.datetime")) }

// checkFormats makes sure the messages Go code formats itself (dates and
// durations) render, so that span, clock, date and datetime never fail.
func (c *catalog) checkFormats() error {
	for _, k := range []string{"format.time", "format.date", "format.datetime"} {
		if _, err := c.format(k, nil, false); err != nil {
			return fmt.Errorf("locales: %s: %v", c.name, err)
		}
	}
	for _, k := range []string{"duration.minutes", "duration.hours", "duration.days"} {
		if _, err := c.format(k, []any{"count", 2}, false); err != nil {
			return fmt.Errorf("locales: %s: %v", c.name, err)
		}
	}
	return nil
}
