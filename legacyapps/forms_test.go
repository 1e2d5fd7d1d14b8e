//go:build linux

package legacyapps

import (
	"html"
	"net/url"
	"regexp"
	"testing"
)

var (
	reForm     = regexp.MustCompile(`(?s)<form[^>]*>.*?</form>`)
	reInput    = regexp.MustCompile(`<input[^>]*>`)
	reAttrName = regexp.MustCompile(`\sname=["']([^"']*)["']`)
	reAttrVal  = regexp.MustCompile(`\svalue=["']([^"']*)["']`)
	reAttrType = regexp.MustCompile(`\stype=["']([^"']*)["']`)
	reAction   = regexp.MustCompile(`^<form[^>]*\saction=["']([^"']*)["']`)
)

// loginForm finds the first form in a page with an input named field and
// returns its action (unescaped) and its inputs' values as a browser
// would submit them (checkboxes and buttons left out).
func loginForm(t *testing.T, r response, field string) (action string, form url.Values) {
	t.Helper()
	for _, f := range reForm.FindAllString(r.body, -1) {
		values := url.Values{}
		found := false
		for _, in := range reInput.FindAllString(f, -1) {
			n := reAttrName.FindStringSubmatch(in)
			if n == nil {
				continue
			}
			name := html.UnescapeString(n[1])
			if name == field {
				found = true
			}
			typ := ""
			if m := reAttrType.FindStringSubmatch(in); m != nil {
				typ = m[1]
			}
			if typ == "checkbox" || typ == "submit" || typ == "radio" {
				continue
			}
			v := ""
			if m := reAttrVal.FindStringSubmatch(in); m != nil {
				v = html.UnescapeString(m[1])
			}
			values.Set(name, v)
		}
		if found {
			a := ""
			if m := reAction.FindStringSubmatch(f); m != nil {
				a = html.UnescapeString(m[1])
			}
			return a, values
		}
	}
	t.Fatalf("%s: no form with %q:\n%s", r.Request.URL, field, trim(r.body))
	return "", nil
}
