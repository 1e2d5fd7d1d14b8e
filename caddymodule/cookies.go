package caddymodule

import (
	"crypto/rand"
	"crypto/subtle"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/securecookie"

	"github.com/caddy-2fa/caddy-2fa/keyring"
)

// Cookie base names. On HTTPS the names carry the __Host- prefix, which
// makes browsers insist on Secure, Path=/ and no Domain. The values are
// signed (securecookie, which also binds the cookie name into the MAC) and
// carry only random references; the records live in the store.
const (
	sessionCookie = "2fa_session"
	deviceCookie  = "2fa_device"
	csrfCookie    = "2fa_csrf"
)

// cookieName is the name of cookie base on this request's scheme.
func (h *Handler) cookieName(r *http.Request, base string) string {
	if r.TLS != nil {
		return "__Host-" + base + h.cookieSuffix
	}
	return base + h.cookieSuffix
}

// Lifetimes of the cookies whose lifetime is not an option.
const (
	// csrfTTL bounds how long a rendered form can be submitted.
	csrfTTL = 12 * time.Hour
	// laterTTL is the longest a "remind me later" lasts: the user is
	// asked again at least daily within the grace period.
	laterTTL = 24 * time.Hour
	// enrollCookieTTL outlives every pending enrollment (15m, an
	// invite's 1h); the pending record, bound to the cookie's token in
	// the store, is what expires.
	enrollCookieTTL = 12 * time.Hour
)

// cookieCodecs are the codecs of one secret's keys: one per cookie kind,
// each with its kind's key and lifetime, so a value made for one kind
// never verifies as another, and a cookie is refused once it is older
// than its kind lives. The cookie's name is bound into every MAC too.
type cookieCodecs struct {
	// session signs sessionCookie: SessionMAC, session_ttl.
	session *securecookie.SecureCookie
	// device signs deviceCookie: DeviceMAC, trust_device.
	device *securecookie.SecureCookie
	// csrf signs csrfCookie: CSRFMAC, csrfTTL.
	csrf *securecookie.SecureCookie
	// later signs laterCookie: LaterMAC, laterTTL.
	later *securecookie.SecureCookie
	// enroll signs enrollCookie: CSRFMAC (kept so that enrollments under
	// way survive an upgrade), enrollCookieTTL.
	enroll *securecookie.SecureCookie
	// anon signs anonCookie: CSRFMAC (as enroll), anonSessionTTL.
	anon *securecookie.SecureCookie
}

// newCookieCodecs makes the codecs of keys, with the lifetimes of the
// session and trusted-device cookies.
func newCookieCodecs(keys *keyring.Keys, sessionTTL, trust time.Duration) cookieCodecs {
	return cookieCodecs{
		session: newCodec(keys.SessionMAC, sessionTTL),
		device:  newCodec(keys.DeviceMAC, trust),
		csrf:    newCodec(keys.CSRFMAC, csrfTTL),
		later:   newCodec(keys.LaterMAC, laterTTL),
		enroll:  newCodec(keys.CSRFMAC, enrollCookieTTL),
		anon:    newCodec(keys.CSRFMAC, anonSessionTTL),
	}
}

// newCodec is a securecookie codec that signs (no encryption: the values
// are random references) with hashKey and refuses values older than
// maxAge (0: no limit).
func newCodec(hashKey []byte, maxAge time.Duration) *securecookie.SecureCookie {
	c := securecookie.New(hashKey, nil)
	c.SetSerializer(securecookie.NopEncoder{})
	c.MaxAge(int(maxAge / time.Second))
	c.MaxLength(1024)
	return c
}

// of is the codec of cookie base, or nil for a name that is no gate
// cookie.
func (c *cookieCodecs) of(base string) *securecookie.SecureCookie {
	switch base {
	case sessionCookie:
		return c.session
	case deviceCookie:
		return c.device
	case csrfCookie:
		return c.csrf
	case laterCookie:
		return c.later
	case enrollCookie:
		return c.enroll
	case anonCookie:
		return c.anon
	}
	return nil
}

// readCookie decodes the signed value of cookie base, or returns nil when
// it is missing, tampered with, expired or made with a key neither secret
// nor previous_secrets gives.
func (h *Handler) readCookie(r *http.Request, base string) []byte {
	raw, _ := h.readCookieKey(r, base)
	return raw
}

// readCookieKey is readCookie that also reports whether the value
// verified only under a previous secret's key, so that the caller can
// re-issue it under the current one. The current key is tried first: a
// cookie it verifies costs what it did before rotation existed.
func (h *Handler) readCookieKey(r *http.Request, base string) (raw []byte, old bool) {
	c, err := r.Cookie(h.cookieName(r, base))
	if err != nil || c.Value == "" {
		return nil, false
	}
	name := base + h.cookieSuffix
	if raw, ok := h.verifyCookie(h.codecs.of(base), name, c.Value); ok {
		return raw, false
	}
	for i := range h.prevCodecs {
		if raw, ok := h.verifyCookie(h.prevCodecs[i].of(base), name, c.Value); ok {
			return raw, true
		}
	}
	return nil, false
}

