package redisstore

import (
	"strconv"

	"github.com/redis/go-redis/v9"
)

// The Lua scripts behind the atomic operations. Each script touches only
// the keys it is given in KEYS, and all of them are in one cluster slot
// (a user's keys share a hash tag; the other scripts take one key), so
// every script runs on one node, atomically. Scripts never read the
// server's clock: times come from the caller as "seconds nanoseconds"
// pairs (exact in Lua's doubles) and TTLs as milliseconds computed by the
// caller, so a gate's clock, not the server's, decides what has expired.
//
// Writes in a script are not rolled back if a later command fails, so
// each script does its checks before its first write.

// luaTime holds the helpers the time-aware scripts share.
const luaTime = `
local function before(as, an, bs, bn)
	return as < bs or (as == bs and an < bn)
end
local function add(s, n, ds, dn)
	s = s + ds
	n = n + dn
	if n >= 1e9 then
		s = s + 1
		n = n - 1e9
	end
	return s, n
end
`

// acceptStepScript: KEYS[1] = step record ("step sec nsec"); optional
// KEYS[2] = a key that must exist (the enrollment), else -1.
// ARGV: step, expires sec, expires nsec, now sec, now nsec, TTL in ms.
// Stores step if it is greater than the recorded step or that record has
// expired at now; returns 1 if it did, 0 if not. A TTL <= 0 (the new
// record has already expired) deletes the record instead.
var acceptStepScript = redis.NewScript(luaTime + `
if #KEYS > 1 and redis.call('EXISTS', KEYS[2]) == 0 then
	return -1
end
local v = redis.call('GET', KEYS[1])
if v then
	local last, es, en = string.match(v, '^(%-?%d+) (%-?%d+) (%d+)$')
	if not last then
		return redis.error_reply('ERR malformed step record')
	end
	local live = before(tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(es), tonumber(en))
	if live and tonumber(ARGV[1]) <= tonumber(last) then
		return 0
	end
end
local ttl = tonumber(ARGV[6])
if ttl > 0 then
	redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. ARGV[2] .. ' ' .. ARGV[3], 'PX', ttl)
else
	redis.call('DEL', KEYS[1])
end
return 1
`)

// addFailureScript: KEYS[1] = failure counter
// ("failures windowEndsSec windowEndsNsec lockedUntilSec lockedUntilNsec").
// ARGV: now sec, now nsec, max, window sec, window nsec, lockout sec,
// lockout nsec, zero time sec.
// Counts one failure at now and returns the new record. A counter whose
// window and lockout are both over starts again at 1; reaching max (if
// positive) outside a lockout starts one; failures during a lockout are
// counted but do not extend it. The key expires when both the window and
// the lockout are over (deleted at once if that is not after now).
var addFailureScript = redis.NewScript(luaTime + `
local ns, nn = tonumber(ARGV[1]), tonumber(ARGV[2])
local zero = tonumber(ARGV[8])
local f, ws, wn, ls, ln = 0, zero, 0, zero, 0
local v = redis.call('GET', KEYS[1])
if v then
	local a, b, c, d, e = string.match(v, '^(%d+) (%-?%d+) (%d+) (%-?%d+) (%d+)$')
	if not a then
		return redis.error_reply('ERR malformed failure counter')
	end
	f, ws, wn, ls, ln = tonumber(a), tonumber(b), tonumber(c), tonumber(d), tonumber(e)
	if not before(ns, nn, ws, wn) and not before(ns, nn, ls, ln) then
		f, ws, wn, ls, ln = 0, zero, 0, zero, 0
	end
end
if f == 0 then
	ws, wn = add(ns, nn, tonumber(ARGV[4]), tonumber(ARGV[5]))
end
f = f + 1
local max = tonumber(ARGV[3])
if max > 0 and f >= max and not before(ns, nn, ls, ln) then
	ls, ln = add(ns, nn, tonumber(ARGV[6]), tonumber(ARGV[7]))
end
local es, en = ws, wn
if before(es, en, ls, ln) then
	es, en = ls, ln
end
local rec = string.format('%d %d %d %d %d', f, ws, wn, ls, ln)
local ttl = math.ceil((es - ns) * 1000 + (en - nn) / 1e6)
if ttl > 0 then
	redis.call('SET', KEYS[1], rec, 'PX', ttl)
else
	redis.call('DEL', KEYS[1])
end
return rec
`)

