package demoapp

import (
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"
)

// This file reads cookies and form bodies the way PHP 8 fills $_COOKIE
// and $_POST (main/php_variables.c: php_default_treat_data and
// php_register_variable_ex), so that tests can reproduce the ways a PHP
// application and a Go gate read one request differently, without PHP.
//
// What it imitates:
//   - Cookies: the header is split on ';'; leading white space of a name
//     is dropped; a part without a name is skipped; names are not
//     URL-decoded, values are raw-URL-decoded (%XX, '+' stays '+'); for a
//     plain name the FIRST duplicate wins.
//   - Form bodies (application/x-www-form-urlencoded): split on '&';
//     names and values URL-decoded ('+' is a space); for a plain name the
//     LAST duplicate wins. Multipart fields go through the same naming.
//   - Naming, both: leading spaces dropped; a NUL ends the name; ' ' and
//     '.' become '_'; "name[x]" files x under the array name (and
//     "name[]" appends); an unmatched '[' becomes '_' and so do ' ', '.'
//     and '[' after it (PHP 8); text after a closing ']' that does not
//     open another index is ignored ("a[b]x" is a[b]); an empty name is
//     dropped; more than 64 nested indexes drop the variable.
//
// What it does not: PHP's max_input_vars (1000 by default) stops reading
// after that many variables; the demo reads them all, so that a test
// never misses a cookie that a PHP with a raised limit would see. Numeric
// array keys stay strings ("01" and "1" are two keys here, one in PHP).

// phpMaxNesting is PHP's default max_input_nesting_level.
const phpMaxNesting = 64

// phpArray is a PHP array as the request parsers build it: string keys
// in insertion order, values that are strings or *phpArray.
type phpArray struct {
	keys []string
	vals map[string]any
	next int // the next key for "name[]"
}

func newPHPArray() *phpArray { return &phpArray{vals: map[string]any{}} }

func (a *phpArray) get(k string) (any, bool) {
	v, ok := a.vals[k]
	return v, ok
}

func (a *phpArray) set(k string, v any) {
	if _, ok := a.vals[k]; !ok {
		a.keys = append(a.keys, k)
	}
	a.vals[k] = v
}

