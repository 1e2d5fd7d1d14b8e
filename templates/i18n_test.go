package templates

import (
	"encoding/json"
	"html"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/text/feature/plural"
	"golang.org/x/text/language"
)

// rawCatalog reads an embedded catalog as written.
func rawCatalog(t *testing.T, lang string) map[string]json.RawMessage {
	t.Helper()
	b, err := embeddedLocales.ReadFile("locales/" + lang + ".json")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestCatalogsComplete: the embedded languages have the same keys, the
// same placeholders, and every plural form their CLDR rules use.
func TestCatalogsComplete(t *testing.T) {
	langs := EmbeddedLanguages()
	if !slices.Equal(langs, []string{"en", "ja"}) {
		t.Fatalf("embedded languages %v, want [en ja]", langs)
	}
	cats, err := loadCatalogs("")
	if err != nil {
		t.Fatal(err)
	}
	en := rawCatalog(t, "en")
	for _, c := range cats {
		raw := rawCatalog(t, c.name)
		for key := range en {
			if _, ok := raw[key]; !ok {
				t.Errorf("%s.json lacks %q", c.name, key)
			}
		}
		for key := range raw {
			if _, ok := en[key]; !ok {
				t.Errorf("%s.json has %q, which en.json lacks", c.name, key)
			}
		}
		for key, m := range c.msgs {
			if m.lang != c.tag {
				continue // reported above
			}
			if want := cats[0].msgs[key].args; !slices.Equal(m.args, want) {
				t.Errorf("%s: %s uses %s, English %s", c.name, key, argList(m.args), argList(want))
			}
			if !m.plural {
				continue
			}
			for n := 0; n <= 1000; n++ {
				f := plural.Cardinal.MatchPlural(c.tag, n, 0, 0, 0, 0)
				if _, ok := m.forms[f]; !ok {
					t.Errorf("%s: %s has no plural form %v (needed for %d)", c.name, key, f, n)
					break
				}
			}
		}
	}
}

var tCallRE = regexp.MustCompile(`\bt "([a-z0-9_.]+)"`)

// TestEveryKeyUsed: every catalog key is used by a page or by the Go
// code of this package, so the catalogs hold no dead text.
func TestEveryKeyUsed(t *testing.T) {
	var used strings.Builder
	pages, _ := fs.Glob(embedded, "pages/*.html")
	for _, p := range pages {
		b, _ := embedded.ReadFile(p)
		for _, m := range tCallRE.FindAllStringSubmatch(string(b), -1) {
			used.WriteString(`"` + m[1] + `"` + "\n")
		}
	}
	gofiles, _ := filepath.Glob("*.go")
	for _, f := range gofiles {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		used.Write(b)
	}
	for key := range rawCatalog(t, "en") {
		if !strings.Contains(used.String(), `"`+key+`"`) {
			t.Errorf("key %q is not used", key)
		}
	}
}

// everyVariant renders every page with every Problem, error kind, settings
// confirmation and refusal, and verification method, in lang.
func everyVariant(t *testing.T, s *Set, lang string, f func(what, out string)) {
	t.Helper()
	problems := []Problem{ProblemNone, ProblemWrongCode, ProblemUsedCode, ProblemBadFormat, ProblemFormExpired, ProblemEnrollGone, ProblemStartedOver, ProblemStartOverLimit, "unexpected"}
	do := func(what, page string, d Data) {
		d.Lang = lang
		f(what, render(t, s, page, d))
	}
	for _, page := range pageNames {
		for _, p := range problems {
			d := full(page)
			d.Problem = p
			do(page+"/problem="+string(p), page, d)
			if d.Challenge != nil {
				d.Challenge.RecoveryCodes = false
				do(page+"/no recovery/problem="+string(p), page, d)
			}
		}
		do(page+"/zero", page, Data{})
		do(page+"/base", page, base())
	}
	for _, k := range []string{
		"no_identity", "unavailable", "bad_request", "forbidden", "method", "not_found",
		"invite_required", "invite_gone", "invite_other_user", "sign_in_first", "unknown_session", "name_too_long", "name_conflict", "ambiguous_request", "unexpected",
	} {
		d := full(PageError)
		d.Error.Kind = k
		do("error/"+k, PageError, d)
	}
	for _, done := range []string{"device_removed", "this_device_removed", "devices_removed", "signed_out_others", "unexpected"} {
		for _, n := range []int{0, 1, 2, 5, 21} {
			d := full(PageSettings)
			d.Settings.Done, d.Settings.Count = done, n
			do("settings/done="+done, PageSettings, d)
		}
	}
	for _, r := range []string{"form_expired", "no_device", "turn_off_required", "recovery_disabled", "unexpected"} {
		d := full(PageSettings)
		d.Settings.Refused = r
		do("settings/refused="+r, PageSettings, d)
	}
	for _, m := range []string{"totp", "recovery", "trusted_device", "unexpected"} {
		d := full(PageSettings)
		d.Settings.Method = m
		do("settings/method="+m, PageSettings, d)
		d.Settings.Verified, d.Settings.Since = time.Time{}, time.Time{}
		do("settings/method="+m+"/no time", PageSettings, d)
	}
	for _, form := range []string{"new_recovery_codes", "replace_authenticator", "turn_off"} {
		for _, rc := range []bool{false, true} {
			d := full(PageSettings)
			d.Problem, d.Settings.Form, d.Settings.RecoveryCode = ProblemWrongCode, form, rc
			do("settings/form="+form, PageSettings, d)
		}
	}
	d := full(PageSettings)
	d.Settings.CanTurnOff, d.Settings.RecoveryCodes, d.Settings.OtherSessions, d.Settings.RecoveryLeft = false, false, 1, 0
	do("settings/required", PageSettings, d)
	d.Settings.RecoveryCodes = true
	do("settings/no codes left", PageSettings, d)
	d.Settings.Devices = nil
	do("settings/no devices", PageSettings, d)
	d.Settings.TrustDevice = 0
	do("settings/no trust", PageSettings, d)
	d = base()
	d.Settings = &Settings{}
	do("settings/off", PageSettings, d)
	d.Settings.Invite = true
	do("settings/off invite", PageSettings, d)
	d = full(PageEnroll)
	d.Enroll.Grace = &Grace{Until: testNow.Add(3 * 24 * time.Hour), Left: 3 * 24 * time.Hour}
	do("enroll/grace", PageEnroll, d)
	d.Now = time.Time{}
	d.User = ""
	do("enroll/no now", PageEnroll, d)
	for _, startOver := range []bool{true, false} {
		d = base()
		d.Enroll = &Enroll{Elsewhere: true, StartOver: startOver}
		do("enroll/elsewhere start over "+strconv.FormatBool(startOver), PageEnroll, d)
		d.Problem = ProblemStartedOver
		do("enroll/elsewhere started over", PageEnroll, d)
	}
	d = full(PageLocked)
	d.Locked.Until = time.Time{}
	do("locked/no until", PageLocked, d)
	d = full(PageChallenge)
	d.Issuer = ""
	do("challenge/no issuer", PageChallenge, d)
	do("logout/no issuer", PageLogout, d)
}

// TestNoInternalsShown: whatever state a page is in, in every language,
// people never see a catalog key, a placeholder, a formatting error or Go
// error text.
func TestNoInternalsShown(t *testing.T) {
	s := mustLoad(t, "")
	var keys []string
	for key := range s.cats["en"].msgs {
		keys = append(keys, key)
	}
	bad := regexp.MustCompile(`%!|<no value>|ZgotmplZ|\{[a-z_]+\}|templates:|error calling|runtime error|nil pointer|map\[|&lt;strong|&lt;code`)
	for _, lang := range s.Languages() {
		n := 0
		everyVariant(t, s, lang, func(what, out string) {
			n++
			if m := bad.FindString(out); m != "" {
				t.Errorf("%s %s: output contains %q", lang, what, m)
			}
			for _, k := range keys {
				if strings.Contains(out, k) {
					t.Errorf("%s %s: output contains the key %q", lang, what, k)
				}
			}
			if !strings.Contains(out, `<html lang="`+lang+`">`) {
				t.Errorf("%s %s: no <html lang=%q>", lang, what, lang)
			}
		})
		if n < 100 {
			t.Errorf("%s: only %d variants rendered", lang, n)
		}
	}
}

// visibleText is out without markup, entities decoded.
func visibleText(out string) string {
	out = regexp.MustCompile(`(?s)<style>.*?</style>`).ReplaceAllString(out, "")
	out = regexp.MustCompile(`(?s)<[^>]*>`).ReplaceAllString(out, " ")
	return html.UnescapeString(out)
}

// TestJapanesePagesAreJapanese: no English sentence of the catalog is left
// in a Japanese page.
func TestJapanesePagesAreJapanese(t *testing.T) {
	s := mustLoad(t, "")
	var english []string
	for key, m := range s.cats["en"].msgs {
		if strings.HasPrefix(key, "format.") || strings.HasPrefix(key, "common.") {
			continue
		}
		for _, segs := range m.forms {
			for _, seg := range segs {
				// Words of four letters or more: "Verify", "Remove", ...
				if txt := plainText(seg.text); regexp.MustCompile(`[A-Za-z]{4,}`).MatchString(txt) && !strings.Contains(txt, "Authenticator") {
					english = append(english, strings.TrimSpace(txt))
				}
			}
		}
	}
	everyVariant(t, s, "ja", func(what, out string) {
		text := visibleText(out)
		for _, e := range english {
			if len(e) > 3 && strings.Contains(text, e) {
				t.Errorf("ja %s: English text %q", what, e)
			}
		}
	})
	out := render(t, s, PageChallenge, func() Data { d := full(PageChallenge); d.Lang = "ja"; return d }())
	for _, want := range []string{
		`<html lang="ja">`,
		"<title>確認コードを入力してください – Acme Intranet</title>",
		"<strong>alice</strong> としてサインイン中",
		`<label for="code">認証アプリの確認コード</label>`,
		"このデバイスを30日間記憶する",
		`<button type="submit">確認</button>`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("Japanese challenge page lacks %q", want)
		}
	}
	// The field names scripts and tests rely on do not change.
	for _, want := range []string{`name="code"`, `id="code"`, `name="trust_device"`, `name="csrf_token"`, `name="rd"`} {
		if !strings.Contains(out, want) {
			t.Errorf("Japanese challenge page lacks %s", want)
		}
	}
	if d := (Data{Lang: "ja"}); !strings.Contains(render(t, s, PageLogout, d), "<p class=\"product\">二要素認証</p>") {
		t.Error("default product name not translated")
	}
}

