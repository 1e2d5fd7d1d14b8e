package redisstore

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/caddy-2fa/caddy-2fa/sessions"
)

// Record format tags: the first byte of a session or device value. A new
// format gets a new tag, so that old records stay readable.
const (
	fmtSession byte = 1
	fmtDevice  byte = 2
	fmtToken   byte = 3
)

// errCorrupt is wrapped by every decoding error.
var errCorrupt = errors.New("malformed record")

func corrupt(what string) error { return fmt.Errorf("%w (%s)", errCorrupt, what) }

// zeroUnix is time.Time{}.Unix(): the zero time round-trips as the zero
// time (not as a time in the Local zone that merely equals it).
var zeroUnix = time.Time{}.Unix()

// appendTime appends t as zigzag varint Unix seconds and uvarint
// nanoseconds: exact for every time.Time instant.
func appendTime(b []byte, t time.Time) []byte {
	b = binary.AppendVarint(b, t.Unix())
	return binary.AppendUvarint(b, uint64(t.Nanosecond()))
}

// appendDelta appends t - base as zigzag varint seconds and uvarint
// nanoseconds (in [0, 1e9)), without the overflow of time.Duration.
// Times close to base take few bytes.
func appendDelta(b []byte, t, base time.Time) []byte {
	ds := t.Unix() - base.Unix()
	dn := int64(t.Nanosecond()) - int64(base.Nanosecond())
	if dn < 0 {
		dn += 1e9
		ds--
	}
	b = binary.AppendVarint(b, ds)
	return binary.AppendUvarint(b, uint64(dn))
}

// appendString appends s with a uvarint length prefix.
func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// unixTime is time.Unix, except that the zero instant is time.Time{}.
func unixTime(sec, nsec int64) time.Time {
	if sec == zeroUnix && nsec == 0 {
		return time.Time{}
	}
	return time.Unix(sec, nsec)
}

// reader decodes what the append functions encode. The first error sticks.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = corrupt(what)
	}
	r.b = nil
}

