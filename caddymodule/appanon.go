package caddymodule

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddy-2fa/caddy-2fa/keyring"
	"github.com/caddy-2fa/caddy-2fa/sessions"
)

// Anonymous (pre-login) application sessions, rule (b) of app_login: the
// application may receive a session cookie that the gate saw it issue to
// this browser while nobody was logged in, until a login with it is seen.
// Login forms with a CSRF token in the session (phpMyAdmin, MediaWiki...)
// need it.
//
// The gate remembers them without growing its store: in a companion gate
// cookie (anonCookie, signed like the other gate cookies) that holds a
// keyed hash of each such cookie's name and value with the time it was
// issued, at most maxAnonEntries of them, each for anonSessionTTL. The
// store only holds markers of login attempts made with an anonymous
// cookie: an in-flight marker, written before the attempt is forwarded
// (so that concurrent requests with the cookie stop counting as anonymous
// while the login is in flight) and deleted if the login fails and no
// other login with the cookie is in flight on this instance; and, after a
// success, a "done" marker that nothing deletes, kept for longer than any
// companion entry naming the cookie can live (so a replayed old companion
// cookie cannot make it anonymous again). Failed attempts leave nothing
// behind, so markers grow only with successful logins.
const (
	// anonCookie is the companion cookie's base name.
	anonCookie = "2fa_anon"
	// anonSessionTTL is how long an anonymous application session is
	// remembered after the application issued it.
	anonSessionTTL = 6 * time.Hour
	// maxAnonEntries bounds the companion cookie: the newest entries are
	// kept.
	maxAnonEntries = 8
	// anonEntrySize is one entry: a 16-byte keyed hash, 8 bytes of time.
	anonEntrySize = 16 + 8
	// anonMarkerTTL is how long a "login seen" marker is kept: longer
	// than any companion entry issued before the login can be presented,
	// with a margin for clocks of instances sharing a store.
	anonMarkerTTL = anonSessionTTL + 10*time.Minute
	// anonMarkerUser is the user a marker is stored under: no user name
	// can be spelled so (identify refuses control characters), so revoking
	// a user's sessions never removes a marker.
	anonMarkerUser = "\x00app_login"
	// MethodLoginSeen marks a "login seen" marker in the store.
	MethodLoginSeen = "app_login_seen"
	// inFlightWait bounds how long a login attempt waits for the requests
	// forwarded with its anonymous cookie to finish.
	inFlightWait = 10 * time.Second
)

// anonKey is the keyed hash of an application cookie's name and value in
// a companion entry and in a marker's ID: the gate never keeps the value.
func anonKey(k *keyring.Keys, name, value string) [16]byte {
	m := hmac.New(sha256.New, k.DeviceID)
	m.Write([]byte("app-anon\x00"))
	m.Write(binary.AppendUvarint(nil, uint64(len(name))))
	m.Write([]byte(name))
	m.Write([]byte(value))
	var out [16]byte
	copy(out[:], m.Sum(nil))
	return out
}

// markerID is the store ID of the in-flight marker of an anonymous
// cookie: a login with it is (or was) in flight.
func markerID(key [16]byte) string {
	return bindingPrefix + "seen:" + hex.EncodeToString(key[:])
}

// doneMarkerID is the store ID of the marker of a successful login with
// an anonymous cookie. Unlike the in-flight marker, which a failed login
// removes, nothing removes it before it expires: a failed attempt racing
// a successful one (two logins with one pre-login session) cannot make
// the session anonymous again.
func doneMarkerID(key [16]byte) string {
	return bindingPrefix + "done:" + hex.EncodeToString(key[:])
}

// anonEntry is one companion entry.
type anonEntry struct {
	key    [16]byte
	issued time.Time
}

// readAnon returns the live entries of the browser's companion cookie.
func (h *Handler) readAnon(r *http.Request, t time.Time) []anonEntry {
	raw := h.readCookie(r, anonCookie)
	var out []anonEntry
	for len(raw) >= anonEntrySize && len(out) < maxAnonEntries {
		var e anonEntry
		copy(e.key[:], raw[:16])
		e.issued = time.Unix(int64(binary.BigEndian.Uint64(raw[16:24])), 0)
		raw = raw[anonEntrySize:]
		// Alive for anonSessionTTL, and never from the future (beyond a
		// little clock difference between instances).
		if age := t.Sub(e.issued); age < anonSessionTTL && age > -time.Minute {
			out = append(out, e)
		}
	}
	return out
}

