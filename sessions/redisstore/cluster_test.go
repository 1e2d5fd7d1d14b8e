package redisstore

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-2fa/caddy-2fa/internal/redistest"
	"github.com/caddy-2fa/caddy-2fa/sessions"
	"github.com/caddy-2fa/caddy-2fa/sessions/storetest"
)

// crc16 is the CRC16-CCITT (XModem) checksum Redis Cluster uses.
func crc16(b []byte) uint16 {
	var crc uint16
	for _, c := range b {
		crc ^= uint16(c) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// keySlot is the cluster slot of key: the CRC16 of its hash tag (the part
// between the first '{' and the next '}', if not empty) or of the whole
// key, modulo 16384.
func keySlot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return int(crc16([]byte(key)) % 16384)
}

// testKeySlot checks keySlot against CLUSTER KEYSLOT of a cluster node.
func testKeySlot(t *testing.T, node *redis.Client) {
	if got := crc16([]byte("123456789")); got != 0x31C3 {
		t.Fatalf("crc16(123456789) = %#x, want 0x31c3", got)
	}
	s := New(node, Options{})
	for _, k := range []string{
		"foo", "{user1000}.following", "a{}b", "a{b}c{d}", "{}{x}", "x}{y}",
		s.keys.user("default", "alice", sufEnrollment),
		s.keys.user("{r}", "{u}:x", sufRecovery),
		s.keys.byID("default", tagSession, "abc"),
		s.keys.token("r", "k", "{id}"),
		s.keys.user("{r}", "{u}:x", sufProfile),
		s.keys.users("{r}"),
		s.keys.counter("{r}", "ip:{x}"),
	} {
		want, err := node.ClusterKeySlot(t.Context(), k).Result()
		must(t, err)
		if got := keySlot(k); got != int(want) {
			t.Errorf("keySlot(%q) = %d, CLUSTER KEYSLOT says %d", k, got, want)
		}
	}
}

// commandKeys returns the keys of the multi-key commands the store sends:
// EVAL/EVALSHA (their KEYS), DEL and EXISTS.
func commandKeys(args []any) (name string, keys []string) {
	if len(args) == 0 {
		return "", nil
	}
	name = strings.ToLower(fmt.Sprint(args[0]))
	str := func(a []any) []string {
		out := make([]string, len(a))
		for i, v := range a {
			out[i] = fmt.Sprint(v)
		}
		return out
	}
	switch name {
	case "eval", "evalsha", "eval_ro", "evalsha_ro":
		if len(args) < 3 {
			return name, nil
		}
		n, err := strconv.Atoi(fmt.Sprint(args[2]))
		if err != nil || 3+n > len(args) {
			return name, nil
		}
		return name, str(args[3 : 3+n])
	case "del", "unlink", "exists", "mget":
		return name, str(args[1:])
	}
	return name, nil
}

// slotChecker is a go-redis hook that records every multi-key command
// whose keys are not all in one slot, and how many multi-key commands of
// each script (by SHA) it saw.
type slotChecker struct {
	mu      sync.Mutex
	bad     []string
	checked map[string]int
}

func (h *slotChecker) check(cmd redis.Cmder) {
	name, keys := commandKeys(cmd.Args())
	if len(keys) < 2 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	id := name
	if name == "evalsha" || name == "eval" {
		id = fmt.Sprint(cmd.Args()[1])
		if name == "eval" {
			id = redis.NewScript(id).Hash()
		}
	}
	h.checked[id]++
	for _, k := range keys[1:] {
		if keySlot(k) != keySlot(keys[0]) {
			h.bad = append(h.bad, fmt.Sprintf("%s with keys %q", name, keys))
			return
		}
	}
}

func (h *slotChecker) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *slotChecker) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.check(cmd)
		return next(ctx, cmd)
	}
}

func (h *slotChecker) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			h.check(c)
		}
		return next(ctx, cmds)
	}
}

// TestSlots runs the contract suite and the awkward-name tests through a
// hook that computes the slot of every key of every multi-key command the
// store sends (scripts, DEL and EXISTS), and checks that each such command
// stays in one slot, and that every multi-key script was seen.
func TestSlots(t *testing.T) {
	srv := redistest.Start(t)
	client := socketClient(t, srv)
	h := &slotChecker{checked: map[string]int{}}
	client.AddHook(h)
	storetest.Run(t, func(t *testing.T) sessions.Store {
		return New(client, Options{KeyPrefix: freshPrefix("slots{}")})
	})
	multi := map[string]*redis.Script{
		"enroll":        enrollScript,
		"setRecovery":   setRecoveryScript,
		"getEnrollment": getEnrollmentScript,
		"resetUser":     resetUserScript,
		"userExists":    userExistsScript,
		"reserve":       reserveAttemptScript,
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for name, sc := range multi {
		if h.checked[sc.Hash()] == 0 {
			t.Errorf("script %s never seen with several keys", name)
		}
	}
	if len(h.bad) > 0 {
		t.Errorf("%d cross-slot commands, e.g. %s", len(h.bad), h.bad[0])
	}
	t.Logf("multi-key commands checked: %v", h.checked)
}

// TestSlotSpread checks that records found by ID do spread over slots
// (no hash tag sneaks in from the prefix or the names), and that a user's
// keys share a slot whatever the names contain.
func TestSlotSpread(t *testing.T) {
	k := keys{prefix: escapePrefix("pre{fix}")}
	slotsSeen := map[int]bool{}
	for i := range 100 {
		slotsSeen[keySlot(k.byID("{realm}", tagSession, fmt.Sprint("{id}", i)))] = true
	}
	if len(slotsSeen) < 50 {
		t.Errorf("100 session keys fall in %d slots only", len(slotsSeen))
	}
	for _, realm := range []string{"r", "{", "}", "{a}", "a:b"} {
		for _, user := range []string{"u", "}{", "{x}", ":", "a}b{c"} {
			var slots []int
			for _, suf := range []string{sufEnrollment, sufRecovery, sufStep, sufPending, sufDevices, sufProfile} {
				slots = append(slots, keySlot(k.user(realm, user, suf)))
			}
			if len(slices.Compact(slices.Clone(slots))) != 1 {
				t.Errorf("keys of realm %q user %q in slots %v", realm, user, slots)
			}
			// Every counter of the realm, whatever its key, is in
			// one slot, so that a reservation is one script.
			if a, b := keySlot(k.counter(realm, "user:"+user)), keySlot(k.counter(realm, "ip:"+user+"x")); a != b {
				t.Errorf("counters of realm %q in slots %d and %d", realm, a, b)
			}
		}
	}
}
