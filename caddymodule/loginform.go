package caddymodule

// Today's login-body reader (issue 13, helper "core"): readLoginAttempt in
// loginbody.go is a temporary adapter over it. When the login-body parser
// of loginbody.go replaces that adapter, this file goes with it.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
)

// readLoginUser reads the login body (up to maxLoginBody), puts it back
// for the application unchanged, and returns the user name in it.
func (h *Handler) readLoginUser(r *http.Request) (string, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return "", errors.New("empty body")
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, maxLoginBody+1))
	orig := r.Body
	r.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(data), orig), orig}
	if err != nil {
		return "", fmt.Errorf("reading body: %v", err)
	}
	if len(data) > maxLoginBody {
		return "", fmt.Errorf("body larger than %d bytes", maxLoginBody)
	}
	// An application may read the name from the query string too (PHP's
	// $_REQUEST): a name there could differ from the one in the body.
	base := phpFieldBase(h.AppLogin.UsernameField)
	for k := range r.URL.Query() {
		if phpFieldBase(k) == base {
			return "", fmt.Errorf("the user field is also in the query string")
		}
	}
	user, err := usernameFrom(r.Header.Get("Content-Type"), data, h.AppLogin.UsernameField)
	if err != nil {
		return "", err
	}
	// The application's own login may treat "Alice" and "alice" as one
	// account; so does the gate, or a case variant could enroll a second
	// authenticator for the same account.
	return identify(user)
}

// phpFieldBase is the name under which PHP (and frameworks imitating it)
// files a form field: '.' and ' ' become '_', and "name[...]" is "name".
// Fields that land on the same base are ambiguous: the gate and the
// application could read different values.
func phpFieldBase(name string) string {
	if i := strings.IndexByte(name, '['); i > 0 {
		name = name[:i]
	}
	return strings.Map(func(r rune) rune {
		if r == '.' || r == ' ' {
			return '_'
		}
		return r
	}, name)
}

// errAmbiguous is returned when a login body names the user more than
// once: the gate would bind the session to one name while the application
// logs in another.
var errAmbiguous = errors.New("the user field appears more than once (or under a look-alike name): the gate cannot know which one the application reads")

// usernameFrom extracts field from an urlencoded, multipart or JSON body.
func usernameFrom(contentType string, body []byte, field string) (string, error) {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		mt = "application/x-www-form-urlencoded" // what browsers send by default
	}
	var user string
	switch {
	case mt == "application/x-www-form-urlencoded":
		vals, err := url.ParseQuery(string(body))
		if err != nil {
			return "", fmt.Errorf("malformed form body")
		}
		n, base := 0, phpFieldBase(field)
		for k, v := range vals {
			if phpFieldBase(k) == base {
				n += len(v)
			}
		}
		if n > 1 || (n == 1 && len(vals[field]) != 1) {
			return "", errAmbiguous
		}
		user = vals.Get(field)
	case mt == "multipart/form-data":
		mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
		n, base := 0, phpFieldBase(field)
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				return "", fmt.Errorf("malformed multipart body")
			}
			if phpFieldBase(p.FormName()) != base {
				continue
			}
			if n++; n > 1 || p.FormName() != field || p.FileName() != "" {
				return "", errAmbiguous
			}
			v, err := io.ReadAll(io.LimitReader(p, 1024))
			if err != nil {
				return "", fmt.Errorf("malformed multipart body")
			}
			user = string(v)
		}
	case mt == "application/json" || strings.HasSuffix(mt, "+json"):
		if !json.Valid(body) {
			return "", fmt.Errorf("malformed JSON body")
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		v, err := jsonPath(dec, strings.Split(field, "."))
		if err != nil {
			return "", err
		}
		s, ok := v.(string)
		if !ok {
			return "", fmt.Errorf("JSON body has no string %q", field)
		}
		user = s
	default:
		return "", fmt.Errorf("unsupported content type %q", mt)
	}
	user = strings.TrimSpace(user)
	if user == "" {
		return "", fmt.Errorf("no %q in the body", field)
	}
	if strings.ContainsAny(user, "\x00\r\n") {
		return "", fmt.Errorf("user name with control characters")
	}
	if _, err := identify(user); err != nil {
		return "", err
	}
	return user, nil
}

// jsonPath reads the value at path from the JSON object dec is at,
// refusing an object that has the key on the path more than once (JSON
// parsers differ on which duplicate wins).
func jsonPath(dec *json.Decoder, path []string) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("malformed JSON body")
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		// Not an object: skip whatever it is.
		if d, ok := tok.(json.Delim); ok && (d == '[') {
			for dec.More() {
				var skip json.RawMessage
				if err := dec.Decode(&skip); err != nil {
					return nil, fmt.Errorf("malformed JSON body")
				}
			}
			dec.Token()
		}
		return nil, nil
	}
	var found any
	seen := false
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("malformed JSON body")
		}
		key, _ := kt.(string)
		if key != path[0] {
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return nil, fmt.Errorf("malformed JSON body")
			}
			continue
		}
		if seen {
			return nil, errAmbiguous
		}
		seen = true
		if len(path) == 1 {
			if err := dec.Decode(&found); err != nil {
				return nil, fmt.Errorf("malformed JSON body")
			}
			continue
		}
		if found, err = jsonPath(dec, path[1:]); err != nil {
			return nil, err
		}
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("malformed JSON body")
	}
	return found, nil
}