func (a *phpArray) appendValue(v any) {
	k := itoa(a.next)
	for {
		if _, ok := a.vals[k]; !ok {
			break
		}
		a.next++
		k = itoa(a.next)
	}
	a.next++
	a.set(k, v)
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

// str returns the value at the path of keys if it is a string (not an
// array).
func (a *phpArray) str(path ...string) (string, bool) {
	cur := a
	for i, k := range path {
		v, ok := cur.get(k)
		if !ok {
			return "", false
		}
		if i == len(path)-1 {
			s, ok := v.(string)
			return s, ok
		}
		if cur, ok = v.(*phpArray); !ok {
			return "", false
		}
	}
	return "", false
}

// toMap returns the array as nested map[string]any (for tests).
func (a *phpArray) toMap() map[string]any {
	m := make(map[string]any, len(a.keys))
	for _, k := range a.keys {
		switch v := a.vals[k].(type) {
		case *phpArray:
			m[k] = v.toMap()
		default:
			m[k] = v
		}
	}
	return m
}

// phpRegister files value under name in vars the way
// php_register_variable_ex does. firstWins is true for cookies: a plain
// top-level name already set is not overwritten.
func phpRegister(vars *phpArray, name, value string, firstWins bool) {
	name = strings.TrimLeft(name, " ")
	if i := strings.IndexByte(name, 0); i >= 0 {
		name = name[:i]
	}
	b := []byte(name)
	open := -1
	for i, c := range b {
		if c == ' ' || c == '.' {
			b[i] = '_'
		} else if c == '[' {
			open = i
			break
		}
	}
	if open < 0 {
		if len(b) == 0 {
			return
		}
		phpPlain(vars, string(b), value, firstWins)
		return
	}
	base := string(b[:open])
	if base == "" {
		return
	}
	// Indexes: [a][b]...; rest is what follows the base name.
	rest := b[open:] // starts with '['
	var indexes []*string
	for nest := 1; ; nest++ {
		if nest > phpMaxNesting {
			return
		}
		// rest[0] == '['
		inner := rest[1:]
		if len(inner) > 0 && inner[0] == ' ' && len(inner) > 1 && inner[1] == ']' {
			inner = inner[1:] // "[ ]" appends, like "[]"
		}
		if len(inner) > 0 && inner[0] == ']' {
			indexes = append(indexes, nil)
			rest = inner[1:]
		} else {
			end := bytes.IndexByte(inner, ']')
			if end < 0 {
				if nest == 1 {
					// Not an index: the '[' and any ' ', '.', '['
					// after it become '_' and the name is plain.
					tail := []byte(string(rest))
					for i, c := range tail {
						if c == ' ' || c == '.' || c == '[' {
							tail[i] = '_'
						}
					}
					phpPlain(vars, base+string(tail), value, firstWins)
					return
				}
				// Deeper: what came before is kept, the rest ignored.
				break
			}
			idx := string(inner[:end])
			indexes = append(indexes, &idx)
			rest = inner[end+1:]
		}
		if len(rest) == 0 || rest[0] != '[' {
			break
		}
	}
	// Walk/create the arrays.
	cur := vars
	key := base
	for i, idx := range indexes {
		v, ok := cur.get(key)
		sub, isArr := v.(*phpArray)
		if !ok || !isArr {
			sub = newPHPArray()
			cur.set(key, sub)
		}
		cur = sub
		if idx == nil {
			// "[]": append a new element; deeper indexes go inside it.
			if i == len(indexes)-1 {
				cur.appendValue(value)
				return
			}
			cur.appendValue(newPHPArray())
			key = cur.keys[len(cur.keys)-1]
			continue
		}
		key = *idx
	}
	cur.set(key, value)
}

func phpPlain(vars *phpArray, name, value string, firstWins bool) {
	if _, ok := vars.get(name); ok && firstWins {
		return
	}
	vars.set(name, value)
}

// phpCookies parses Cookie header values into $_COOKIE.
func phpCookies(headers []string) *phpArray {
	vars := newPHPArray()
	for _, h := range headers {
		for part := range strings.SplitSeq(h, ";") {
			name, value, hasValue := strings.Cut(part, "=")
			name = strings.TrimLeft(name, " \t\n\r\v\f")
			if name == "" {
				continue
			}
			if hasValue {
				value = phpURLDecode(value, false)
			}
			phpRegister(vars, name, value, true)
		}
	}
	return vars
}

// phpForm parses an application/x-www-form-urlencoded body (or query
// string) into $_POST (or $_GET).
func phpForm(body string) *phpArray {
	vars := newPHPArray()
	for part := range strings.SplitSeq(body, "&") {
		if part == "" {
			continue
		}
		name, value, _ := strings.Cut(part, "=")
		phpRegister(vars, phpURLDecode(name, true), phpURLDecode(value, true), false)
	}
	return vars
}

// phpMultipart parses a multipart/form-data body's non-file fields into
// $_POST, in order.
func phpMultipart(body []byte, boundary string) (*phpArray, error) {
	vars := newPHPArray()
	mr := multipart.NewReader(bytes.NewReader(body), boundary)
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return vars, nil
		}
		if err != nil {
			return nil, err
		}
		if p.FileName() != "" {
			continue
		}
		v, err := io.ReadAll(p)
		if err != nil {
			return nil, err
		}
		phpRegister(vars, p.FormName(), string(v), false)
	}
}

// phpURLDecode is php_url_decode (plus true: '+' is a space) or
// php_raw_url_decode: %XX decoded, a malformed escape left as it is.
func phpURLDecode(s string, plus bool) string {
	if !strings.ContainsAny(s, "%+") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '+' && plus:
			b.WriteByte(' ')
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// phpPostBody reads r's body (at most maxBody) the way PHP fills $_POST.
// It reports ok == false after answering the request itself when the
// body is unusable.
func phpPostBody(w http.ResponseWriter, r *http.Request) (*phpArray, bool) {
	mediaType, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
		return nil, false
	}
	switch mediaType {
	case "application/x-www-form-urlencoded":
		return phpForm(string(data)), true
	case "multipart/form-data":
		vars, err := phpMultipart(data, params["boundary"])
		if err != nil {
			http.Error(w, "malformed multipart body", http.StatusBadRequest)
			return nil, false
		}
		return vars, true
	}
	return newPHPArray(), true
}