// luaCounter holds the helpers of the counter scripts that take several
// counters (ReserveAttempt) or give one back (ReleaseAttempt), on the
// record format of addFailureScript. ARGV[1], ARGV[2] are now (sec,
// nsec), ARGV[3] the zero time's seconds. A record is the table {failures,
// windowEndsSec, windowEndsNsec, lockedUntilSec, lockedUntilNsec}; read
// returns the zero record for an absent key or one whose window and
// lockout are both over, and nil for a malformed one.
const luaCounter = luaTime + `
local ns, nn = tonumber(ARGV[1]), tonumber(ARGV[2])
local zero = tonumber(ARGV[3])
local function read(key)
	local v = redis.call('GET', key)
	if not v then
		return {0, zero, 0, zero, 0}
	end
	local a, b, c, d, e = string.match(v, '^(%d+) (%-?%d+) (%d+) (%-?%d+) (%d+)$')
	if not a then
		return nil
	end
	local r = {tonumber(a), tonumber(b), tonumber(c), tonumber(d), tonumber(e)}
	if not before(ns, nn, r[2], r[3]) and not before(ns, nn, r[4], r[5]) then
		return {0, zero, 0, zero, 0}
	end
	return r
end
local function locked(r)
	return before(ns, nn, r[4], r[5])
end
local function longer(a, b)
	if locked(b) and before(a[4], a[5], b[4], b[5]) then
		return b
	end
	return a
end
local function enc(r)
	return string.format('%d %d %d %d %d', r[1], r[2], r[3], r[4], r[5])
end
local function save(key, r)
	local es, en = r[2], r[3]
	if before(es, en, r[4], r[5]) then
		es, en = r[4], r[5]
	end
	local ttl = math.ceil((es - ns) * 1000 + (en - nn) / 1e6)
	if ttl > 0 then
		redis.call('SET', key, enc(r), 'PX', ttl)
	else
		redis.call('DEL', key)
	end
end
`

// reserveAttemptScript: KEYS = the counters (all in the realm's counter
// slot). ARGV: now sec, now nsec, zero time sec, then for each counter
// max, window sec, window nsec, lockout sec, lockout nsec.
// If any counter is locked out at now, writes nothing and returns {0,
// the record of the counter locked for longest}. Otherwise counts one
// attempt on every counter as addFailureScript counts a failure and
// returns {1, the record that applies: the one locked for longest if
// any, else the first}. Every check comes before the first write.
var reserveAttemptScript = redis.NewScript(luaCounter + `
local states = {}
local res
local lock = false
for i = 1, #KEYS do
	local r = read(KEYS[i])
	if not r then
		return redis.error_reply('ERR malformed failure counter')
	end
	states[i] = r
	if i == 1 then
		res = r
	else
		res = longer(res, r)
	end
	lock = lock or locked(r)
end
if lock then
	return {0, enc(res)}
end
for i = 1, #KEYS do
	local r, o = states[i], 3 + (i - 1) * 5
	if r[1] == 0 then
		r[2], r[3] = add(ns, nn, tonumber(ARGV[o + 2]), tonumber(ARGV[o + 3]))
	end
	r[1] = r[1] + 1
	local max = tonumber(ARGV[o + 1])
	if max > 0 and r[1] >= max then
		r[4], r[5] = add(ns, nn, tonumber(ARGV[o + 4]), tonumber(ARGV[o + 5]))
	end
	save(KEYS[i], r)
	if i == 1 then
		res = r
	else
		res = longer(res, r)
	end
end
return {1, enc(res)}
`)

