package caddymodule

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// errAmbiguousLogin is wrapped by readLoginAttempt's error when common
// parsers (PHP, Go, Java, Python) could read two different users from one
// login request: the caller answers 400 and does not forward it.
var errAmbiguousLogin = errors.New("ambiguous login request")

// readLoginAttempt reads the login body (at most maxLoginBody), puts it
// back for the application byte for byte, and returns the user name it
// carries, as the form gave it (trimmed). present is false (err nil) when
// no parser would find the user field: an ordinary request.
//
// Temporary adapter over today's usernameFrom (loginform.go), until the
// login-body parser replaces this file.
func readLoginAttempt(r *http.Request, field string) (user string, present bool, err error) {
	if r.Body == nil || r.Body == http.NoBody {
		return "", false, nil
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, maxLoginBody+1))
	orig := r.Body
	r.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(data), orig), orig}
	if err != nil {
		return "", true, fmt.Errorf("reading body: %v", err)
	}
	if len(data) > maxLoginBody {
		return "", true, fmt.Errorf("body larger than %d bytes", maxLoginBody)
	}
	base := phpFieldBase(field)
	for k := range r.URL.Query() {
		if phpFieldBase(k) == base {
			return "", true, fmt.Errorf("%w: the user field is also in the query string", errAmbiguousLogin)
		}
	}
	user, err = usernameFrom(r.Header.Get("Content-Type"), data, field)
	switch msg := ""; {
	case err == nil:
		return user, true, nil
	case errors.Is(err, errAmbiguous):
		return "", true, fmt.Errorf("%w: %v", errAmbiguousLogin, err)
	case errors.Is(err, errNameTooLong):
		return "", true, err
	default:
		msg = err.Error()
		if strings.HasPrefix(msg, "no ") || strings.HasPrefix(msg, "unsupported content type") || strings.HasPrefix(msg, "JSON body has no string") {
			return "", false, nil
		}
		return "", true, err
	}
}
