// Package redisstore is the shared sessions.Store: Redis (6.2 or later)
// through a go-redis v9 UniversalClient, standalone, Sentinel or Cluster,
// for several Caddy instances that must see the same enrollments, replay
// markers, counters and sessions.
//
// Build a client from a Config (ParseURLs reads redis://, rediss:// and
// unix:// URLs) with redis.NewUniversalClient(cfg.UniversalOptions()),
// then New(client, Options{KeyPrefix: cfg.KeyPrefix}). The store does not
// own the client: close it yourself. At start-up, call Ping, and
// EvictionPolicy to warn when the server may evict keys without a TTL.
//
// # Failures
//
// Only an absent key (redis.Nil) or an expired record is
// sessions.ErrNotFound. Every other problem (server down, timeout, closed
// client, a record that cannot be decoded, a refused command) is an error
// whose message starts with "redisstore: ", so callers fail closed. Each
// call has a deadline (Options.Timeout, 2 s by default, or the caller's,
// if sooner). Once the server is back, the client redials by itself.
// go-redis retries a command after a network error; for a consuming
// operation whose reply was lost, the retry sees the record consumed and
// fails closed (a valid code or token may be refused, never accepted
// twice).
//
// # Data model
//
// Keys start with the prefix (Options.KeyPrefix, default "caddy2fa").
// Realm, user, ID, token kind and counter key are escaped: '%', ':', '{',
// '}' and control bytes become %XX (upper-case hex), all other bytes
// (UTF-8 included) are kept, so no two names share a key and keys stay
// readable in redis-cli. A user's keys share the cluster hash tag
// {<realm>:<user>}, so the scripts that touch several of them run in one
// slot; records found by ID have no hash tag and spread over all slots.
//
//	<prefix>:{<realm>:<user>}:enr    string, no TTL
//	    the confirmed enrollment: JSON of sessions.Enrollment (the sealed
//	    TOTP secret in base64, algorithm, digits, period, created).
//	<prefix>:{<realm>:<user>}:fac    string, no TTL
//	    the user's factors besides the enrollment: JSON list of
//	    sessions.Factor, each with its last accepted TOTP step
//	    (factorset.Entry). The enrollment (enr) is the factor
//	    sessions.LegacyTOTPFactorID; the list keeps only its name and
//	    last use. Every factor operation reads fac and enr, computes in
//	    Go, and writes with a script that compares both first
//	    (factorSwapScript), retrying when another write came between.
//	<prefix>:{<realm>:<user>}:rc     set, no TTL
//	    the unused recovery code hashes (keyed hashes, never codes).
//	    Absent when no code is left.
//	<prefix>:{<realm>:<user>}:step   string, TTL until the step record's
//	    expiry: "<step> <sec> <nsec>", the last accepted TOTP step and
//	    when that record expires (Unix seconds and nanoseconds).
//	<prefix>:{<realm>:<user>}:pend   string, TTL until Expires
//	    the pending enrollment: JSON of sessions.PendingEnrollment.
//	<prefix>:{<realm>}:fail:<key>    string, TTL until the later of the
//	    window's end and the lockout's end: an attempt counter,
//	    "<failures> <windowEndsSec> <windowEndsNsec> <lockedUntilSec>
//	    <lockedUntilNsec>" (the zero time is -62135596800 0). <key> is
//	    the counter key (e.g. "user:alice", "ip:192.0.2.1", escaped).
//	    All of a realm's counters share the hash tag {<realm>}, so that
//	    ReserveAttempt counts a user's and a client address's counters in
//	    one script; no user key has a tag without ':', so no user name
//	    addresses a counter (ResetUser never touches one). Counters of
//	    the earlier format (<prefix>:{<realm>:<key>}:fail) are no longer
//	    read and expire within a day.
//	<prefix>:{<realm>:<user>}:dev    sorted set, TTL until the latest
//	    member's expiry: the IDs of the user's trusted devices, scored by
//	    expiry (Unix seconds, rounded up).
//	<prefix>:{<realm>:<user>}:prof   hash, no TTL
//	    the user's profile: fields first, verified and disabled
//	    ("<sec> <nsec>": FirstSeen, LastVerified, DisabledUntil) and
//	    method (LastMethod); an absent field is the zero value, and a
//	    hash without first is no profile. Created by SeeUser,
//	    RecordVerification or SetDisabled, which all set first if it is
//	    absent (or the zero time); ResetUser deletes every profile field
//	    but first (first too if it is malformed, and the whole key if it
//	    is not a hash).
//	    The same hash indexes the user's sessions: one field per session,
//	    named by its key ID (22 characters, the length of no profile
//	    field), whose value is the session's expiry in Unix seconds,
//	    rounded up. Every user with a verified session has a profile
//	    (the gate records each verification), so a session adds a field
//	    to a hash that exists anyway rather than a key of its own. Writes
//	    of the index drop the entries whose expiry has passed. While the
//	    hash holds no profile (a session of a user who never verified,
//	    or after a reset that dropped a malformed first), it has a TTL
//	    until its latest entry's expiry; the profile writes remove it.
//	<prefix>:<realm>:users           set, no TTL
//	    the names (not escaped) of the realm's users that have, or had,
//	    an enrollment or a profile: what Users lists. Outside every
//	    user's hash tag, so written by a command of its own (SADD) before
//	    the enrollment or profile write; members are never removed, and
//	    Users keeps only those that have an enr key or a prof hash with
//	    first (one script per member, on keys of the user's slot), so it
//	    never scans the keyspace.
//	<prefix>:<realm>:sh:<keyid>      string, TTL until Expires
//	    a session, in a compact binary form (below). <keyid> is the
//	    session's key ID: the first 128 bits of SHA-256 of its ID, in
//	    unpadded base64url (22 characters). Redis never holds the IDs
//	    that cookies carry, and the key is short enough for a small
//	    allocation.
//	<prefix>:<realm>:d:<id>          string, TTL until Expires
//	    a trusted device, in the same form (LastUsed in place of LastSeen,
//	    no method). The device's ID is a keyed hash of its cookie token.
//	<prefix>:<realm>:t:<kind>:<id>   string, TTL until expires
//	    a one-time token: byte 3, expiry (varint Unix seconds, uvarint
//	    nanoseconds), then the value.
//
// Keys of the earlier, unreleased format (sessions under
// <prefix>:<realm>:s:<id>, indexed in a sorted set
// <prefix>:{<realm>:<user>}:sess) are never read: they all have a TTL and
// go away on their own. Sessions made before the change read as absent,
// so their users verify again once.
//
// TTLs are computed from the store's clock (Options.Now) or, for attempt
// counters, from the now passed to AddFailure or ReserveAttempt, and
// rounded up to the millisecond; a record written with an expiry that has
// already passed is deleted instead. Instances therefore write with their
// own clocks: ServerTime lets them compare theirs with the server's. Every read also checks the record's own expiry, so a
// record reads as absent from its expiry on, whatever the server's clock
// says. Only enrollments, recovery codes, profiles and the users sets
// have no TTL (and a profile hash holding only session index entries
// has one): run Redis with maxmemory-policy noeviction or volatile-*
// (never allkeys-*), and with AOF if enrollments must survive a restart
// (appendfsync everysec loses at most about a second of writes).
//
// A session value is: byte 1, the user (uvarint length, bytes), a header
// byte (how the method, client IP and user agent are stored), Expires
// (varint Unix seconds, uvarint nanoseconds), Created and LastSeen
// relative to Expires (same form), the method unless it is totp, recovery
// or trusted_device, the gate's record tag (uvarint length, bytes; header
// bit 6), the key of the trusted device that started the session (header
// bit 7: a byte 1 and 32 bytes for a 64-hex-digit device key, else a byte
// 0 and a string), the client IP (4 or 16 bytes when it is a canonical
// address, else a string), and the user agent to the end of the value,
// compressed with a fixed table of common browser substrings. A typical
// session takes about 77 bytes with its 16-byte tag (110 with a device
// key). A record without a tag (written before the gate tagged records)
// still decodes; the gate refuses it.
//
// What a session costs, measured on Redis 7.0 (TestMemoryPerSession;
// bench/seed-redis at a million, figures in docs/performance.md): the
// session key takes 184 bytes (MEMORY USAGE: a 42-byte key name in a
// 48-byte allocation, the 77-byte value in an 80-byte one, the key's
// object and its entry in the keyspace), plus its entry in the expires
// table and both tables' slots, about 226 bytes in all; its index entry
// about 30 bytes. INFO used_memory grows by 254 to 279 bytes per session
// for users who have a profile, with one session each or five (238 to
// 262 before the 16-byte tag). A realm
// longer than 9 characters (with the default prefix) puts the key name in
// the next allocation size, 16 bytes more.
//
// # Atomicity
//
// Each of these is one Lua script on keys of one slot (EVALSHA, falling
// back to EVAL): Enroll (create only if absent, replace the recovery set,
// delete the pending enrollment), EnrollPending (the same, only while the
// pending enrollment holds the sealed secret whose code was checked),
// SetRecoveryCodes, UseRecoveryCode
// (SREM, then SCARD), AcceptStep (compare and set, only if greater or the
// record expired), AddFailure (window, count and lockout, with the
// caller's now), ReserveAttempt (every counter checked for a lockout,
// then each counted, all or none) and ReleaseAttempt, SeeUser (set first unless set, and read the profile),
// RecordVerification and SetDisabled (set first unless set, and their
// fields), and the first part of ResetUser (below). ConsumeToken is
// GETDEL; AddPendingEnrollment is SET NX with the record's expiry.
// Scripts never read the server's clock.
//
// Sessions and devices are keyed by ID (sessions by key ID) and indexed
// per user, in different slots, so writing one is several commands: the
// ID goes into the new owner's index first (a record is never outside its
// owner's index), then SET … GET writes the record and returns the one it
// replaced, and if that one had another owner, the ID leaves that owner's
// index. Index entries may point at records that are gone or belong to
// someone else (after a failure between the steps): reads check each
// record's owner and expiry, and stale entries drop out once their expiry
// has passed (the session index scripts, which add or remove entries,
// drop the user's expired ones; a device index drops them on each add,
// and expires with its last entry). DeleteUserSessions,
// DeleteUserDevices and ResetUser delete each listed record with a script
// that deletes it only if it still belongs to the user; ResetUser deletes
// the user's own keys (enrollment, recovery codes, step and pending
// enrollment) and clears the profile's fields but first in one
// script first, then the sessions and devices.
// TouchSession and TouchDevice read, modify and swap the record only if it
// has not changed meanwhile (retrying a few times), keeping its TTL.
package redisstore