// releaseAttemptScript: KEYS[1] = a counter. ARGV: now sec, now nsec,
// zero time sec, max.
// Takes one attempt off the counter if it has any and its window is open
// at now, and lifts its lockout if the count is then under max (or max is
// not positive); deletes it at zero. Returns 1 if it changed the counter.
var releaseAttemptScript = redis.NewScript(luaCounter + `
local r = read(KEYS[1])
if not r then
	return redis.error_reply('ERR malformed failure counter')
end
if r[1] == 0 or not before(ns, nn, r[2], r[3]) then
	return 0
end
r[1] = r[1] - 1
local max = tonumber(ARGV[4])
if max <= 0 or r[1] < max then
	r[4], r[5] = zero, 0
end
if r[1] == 0 then
	redis.call('DEL', KEYS[1])
else
	save(KEYS[1], r)
end
return 1
`)

// luaSAdd adds ARGV[from..] to the set KEYS[key] in batches (unpack of a
// very long list would overflow Lua's stack).
const luaSAdd = `
local function sadd(key, from)
	for i = from, #ARGV, 1000 do
		redis.call('SADD', key, unpack(ARGV, i, math.min(i + 999, #ARGV)))
	end
end
`

// enrollScript: KEYS = enrollment, recovery codes, pending enrollment.
// ARGV[1] = enrollment, ARGV[2..] = recovery code hashes.
// Creates the enrollment only if there is none (returns 0 then), with its
// recovery codes, and deletes the pending enrollment; returns 1.
var enrollScript = redis.NewScript(luaSAdd + `
if redis.call('EXISTS', KEYS[1]) == 1 then
	return 0
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2], KEYS[3])
sadd(KEYS[2], 2)
return 1
`)

// enrollPendingScript: KEYS = enrollment, recovery codes, pending
// enrollment (JSON). ARGV[1] = enrollment, ARGV[2] = the pending
// enrollment's sealed secret (base64, as in the JSON), ARGV[3..] =
// recovery code hashes.
// Returns 0 if the user is enrolled already, -1 if there is no pending
// enrollment or it holds another secret; otherwise creates the enrollment
// with its recovery codes, deletes the pending enrollment and returns 1.
// The pending key's expiry is the pending enrollment's: a key that exists
// is live.
var enrollPendingScript = redis.NewScript(luaSAdd + `
if redis.call('EXISTS', KEYS[1]) == 1 then
	return 0
end
local v = redis.call('GET', KEYS[3])
if not v then
	return -1
end
local ok, p = pcall(cjson.decode, v)
if not ok or type(p) ~= 'table' then
	return redis.error_reply('ERR malformed pending enrollment')
end
if ARGV[2] == '' or p['sealed_secret'] ~= ARGV[2] then
	return -1
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2], KEYS[3])
sadd(KEYS[2], 3)
return 1
`)

// setRecoveryScript: KEYS = enrollment, recovery codes. ARGV = hashes.
// Replaces the recovery codes if the enrollment exists (returns 1), else
// returns 0.
var setRecoveryScript = redis.NewScript(luaSAdd + `
if redis.call('EXISTS', KEYS[1]) == 0 then
	return 0
end
redis.call('DEL', KEYS[2])
sadd(KEYS[2], 1)
return 1
`)

// useRecoveryScript: KEYS[1] = recovery codes. ARGV[1] = hash.
// Removes the hash and returns how many remain, or -1 if it was not there.
var useRecoveryScript = redis.NewScript(`
if redis.call('SREM', KEYS[1], ARGV[1]) == 1 then
	return redis.call('SCARD', KEYS[1])
end
return -1
`)

// replaceSealedScript: KEYS[1] = enrollment (JSON). ARGV = old sealed
// secret, new sealed secret (both base64, as in the JSON).
// Sets the enrollment's sealed_secret to ARGV[2] if it is ARGV[1]
// (returns 1), else returns 0; -1 if there is no enrollment. The other
// fields are decoded and encoded again by cjson, which Go reads the same.
var replaceSealedScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v then
	return -1
end
local ok, e = pcall(cjson.decode, v)
if not ok or type(e) ~= 'table' then
	return redis.error_reply('ERR malformed enrollment')
end
if e['sealed_secret'] ~= ARGV[1] then
	return 0
