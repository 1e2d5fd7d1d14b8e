package caddymodule

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const (
	ctForm = "application/x-www-form-urlencoded"
	ctJSON = "application/json"
)

// outcome of a login body: a user, no field, or one kind of refusal.
type lbWant struct {
	user      string // the user read, if no error
	absent    bool   // present=false: an ordinary request
	ambiguous bool   // errAmbiguousLogin
	err       error  // another error (errors.Is)
}

var (
	wantAbsent    = lbWant{absent: true}
	wantAmbiguous = lbWant{ambiguous: true}
)

func wantUser(u string) lbWant { return lbWant{user: u} }

type lbCase struct {
	name  string
	ct    string
	body  string
	query string
	field string // "username" when empty
	want  lbWant
}

// multipartBody builds a multipart body from raw part headers and values.
func multipartBody(boundary string, parts ...[2]string) string {
	var b strings.Builder
	for _, p := range parts {
		fmt.Fprintf(&b, "--%s\r\n%s\r\n\r\n%s\r\n", boundary, p[0], p[1])
	}
	fmt.Fprintf(&b, "--%s--\r\n", boundary)
	return b.String()
}

func mpCT(boundary string) string { return "multipart/form-data; boundary=" + boundary }

func cd(name string) string { return `Content-Disposition: form-data; name="` + name + `"` }