// writeAnon sets the companion cookie to entries (the newest
// maxAnonEntries), or clears it when there are none.
func (h *Handler) writeAnon(w http.ResponseWriter, r *http.Request, entries []anonEntry) error {
	if len(entries) > maxAnonEntries {
		entries = entries[len(entries)-maxAnonEntries:]
	}
	if len(entries) == 0 {
		if h.readCookie(r, anonCookie) != nil {
			h.clearCookie(w, r, anonCookie)
		}
		return nil
	}
	raw := make([]byte, 0, len(entries)*anonEntrySize)
	for _, e := range entries {
		raw = append(raw, e.key[:]...)
		raw = binary.BigEndian.AppendUint64(raw, uint64(e.issued.Unix()))
	}
	return h.setCookie(w, r, anonCookie, raw, anonSessionTTL)
}

// hasAnon reports whether entries name key.
func hasAnon(entries []anonEntry, key [16]byte) bool {
	for _, e := range entries {
		if hmac.Equal(e.key[:], key[:]) {
			return true
		}
	}
	return false
}

// withAnon returns entries without those whose key is in drop, plus add.
func withAnon(entries []anonEntry, drop [][16]byte, add []anonEntry) []anonEntry {
	var out []anonEntry
	for _, e := range entries {
		if !hasAnonKey(drop, e.key) && !hasAnonKey(entryKeys(add), e.key) {
			out = append(out, e)
		}
	}
	return append(out, add...)
}

func entryKeys(es []anonEntry) [][16]byte {
	keys := make([][16]byte, len(es))
	for i, e := range es {
		keys[i] = e.key
	}
	return keys
}

func hasAnonKey(keys [][16]byte, k [16]byte) bool {
	for _, x := range keys {
		if x == k {
			return true
		}
	}
	return false
}

// loginMarker is the marker record of a login attempt with an anonymous
// cookie, written at t.
func loginMarker(r *http.Request, t time.Time) sessions.Session {
	return sessions.Session{User: anonMarkerUser, Method: MethodLoginSeen, Created: t, LastSeen: t, Expires: t.Add(anonMarkerTTL), ClientIP: clientIP(r)}
}

// loginsInFlight counts, per marker ID, the login attempts this process
// has forwarded with an anonymous cookie and not yet seen answered: a
// failed one removes the in-flight marker only when it is the last.
var loginsInFlight = struct {
	sync.Mutex
	n map[string]int
}{n: make(map[string]int)}

// startLogin counts a login attempt with the anonymous cookie of marker
// id.
func startLogin(realm, id string) {
	loginsInFlight.Lock()
	loginsInFlight.n[realm+"\x00"+id]++
	loginsInFlight.Unlock()
}

// endLogin undoes startLogin and reports whether no other login with the
// cookie is in flight here.
func endLogin(realm, id string) (last bool) {
	k := realm + "\x00" + id
	loginsInFlight.Lock()
	defer loginsInFlight.Unlock()
	if loginsInFlight.n[k]--; loginsInFlight.n[k] <= 0 {
		delete(loginsInFlight.n, k)
		return true
	}
	return false
}

// loginMarkerHook, when set (tests only), runs before a login attempt
// writes its in-flight markers: a seam to line two attempts up.
var loginMarkerHook atomic.Pointer[func()]

// inFlight counts, per marker ID, the requests this process is
// forwarding with an anonymous cookie. A login attempt with the cookie
// first writes its marker, then waits for the count to drop to zero: a
// request counted before the marker existed may still be on its way to
// the application (a slowly sent body) and must not reach it after the
// login made its session someone's. A request counts itself before it
// looks for the marker, so one of the two always sees the other. Requests
// on other instances sharing the store are not counted (README, limits).
var inFlight = struct {
	sync.Mutex
	n map[string]int
}{n: make(map[string]int)}

// acquireInFlight counts a request forwarded with the anonymous cookie of
// marker id; the returned func undoes it.
func acquireInFlight(realm, id string) func() {
	k := realm + "\x00" + id
	inFlight.Lock()
	inFlight.n[k]++
	inFlight.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			inFlight.Lock()
			if inFlight.n[k]--; inFlight.n[k] <= 0 {
				delete(inFlight.n, k)
			}
			inFlight.Unlock()
		})
	}
}

// waitInFlight waits until no request counted for marker id is in
// flight, up to inFlightWait; it reports whether that happened.
func waitInFlight(realm, id string) bool {
	k := realm + "\x00" + id
	deadline := time.Now().Add(inFlightWait)
	for {
		inFlight.Lock()
		n := inFlight.n[k]
		inFlight.Unlock()
		if n == 0 {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}
