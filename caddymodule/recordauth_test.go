package caddymodule

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"
	bolt "go.etcd.io/bbolt"

	"github.com/caddy-2fa/caddy-2fa/internal/redistest"
	"github.com/caddy-2fa/caddy-2fa/sessions"
)

// tamperSite is one in-process site whose store an attacker can also
// write to directly: the bbolt file (while Caddy is stopped, as someone
// with access to the file would) or the Redis server (while it runs, as
// anyone with access to a shared Redis could).
type tamperSite struct {
	*site
	cfg, log, db string
	rdb          *redis.Client
}

func startTamperSite(t *testing.T, backend, gate string) *tamperSite {
	t.Helper()
	clockOffset.Store(0)
	dir := t.TempDir()
	port := freePort(t)
	ts := &tamperSite{log: dir + "/caddy.log", db: dir + "/store.db"}
	storeLine := "store file " + ts.db
	if backend == "redis" {
		rs := redistest.Start(t)
		storeLine = "store redis unix://" + rs.Socket
		ts.rdb = redis.NewClient(&redis.Options{Network: "unix", Addr: rs.Socket})
		t.Cleanup(func() { ts.rdb.Close() })
	}
	ts.cfg = fmt.Sprintf(`{
	admin off
	storage file_system %s
	persist_config off
	log {
		output file %s
		format json
	}
}
http://localhost:%d {
	basic_auth {
%s	}
	two_factor {
		%s
		secret "a-shared-secret-of-at-least-32-bytes!!"
		issuer "Example Corp"
%s
	}
	respond "app user={http.two_factor.user} method={http.two_factor.method}" 200
}
`, caddyStorage, ts.log, port, bcryptLines, storeLine, gate)
	loadCaddyfile(t, ts.cfg)
	t.Cleanup(func() { caddy.Stop() })
	ts.site = &site{t: t, base: fmt.Sprintf("http://localhost:%d", port)}
	return ts
}

// rawStore is the running config's store without the gate's record
// checks: what someone with write access to the store can call.
func rawStore(t *testing.T) sessions.Store {
	t.Helper()
	s := realmStore(t)
	if c, ok := s.(*cachedStore); ok {
		s = c.Store
	}
	if a, ok := s.(*authStore); ok {
		s = a.Store
	}
	return s
}

// Record kinds as the attacker finds them: the bbolt bucket and the Redis
// key tag and format byte.
type rawKind struct {
	bucket string
	tag    string
	format byte
}

var (
	rawSession = rawKind{"sessions", "sh", 1}
	rawDevice  = rawKind{"devices", "d", 2}
	rawToken   = rawKind{"tokens", "t", 3}
)

// rawRecord is one stored record as the attacker sees it. For the file
// store, json is its JSON; for Redis, value is its bytes.
type rawRecord struct {
	key   string
	value []byte
}

// tamper lets edit rewrite every record of kind in the store (return
// nil to leave one alone), and adds the records of extra. The file store
// is edited while Caddy is stopped, then the same config is loaded again.
func (ts *tamperSite) tamper(k rawKind, edit func(rec rawRecord) []byte) {
	t := ts.t
	t.Helper()
	ctx := context.Background()
	if ts.rdb != nil {
		keys, err := ts.rdb.Keys(ctx, "caddy2fa:default:"+k.tag+":*").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, key := range keys {
			v, err := ts.rdb.Get(ctx, key).Bytes()
			if err != nil {
				t.Fatal(err)
			}
			if nv := edit(rawRecord{key, v}); nv != nil {
				if err := ts.rdb.SetArgs(ctx, key, nv, redis.SetArgs{KeepTTL: true}).Err(); err != nil {
					t.Fatal(err)
				}
			}
		}
		advance(2 * sessionCacheTTL) // what this instance read is re-read
		return
	}
	caddy.Stop()
	db, err := bolt.Open(ts.db, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("realms")).Bucket([]byte("default")).Bucket([]byte(k.bucket))
		type kv struct{ k, v []byte }
		var edits []kv
		if err := b.ForEach(func(key, v []byte) error {
			if nv := edit(rawRecord{string(key), append([]byte{}, v...)}); nv != nil {
				edits = append(edits, kv{append([]byte{}, key...), nv})
			}
			return nil
		}); err != nil {
			return err
		}
		for _, e := range edits {
			if err := b.Put(e.k, e.v); err != nil {
				return err
			}
		}
		return nil
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	loadCaddyfile(t, ts.cfg)
}