var loginBodyCases = []lbCase{
	// Plain forms.
	{name: "form", ct: ctForm, body: "username=alice&password=secret", want: wantUser("alice")},
	{name: "form with charset", ct: ctForm + "; charset=UTF-8", body: "username=alice&password=x", want: wantUser("alice")},
	{name: "form plus decoding", ct: ctForm, body: "username=alice+smith&password=x", want: wantUser("alice smith")},
	{name: "form percent20 decoding", ct: ctForm, body: "username=alice%20smith&password=x", want: wantUser("alice smith")},
	{name: "form value trimmed", ct: ctForm, body: "username=+alice+&password=x", want: wantUser("alice")},
	{name: "form utf8 value", ct: ctForm, body: "username=j%C3%B6rg&password=x", want: wantUser("jörg")},
	{name: "form no user field", ct: ctForm, body: "password=x&action=edit", want: wantAbsent},
	{name: "form other field contains name", ct: ctForm, body: "note=username%3Dalice&myusername=bob", want: wantAbsent},
	{name: "form name only after decoding", ct: ctForm, body: "user%6Eame=alice&password=x", want: wantUser("alice")},
	{name: "form double-encoded name is another field", ct: ctForm, body: "user%256Eame=alice", want: wantAbsent},
	{name: "form empty value", ct: ctForm, body: "username=&password=x", want: lbWant{err: errEmptyLoginUser}},
	{name: "form field without =", ct: ctForm, body: "username&password=x", want: lbWant{err: errEmptyLoginUser}},
	{name: "form control character", ct: ctForm, body: "username=ali%0Ace&password=x", want: lbWant{err: errBadLoginUser}},
	{name: "form NUL in value", ct: ctForm, body: "username=alice%00bob", want: lbWant{err: errBadLoginUser}},
	{name: "form invalid utf8 value", ct: ctForm, body: "username=al%FFice", want: wantAmbiguous},
	{name: "form name too long", ct: ctForm, body: "username=" + strings.Repeat("a", maxUserName+1), want: lbWant{err: errNameTooLong}},
	{name: "form name at the limit", ct: ctForm, body: "username=" + strings.Repeat("a", maxUserName), want: wantUser(strings.Repeat("a", maxUserName))},

	// The examples and PHP's name mangling.
	{name: "issue: leading space (%20)", ct: ctForm, body: "username=nobody-1&%20username=alice", want: wantAmbiguous},
	{name: "issue: NUL cuts the name", ct: ctForm, body: "username=nobody-2&username%00x=alice", want: wantAmbiguous},
	{name: "leading space only", ct: ctForm, body: "%20username=alice", want: wantAmbiguous},
	{name: "leading plus only", ct: ctForm, body: "+username=alice", want: wantAmbiguous},
	{name: "NUL only", ct: ctForm, body: "username%00x=alice", want: wantAmbiguous},
	{name: "duplicate", ct: ctForm, body: "username=alice&username=bob", want: wantAmbiguous},
	{name: "duplicate same value", ct: ctForm, body: "username=alice&username=alice", want: wantAmbiguous},
	{name: "dot becomes underscore", ct: ctForm, body: "user_name=x&user.name=alice", field: "user_name", want: wantAmbiguous},
	{name: "space becomes underscore", ct: ctForm, body: "user+name=alice", field: "user_name", want: wantAmbiguous},
	{name: "unmatched bracket becomes underscore", ct: ctForm, body: "user[name=alice", field: "user_name", want: wantAmbiguous},
	{name: "array of the field", ct: ctForm, body: "username[]=alice", want: wantAmbiguous},
	{name: "array key of the field", ct: ctForm, body: "username[x]=alice", want: wantAmbiguous},
	{name: "case variant", ct: ctForm, body: "USERNAME=alice", want: wantAmbiguous},
	{name: "case variant beside the field", ct: ctForm, body: "username=bob&Username=alice", want: wantAmbiguous},
	{name: "long s variant", ct: ctForm, body: "u%C5%BFername=alice", want: wantAmbiguous},
	{name: "trailing space variant", ct: ctForm, body: "username%20=alice", want: wantAmbiguous},
	{name: "bad escape in value", ct: ctForm, body: "username=al%zzice", want: wantAmbiguous},
	{name: "bad escape in name with PHP trailing junk", ct: ctForm, body: "login[username]%zz=alice", field: "login[username]", want: wantAmbiguous},
	{name: "semicolon in the user pair", ct: ctForm, body: "username=alice;username=bob", want: wantAmbiguous},
	{name: "semicolon hides a second pair", ct: ctForm, body: "a=1;username=alice&username=bob", want: wantAmbiguous},
	{name: "semicolon elsewhere", ct: ctForm, body: "username=alice&next=/a;b", want: wantUser("alice")},
	{name: "CRLF hides a pair", ct: ctForm, body: "a=1\r\nusername=alice", want: wantAmbiguous},
	{name: "field after PHP's max_input_vars", ct: ctForm, body: strings.Repeat("a=1&", maxFormVars) + "username=alice", want: wantAmbiguous},
	{name: "many fields before the field", ct: ctForm, body: strings.Repeat("a=1&", maxFormVars-1) + "username=alice", want: wantUser("alice")},
	{name: "non-utf8 charset", ct: ctForm + "; charset=ISO-8859-1", body: "username=alice", want: wantAmbiguous},
	{name: "non-utf8 _charset_ field", ct: ctForm, body: "_charset_=shift_jis&username=alice", want: wantAmbiguous},
	{name: "non-utf8 _charset_ in the query", ct: ctForm, query: "_charset_=iso-8859-1", body: "username=alice", want: wantAmbiguous},
	{name: "utf8 _charset_ field", ct: ctForm, body: "_charset_=UTF-8&username=alice", want: wantUser("alice")},
	{name: "non-utf8 charset without the field", ct: ctForm + "; charset=ISO-8859-1", body: "q=x", want: wantAbsent},
	{name: "JSON body sent as a form", ct: ctForm, body: `{"username":"alice"}`, want: wantAmbiguous},

	// PHP array names.
	{name: "array field", ct: ctForm, body: "login[server]=1&login[username]=alice&login[password]=x", field: "login[username]", want: wantUser("alice")},
	{name: "array field percent-encoded brackets", ct: ctForm, body: "login%5Busername%5D=alice", field: "login[username]", want: wantUser("alice")},
	{name: "array field twice", ct: ctForm, body: "login[username]=bob&login[username]=alice", field: "login[username]", want: wantAmbiguous},
	{name: "array field as array", ct: ctForm, body: "login[username][]=alice", field: "login[username]", want: wantAmbiguous},
	{name: "array field nested key", ct: ctForm, body: "login[username][x]=alice", field: "login[username]", want: wantAmbiguous},
	{name: "array field trailing junk", ct: ctForm, body: "login[username]=bob&login[username]x=alice", field: "login[username]", want: wantAmbiguous},
	{name: "array field base with dot", ct: ctForm, body: "login[username]=bob&login.[username]=alice", field: "login_[username]", want: wantAmbiguous},
	{name: "array field look-alike with dot", ct: ctForm, body: "login.username=alice", field: "login[username]", want: wantAbsent},
	{name: "array field space in key", ct: ctForm, body: "login[+username]=alice", field: "login[username]", want: wantAmbiguous},
	{name: "array field case in key", ct: ctForm, body: "login[USERNAME]=alice", field: "login[username]", want: wantAmbiguous},
	{name: "array field leading space", ct: ctForm, body: "+login[username]=alice", field: "login[username]", want: wantAmbiguous},
	{name: "array base as string", ct: ctForm, body: "login[username]=bob&login=alice", field: "login[username]", want: wantAmbiguous},
	{name: "array append is another key", ct: ctForm, body: "login[]=x&login[username]=alice", field: "login[username]", want: wantUser("alice")},
	{name: "array other keys", ct: ctForm, body: "login[user]=x&login[username2]=y&login[username]=alice", field: "login[username]", want: wantUser("alice")},
	{name: "plain field vs array form", ct: ctForm, body: "login[username]=alice", want: wantAbsent},

	// Query string.
	{name: "query only", ct: ctForm, body: "password=x", query: "username=alice", want: wantUser("alice")},
	{name: "query and body", ct: ctForm, body: "username=bob&password=x", query: "username=alice", want: wantAmbiguous},
	{name: "query look-alike and body", ct: ctForm, body: "username=bob", query: "user.name=x&%20username=alice", want: wantAmbiguous},
	{name: "query other fields", ct: ctForm, body: "username=alice", query: "page=login&do=login", want: wantUser("alice")},
	{name: "query with JSON body", ct: ctJSON, body: `{"username":"bob"}`, query: "username=alice", want: wantAmbiguous},
	{name: "GET query only no body", query: "title=Special:UserLogin&wpName=alice", field: "wpName", want: wantUser("alice")},

	// Content types.
	{name: "no content type, form-like body", body: "username=alice", want: wantAmbiguous},
	{name: "no content type, other body", body: "hello world", want: wantAbsent},
	{name: "text/plain form", ct: "text/plain", body: "username=alice\r\npassword=x\r\n", want: wantAmbiguous},
	{name: "text/plain form, field second", ct: "text/plain", body: "a=b\r\nusername=alice\r\n", want: wantAmbiguous},
	{name: "text/plain without the field", ct: "text/plain", body: "hello=world", want: wantAbsent},
	{name: "octet-stream with JSON", ct: "application/octet-stream", body: `{"USERNAME":"alice"}`, want: wantAmbiguous},
	{name: "xml without the field", ct: "application/xml", body: `<a>username</a>`, want: wantAbsent},
	{name: "unparseable type PHP reads as form", ct: ctForm + ", text/plain", body: "username=alice", want: wantAmbiguous},
	{name: "type with parameter garbage", ct: ctForm + "; =x", body: "username=alice", want: wantAmbiguous},
	{name: "type in capitals", ct: "Application/X-WWW-Form-Urlencoded", body: "username=alice", want: wantUser("alice")},
	{name: "empty body", ct: ctForm, body: "", want: wantAbsent},

	// JSON.
	{name: "json", ct: ctJSON, body: `{"username":"alice","password":"x"}`, want: wantUser("alice")},
	{name: "json suffix type", ct: "application/vnd.api+json", body: `{"username":"alice"}`, want: wantUser("alice")},
	{name: "json escaped key", ct: ctJSON, body: `{"user\u006eame":"alice"}`, want: wantUser("alice")},
	{name: "json escaped value", ct: ctJSON, body: `{"username":"\u0061lice"}`, want: wantUser("alice")},
	{name: "issue: json case variant", ct: ctJSON, body: `{"username":"nobody-1","USERNAME":"alice","password":"x"}`, want: wantAmbiguous},
	{name: "issue: json long s", ct: ctJSON, body: `{"u\u017fername":"alice"}`, want: wantAmbiguous},
	{name: "json long s beside the key", ct: ctJSON, body: `{"username":"nobody","u\u017fername":"alice"}`, want: wantAmbiguous},
	{name: "json kelvin sign", ct: ctJSON, body: `{"\u212aey":"alice"}`, field: "key", want: wantAmbiguous},
	{name: "json dotless i", ct: ctJSON, body: `{"logın":"alice"}`, field: "login", want: wantAmbiguous},
	{name: "json duplicate", ct: ctJSON, body: `{"username":"bob","username":"alice"}`, want: wantAmbiguous},
	{name: "json duplicate after unescaping", ct: ctJSON, body: `{"username":"bob","user\u006eame":"alice"}`, want: wantAmbiguous},
	{name: "json no field", ct: ctJSON, body: `{"user":"alice"}`, want: wantAbsent},
	{name: "json top-level array", ct: ctJSON, body: `[{"username":"alice"}]`, want: wantAbsent},
	{name: "json top-level string", ct: ctJSON, body: `"username"`, want: wantAbsent},
	{name: "json number user", ct: ctJSON, body: `{"username":123}`, want: wantAmbiguous},
	{name: "json null user", ct: ctJSON, body: `{"username":null}`, want: wantAmbiguous},
	{name: "json array user", ct: ctJSON, body: `{"username":["alice"]}`, want: wantAmbiguous},
	{name: "json empty user", ct: ctJSON, body: `{"username":""}`, want: lbWant{err: errEmptyLoginUser}},
	{name: "json control character", ct: ctJSON, body: `{"username":"ali\nce"}`, want: lbWant{err: errBadLoginUser}},
	{name: "json nested", ct: ctJSON, body: `{"user":{"email":"alice@example.com"}}`, field: "user.email", want: wantUser("alice@example.com")},
	{name: "json nested case variant", ct: ctJSON, body: `{"user":{"email":"bob"},"User":{"email":"alice"}}`, field: "user.email", want: wantAmbiguous},
	{name: "json nested inner case variant", ct: ctJSON, body: `{"user":{"email":"bob","EMAIL":"alice"}}`, field: "user.email", want: wantAmbiguous},
	{name: "json nested parent is a string", ct: ctJSON, body: `{"user":"alice"}`, field: "user.email", want: wantAmbiguous},
	{name: "json nested parent is a number", ct: ctJSON, body: `{"user":1}`, field: "user.email", want: wantAbsent},
	{name: "json array field name", ct: ctJSON, body: `{"login":{"username":"alice"}}`, field: "login[username]", want: wantUser("alice")},
	{name: "json invalid", ct: ctJSON, body: `{"username":"alice"`, want: lbWant{err: errMalformedLogin}},
	{name: "json trailing data", ct: ctJSON, body: `{"username":"bob"}{"username":"alice"}`, want: lbWant{err: errMalformedLogin}},
	{name: "json NaN (Python reads it)", ct: ctJSON, body: `{"username":"alice","n":NaN}`, want: lbWant{err: errMalformedLogin}},
	{name: "json invalid utf8", ct: ctJSON, body: "{\"username\":\"al\xffice\"}", want: lbWant{err: errMalformedLogin}},
	{name: "json BOM", ct: ctJSON, body: "\xef\xbb\xbf{\"username\":\"alice\"}", want: lbWant{err: errMalformedLogin}},
	{name: "json too deep", ct: ctJSON, body: `{"a":` + strings.Repeat("[", maxJSONDepth+1) + strings.Repeat("]", maxJSONDepth+1) + `,"username":"alice"}`, want: lbWant{err: errMalformedLogin}},
	{name: "json deep but bounded", ct: ctJSON, body: `{"a":` + strings.Repeat("[", maxJSONDepth-2) + strings.Repeat("]", maxJSONDepth-2) + `,"username":"alice"}`, want: wantUser("alice")},
	{name: "json non-utf8 charset", ct: ctJSON + "; charset=utf-16", body: `{"username":"alice"}`, want: wantAmbiguous},
	{name: "json with a form pair inside", ct: ctJSON, body: `{"username":"bob","x":"&username=alice&"}`, want: wantAmbiguous},
	{name: "json with ampersands elsewhere", ct: ctJSON, body: `{"username":"alice","x":"a&b=c"}`, want: wantUser("alice")},

	// Multipart.
	{name: "multipart", ct: mpCT("XyZ"), body: multipartBody("XyZ", [2]string{cd("username"), "alice"}, [2]string{cd("password"), "x"}), want: wantUser("alice")},
	{name: "multipart no field", ct: mpCT("XyZ"), body: multipartBody("XyZ", [2]string{cd("file") + `; filename="a.txt"` + "\r\nContent-Type: text/plain", "username=alice"}), want: wantAbsent},
	{name: "multipart duplicate", ct: mpCT("XyZ"), body: multipartBody("XyZ", [2]string{cd("username"), "bob"}, [2]string{cd("username"), "alice"}), want: wantAmbiguous},
	{name: "multipart leading space", ct: mpCT("XyZ"), body: multipartBody("XyZ", [2]string{cd("username"), "bob"}, [2]string{cd(" username"), "alice"}), want: wantAmbiguous},
	{name: "multipart file named like the field", ct: mpCT("XyZ"), body: multipartBody("XyZ", [2]string{cd("username") + `; filename="a"`, "alice"}), want: wantAmbiguous},
	{name: "multipart RFC 2231 name", ct: mpCT("XyZ"), body: multipartBody("XyZ", [2]string{`Content-Disposition: form-data; name*=UTF-8''user%6Eame`, "alice"}), want: wantAmbiguous},
	{name: "multipart unquoted name", ct: mpCT("XyZ"), body: multipartBody("XyZ", [2]string{`Content-Disposition: form-data; name=username`, "alice"}), want: wantAmbiguous},
	{name: "multipart quoted-printable", ct: mpCT("XyZ"), body: multipartBody("XyZ", [2]string{cd("username") + "\r\nContent-Transfer-Encoding: quoted-printable", "=61lice"}), want: wantAmbiguous},
	{name: "multipart part charset", ct: mpCT("XyZ"), body: multipartBody("XyZ", [2]string{cd("username") + "\r\nContent-Type: text/plain; charset=iso-8859-1", "alice"}), want: wantAmbiguous},
	{name: "multipart _charset_", ct: mpCT("XyZ"), body: multipartBody("XyZ", [2]string{cd("_charset_"), "shift_jis"}, [2]string{cd("username"), "alice"}), want: wantAmbiguous},
	{name: "multipart array field", ct: mpCT("XyZ"), body: multipartBody("XyZ", [2]string{cd("login[username]"), "alice"}), field: "login[username]", want: wantUser("alice")},
	{name: "multipart bare-LF boundary smuggles a part", ct: mpCT("XyZ"), body: multipartBody("XyZ", [2]string{cd("username"), "bob\n--XyZ\r\n" + cd("username") + "\r\n\r\nalice"}), want: wantAmbiguous},
	{name: "multipart part in the epilogue", ct: mpCT("XyZ"), body: multipartBody("XyZ", [2]string{cd("username"), "bob"}) + "--XyZ\r\n" + cd("username") + "\r\n\r\nalice\r\n--XyZ--\r\n", want: wantAmbiguous},
	{name: "multipart two boundary params", ct: "multipart/form-data; xboundary=AAA; boundary=XyZ", body: multipartBody("XyZ", [2]string{cd("username"), "alice"}), want: wantAmbiguous},
	{name: "multipart without boundary", ct: "multipart/form-data", body: "--x\r\n", want: lbWant{err: errMalformedLogin}},
	{name: "multipart truncated", ct: mpCT("XyZ"), body: "--XyZ\r\n" + cd("username") + "\r\n\r\nalice", want: lbWant{err: errMalformedLogin}},
	{name: "multipart empty user", ct: mpCT("XyZ"), body: multipartBody("XyZ", [2]string{cd("username"), ""}), want: lbWant{err: errEmptyLoginUser}},

	// Real applications' login forms.
	{name: "phpMyAdmin", ct: ctForm, query: "route=/", body: "route=%2F&set_session=abc123&token=4f5e&pma_username=alice&pma_password=p%26ss&server=1", field: "pma_username", want: wantUser("alice")},
	{name: "phpMyAdmin look-alike", ct: ctForm, body: "pma_username=nobody&pma.username=alice&pma_password=x&server=1", field: "pma_username", want: wantAmbiguous},
	{name: "WordPress", ct: ctForm, body: "log=alice&pwd=s3cret&rememberme=forever&wp-submit=Log+In&redirect_to=https%3A%2F%2Fexample.com%2Fwp-admin%2F&testcookie=1", field: "log", want: wantUser("alice")},
	{name: "WordPress look-alike", ct: ctForm, body: "log=nobody&+log=alice&pwd=x", field: "log", want: wantAmbiguous},
	{name: "MediaWiki", ct: ctForm, query: "title=Special:UserLogin&returnto=Main+Page", body: "wpName=Alice&wpPassword=x&wpLoginToken=abc%2B%5C&wpRemember=1&authAction=login&title=Special%3AUserLogin&force=&wploginattempt=Log+in", field: "wpName", want: wantUser("Alice")},
	{name: "MediaWiki case variant", ct: ctForm, body: "wpName=nobody&wpname=Alice&wpPassword=x", field: "wpName", want: wantAmbiguous},
}