func TestPluralsDatesDurations(t *testing.T) {
	s := mustLoad(t, "")
	en, ja := s.cats["en"], s.cats["ja"]
	for _, c := range []struct {
		c    *catalog
		key  string
		args []any
		want string
	}{
		{en, "settings.others.signed_in", []any{"count", 1}, "You are signed in with two-factor in 1 other browser."},
		{en, "settings.others.signed_in", []any{"count", 2}, "You are signed in with two-factor in 2 other browsers."},
		{en, "settings.others.signed_in", []any{"count", 0}, "You are signed in with two-factor in 0 other browsers."},
		{ja, "settings.others.signed_in", []any{"count", 1}, "ほかに1件のブラウザで、二要素認証済みのサインイン状態が続いています。"},
		{ja, "settings.others.signed_in", []any{"count", 2}, "ほかに2件のブラウザで、二要素認証済みのサインイン状態が続いています。"},
		{en, "settings.status.recovery_left", []any{"left", 8, "count", 10}, "8 of 10 recovery codes left."},
		{en, "settings.status.recovery_left", []any{"left", 1, "count", 1}, "1 of 1 recovery code left."},
		{ja, "settings.status.recovery_left", []any{"left", 8, "count", 10}, "リカバリーコードは10個中8個が未使用です。"},
		{en, "settings.done.devices_removed", []any{"count", 1}, "<strong>1 trusted device removed.</strong> It asks for a code the next time it is used."},
		{en, "settings.done.devices_removed", []any{"count", 3}, "<strong>3 trusted devices removed.</strong> They ask for a code the next time they are used."},
		{ja, "settings.done.devices_removed", []any{"count", 3}, "<strong>信頼済みデバイスを3件削除しました。</strong>次に使用するときに確認コードが求められます。"},
		{en, "settings.done.signed_out_others", []any{"count", 1}, "<strong>Signed out of 1 other browser.</strong> It needs a code again, unless it is a trusted device."},
		{en, "layout.signed_in_as", []any{"user", "<b>&"}, "Signed in as <strong>&lt;b&gt;&amp;</strong>"},
	} {
		got, err := c.c.format(c.key, c.args, true)
		if err != nil || got != c.want {
			t.Errorf("%s %s %v = %q, %v; want %q", c.c.name, c.key, c.args, got, err, c.want)
		}
	}

	for _, c := range []struct {
		d      time.Duration
		en, ja string
	}{
		{0, "1 minute", "1分"},
		{time.Second, "1 minute", "1分"},
		{time.Minute, "1 minute", "1分"},
		{61 * time.Second, "2 minutes", "2分"},
		{15 * time.Minute, "15 minutes", "15分"},
		{90 * time.Minute, "90 minutes", "90分"},
		{time.Hour, "1 hour", "1時間"},
		{12 * time.Hour, "12 hours", "12時間"},
		{150 * time.Minute, "3 hours", "3時間"},
		{24 * time.Hour, "1 day", "1日間"},
		{30 * 24 * time.Hour, "30 days", "30日間"},
		{7*24*time.Hour + 1, "7 days", "7日間"},
		{36 * time.Hour, "36 hours", "36時間"},
	} {
		if got := en.span(c.d); got != c.en {
			t.Errorf("en span(%v) = %q, want %q", c.d, got, c.en)
		}
		if got := ja.span(c.d); got != c.ja {
			t.Errorf("ja span(%v) = %q, want %q", c.d, got, c.ja)
		}
	}

	when := time.Date(2025, 3, 4, 15, 4, 0, 0, time.FixedZone("JST", 9*3600))
	for _, c := range []struct {
		got, want string
	}{
		{en.date(when), "4 March 2025"},
		{en.datetime(when), "4 Mar 2025, 06:04 UTC"},
		{en.clock(when), "06:04 UTC"},
		{ja.date(when), "2025年3月4日"},
		{ja.datetime(when), "2025年3月4日 06:04 UTC"},
		{ja.clock(when), "06:04 UTC"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}

	// The same through the pages.
	d := full(PageSettings)
	d.Lang = "ja"
	out := render(t, s, PageSettings, d)
	for _, want := range []string{
		"二要素認証は2025年2月2日から<strong>有効</strong>です。",
		"リカバリーコードは10個中7個が未使用です。",
		"このセッションは2025年3月4日 14:04 UTCに認証アプリの確認コードで確認済みです。",
		"<strong>Windows の Chrome</strong>（このデバイス）",
		"2025年3月2日 15:04 UTCに 192.0.2.1 から信頼済みに設定。最終使用：2025年3月4日 14:04 UTC。2025年4月1日まで信頼済み。",
		"<strong>不明なブラウザ</strong>",
		`aria-label="Windows の Chrome（このデバイス）を削除"`,
		"ほかに2件のブラウザで",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("Japanese settings page lacks %q", want)
		}
	}
}