// verifyCookie decodes value with codec. A value that verified with the
// same codec within the last verifiedCookieTTL is taken from the
// handler's memory of verified cookies without checking its MAC again.
// The memory belongs to the handler, so a config reload (a new handler)
// starts without it: a value accepted under a previous secret is never
// taken as verified once a reload stops listing that secret.
func (h *Handler) verifyCookie(codec *securecookie.SecureCookie, name, value string) ([]byte, bool) {
	if codec == nil {
		return nil, false
	}
	m := h.verified
	if m == nil {
		// A handler that was not provisioned (tests): no memory.
		var raw []byte
		if err := codec.Decode(name, value, &raw); err != nil {
			return nil, false
		}
		return raw, true
	}
	k := verifiedCookieKey{codec: codec, name: name, value: value}
	t := time.Now()
	m.RLock()
	e, ok := m.m[k]
	m.RUnlock()
	if ok {
		if age := t.Sub(e.at); age >= 0 && age < verifiedCookieTTL {
			return []byte(e.raw), true
		}
	}
	var raw []byte
	if err := codec.Decode(name, value, &raw); err != nil {
		return nil, false
	}
	m.Lock()
	if len(m.m) >= verifiedCookiesMax {
		clear(m.m)
	}
	m.m[k] = verifiedCookie{raw: string(raw), at: t}
	m.Unlock()
	return raw, true
}

// verifiedCookieTTL is how long a cookie value whose signature and age
// verified is trusted again without recomputing its HMAC: the same second
// as the session cache, so a page and its assets pay for one check. The
// MAC check is most of the hot path's cost. Only values that verified are
// remembered; a forged one is checked (and refused) every time.
const verifiedCookieTTL = sessionCacheTTL

// verifiedCookiesMax bounds a handler's memory of verified cookies; when
// full it starts afresh.
const verifiedCookiesMax = 100_000

// verifiedCookies remembers a handler's recently verified cookie values,
// per codec: a value verified by one codec (one kind, one secret) is
// never taken as verified by another.
type verifiedCookies struct {
	sync.RWMutex
	m map[verifiedCookieKey]verifiedCookie
}

func newVerifiedCookies() *verifiedCookies {
	return &verifiedCookies{m: make(map[verifiedCookieKey]verifiedCookie)}
}

type verifiedCookieKey struct {
	codec       *securecookie.SecureCookie
	name, value string
}

type verifiedCookie struct {
	raw string
	at  time.Time
}

// setCookie signs value and sets cookie base for maxAge (0 = until the
// browser closes).
func (h *Handler) setCookie(w http.ResponseWriter, r *http.Request, base string, value []byte, maxAge time.Duration) error {
	codec := h.codecs.of(base)
	if codec == nil {
		return fmt.Errorf("no codec for cookie %q", base)
	}
	enc, err := codec.Encode(base+h.cookieSuffix, value)
	if err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{
		Name:     h.cookieName(r, base),
		Value:    enc,
		Path:     "/",
		MaxAge:   int(maxAge / time.Second),
		HttpOnly: true,
		Secure:   r.TLS != nil,
		SameSite: http.SameSiteLaxMode,
	})
	return nil
}

// clearCookie tells the browser to forget cookie base.
func (h *Handler) clearCookie(w http.ResponseWriter, r *http.Request, base string) {
	http.SetCookie(w, &http.Cookie{
		Name:     h.cookieName(r, base),
		Value:    "",
		Path:     "/",
		MaxAge:   -1,
		HttpOnly: true,
		Secure:   r.TLS != nil,
		SameSite: http.SameSiteLaxMode,
	})
}

// stripGateCookies removes the gate's cookies (under either name form)
// from the request, so the application behind the gate never sees, logs
// or leaks them. The Cookie header is rewritten only if one is present.
func (h *Handler) stripGateCookies(r *http.Request) {
	vals := r.Header["Cookie"]
	if len(vals) == 0 {
		return
	}
	found := false
	for _, v := range vals {
		if mayHoldGateCookie(v) {
			found = true
			break
		}
	}
	if !found {
		return
	}
	var kept []string
	for _, v := range vals {
		for part := range strings.SplitSeq(v, ";") {
			p := strings.TrimSpace(part)
			if p == "" {
				continue
			}
			name, _, _ := strings.Cut(p, "=")
			if h.isGateCookie(strings.TrimSpace(name)) {
				continue
			}
			kept = append(kept, p)
		}
	}
	if len(kept) == 0 {
		r.Header.Del("Cookie")
		return
	}
	r.Header["Cookie"] = []string{strings.Join(kept, "; ")}
}

