package caddymodule

import (
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Caddy's access log does not see what handlers do to a request: the
// server clones the request as it arrived, before any handler runs, and
// marshals that clone's headers when the request ends. It redacts only
// Cookie, Set-Cookie, Authorization and Proxy-Authorization (a fixed list
// in Caddy), so deleting otp_header from the request is not enough: the
// code would still be written to the access log. Nor can the gate tell
// from the request it receives whether a code arrived: Caddy drops
// header names with '_' or '.' (X_Otp, X.Otp), or the '-' form of one its
// server config keeps, after cloning the request for the log and before
// any handler runs. So when otp_header is set and the server keeps an
// access log of the request, the gate turns Caddy's line off (the
// log_skip variable, as the log_skip directive does) and writes the same
// line itself, to the same loggers, describing the request as the gate
// received it, with the code's header REDACTED.

// accessLogNamespace stands for Caddy's access loggers
// (http.log.access.*) when the gate asks Caddy for a logger: logs that
// include the site's access logger then receive the gate's lines.
type accessLogNamespace struct{}

// CaddyModule names the access loggers' namespace; it is never
// registered.
func (accessLogNamespace) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.log.access"}
}

// redacted is what a secret header's value is logged as, as Caddy does
// for Authorization.
const redacted = "REDACTED"

// takeOTPHeader removes otp_header and every alias of it (X_Otp for
// X-Otp: the same variable to a CGI/FastCGI backend) from the request, so
// that neither later handlers nor the application see a code, and
// returns the value under the configured name. When the server keeps an
// access log of the request, the returned writer records the response
// and done writes the access log line in Caddy's place, without the code;
// otherwise w is returned and done does nothing. done must be called with
// the error the gate returns.
func (h *Handler) takeOTPHeader(w http.ResponseWriter, r *http.Request) (code string, _ http.ResponseWriter, done func(error)) {
	code = r.Header.Get(h.OTPHeader)
	want := headerAliasKey(h.OTPHeader)
	var names []string
	for k := range r.Header {
		if headerAliasKey(k) == want {
			names = append(names, k)
			delete(r.Header, k)
		}
	}
	loggers := h.accessLoggers(r)
	if len(loggers) == 0 {
		return code, w, func(error) {}
	}
	// The line describes the request as it reached the gate (Caddy's
	// describes it as it reached Caddy: same method, URI and client),
	// with the code's header present but redacted.
	logged := r.Clone(r.Context())
	if orig, ok := r.Context().Value(caddyhttp.OriginalRequestCtxKey).(http.Request); ok {
		logged.Method, logged.RemoteAddr, logged.RequestURI, logged.URL = orig.Method, orig.RemoteAddr, orig.RequestURI, orig.URL
	}
	for _, k := range names {
		logged.Header[k] = []string{redacted}
	}
	caddyhttp.SetVar(r.Context(), caddyhttp.LogSkipVar, true)
	rec := caddyhttp.NewResponseRecorder(w, nil, nil)
	body := &countingBody{ReadCloser: r.Body}
	if r.Body != nil {
		r.Body = body
	}
	start := time.Now()
	return code, rec, func(err error) {
		h.writeAccessLog(loggers, r, logged, rec, body.n, time.Since(start), err)
	}
}

// accessLoggers returns the access loggers Caddy would write r's line
// to (the server's logger names for the host, or those a log_name
// directive chose), or none if the server keeps no access log of r or
// the line is already skipped.
func (h *Handler) accessLoggers(r *http.Request) []*zap.Logger {
	srv, _ := r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	if srv == nil || srv.Logs == nil || h.accessLog == nil {
		return nil
	}
	if skip, _ := caddyhttp.GetVar(r.Context(), caddyhttp.LogSkipVar).(bool); skip {
		return nil
	}
	host, _, err := net.SplitHostPort(r.Host)
	if err != nil {
		host = r.Host
	}
	if !logsHost(srv.Logs, host) {
		return nil
	}
	var names []string
	if v, ok := caddyhttp.GetVar(r.Context(), caddyhttp.AccessLoggerNameVarKey).([]any); ok {
		for _, n := range v {
			if s, ok := n.(string); ok {
				names = append(names, s)
			}
		}
	} else {
		names = loggerNamesFor(srv.Logs, host)
	}
	loggers := make([]*zap.Logger, 0, len(names))
	for _, n := range names {
		if n == "" {
			loggers = append(loggers, h.accessLog)
		} else {
			loggers = append(loggers, h.accessLog.Named(n))
		}
	}
	return loggers
}

// logsHost is Caddy's rule for whether a server logs a host's requests.
func logsHost(slc *caddyhttp.ServerLogConfig, host string) bool {
	for name := range slc.LoggerNames {
		if certmagic.MatchWildcard(host, name) {
			return true
		}
	}
	for _, skip := range slc.SkipHosts {
		if certmagic.MatchWildcard(host, skip) {
			return false
		}
	}
	return !slc.SkipUnmappedHosts
}

// loggerNamesFor is Caddy's choice of logger names for a host: the exact
// host, else the first wildcard form that is mapped, else the default.
func loggerNamesFor(slc *caddyhttp.ServerLogConfig, host string) []string {
	host = strings.ToLower(host)
	if names, ok := slc.LoggerNames[host]; ok {
		return names
	}
	labels := strings.Split(host, ".")
	for i := range labels {
		if labels[i] == "" {
			continue
		}
		labels[i] = "*"
		if names, ok := slc.LoggerNames[strings.Join(labels, ".")]; ok {
			return names
		}
	}
	return []string{slc.DefaultLoggerName}
}

// writeAccessLog writes the line Caddy's access log would have written
// for r (logged is r as described in the line), with the fields Caddy
// writes. Fields added by log_append are not available to the gate.
func (h *Handler) writeAccessLog(loggers []*zap.Logger, r, logged *http.Request, rec caddyhttp.ResponseRecorder, read int, d time.Duration, err error) {
	status := rec.Status()
	var he caddyhttp.HandlerError
	switch {
	case err == nil:
	case errors.As(err, &he) && he.StatusCode != 0:
		status = he.StatusCode
	default:
		status = http.StatusInternalServerError
	}
	level := zapcore.InfoLevel
	if status >= 500 {
		level = zapcore.ErrorLevel
	}
	if name, ok := caddyhttp.GetVar(r.Context(), caddyhttp.LogLevelVar).(string); ok {
		if l, err := zapcore.ParseLevel(name); err == nil && l >= zapcore.DebugLevel && l <= zapcore.ErrorLevel {
			level = l
		}
	}
	srv, _ := r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	creds := srv != nil && srv.Logs != nil && srv.Logs.ShouldLogCredentials
	var fields []zapcore.Field
	for _, l := range loggers {
		ce := l.Check(level, "handled request")
		if ce == nil {
			continue
		}
		if fields == nil {
			userID := ""
			if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
				userID, _ = repl.GetString("http.auth.user.id")
			}
			fields = []zapcore.Field{
				zap.Object("request", caddyhttp.LoggableHTTPRequest{Request: logged, ShouldLogCredentials: creds}),
				zap.Int("bytes_read", read),
				zap.String("user_id", userID),
				zap.Duration("duration", d),
				zap.Int("size", rec.Size()),
				zap.Int("status", status),
				zap.Object("resp_headers", caddyhttp.LoggableHTTPHeader{Header: rec.Header(), ShouldLogCredentials: creds}),
			}
		}
		ce.Write(fields...)
	}
}

// countingBody counts the bytes read from a request body.
type countingBody struct {
	io.ReadCloser
	n int
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n += n
	return n, err
}