// TestMatch: the language follows Accept-Language and its q-values;
// anything without a catalog gets English.
func TestMatch(t *testing.T) {
	s := mustLoad(t, "")
	for accept, want := range map[string]string{
		"":                                    "en",
		"ja":                                  "ja",
		"ja-JP":                               "ja",
		"ja-JP,ja;q=0.9,en-US;q=0.8,en;q=0.7": "ja",
		"en-US,en;q=0.9,ja;q=0.8":             "en",
		"en;q=0.3, ja;q=0.9":                  "ja",
		"de;q=0.9, ja;q=0.1, en;q=0.5":        "en",
		"fr-FR, ja;q=0.5":                     "ja",
		"fr-FR":                               "en",
		"zh-Hant-TW, ko":                      "en",
		"ja;q=0":                              "en",
		"*":                                   "en",
		"en-GB":                               "en",
		"%%% not a header":                    "en",
		strings.Repeat("x-", 2000):            "en",
	} {
		if got := s.Match(accept); got != want {
			t.Errorf("Match(%q) = %q, want %q", accept, got, want)
		}
	}
	for tag, want := range map[string]string{"ja": "ja", "JA": "ja", "ja-JP": "ja", "en": "en", "en-GB": "en", "fr": "", "klingon!": "", "": ""} {
		got, ok := s.Language(tag)
		if got != want || ok != (want != "") {
			t.Errorf("Language(%q) = %q, %v; want %q", tag, got, ok, want)
		}
		got, ok = EmbeddedLanguage(tag)
		if got != want || ok != (want != "") {
			t.Errorf("EmbeddedLanguage(%q) = %q, %v; want %q", tag, got, ok, want)
		}
	}
	// An unknown Data.Lang renders English.
	if out := render(t, s, PageLogout, Data{Lang: "fr"}); !strings.Contains(out, `<html lang="en">`) {
		t.Error("unknown Lang not rendered in English")
	}
}

