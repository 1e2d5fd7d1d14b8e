package caddymodule

import (
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// getLang is a GET from a browser whose Accept-Language is accept.
func (b *browser) getLang(path, accept string) response {
	b.t.Helper()
	h := http.Header{}
	if accept != "" {
		h.Set("Accept-Language", accept)
	}
	return b.do("GET", path, nil, h)
}

// varies reports whether r says it varies with the header name.
func varies(r response, name string) bool {
	for _, v := range r.Header.Values("Vary") {
		for _, f := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(f), name) {
				return true
			}
		}
	}
	return false
}

// TestPagesFollowAcceptLanguage: the pages speak the browser's language
// among the catalogs (q-values respected), English otherwise, and say that
// they vary with Accept-Language. A Japanese user enrolls and gets the
// recovery codes and their download file in Japanese; the form fields
// keep their names.
func TestPagesFollowAcceptLanguage(t *testing.T) {
	s := startSite(t, siteOptions{})
	b := s.browser("alice")
	for _, c := range []struct{ accept, lang, heading string }{
		{"ja", "ja", "二要素認証を設定する"},
		{"ja-JP,ja;q=0.9,en-US;q=0.8,en;q=0.7", "ja", "二要素認証を設定する"},
		{"en;q=0.2, ja;q=0.8", "ja", "二要素認証を設定する"},
		{"en-US,en;q=0.9,ja;q=0.5", "en", "Set up two-factor authentication"},
		{"fr-FR,de;q=0.8", "en", "Set up two-factor authentication"},
		{"", "en", "Set up two-factor authentication"},
	} {
		r := b.getLang("/.2fa/enroll?rd=%2Fapp", c.accept).expect(t, http.StatusOK)
		r.contains(t, `<html lang="`+c.lang+`">`, "<h1>"+c.heading+"</h1>", `name="code"`, `id="code"`, `name="csrf_token"`, `name="rd"`)
		if !varies(r, "Accept-Language") {
			t.Errorf("Accept-Language %q: no Vary: Accept-Language (%v)", c.accept, r.Header.Values("Vary"))
		}
	}

	// Error pages too.
	b.getLang("/.2fa/nothing-here", "ja").expect(t, http.StatusNotFound).contains(t, `<html lang="ja">`, "ページが見つかりません", "エラー 404")

	// Enrollment in Japanese, end to end.
	page := b.getLang("/.2fa/enroll?rd=%2Fapp", "ja").expect(t, http.StatusOK)
	key := secretOf(t, enrollmentURI(t, page))
	form := url.Values{"csrf_token": {csrfOf(t, page)}, "code": {"12"}, "rd": {"/app"}}
	post := func(form url.Values) response {
		return b.do("POST", "/.2fa/enroll", strings.NewReader(form.Encode()), http.Header{
			"Content-Type":    {"application/x-www-form-urlencoded"},
			"Origin":          {s.base},
			"Sec-Fetch-Site":  {"same-origin"},
			"Accept-Language": {"ja"},
		})
	}
	post(form).expect(t, http.StatusBadRequest).contains(t, "コードの形式が正しくありません。", `aria-invalid="true"`)
	form.Set("code", totp(key, testNow()))
	r := post(form).expect(t, http.StatusOK).contains(t, "<h1>リカバリーコードを保存してください</h1>", "テキストファイルでダウンロード")
	m := regexp.MustCompile(`href="data:text/plain;charset=utf-8,([^"]+)"`).FindStringSubmatch(r.body)
	if m == nil {
		t.Fatalf("no download link:\n%s", trim(r.body))
	}
	file, err := url.PathUnescape(strings.ReplaceAll(m[1], "&#43;", "+"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(file, "Example Corp（alice）のリカバリーコード\n作成日時：") || !strings.Contains(file, "各コードは1回だけ使用できます。") {
		t.Errorf("download file not in Japanese:\n%s", file)
	}
	for _, code := range uniq(reRecovery.FindAllString(r.body, -1)) {
		if !strings.Contains(file, code+"\n") {
			t.Errorf("download file lacks %s", code)
		}
	}
	b.get("/app").expect(t, http.StatusOK).contains(t, "user=alice method=totp")
}

// TestLangOption: `lang ja` shows every browser Japanese pages, whatever
// it asks for, and then the pages do not vary.
func TestLangOption(t *testing.T) {
	s := startSite(t, siteOptions{gate: "lang ja"})
	b := s.browser("alice")
	for _, accept := range []string{"en-US,en;q=0.9", "", "fr"} {
		r := b.getLang("/.2fa/enroll?rd=%2Fapp", accept).expect(t, http.StatusOK).contains(t, `<html lang="ja">`, "<h1>二要素認証を設定する</h1>")
		if varies(r, "Accept-Language") {
			t.Errorf("forced language, yet Vary: %v", r.Header.Values("Vary"))
		}
	}
}

// TestSettingsUnknownBrowserTranslated: the device list names a browser
// it does not recognise in the page's language.
func TestSettingsUnknownBrowserTranslated(t *testing.T) {
	s := startSite(t, siteOptions{})
	b := s.browser("alice")
	key, _ := b.enroll()
	advance(30 * time.Second)
	trusted, _ := trustAs(t, s, "alice", key, "curl/8.5.0")
	trusted.getLang("/.2fa/settings", "ja").expect(t, http.StatusOK).contains(t, "<strong>不明なブラウザ</strong>（このデバイス）", "信頼済みデバイス")
	trusted.getLang("/.2fa/settings", "en").expect(t, http.StatusOK).contains(t, "<strong>Unknown browser</strong> (this device)")
}

// TestOperatorLocale: a templates directory with locales/de.json adds
// German: browsers that ask for it get it (English where the file is
// silent), and `lang de` is accepted because of it.
func TestOperatorLocale(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "locales"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "locales", "de.json"), []byte(`{
		"enroll.heading": "Zwei-Faktor-Authentifizierung einrichten",
		"layout.product": "Zwei-Faktor-Authentifizierung"
	}`), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startSite(t, siteOptions{gate: "templates " + dir})
	b := s.browser("alice")
	b.getLang("/.2fa/enroll", "de-DE,de;q=0.9,en;q=0.5").expect(t, http.StatusOK).contains(t,
		`<html lang="de">`, "<h1>Zwei-Faktor-Authentifizierung einrichten</h1>", "Code from the app")
	b.getLang("/.2fa/enroll", "ja").expect(t, http.StatusOK).contains(t, `<html lang="ja">`)

	s = startSite(t, siteOptions{gate: "templates " + dir + "\n\t\tlang de"})
	s.browser("alice").getLang("/.2fa/enroll", "ja").expect(t, http.StatusOK).contains(t, `<html lang="de">`)
}