// records returns the records of kind (key and value).
func (ts *tamperSite) records(k rawKind) []rawRecord {
	var out []rawRecord
	ts.tamper(k, func(rec rawRecord) []byte {
		out = append(out, rec)
		return nil
	})
	return out
}

// owner returns the user a raw session or device record names.
func (ts *tamperSite) owner(k rawKind, v []byte) string {
	if ts.rdb != nil {
		if len(v) < 2 || v[0] != k.format {
			return ""
		}
		n, m := binary.Uvarint(v[1:])
		return string(v[1+m : 1+m+int(n)])
	}
	var rec map[string]any
	json.Unmarshal(v, &rec)
	u, _ := rec["user"].(string)
	return u
}

// withOwner returns v, a raw session or device record, owned by user.
func (ts *tamperSite) withOwner(k rawKind, v []byte, user string) []byte {
	if ts.rdb != nil {
		n, m := binary.Uvarint(v[1:])
		out := binary.AppendUvarint([]byte{k.format}, uint64(len(user)))
		out = append(out, user...)
		return append(out, v[1+m+int(n):]...)
	}
	var rec map[string]any
	if err := json.Unmarshal(v, &rec); err != nil {
		ts.t.Fatal(err)
	}
	rec["user"] = user
	out, _ := json.Marshal(rec)
	return out
}

// withExpiry returns v, a raw session record, expiring d later.
func (ts *tamperSite) withExpiry(v []byte, d time.Duration) []byte {
	if ts.rdb != nil {
		// format | lp(user) | header | Expires (varint seconds) | ...
		n, m := binary.Uvarint(v[1:])
		i := 1 + m + int(n) + 1
		sec, w := binary.Varint(v[i:])
		out := binary.AppendVarint(append([]byte{}, v[:i]...), sec+int64(d/time.Second))
		return append(out, v[i+w:]...)
	}
	var rec map[string]any
	if err := json.Unmarshal(v, &rec); err != nil {
		ts.t.Fatal(err)
	}
	exp, err := time.Parse(time.RFC3339Nano, rec["expires"].(string))
	if err != nil {
		ts.t.Fatal(err)
	}
	rec["expires"] = exp.Add(d)
	out, _ := json.Marshal(rec)
	return out
}

// replaceInToken returns v, a raw one-time token, with old replaced by
// new in its value.
func (ts *tamperSite) replaceInToken(v []byte, old, new string) []byte {
	if ts.rdb != nil {
		return bytes.Replace(v, []byte(old), []byte(new), 1)
	}
	var rec map[string]any
	if err := json.Unmarshal(v, &rec); err != nil {
		ts.t.Fatal(err)
	}
	var val []byte
	json.Unmarshal([]byte(strconv.Quote(rec["value"].(string))), &val)
	rec["value"] = bytes.Replace(val, []byte(old), []byte(new), 1)
	out, _ := json.Marshal(rec)
	return out
}

// tamperLines returns the log's tampered_record lines, and fails if the
// log holds any of the secrets.
func (ts *tamperSite) tamperLines(secrets ...string) []map[string]any {
	t := ts.t
	t.Helper()
	data, err := os.ReadFile(ts.log)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets {
		if s != "" && bytes.Contains(data, []byte(s)) {
			t.Fatalf("the log contains a secret value (%q)", s)
		}
	}
	var out []map[string]any
	for line := range bytes.SplitSeq(data, []byte("\n")) {
		var m map[string]any
		if json.Unmarshal(line, &m) == nil && m["event"] == "tampered_record" {
			out = append(out, m)
		}
	}
	return out
}

// expectTamperLogged checks that exactly one tampered_record line was
// logged, at warn, for the record kind claiming user.
func (ts *tamperSite) expectTamperLogged(record, user string, secrets ...string) {
	ts.t.Helper()
	lines := ts.tamperLines(secrets...)
	if len(lines) != 1 {
		ts.t.Fatalf("%d tampered_record lines, want 1: %v", len(lines), lines)
	}
	expectLogged(ts.t, lines[0], map[string]any{
		"level": "warn", "realm": "default", "user": user, "record": record, "result": "refused", "reason": "bad_tag",
	})
}