// TestOperatorLocales: a templates directory adds a language (partial:
// the rest falls back to English) and replaces single messages of others.
func TestOperatorLocales(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "locales"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "locales/de.json", `{
		"challenge.heading": "Code eingeben",
		"challenge.remember": "Dieses Gerät {duration} lang merken",
		"duration.days": {"one": "{count} Tag", "other": "{count} Tage"},
		"format.date": "02.01.2006"
	}`)
	writeFile(t, dir, "locales/ja.json", `{"challenge.submit": "次へ"}`)
	writeFile(t, dir, "locales/en.json", `{"challenge.submit": "Continue", "custom.note": "Call <strong>{phone}</strong> for help."}`)
	writeFile(t, dir, "challenge.html", `{{define "heading"}}{{t "challenge.heading"}}{{end}}
{{define "content"}}<form method="post" action="{{.Prefix}}/challenge">{{template "hidden" .}}<label for="code">{{t "challenge.code_label"}}</label><input id="code" name="code">
{{with .Challenge}}{{t "challenge.remember" "duration" (span .TrustDevice)}}{{end}}<button type="submit">{{t "challenge.submit"}}</button></form>
<p>{{t "custom.note" "phone" "+49 30 1234"}}</p>{{end}}`)
	s := mustLoad(t, dir)
	if got := s.Languages(); !slices.Equal(got, []string{"en", "de", "ja"}) && !slices.Equal(got, []string{"en", "ja", "de"}) {
		t.Fatalf("Languages() = %v", got)
	}
	if got := s.Match("de-DE,de;q=0.9"); got != "de" {
		t.Fatalf("Match(de-DE) = %q", got)
	}
	d := full(PageChallenge)
	d.Lang = "de"
	out := render(t, s, PageChallenge, d)
	for _, want := range []string{
		`<html lang="de">`, "<h1>Code eingeben</h1>", "Dieses Gerät 30 Tage lang merken",
		"Code from your authenticator app", // not translated: English
		"<button type=\"submit\">Continue</button>", "Call <strong>+49 30 1234</strong> for help.",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("German page lacks %q:\n%s", want, out)
		}
	}
	if got := s.cats["de"].span(24 * time.Hour); got != "1 Tag" {
		t.Errorf("German span(24h) = %q", got)
	}
	if got := s.cats["de"].span(2 * time.Hour); got != "2 hours" {
		t.Errorf("German span(2h) = %q (English fallback)", got)
	}
	d.Lang = "ja"
	if out := render(t, s, PageChallenge, d); !strings.Contains(out, "<button type=\"submit\">次へ</button>") || !strings.Contains(out, "<h1>確認コードを入力してください</h1>") {
		t.Error("Japanese message not replaced, or the others lost")
	}
	// Other pages keep the embedded text, in the new language too.
	d = full(PageSettings)
	d.Lang = "de"
	if out := render(t, s, PageSettings, d); !strings.Contains(out, "since 02.02.2025") {
		t.Error("German date format not used on the settings page")
	}

	for _, c := range []struct{ file, text, want string }{
		{"locales/de.json", `{"challenge.headng": "x"}`, "challenge.headng: no such key in the English catalog"},
		{"locales/de.json", `{"challenge.heading": "x {user}"}`, "uses {user}, which the English message does not have"},
		{"locales/de.json", `{"challenge.heading": "<a href=\"https://evil.example\">x</a>"}`, `markup <a href="https://evil.example"> is not allowed`},
		{"locales/de.json", `{"challenge.heading": "<script>alert(1)</script>"}`, "markup <script> is not allowed"},
		{"locales/de.json", `{"challenge.heading": "a < b"}`, "a '<' that starts no tag"},
		{"locales/de.json", `{"challenge.heading": ["x"]}`, "must be a string or an object of plural forms"},
		{"locales/de.json", `{"duration.days": {"one": "Tag"}}`, `plural forms must include "other"`},
		{"locales/de.json", `{"duration.days": {"single": "x", "other": "y"}}`, `unknown plural form "single"`},
		{"locales/de.json", `{"challenge.heading": "x",}`, "de.json"},
		{"locales/de.json", `{"Challenge Heading": "x"}`, "is not a key"},
		{"locales/no such tag.json", `{}`, "the file name must be a language tag"},
		{"challenge.html", `{{define "heading"}}x{{end}}{{define "content"}}{{if .Problem}}{{t "challenge.no_such_key"}}{{end}}{{end}}`, `{{t "challenge.no_such_key"}}: no such message`},
		{"challenge.html", `{{define "heading"}}x{{end}}{{define "content"}}{{if false}}{{t "layout.signed_in_as"}}{{end}}{{end}}`, `does not pass "user"`},
		{"challenge.html", `{{define "heading"}}x{{end}}{{define "content"}}{{t "layout.signed_in_as" "user"}}{{end}}`, "name, value pairs"},
	} {
		dir := t.TempDir()
		os.Mkdir(filepath.Join(dir, "locales"), 0o755)
		p := writeFile(t, dir, c.file, c.text)
		_, err := Load(Options{Dir: dir})
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), p) {
			t.Errorf("%s %s: Load error %v, want one naming %s and %q", c.file, c.text, err, p, c.want)
		}
	}
	// A catalog whose date format is broken is caught at Load too.
	dir = t.TempDir()
	os.Mkdir(filepath.Join(dir, "locales"), 0o755)
	writeFile(t, dir, "locales/en.json", `{"duration.days": "{count} {unit}"}`)
	if _, err := Load(Options{Dir: dir}); err == nil || !strings.Contains(err.Error(), "{unit}") {
		t.Errorf("broken duration message accepted: %v", err)
	}
}