// isGateCookie reports whether name is a cookie of a two_factor gate, of
// any realm: a base name alone (realm default) or followed by "_" and a
// realm (cookieSafe). Browsers send every cookie of a host to every port
// and path of it, so an application behind one realm would otherwise
// receive the cookies of every other realm on the same host (and could
// log or leak them, or hand them to someone who replays them at the
// other gate). The realms of other configs and other instances are not
// known here, hence the pattern rather than a list. Compared without
// regard to case, like the application platforms that fold cookie names.
func (h *Handler) isGateCookie(name string) bool { return isGateCookieName(name) }

// isGateCookieName is isGateCookie, for code without a handler.
func isGateCookieName(name string) bool {
	if len(name) >= len("__Host-") && strings.EqualFold(name[:len("__Host-")], "__Host-") {
		name = name[len("__Host-"):]
	}
	for _, base := range [...]string{sessionCookie, deviceCookie, csrfCookie, laterCookie, enrollCookie, anonCookie} {
		if len(name) >= len(base) && strings.EqualFold(name[:len(base)], base) && (len(name) == len(base) || name[len(base)] == '_') {
			return true
		}
	}
	return false
}

// mayHoldGateCookie reports whether a Cookie header contains "2fa_" in
// any case: a quick test before it is parsed, on the hot path.
func mayHoldGateCookie(v string) bool {
	for i := 0; i+4 <= len(v); i++ {
		if v[i] == '2' && v[i+1]|0x20 == 'f' && v[i+2]|0x20 == 'a' && v[i+3] == '_' {
			return true
		}
	}
	return false
}

// csrfToken returns the CSRF token for a form shown to user, reusing the
// one in the browser's CSRF cookie when it is valid for that user (so
// several open tabs keep working) and setting a new cookie otherwise.
// The cookie holds token and user, signed; a form is accepted only if it
// carries the same token (double submit, bound to the user).
func (h *Handler) csrfToken(w http.ResponseWriter, r *http.Request, user string) (string, error) {
	if tok, ok := h.csrfFromCookie(r, user); ok {
		return tok, nil
	}
	tok := rand.Text()
	if err := h.setCookie(w, r, csrfCookie, []byte(tok+"\n"+user), 0); err != nil {
		return "", err
	}
	return tok, nil
}

func (h *Handler) csrfFromCookie(r *http.Request, user string) (string, bool) {
	raw := h.readCookie(r, csrfCookie)
	tok, u, ok := strings.Cut(string(raw), "\n")
	if !ok || u != user || tok == "" {
		return "", false
	}
	return tok, true
}

// checkCSRF reports whether a POST is same-origin (Fetch Metadata or
// Origin, through net/http's CrossOriginProtection) and carries the CSRF
// token of this browser's cookie for this user.
func (h *Handler) checkCSRF(r *http.Request, user string) bool {
	if h.cop.Check(r) != nil {
		return false
	}
	want, ok := h.csrfFromCookie(r, user)
	if !ok {
		return false
	}
	got := r.PostForm.Get("csrf_token")
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// safeReturn returns target if it is a same-host relative URL that is
// safe to redirect to, and "/" otherwise. Refused: anything with a scheme
// or host, protocol-relative forms (//host, /\host, and their encoded or
// whitespace-smuggled variants), backslashes and control characters
// anywhere, and the gate's own pages (which would loop).
func safeReturn(target, prefix string) string {
	if target == "" || target[0] != '/' || len(target) > 2048 {
		return "/"
	}
	for i := 0; i < len(target); i++ {
		if c := target[i]; c < 0x21 || c == 0x7f || c == '\\' {
			return "/"
		}
	}
	if strings.HasPrefix(target, "//") {
		return "/"
	}
	u, err := url.Parse(target)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return "/"
	}
	// The decoded path must not turn into //host or /\host either, nor
	// carry characters that some browser or proxy would reinterpret.
	if strings.HasPrefix(u.Path, "//") || strings.ContainsAny(u.Path, "\\\r\n\t") {
		return "/"
	}
	// Never back to the gate's own pages (it would loop), however the
	// path is spelled: any case, dot segments, encoded dots. The settings
	// page is the exception worth returning to (it never redirects to its
	// own rd, so this cannot loop).
	lowPrefix := strings.ToLower(prefix)
	for _, p := range [...]string{u.Path, path.Clean(u.Path)} {
		if lower := strings.ToLower(p); lower == lowPrefix || strings.HasPrefix(lower, lowPrefix+"/") {
			if u.Path == prefix+"/settings" {
				return target
			}
			return "/"
		}
	}
	return target
}