end
e['sealed_secret'] = ARGV[2]
redis.call('SET', KEYS[1], cjson.encode(e), 'KEEPTTL')
return 1
`)

// getEnrollmentScript: KEYS = enrollment, recovery codes.
// Returns {enrollment, number of recovery codes}, or nil.
var getEnrollmentScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v then
	return false
end
return {v, redis.call('SCARD', KEYS[2])}
`)

// indexAddScript: KEYS[1] = a user's trusted-device index (a sorted set
// of IDs scored by expiry in Unix seconds, rounded up).
// ARGV: id, its score, now (Unix seconds, rounded down), now (Unix ms).
// Drops the entries that expired before now, adds id, and sets the
// index's TTL to its latest expiry.
var indexAddScript = redis.NewScript(`
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[3])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
local ttl = tonumber(top[2]) * 1000 - tonumber(ARGV[4])
if ttl > 0 then
	redis.call('PEXPIRE', KEYS[1], ttl)
else
	redis.call('DEL', KEYS[1])
end
return 1
`)

// luaSessionIndex holds the helpers of the session index scripts. A
// user's sessions are indexed in the user's profile hash (KEYS[1]): one
// field per session, named by the session's key ID (sessionKeyIDLen
// characters, which no profile field name is), whose value is the
// session's expiry in Unix seconds, rounded up.
//
// prune deletes the entries that expired before now (Unix seconds), and
// any whose value is not a number, and returns the latest expiry among
// the others (0 if none). settle gives the hash a TTL up to that expiry
// while it holds no profile (no field first), so that the index of a user
// who has sessions but no profile goes away with the sessions; the
// profile scripts remove the TTL when they set first.
var luaSessionIndex = `
local function isEntry(field)
	return #field == ` + strconv.Itoa(sessionKeyIDLen) + `
end
local function prune(key, now)
	local all = redis.call('HGETALL', key)
	local top = 0
	for i = 1, #all, 2 do
		if isEntry(all[i]) then
			local e = tonumber(all[i + 1])
			if not e or e < now then
				redis.call('HDEL', key, all[i])
			elseif e > top then
				top = e
			end
		end
	end
	return top
end
local function settle(key, top, nowms)
	if top > 0 and redis.call('HEXISTS', key, 'first') == 0 then
		redis.call('PEXPIRE', key, math.max(top * 1000 - nowms, 1))
	end
end
`

// sessionIndexAddScript: KEYS[1] = the user's profile hash.
// ARGV: key ID, expiry (Unix seconds, rounded up), now (Unix seconds,
// rounded down), now (Unix ms).
// Drops the entries that expired before now and adds the session.
var sessionIndexAddScript = redis.NewScript(luaSessionIndex + `
local top = prune(KEYS[1], tonumber(ARGV[3]))
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
settle(KEYS[1], math.max(top, tonumber(ARGV[2])), tonumber(ARGV[4]))
return 1
`)

// sessionIndexRemoveScript: KEYS[1] = the user's profile hash.
// ARGV: now (Unix seconds, rounded down), now (Unix ms), then the key IDs
// to remove.
// Removes those entries and the ones that expired before now.
var sessionIndexRemoveScript = redis.NewScript(luaSessionIndex + `
for i = 3, #ARGV do
	redis.call('HDEL', KEYS[1], ARGV[i])
end
settle(KEYS[1], prune(KEYS[1], tonumber(ARGV[1])), tonumber(ARGV[2]))
return 1
`)

// userExistsScript: KEYS = enrollment, profile.
// Returns 1 if the user has an enrollment or a profile (a profile hash
// with the field first, or a profile key that is not a hash at all, so
// that a corrupt one stays visible), else 0. A profile hash that only
// holds session index entries is not a profile.
var userExistsScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then
	return 1
end
local typ = redis.call('TYPE', KEYS[2])['ok']
if typ == 'hash' then
	return redis.call('HEXISTS', KEYS[2], 'first')
end
if typ == 'none' then
	return 0
end
return 1
`)

// deleteOwnedScript: KEYS[1] = a session or device. ARGV[1] = the owner
// prefix of the expected user's records.
// Deletes the record if it belongs to that user and returns it, else
// returns nil.
var deleteOwnedScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, #ARGV[1]) == ARGV[1] then
	redis.call('DEL', KEYS[1])
	return v
end
return false
`)