// TestAttributesArePlainText: a message with markup, used in an attribute
// (aria-label, alt), gives plain escaped text there; arguments are escaped
// everywhere.
func TestAttributesArePlainText(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "locales"), 0o755)
	writeFile(t, dir, "locales/en.json", `{
		"settings.devices.remove_label": "Remove <strong>{device}</strong> now",
		"enroll.qr_alt": "<em>QR</em> code for \"your\" app"
	}`)
	s := mustLoad(t, dir)
	d := full(PageSettings)
	d.Settings.Devices[1].Browser = `"><svg onload=alert(1)>`
	out := render(t, s, PageSettings, d)
	label := attrs(tag(out, `value="dev-2"`+">\n"+`<button`))
	if label == nil {
		t.Fatal("no remove button")
	}
	btn := tag(out[strings.Index(out, `value="dev-2"`):], `aria-label=`)
	a := attrs(btn)
	if want := `Remove "><svg onload=alert(1)> now`; a["aria-label"] != want {
		t.Errorf("aria-label = %q, want %q (in %s)", a["aria-label"], want, btn)
	}
	if strings.Contains(btn, "<strong") || strings.Contains(btn, "<svg") {
		t.Errorf("markup in an attribute: %s", btn)
	}
	out = render(t, s, PageEnroll, full(PageEnroll))
	img := tag(out, `<img`)
	if a := attrs(img); a["alt"] != `QR code for "your" app` {
		t.Errorf("alt = %q in %s", a["alt"], img)
	}
}