// TestStoreWriteAccessIsNotEnough: someone with bob's password and
// write access to the store (the bbolt file, a shared Redis) cannot use
// it to pass as alice, who has her own authenticator: re-owning his own
// session or invite to her, lengthening an expired session, or copying
// her trusted device's record under his device's key are all refused
// (the browser is asked for a code, never a 503) and logged once as
// tampering, without the values (issue 12 §4).
func TestStoreWriteAccessIsNotEnough(t *testing.T) {
	for _, backend := range []string{"file", "redis"} {
		t.Run(backend, func(t *testing.T) {
			t.Run("ReownSession", func(t *testing.T) {
				ts := startTamperSite(t, backend, "")
				ts.browser("alice").enroll()
				bob := ts.browser("bob")
				bob.enroll()
				bob.get("/app").expect(t, http.StatusOK).contains(t, "user=bob")
				cookie := bob.cookie("2fa_session")
				x := ts.browser("alice") // alice's password, bob's session
				x.setCookie("2fa_session", cookie)
				x.get("/app").expectRedirect(t, "/.2fa/challenge")

				n := 0
				ts.tamper(rawSession, func(rec rawRecord) []byte {
					if ts.owner(rawSession, rec.value) != "bob" {
						return nil
					}
					n++
					return ts.withOwner(rawSession, rec.value, "alice")
				})
				if n == 0 {
					t.Fatal("test setup: no session of bob's in the store")
				}
				x.get("/app").expectRedirect(t, "/.2fa/challenge")
				x.get("/app").expectRedirect(t, "/.2fa/challenge")
				ts.expectTamperLogged("session", "alice", cookie)
			})

			t.Run("ExtendExpiredSession", func(t *testing.T) {
				ts := startTamperSite(t, backend, "session_ttl 1h")
				bob := ts.browser("bob")
				bob.enroll()
				bob.get("/app").expect(t, http.StatusOK)
				advance(2 * time.Hour)
				bob.get("/app").expectRedirect(t, "/.2fa/challenge")
				ts.tamper(rawSession, func(rec rawRecord) []byte {
					if ts.owner(rawSession, rec.value) != "bob" {
						return nil
					}
					return ts.withExpiry(rec.value, 24*time.Hour)
				})
				bob.get("/app").expectRedirect(t, "/.2fa/challenge")
				ts.expectTamperLogged("session", "bob", bob.cookie("2fa_session"))
			})

			t.Run("CopyDevice", func(t *testing.T) {
				ts := startTamperSite(t, backend, "")
				key, _ := ts.browser("alice").enroll()
				laptop := ts.browser("alice")
				laptop.challenge(totp(key, testNow().Add(30*time.Second)), true).expectRedirect(t, "/app")
				bkey, _ := ts.browser("bob").enroll()
				bobs := ts.browser("bob")
				bobs.challenge(totp(bkey, testNow().Add(30*time.Second)), true).expectRedirect(t, "/app")
				device := bobs.cookie("2fa_device")
				x := ts.browser("alice") // alice's password, bob's trusted device
				x.setCookie("2fa_device", device)
				x.get("/app").expectRedirect(t, "/.2fa/challenge")

				var alices, bobsKey string
				var alicesValue []byte
				for _, rec := range ts.records(rawDevice) {
					switch ts.owner(rawDevice, rec.value) {
					case "alice":
						alices, alicesValue = rec.key, rec.value
					case "bob":
						bobsKey = rec.key
					}
				}
				if alices == "" || bobsKey == "" {
					t.Fatal("test setup: trusted devices not found in the store")
				}
				ts.tamper(rawDevice, func(rec rawRecord) []byte {
					if rec.key == bobsKey {
						return alicesValue
					}
					return nil
				})
				x.get("/app").expectRedirect(t, "/.2fa/challenge")
				x.get("/app").expectRedirect(t, "/.2fa/challenge")
				ts.expectTamperLogged("device", "alice", device, laptop.cookie("2fa_device"))
				// alice's own trusted laptop is untouched.
				laptop.setCookie("2fa_session", "")
				laptop.get("/app").expect(t, http.StatusOK).contains(t, "method=trusted_device")
			})

			t.Run("ReownInvite", func(t *testing.T) {
				ts := startTamperSite(t, backend, "enrollment invite")
				info, ok := runningRealm(DefaultRealm)
				if !ok {
					t.Fatal("realm default is not registered")
				}
				link, _, err := createInvite(t.Context(), DefaultRealm, info, "bob", 0)
				if err != nil {
					t.Fatal(err)
				}
				n := 0
				ts.tamper(rawToken, func(rec rawRecord) []byte {
					n++
					return ts.replaceInToken(rec.value, "\nbob", "\nalice")
				})
				if n != 1 {
					t.Fatalf("test setup: %d tokens in the store, want 1", n)
				}
				x := ts.browser("alice")
				x.get(link).expect(t, http.StatusGone)
				x.get("/app").expectRedirect(t, "/.2fa/enroll")
				x.get("/.2fa/enroll").expect(t, http.StatusForbidden) // invite required
				lines := ts.tamperLines(strings.TrimPrefix(link, "/.2fa/invite/"))
				if len(lines) != 1 {
					t.Fatalf("%d tampered_record lines, want 1: %v", len(lines), lines)
				}
				expectLogged(t, lines[0], map[string]any{"level": "warn", "record": "token:invite", "result": "refused", "reason": "bad_tag"})
			})

			t.Run("UntaggedDevice", func(t *testing.T) {
				// A trusted device as the previous version stored it
				// (no tag) is refused, logged at info, not as tampering.
				ts := startTamperSite(t, backend, "")
				key, _ := ts.browser("alice").enroll()
				laptop := ts.browser("alice")
				laptop.challenge(totp(key, testNow().Add(30*time.Second)), true).expectRedirect(t, "/app")
				raw := rawStore(t)
				devs, err := raw.UserDevices(t.Context(), DefaultRealm, "alice")
				if err != nil || len(devs) != 1 {
					t.Fatalf("test setup: alice's devices %v, %v", devs, err)
				}
				d := devs[0]
				d.MAC = nil
				if err := raw.PutDevice(t.Context(), DefaultRealm, d.ID, d); err != nil {
					t.Fatal(err)
				}
				advance(2 * sessionCacheTTL)
				laptop.setCookie("2fa_session", "")
				laptop.get("/app").expectRedirect(t, "/.2fa/challenge")
				lines := ts.tamperLines(laptop.cookie("2fa_device"))
				if len(lines) != 1 {
					t.Fatalf("%d tampered_record lines, want 1: %v", len(lines), lines)
				}
				expectLogged(t, lines[0], map[string]any{"level": "info", "user": "alice", "record": "device", "reason": "untagged"})
			})

			t.Run("PlantInvite", func(t *testing.T) {
				// Written as the previous version stored invites: under
				// the SHA-256 of the link's token, which anyone can
				// compute.
				ts := startTamperSite(t, backend, "enrollment invite")
				token := "PLANTEDINVITETOKEN234567ABCD"
				sum := sha256.Sum256([]byte(token))
				exp := testNow().Add(time.Hour)
				val := []byte(strconv.FormatInt(exp.Unix(), 10) + "\nalice")
				if err := rawStore(t).PutToken(t.Context(), DefaultRealm, inviteTokenKind, hex.EncodeToString(sum[:]), val, exp); err != nil {
					t.Fatal(err)
				}
				x := ts.browser("alice")
				x.get("/.2fa/invite/"+token).expect(t, http.StatusGone)
				x.get("/.2fa/enroll").expect(t, http.StatusForbidden)
			})
		})
	}
}

// BenchmarkSessionRead measures a session read that misses the session
// cache (once a second per session and instance), with the file store:
// the store's own read ("Raw") against the same read through the record
// checks ("Checked": keyed store ID, tag check).
func BenchmarkSessionRead(b *testing.B) {
	h, _ := benchGate(b, &StoreConfig{Backend: "file", Path: b.TempDir() + "/bench.db"})
	auth := h.store.(*cachedStore).Store.(*authStore)
	ctx := context.Background()
	id := "benchmarksessionid0123456"
	key := sessionKey(h.keys, id)
	b.Run("Raw", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := auth.Store.Session(ctx, DefaultRealm, key); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Checked", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := auth.Session(ctx, DefaultRealm, id); err != nil {
				b.Fatal(err)
			}
		}
	})
}