// swapScript: KEYS[1] = a record. ARGV = old value, new value.
// Replaces the value, keeping the TTL, if it is still the old one
// (returns 1), else returns 0.
var swapScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
	redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
	return 1
end
return 0
`)

// luaProfile holds the helper of the profile scripts. A profile is a hash
// (fields first, verified, method, disabled), which also holds the user's
// session index (see luaSessionIndex).
//
// setFirst sets the field first of the profile key to t unless it holds a
// time other than zero (the encoding of the zero time), and removes the
// TTL that a hash holding only session index entries has: it now holds a
// profile, which is kept.
const luaProfile = `
local function setFirst(key, t, zero)
	local f = redis.call('HGET', key, 'first')
	if not f or f == zero then
		redis.call('HSET', key, 'first', t)
	end
	redis.call('PERSIST', key)
end
`

// seeUserScript: KEYS[1] = profile. ARGV: t, zero time.
// Sets first to t unless set, and returns the profile fields first,
// verified, method and disabled (HMGET, nil if absent).
var seeUserScript = redis.NewScript(luaProfile + `
setFirst(KEYS[1], ARGV[1], ARGV[2])
return redis.call('HMGET', KEYS[1], 'first', 'verified', 'method', 'disabled')
`)

// recordVerificationScript: KEYS[1] = profile. ARGV: t, zero time,
// method. Sets first to t unless set, verified to t and method.
var recordVerificationScript = redis.NewScript(luaProfile + `
setFirst(KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[1], 'verified', ARGV[1], 'method', ARGV[3])
return 1
`)

// setDisabledScript: KEYS[1] = profile. ARGV: now, zero time, until ("" to
// clear). Sets first to now unless set, and disabled to until (or deletes
// it).
var setDisabledScript = redis.NewScript(luaProfile + `
setFirst(KEYS[1], ARGV[1], ARGV[2])
if ARGV[3] == '' then
	redis.call('HDEL', KEYS[1], 'disabled')
else
	redis.call('HSET', KEYS[1], 'disabled', ARGV[3])
end
return 1
`)

// resetUserScript: KEYS = enrollment, recovery codes, step, pending
// enrollment, profile, factors.
// Deletes the first four and the factors, and every field of the profile hash but first
// (first too if it is malformed) and the session index entries, which
// ResetUser removes with the sessions afterwards. A profile key that is
// not a hash is deleted, so that a reset always succeeds.
var resetUserScript = redis.NewScript(`
local typ = redis.call('TYPE', KEYS[5])['ok']
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[6])
if typ == 'hash' then
	local f = redis.call('HGET', KEYS[5], 'first')
	local keepFirst = f and string.match(f, '^%-?%d+ %d+$') ~= nil
	for _, name in ipairs(redis.call('HKEYS', KEYS[5])) do
		if #name ~= ` + strconv.Itoa(sessionKeyIDLen) + ` and not (name == 'first' and keepFirst) then
			redis.call('HDEL', KEYS[5], name)
		end
	end
elseif typ ~= 'none' then
	redis.call('DEL', KEYS[5])
end
return 1
`)

// factorSwapScript: KEYS = factors (JSON list), enrollment (JSON).
// ARGV[1], ARGV[2] = the factors and enrollment as read (empty for absent),
// ARGV[3] = the new factors (empty deletes them), ARGV[4] = '1' to delete
// the enrollment. Writes only if neither key changed since it was read
// (returns 1), else returns 0: a compare-and-set of the user's factors.
var factorSwapScript = redis.NewScript(`
local f = redis.call('GET', KEYS[1]) or ''
local e = redis.call('GET', KEYS[2]) or ''
if f ~= ARGV[1] or e ~= ARGV[2] then
	return 0
end
if ARGV[3] == '' then
	redis.call('DEL', KEYS[1])
else
	redis.call('SET', KEYS[1], ARGV[3])
end
if ARGV[4] == '1' then
	redis.call('DEL', KEYS[2])
end
return 1
`)