func TestRecoveryFile(t *testing.T) {
	s := mustLoad(t, "")
	codes := []string{"abcde-12345", "fghij-67890"}
	created := time.Date(2025, 3, 4, 15, 4, 0, 0, time.UTC)
	for lang, want := range map[string]string{
		"en": "Recovery codes for example.com (alice)\nCreated 4 Mar 2025, 15:04 UTC\n\nabcde-12345\nfghij-67890\n\nEach code works once. Keep them somewhere safe, away from your phone.\n",
		"ja": "example.com（alice）のリカバリーコード\n作成日時：2025年3月4日 15:04 UTC\n\nabcde-12345\nfghij-67890\n\n各コードは1回だけ使用できます。スマートフォンとは別の安全な場所に保管してください。\n",
		"":   "Recovery codes for example.com (alice)\nCreated 4 Mar 2025, 15:04 UTC\n\nabcde-12345\nfghij-67890\n\nEach code works once. Keep them somewhere safe, away from your phone.\n",
	} {
		if got := s.RecoveryFile(lang, "example.com", "alice", codes, created); got != want {
			t.Errorf("RecoveryFile(%q) = %q, want %q", lang, got, want)
		}
	}
	// Plain text: the user name is not escaped, markup is removed.
	if got := s.RecoveryFile("en", "a&b", "<x>", nil, created); !strings.HasPrefix(got, "Recovery codes for a&b (<x>)\n") {
		t.Errorf("RecoveryFile escaped: %q", got)
	}
}

// TestMessageErrors: misuse of t fails rendering (and so Load), never
// shows a broken text.
func TestMessageErrors(t *testing.T) {
	s := mustLoad(t, "")
	en := s.cats["en"]
	for _, c := range []struct {
		key  string
		args []any
		want string
	}{
		{"no.such", nil, "no message"},
		{"layout.signed_in_as", nil, "no value for {user}"},
		{"layout.signed_in_as", []any{"user"}, "pairs"},
		{"layout.signed_in_as", []any{1, "x"}, "not a string"},
		{"layout.signed_in_as", []any{"user", 1.5}, "unsupported type float64"},
		{"duration.days", []any{"days", 2}, "need a count"},
		{"duration.days", []any{"count", "2"}, "count must be a whole number"},
	} {
		if _, err := en.format(c.key, c.args, true); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("format(%s, %v) error %v, want %q", c.key, c.args, err, c.want)
		}
	}
	if language.Make("ja") != s.cats["ja"].tag {
		t.Error("ja catalog has the wrong tag")
	}
}
