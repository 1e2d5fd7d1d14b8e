//go:build linux

package legacyapps

import (
	"net/http"
	"testing"
)

// probe is one request shape against an application: a page, a form
// post, an API call.
type probe struct {
	method, path, body string
	header             http.Header
}

// verdict tells how an application answered: as to user, or as to a
// visitor who is not logged in.
type verdict struct {
	loggedIn  func(r response, user string) bool
	anonymous func(r response) bool
	// someone reports whether the application answered as to some
	// logged-in user (it cannot always tell who).
	someone func(r response) bool
	// others accepts answers to another logged-in user: the attacker's
	// own session, when he adds the victim's cookie to his.
	others bool
}

// allowingOthers is v, accepting answers to the attacker's own session.
func (v verdict) allowingOthers() verdict { v.others = true; return v }

// send sends p with b's cookies.
func (b *browser) send(p probe) response {
	b.t.Helper()
	if p.method == "GET" {
		return b.do("GET", p.path, nil, p.header)
	}
	h := b.sameOrigin("application/x-www-form-urlencoded")
	for k, v := range p.header {
		h[k] = v
	}
	return b.do(p.method, p.path, stringReader(p.body), h)
}

// judge fails if r is the application talking to user, or if neither
// the gate nor the application said "not logged in".
func (v verdict) judge(t *testing.T, label string, p probe, r response, user string) {
	t.Helper()
	switch {
	case v.loggedIn(r, user):
		t.Errorf("%s: %s %s reached the application as %s (status %d)", label, p.method, p.path, user, r.StatusCode)
	case r.toGate(), v.anonymous(r):
	case r.StatusCode == http.StatusRequestHeaderFieldsTooLarge:
		// Refused before the gate: Go's server limits cookie parts.
	case r.StatusCode >= 500:
		t.Logf("%s: %s %s: the application failed (%d): not logged in, but no clean answer", label, p.method, p.path, r.StatusCode)
	case v.someone != nil && v.someone(r):
		if !v.others {
			t.Errorf("%s: %s %s reached the application logged in (as %s or someone else; status %d)", label, p.method, p.path, user, r.StatusCode)
		}
	default:
		t.Errorf("%s: %s %s: neither the gate nor the application said \"not logged in\": %d %q\n%s", label, p.method, p.path, r.StatusCode, r.location(), trim(r.body))
	}
}

// assertNotIn sends every probe with b's cookies and judges the answers.
func (v verdict) assertNotIn(t *testing.T, label string, b *browser, user string, probes []probe) {
	t.Helper()
	for _, p := range probes {
		v.judge(t, label, p, b.send(p), user)
	}
}

// assertRawNotIn sends every probe with exactly the Cookie header given.
func (v verdict) assertRawNotIn(t *testing.T, label string, s *site, cookie, user string, probes []probe) {
	t.Helper()
	for _, p := range probes {
		v.judge(t, label, p, s.rawCookies(t, p.method, p.path, cookie, p.body, p.header), user)
	}
}