func (r *reader) byte() byte {
	if len(r.b) == 0 {
		r.fail("truncated")
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("bad varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("bad uvarint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bytes(n uint64) []byte {
	if n > uint64(len(r.b)) {
		r.fail("truncated")
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) string() string { return string(r.bytes(r.uvarint())) }

func (r *reader) nanos() int64 {
	n := r.uvarint()
	if n >= 1e9 {
		r.fail("bad nanoseconds")
		return 0
	}
	return int64(n)
}

func (r *reader) time() time.Time {
	s := r.varint()
	return unixTime(s, r.nanos())
}

func (r *reader) delta(base time.Time) time.Time {
	ds := r.varint()
	dn := r.nanos()
	s, n := base.Unix()+ds, int64(base.Nanosecond())+dn
	if n >= 1e9 {
		s++
		n -= 1e9
	}
	return unixTime(s, n)
}

// A session or device record has a header byte that says how its method,
// client IP and user agent are stored:
//
//	bits 0-1  method: 0 a string follows, 1 totp, 2 recovery,
//	          3 trusted_device (devices: always 0, no method)
//	bits 2-3  client IP: 0 empty, 1 a string follows, 2 IPv4 in 4 bytes,
//	          3 IPv6 in 16 bytes (only an address that netip formats back
//	          to the very same string is stored in binary)
//	bits 4-5  user agent: 0 as is, 1 compressed with uaTokens
//	bit 6     a MAC follows (the gate's record tag; records written before
//	          the gate tagged them have none)
//	bit 7     a device key follows (sessions only: the trusted device that
//	          started the session)
const (
	methodShift = 0
	ipShift     = 2
	uaShift     = 4
	hasMAC      = 1 << 6
	hasDevice   = 1 << 7

	ipNone   = 0
	ipString = 1
	ipV4     = 2
	ipV6     = 3

	uaRaw        = 0
	uaCompressed = 1
)

// methodCodes are the methods stored in the header alone (code 0: a
// string follows).
var methodCodes = [4]string{1: "totp", 2: "recovery", 3: "trusted_device"}

func methodCode(m string) byte {
	for i, name := range methodCodes {
		if i != 0 && name == m {
			return byte(i)
		}
	}
	return 0
}

func ipForm(s string) (form byte, bin []byte) {
	if s == "" {
		return ipNone, nil
	}
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" && a.String() == s {
		if a.Is4() {
			v := a.As4()
			return ipV4, v[:]
		}
		v := a.As16()
		return ipV6, v[:]
	}
	return ipString, nil
}

func (r *reader) ip(form byte) string {
	switch form {
	case ipNone:
		return ""
	case ipString:
		return r.string()
	case ipV4:
		if v := r.bytes(4); v != nil {
			return netip.AddrFrom4([4]byte(v)).String()
		}
	case ipV6:
		if v := r.bytes(16); v != nil {
			return netip.AddrFrom16([16]byte(v)).String()
		}
	}
	return ""
}

// ownerPrefix is how every session (or device) value of user starts: the
// format tag and the length-prefixed user name. Comparing a stored value's
// first bytes with it tells whether the record is user's.
func ownerPrefix(format byte, user string) string {
	return string(appendString([]byte{format}, user))
}

// record is what sessions and devices have in common.
type record struct {
	format    byte
	user      string
	method    string // sessions only
	expires   time.Time
	created   time.Time
	lastUsed  time.Time // LastSeen of a session
	clientIP  string
	userAgent string
	mac       []byte
	device    string // sessions only
}

// How a device key is stored in a session record: device keys are 64
// lowercase hex digits (keyring.Keys.DeviceKey), kept as their 32 bytes;
// any other string is kept as it is.
const (
	deviceString byte = 0
	deviceHex    byte = 1
)

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func appendDeviceRef(b []byte, d string) []byte {
	if len(d) == 64 && isLowerHex(d) {
		out, err := hex.AppendDecode(append(b, deviceHex), []byte(d))
		if err == nil {
			return out
		}
	}
	b = append(b, deviceString)
	return appendString(b, d)
}

func (r *reader) deviceRef() string {
	switch r.byte() {
	case deviceString:
		return r.string()
	case deviceHex:
		if v := r.bytes(32); v != nil {
			return hex.EncodeToString(v)
		}
	default:
		r.fail("bad device reference")
	}
	return ""
}

// encode encodes a session or device compactly:
//
//	format | lp(user) | header | Expires | Created-Expires |
//	LastSeen-Expires (LastUsed for a device) | [lp(method)] |
//	[lp(MAC)] | [device key] | [client IP] | user agent (the rest of the
//	value)
//
// where lp is a uvarint length prefix, times are varint Unix seconds and
// uvarint nanoseconds (the other two relative to Expires), and the header
// says how the method, IP and user agent are stored.
func (rec record) encode() []byte {
	mc := methodCode(rec.method)
	ipf, ipb := ipForm(rec.clientIP)
	ua, uaf := []byte(nil), byte(uaRaw)
	if c, ok := compressUA(rec.userAgent); ok {
		ua, uaf = c, uaCompressed
	}
	b := make([]byte, 0, 80+len(rec.user)+len(rec.method)+len(rec.clientIP)+len(rec.userAgent)+len(rec.mac))
	b = append(b, rec.format)
	b = appendString(b, rec.user)
	h := mc<<methodShift | ipf<<ipShift | uaf<<uaShift
	if len(rec.mac) > 0 {
		h |= hasMAC
	}
	if rec.format == fmtSession && rec.device != "" {
		h |= hasDevice
	}
	b = append(b, h)
	b = appendTime(b, rec.expires)
	b = appendDelta(b, rec.created, rec.expires)
	b = appendDelta(b, rec.lastUsed, rec.expires)
	if rec.format == fmtSession && mc == 0 {
		b = appendString(b, rec.method)
	}
	if h&hasMAC != 0 {
		b = appendString(b, string(rec.mac))
	}
	if h&hasDevice != 0 {
		b = appendDeviceRef(b, rec.device)
	}
	switch ipf {
	case ipString:
		b = appendString(b, rec.clientIP)
	case ipV4, ipV6:
		b = append(b, ipb...)
	}
	if uaf == uaCompressed {
		return append(b, ua...)
	}
	return append(b, rec.userAgent...)
}

// decodeRecord decodes what encode encodes, if it has the given format.
func decodeRecord(v []byte, format byte) (record, error) {
	r := reader{b: v}
	rec := record{format: r.byte()}
	if rec.format != format || r.err != nil {
		return record{}, corrupt("wrong record type")
	}
	rec.user = r.string()
	h := r.byte()
	mc, ipf, uaf := h>>methodShift&3, h>>ipShift&3, h>>uaShift&3
	if uaf > uaCompressed || (format == fmtDevice && (mc != 0 || h&hasDevice != 0)) {
		return record{}, corrupt("bad header")
	}
	rec.expires = r.time()
	rec.created = r.delta(rec.expires)
	rec.lastUsed = r.delta(rec.expires)
	if format == fmtSession {
		if mc == 0 {
			rec.method = r.string()
		} else {
			rec.method = methodCodes[mc]
		}
	}
	if h&hasMAC != 0 {
		rec.mac = r.bytes(r.uvarint())
		if len(rec.mac) == 0 {
			r.fail("empty MAC")
		}
	}
	if h&hasDevice != 0 {
		rec.device = r.deviceRef()
	}
	rec.clientIP = r.ip(ipf)
	if r.err != nil {
		return record{}, r.err
	}
	if uaf == uaCompressed {
		ua, err := expandUA(r.b)
		if err != nil {
			return record{}, err
		}
		rec.userAgent = ua
	} else {
		rec.userAgent = string(r.b)
	}
	return rec, nil
}

func encodeSession(s sessions.Session) []byte {
	return record{
		format: fmtSession, user: s.User, method: s.Method,
		expires: s.Expires, created: s.Created, lastUsed: s.LastSeen,
		clientIP: s.ClientIP, userAgent: s.UserAgent,
		mac: s.MAC, device: s.Device,
	}.encode()
}

func decodeSession(v []byte) (sessions.Session, error) {
	rec, err := decodeRecord(v, fmtSession)
	if err != nil {
		return sessions.Session{}, err
	}
	return sessions.Session{
		User: rec.user, Method: rec.method,
		Created: rec.created, Expires: rec.expires, LastSeen: rec.lastUsed,
		ClientIP: rec.clientIP, UserAgent: rec.userAgent,
		MAC: cloneBytes(rec.mac), Device: rec.device,
	}, nil
}

func encodeDevice(d sessions.Device) []byte {
	return record{
		format: fmtDevice, user: d.User,
		expires: d.Expires, created: d.Created, lastUsed: d.LastUsed,
		clientIP: d.ClientIP, userAgent: d.UserAgent,
		mac: d.MAC,
	}.encode()
}

func decodeDevice(v []byte) (sessions.Device, error) {
	rec, err := decodeRecord(v, fmtDevice)
	if err != nil {
		return sessions.Device{}, err
	}
	return sessions.Device{
		User:    rec.user,
		Created: rec.created, Expires: rec.expires, LastUsed: rec.lastUsed,
		ClientIP: rec.clientIP, UserAgent: rec.userAgent,
		MAC: cloneBytes(rec.mac),
	}, nil
}

// cloneBytes copies b (nil stays nil), so that a decoded record does not
// share memory with the value it was decoded from.
func cloneBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}

// encodeToken encodes a one-time value: 3 | Expires | value.
func encodeToken(value []byte, expires time.Time) []byte {
	b := make([]byte, 0, 12+len(value))
	b = append(b, fmtToken)
	b = appendTime(b, expires)
	return append(b, value...)
}

func decodeToken(v []byte) (value []byte, expires time.Time, err error) {
	r := reader{b: v}
	if r.byte() != fmtToken {
		return nil, time.Time{}, corrupt("not a token")
	}
	expires = r.time()
	if r.err != nil {
		return nil, time.Time{}, r.err
	}
	return append([]byte{}, r.b...), expires, nil
}

// Step and failure counter records are text, so that scripts can read
// and write them and people can read them in redis-cli. Times are written
// as two integers, Unix seconds and nanoseconds, which Lua's doubles hold
// exactly.

// timeFields formats t as "sec nsec".
func timeFields(t time.Time) string {
	return strconv.FormatInt(t.Unix(), 10) + " " + strconv.Itoa(t.Nanosecond())
}

// parseFields parses n space-separated integers.
func parseFields(v string, n int) ([]int64, error) {
	f := strings.Fields(v)
	if len(f) != n {
		return nil, corrupt("wrong field count")
	}
	out := make([]int64, n)
	for i, s := range f {
		x, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, corrupt("bad number")
		}
		out[i] = x
	}
	return out, nil
}

// decodeAttempts parses a failure counter record:
// "failures windowEndsSec windowEndsNsec lockedUntilSec lockedUntilNsec".
func decodeAttempts(v string) (sessions.Attempts, error) {
	f, err := parseFields(v, 5)
	if err != nil {
		return sessions.Attempts{}, err
	}
	if f[2] < 0 || f[2] >= 1e9 || f[4] < 0 || f[4] >= 1e9 {
		return sessions.Attempts{}, corrupt("bad nanoseconds")
	}
	return sessions.Attempts{
		Failures:    int(f[0]),
		WindowEnds:  unixTime(f[1], f[2]),
		LockedUntil: unixTime(f[3], f[4]),
	}, nil
}

// durationFields formats d as "sec nsec" with nsec in [0, 1e9).
func durationFields(d time.Duration) string {
	s, n := int64(d/time.Second), int64(d%time.Second)
	if n < 0 {
		s--
		n += 1e9
	}
	return strconv.FormatInt(s, 10) + " " + strconv.FormatInt(n, 10)
}

// Profile hash fields (see the package documentation). Times are
// "sec nsec", like the step and failure counter records.
const (
	fieldFirstSeen     = "first"
	fieldLastVerified  = "verified"
	fieldLastMethod    = "method"
	fieldDisabledUntil = "disabled"
)

// zeroFields is timeFields(time.Time{}), how the zero time is written.
var zeroFields = timeFields(time.Time{})

// parseTime parses a "sec nsec" time field.
func parseTime(v string) (time.Time, error) {
	f, err := parseFields(v, 2)
	if err != nil {
		return time.Time{}, err
	}
	if f[1] < 0 || f[1] >= 1e9 {
		return time.Time{}, corrupt("bad nanoseconds")
	}
	return unixTime(f[0], f[1]), nil
}

// decodeProfile decodes a profile hash. Absent fields are zero; fields it
// does not know are ignored.
func decodeProfile(m map[string]string) (sessions.Profile, error) {
	var p sessions.Profile
	for name, t := range map[string]*time.Time{
		fieldFirstSeen:     &p.FirstSeen,
		fieldLastVerified:  &p.LastVerified,
		fieldDisabledUntil: &p.DisabledUntil,
	} {
		v, ok := m[name]
		if !ok {
			continue
		}
		var err error
		if *t, err = parseTime(v); err != nil {
			return sessions.Profile{}, fmt.Errorf("profile field %s: %w", name, err)
		}
	}
	p.LastMethod = m[fieldLastMethod]
	return p, nil
}