func checkLoginOutcome(t *testing.T, user string, present bool, err error, want lbWant) {
	t.Helper()
	switch {
	case want.absent:
		if present || err != nil {
			t.Fatalf("want an ordinary request, got user=%q present=%v err=%v", user, present, err)
		}
	case want.ambiguous:
		if !errors.Is(err, errAmbiguousLogin) || !present {
			t.Fatalf("want errAmbiguousLogin, got user=%q present=%v err=%v", user, present, err)
		}
	case want.err != nil:
		if !errors.Is(err, want.err) || errors.Is(err, errAmbiguousLogin) || !present {
			t.Fatalf("want %v, got user=%q present=%v err=%v", want.err, user, present, err)
		}
	default:
		if err != nil || !present || user != want.user {
			t.Fatalf("want user %q, got user=%q present=%v err=%v", want.user, user, present, err)
		}
	}
}

func TestParseLoginUser(t *testing.T) {
	for _, c := range loginBodyCases {
		t.Run(c.name, func(t *testing.T) {
			field := c.field
			if field == "" {
				field = "username"
			}
			user, present, err := parseLoginUser(c.ct, []byte(c.body), c.query, field)
			checkLoginOutcome(t, user, present, err, c.want)
		})
	}
}

func TestLoginBodyFieldNames(t *testing.T) {
	for _, ok := range []string{"username", "log", "wpName", "pma_username", "login[username]", "a[b][c]", "user.email", "user-name"} {
		if err := checkLoginField(ok); err != nil {
			t.Errorf("checkLoginField(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"", " username", "user name ", "a=b", "a&b", "a;b", "a%41", "a+b", `a"b`, "a\x00b", "login[]", "login[username", "login[a]x", "[a]", "a..b", "user.", "a\nb"} {
		if err := checkLoginField(bad); err == nil {
			t.Errorf("checkLoginField(%q) = nil, want an error", bad)
		}
	}
}

// TestLoginBodyRequest drives readLoginAttempt with real requests: the
// body reaches the application byte for byte, whatever the gate decided.
func TestLoginBodyRequest(t *testing.T) {
	big := "username=alice&pad=" + strings.Repeat("x", maxLoginBody)
	cases := []struct {
		name   string
		hdr    http.Header
		body   string
		target string
		want   lbWant
	}{
		{"form", http.Header{"Content-Type": {ctForm}}, "username=alice&password=p%26ss", "/login", wantUser("alice")},
		{"query", http.Header{"Content-Type": {ctForm}}, "password=x", "/index.php?username=alice", wantUser("alice")},
		{"query and body", http.Header{"Content-Type": {ctForm}}, "username=bob", "/index.php?username=alice", wantAmbiguous},
		{"ambiguous", http.Header{"Content-Type": {ctForm}}, "username=nobody-1&%20username=alice", "/login", wantAmbiguous},
		{"no field", http.Header{"Content-Type": {ctForm}}, "action=edit&text=hello", "/login", wantAbsent},
		{"too large", http.Header{"Content-Type": {ctForm}}, big, "/login", lbWant{err: errLoginBodyTooLarge}},
		{"too large, other type", http.Header{"Content-Type": {"application/octet-stream"}}, strings.Repeat("\x00", maxLoginBody+1), "/upload", lbWant{err: errLoginBodyTooLarge}},
		{"exactly the limit", http.Header{"Content-Type": {ctForm}}, "username=alice&pad=" + strings.Repeat("x", maxLoginBody-len("username=alice&pad=")), "/login", wantUser("alice")},
		{"two content types", http.Header{"Content-Type": {ctForm, ctJSON}}, "username=alice", "/login", wantAmbiguous},
		{"gzip", http.Header{"Content-Type": {ctForm}, "Content-Encoding": {"gzip"}}, "username=alice", "/login", wantAmbiguous},
		{"remember-me cookie with the same user", http.Header{"Content-Type": {ctForm}, "Cookie": {"lang=en; username=alice"}}, "username=alice", "/login", wantUser("alice")},
		{"cookie with another user", http.Header{"Content-Type": {ctForm}, "Cookie": {"lang=en; username=alice"}}, "username=nobody", "/login", wantAmbiguous},
		{"case-variant cookie with another user", http.Header{"Content-Type": {ctForm}, "Cookie": {"USERNAME=alice"}}, "username=nobody", "/login", wantAmbiguous},
		{"cookie without a login", http.Header{"Content-Type": {ctForm}, "Cookie": {"username=alice"}}, "action=edit", "/login", wantAbsent},
		{"identity encoding", http.Header{"Content-Type": {ctForm}, "Content-Encoding": {"identity"}}, "username=alice", "/login", wantUser("alice")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, c.target, strings.NewReader(c.body))
			for k, v := range c.hdr {
				r.Header[k] = v
			}
			user, present, err := readLoginAttempt(r, "username")
			checkLoginOutcome(t, user, present, err, c.want)
			got, err := io.ReadAll(r.Body)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, []byte(c.body)) {
				t.Fatalf("body not restored: %d bytes back, %d sent", len(got), len(c.body))
			}
			if err := r.Body.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
	// The application's own Go parser reads the restored body.
	r := httptest.NewRequest(http.MethodPost, "/login", strings.NewReader("username=alice&password=x"))
	r.Header.Set("Content-Type", ctForm)
	if user, _, err := readLoginAttempt(r, "username"); err != nil || user != "alice" {
		t.Fatalf("got %q, %v", user, err)
	}
	if got := r.FormValue("password"); got != "x" {
		t.Fatalf("application reads password %q after the gate read the body", got)
	}
	// A multipart body written by Go's own writer.
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	mw.WriteField("username", "alice")
	mw.WriteField("password", "x")
	fw, _ := mw.CreateFormFile("avatar", "a.png")
	fw.Write([]byte("\x89PNG username=bob"))
	mw.Close()
	sent := buf.String()
	r = httptest.NewRequest(http.MethodPost, "/login", strings.NewReader(sent))
	r.Header.Set("Content-Type", mw.FormDataContentType())
	user, present, err := readLoginAttempt(r, "username")
	checkLoginOutcome(t, user, present, err, wantUser("alice"))
	if err := r.ParseMultipartForm(1 << 20); err != nil || r.FormValue("username") != "alice" {
		t.Fatalf("application cannot read the restored multipart body: %v", err)
	}
}

// phpApp is a PHP script that reports what a PHP application reads from
// a request: $_POST, $_GET, $_REQUEST, and the body decoded as JSON (what
// an application calling json_decode on php://input gets).
const phpApp = `<?php
header('Content-Type: application/json');
$raw = file_get_contents('php://input');
echo json_encode(['post' => $_POST, 'get' => $_GET, 'request' => $_REQUEST,
	'json' => json_decode($raw, true)], JSON_INVALID_UTF8_SUBSTITUTE | JSON_PARTIAL_OUTPUT_ON_ERROR);
`

// phpPathNames prints the PHP path (base, then keys) under which
// parse_str files each name of the JSON list in argv[1].
const phpPathNames = `$out = [];
foreach (json_decode($argv[1]) as $name) {
	parse_str(rawurlencode($name) . '=1', $a);
	$path = [];
	while (is_array($a) && count($a) == 1) { $k = array_key_first($a); $path[] = (string)$k; $a = $a[$k]; }
	$out[] = $a === '1' ? $path : null;
}
echo json_encode($out);`

// startPHP starts PHP's built-in web server with phpApp and returns its
// URL; it is stopped at the end of the test.
func startPHPServer(t *testing.T, php string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "index.php"), []byte(phpApp), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(php, "-n", "-d", "max_input_vars=1000", "-S", addr, "-t", dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if i == 100 {
			t.Fatalf("php -S did not start: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return "http://" + addr + "/index.php"
}

// phpAt walks a decoded JSON value along path.
func phpAt(v any, path []string) (any, bool) {
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[k]; !ok {
			return nil, false
		}
	}
	return v, true
}

// TestLoginBodyMatchesPHP cross-checks the gate against a real PHP (its
// built-in web server, the same request parsing as php-fpm): for every
// case of the table the gate reads a user from, PHP's $_REQUEST (or
// json_decode of the body) holds the same user, and where the gate finds
// no user field, PHP finds none either.
func TestLoginBodyMatchesPHP(t *testing.T) {
	php, err := exec.LookPath("php")
	if err != nil {
		toolMissing(t, "php", "the cross-check against PHP's parser needs php-cli; .ci/run installs it")
	}

	// phpPath against parse_str, name by name.
	names := []string{"username", " username", "  user name", "user.name", "user[name", "user[na.me", "user[na[me", "a[b][c", "a[b]x", "a[ b]", "a[ ]", "a[\tb]", "a[]", "a[b][]", "a[b][c]", "a\x00b", "a[b\x00]", ".a", "[a]", "a]b", "a[[b]]", "a[b[c]", "a]b[c]", " . ", "a b[c d][e.f]"}
	const alphabet = "ab .[] \x00_\t"
	rnd := rand.New(rand.NewPCG(1, 2))
	for range 500 {
		b := make([]byte, 1+rnd.IntN(8))
		for j := range b {
			b[j] = alphabet[rnd.IntN(len(alphabet))]
		}
		names = append(names, string(b))
	}
	arg, _ := json.Marshal(names)
	out, err := exec.Command(php, "-n", "-r", phpPathNames, string(arg)).Output()
	if err != nil {
		t.Fatalf("php: %v", err)
	}
	var paths [][]string
	if err := json.Unmarshal(out, &paths); err != nil || len(paths) != len(names) {
		t.Fatalf("php output %q: %v", out, err)
	}
	for i, name := range names {
		got := phpPath(name, false)
		if strings.Contains(fmt.Sprint(got), "[]") || slicesHasEmpty(got) {
			continue // appends: numeric keys in PHP
		}
		if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", paths[i]) && !(got == nil && len(paths[i]) == 0) {
			t.Errorf("phpPath(%q) = %q, PHP files it under %q", name, got, paths[i])
		}
	}

	// Whole requests through PHP's request parser.
	base := startPHPServer(t, php)
	checked := 0
	for _, c := range loginBodyCases {
		field := c.field
		if field == "" {
			field = "username"
		}
		t.Run(c.name, func(t *testing.T) {
			f, err := newLoginField(field)
			if err != nil {
				t.Fatal(err)
			}
			user, present, err := parseLoginUser(c.ct, []byte(c.body), c.query, field)
			if err != nil {
				return // refused: nothing reaches the application
			}
			target := base
			if c.query != "" {
				target += "?" + c.query
			}
			req, _ := http.NewRequest(http.MethodPost, target, strings.NewReader(c.body))
			if c.ct != "" {
				req.Header.Set("Content-Type", c.ct)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var got map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
				t.Fatalf("php answer: %v", err)
			}
			checked++
			post, inPost := phpAt(got["post"], f.php)
			req2, inReq := phpAt(got["request"], f.php)
			js, inJSON := phpAt(got["json"], f.json)
			if !present {
				if inPost || inReq || inJSON {
					t.Fatalf("the gate finds no user field, PHP reads post=%v request=%v json=%v", post, req2, js)
				}
				return
			}
			var php any
			switch {
			case inReq:
				php = req2
			case inJSON:
				php = js
			default:
				t.Fatalf("the gate reads %q, PHP finds no user", user)
			}
			if s, ok := php.(string); !ok || strings.TrimSpace(s) != user {
				t.Fatalf("the gate reads %q, PHP reads %#v", user, php)
			}
		})
	}
	if checked < 40 {
		t.Fatalf("only %d cases reached PHP", checked)
	}

	// The attack examples: PHP really reads another user than Go's
	// parser does, and the gate refuses them.
	for _, c := range []struct{ body, field, decoy string }{
		{"username=nobody-1&%20username=alice", "username", "nobody-1"},
		{"username=nobody-2&username%00x=alice", "username", "nobody-2"},
		{"login[username]=nobody&login[username]x=alice", "login[username]", "nobody"},
		{"pma_username=nobody&pma.username=alice", "pma_username", "nobody"},
		{"log=nobody&+log=alice", "log", "nobody"},
	} {
		f, _ := newLoginField(c.field)
		resp, err := http.Post(base, ctForm, strings.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]any
		json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if v, _ := phpAt(got["post"], f.php); v != "alice" {
			t.Errorf("PHP reads %v from %q: the attack example no longer shows PHP's mangling", v, c.body)
		}
		if vals, _ := url.ParseQuery(c.body); vals.Get(c.field) != c.decoy {
			t.Errorf("Go reads %q from %q, want the decoy %q", vals.Get(c.field), c.body, c.decoy)
		}
		if _, _, err := parseLoginUser(ctForm, []byte(c.body), "", c.field); !errors.Is(err, errAmbiguousLogin) {
			t.Errorf("%q: gate did not refuse: %v", c.body, err)
		}
	}
	t.Logf("%d requests cross-checked against %s", checked, php)
}

func slicesHasEmpty(p []string) bool {
	for _, k := range p {
		if k == "" {
			return true
		}
	}
	return false
}

// FuzzLoginBody: whenever the gate reads a user from a urlencoded or JSON
// body, Go's own parsers (url.ParseQuery, Request.ParseForm, encoding/json
// into a struct, matching keys case-insensitively) read the same user; and
// when the gate finds no field, they find none either.
func FuzzLoginBody(f *testing.F) {
	for _, c := range loginBodyCases {
		if c.field == "" && (c.ct == ctForm || c.ct == ctJSON) {
			f.Add(c.body, c.ct == ctJSON)
		}
	}
	f.Fuzz(func(t *testing.T, body string, isJSON bool) {
		ct := ctForm
		if isJSON {
			ct = ctJSON
		}
		user, present, err := parseLoginUser(ct, []byte(body), "", "username")
		if err != nil {
			if !present {
				t.Fatalf("error %v with present=false", err)
			}
			return
		}
		if isJSON {
			var v struct {
				Username *string `json:"username"`
			}
			if err := json.Unmarshal([]byte(body), &v); err != nil {
				var m map[string]json.RawMessage
				if json.Unmarshal([]byte(body), &m) == nil && present {
					t.Fatalf("gate reads %q, encoding/json fails: %v", user, err)
				}
				if present {
					t.Fatalf("gate reads %q from a body encoding/json cannot decode as an object: %v", user, err)
				}
				return
			}
			switch {
			case !present && v.Username != nil:
				t.Fatalf("gate finds no user, encoding/json reads %q", *v.Username)
			case present && (v.Username == nil || strings.TrimSpace(*v.Username) != user):
				t.Fatalf("gate reads %q, encoding/json reads %v", user, v.Username)
			}
			return
		}
		vals, _ := url.ParseQuery(body)
		r := httptest.NewRequest(http.MethodPost, "/login", strings.NewReader(body))
		r.Header.Set("Content-Type", ct)
		r.ParseForm()
		for _, got := range [][]string{vals["username"], r.Form["username"], r.PostForm["username"]} {
			switch {
			case !present && len(got) > 0:
				t.Fatalf("gate finds no user, Go reads %q", got)
			case present && (len(got) != 1 || strings.TrimSpace(got[0]) != user):
				t.Fatalf("gate reads %q, Go reads %q", user, got)
			}
		}
	})
}

// phpParseMany runs parse_str on each string of the JSON list on its
// standard input and prints, for each, the value PHP files at the path in
// argv[1] (base64), false for a non-string, or null.
const phpParseMany = `$path = json_decode($argv[1]);
$out = [];
foreach (json_decode(stream_get_contents(STDIN)) as $q) {
	parse_str(base64_decode($q), $a);
	$v = $a;
	foreach ($path as $k) {
		if (!is_array($v) || !array_key_exists($k, $v)) { $v = null; break; }
		$v = $v[$k];
	}
	$out[] = is_string($v) ? base64_encode($v) : ($v === null ? null : false);
}
echo json_encode($out);`

// pyParseMany prints, for each base64 string of the JSON list on its
// standard input, the values Python's parse_qsl gives the key in argv[1].
const pyParseMany = `import base64, json, sys, urllib.parse
out = []
for q in json.load(sys.stdin):
    pairs = urllib.parse.parse_qsl(base64.b64decode(q).decode("latin-1"), keep_blank_values=True, encoding="utf-8", errors="replace")
    out.append([v for k, v in pairs if k == sys.argv[1]])
print(json.dumps(out))`

// TestLoginBodyRandomPHP builds thousands of bodies from the pieces the
// attacks are made of and checks every one the gate accepts against
// PHP's parse_str, Go's url.ParseQuery and Python's parse_qsl (where a
// python3 is installed): the gate's user is theirs, and where the gate
// finds no user field, none of them finds one.
func TestLoginBodyRandomPHP(t *testing.T) {
	php, err := exec.LookPath("php")
	if err != nil {
		toolMissing(t, "php", "the cross-check against PHP's parser needs php-cli; .ci/run installs it")
	}
	mutations := []func(r *rand.Rand, k string) string{
		func(r *rand.Rand, k string) string { return k },
		func(r *rand.Rand, k string) string { return k },
		func(r *rand.Rand, k string) string { return []string{" ", "+", "%20", "%09", "."}[r.IntN(5)] + k },
		func(r *rand.Rand, k string) string {
			return k + []string{"[]", "[x]", "x", "%00x", "[", "]", " ", "%20", "=", "%3D"}[r.IntN(10)]
		},
		func(r *rand.Rand, k string) string { // replace one byte
			i := r.IntN(len(k))
			return k[:i] + []string{" ", ".", "[", "]", "_", "+", "%20", "%2E", "%5B", "%5D", "%5F", "%C5%BF", "%00", "%"}[r.IntN(14)] + k[i+1:]
		},
		func(r *rand.Rand, k string) string { // change case of one byte
			i := r.IntN(len(k))
			return k[:i] + strings.ToUpper(k[i:i+1]) + k[i+1:]
		},
		func(r *rand.Rand, k string) string { // percent-encode one byte
			i := r.IntN(len(k))
			return k[:i] + fmt.Sprintf("%%%02X", k[i]) + k[i+1:]
		},
	}
	values := []string{"alice", "bob", "", "%zz", "a;b", "x%0Ay", "+carol+", "d%C3%A9", "%FF"}
	for _, field := range []string{"username", "login[username]", "user_name"} {
		f, _ := newLoginField(field)
		rnd := rand.New(rand.NewPCG(7, uint64(len(field))))
		var bodies []string
		for range 3000 {
			var pairs []string
			for range 1 + rnd.IntN(3) {
				k := field
				for range rnd.IntN(3) {
					k = mutations[rnd.IntN(len(mutations))](rnd, k)
				}
				if rnd.IntN(4) == 0 {
					k = "other"
				}
				pairs = append(pairs, k+"="+values[rnd.IntN(len(values))])
			}
			sep := "&"
			if rnd.IntN(8) == 0 {
				sep = ";"
			}
			bodies = append(bodies, strings.Join(pairs, sep))
		}
		enc := make([]string, len(bodies))
		for i, b := range bodies {
			enc[i] = base64.StdEncoding.EncodeToString([]byte(b))
		}
		a1, _ := json.Marshal(enc)
		a2, _ := json.Marshal(f.php)
		cmd := exec.Command(php, "-n", "-r", phpParseMany, string(a2))
		cmd.Stdin = bytes.NewReader(a1)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("php: %v", err)
		}
		var got []any
		if err := json.Unmarshal(out, &got); err != nil || len(got) != len(bodies) {
			t.Fatalf("php output: %v", err)
		}
		// Python's urllib (Django's QueryDict and werkzeug build on the
		// same splitting), where a python3 is installed.
		var pyVals [][]string
		if py, err := exec.LookPath("python3"); err == nil {
			cmd := exec.Command(py, "-c", pyParseMany, field)
			cmd.Stdin = bytes.NewReader(a1)
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("python3: %v", err)
			}
			if err := json.Unmarshal(out, &pyVals); err != nil || len(pyVals) != len(bodies) {
				t.Fatalf("python3 output: %v", err)
			}
		}
		accepted, absent := 0, 0
		for i, body := range bodies {
			user, present, err := parseLoginUser(ctForm, []byte(body), "", field)
			if err != nil {
				continue
			}
			if pyVals != nil {
				if !present && len(pyVals[i]) > 0 {
					t.Errorf("field %s, body %q: the gate finds no user, Python reads %q", field, body, pyVals[i])
				} else if present && (len(pyVals[i]) != 1 || strings.TrimSpace(pyVals[i][0]) != user) {
					t.Errorf("field %s, body %q: the gate reads %q, Python %q", field, body, user, pyVals[i])
				}
			}
			vals, _ := url.ParseQuery(body)
			if !present {
				absent++
				if got[i] != nil || len(vals[field]) > 0 {
					t.Errorf("field %s, body %q: the gate finds no user, PHP reads %v, Go %q", field, body, got[i], vals[field])
				}
				continue
			}
			accepted++
			s, _ := got[i].(string)
			p, _ := base64.StdEncoding.DecodeString(s)
			if strings.TrimSpace(string(p)) != user || len(vals[field]) != 1 || strings.TrimSpace(vals[field][0]) != user {
				t.Errorf("field %s, body %q: the gate reads %q, PHP %v (%q), Go %q", field, body, user, got[i], p, vals[field])
			}
		}
		t.Logf("field %s: %d bodies, %d read as a user, %d without the field, the rest refused", field, len(bodies), accepted, absent)
		if accepted == 0 || absent == 0 {
			t.Errorf("field %s: the random bodies exercise nothing", field)
		}
	}
}

// BenchmarkParseLoginUser measures reading a typical login: WordPress's
// form, and a JSON login.
func BenchmarkParseLoginUser(b *testing.B) {
	form := []byte("log=alice&pwd=s3cret&rememberme=forever&wp-submit=Log+In&redirect_to=https%3A%2F%2Fexample.com%2Fwp-admin%2F&testcookie=1")
	js := []byte(`{"username":"alice","password":"s3cret","remember":true,"device":{"name":"laptop","os":"linux"}}`)
	b.Run("form", func(b *testing.B) {
		for b.Loop() {
			if u, _, err := parseLoginUser(ctForm, form, "", "log"); u != "alice" || err != nil {
				b.Fatal(u, err)
			}
		}
	})
	b.Run("json", func(b *testing.B) {
		for b.Loop() {
			if u, _, err := parseLoginUser(ctJSON, js, "", "username"); u != "alice" || err != nil {
				b.Fatal(u, err)
			}
		}
	})
}
