package caddymodule

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// goRedisGlobalChild, when set, makes TestGoRedisGlobalLoggerUntouched act
// as the child process it starts.
const goRedisGlobalChild = "CADDY2FA_GO_REDIS_LOGGER_CHILD"

// The test binary imports this package, so its init functions have run:
// go-redis's process-wide logger must still be go-redis's own (a
// "redis: " line on stderr), not something of ours. go-redis offers no
// way to read the logger back, so a child process makes go-redis log a
// known warning and the parent looks for it on the child's stderr.
func TestGoRedisGlobalLoggerUntouched(t *testing.T) {
	if os.Getenv(goRedisGlobalChild) == "1" {
		// RESP2 with client-side caching: go-redis warns through its
		// global logger while building the client (no connection made).
		c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", Protocol: 2, ClientSideCacheConfig: &redis.ClientSideCacheConfig{}})
		c.Close()
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestGoRedisGlobalLoggerUntouched$", "-test.count=1")
	cmd.Env = append(os.Environ(), goRedisGlobalChild+"=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("child: %v\n%s", err, stderr.String())
	}
	const warning = "client-side caching requires Protocol: 3"
	var line string
	for _, l := range strings.Split(stderr.String(), "\n") {
		if strings.Contains(l, warning) {
			line = l
		}
	}
	if !strings.HasPrefix(line, "redis: ") {
		t.Fatalf("go-redis's own logger did not write its warning to stderr (its global logger was replaced?); child stderr:\n%s", stderr.String())
	}
}

// A store's failed connection attempts are logged on the handler's logger
// (named "store"), at debug level, with the address.
func TestRedisDialFailuresOnHandlerLogger(t *testing.T) {
	port := freePort(t) // nothing listens there
	core, logs := observer.New(zapcore.DebugLevel)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	_, key, err := openRedisStore(&StoreConfig{Backend: "redis", Addrs: []string{addr}, KeyPrefix: "dial-log-test:"}, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	defer stores.Delete(key)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, e := range logs.FilterMessage("connecting to Redis failed").All() {
			if e.LoggerName != "store" || e.Level != zapcore.DebugLevel {
				t.Fatalf("dial failure logged on %q at %v, want logger \"store\" at debug", e.LoggerName, e.Level)
			}
			if got := e.ContextMap()["addr"]; got != addr {
				t.Fatalf("addr = %v, want %s", got, addr)
			}
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no dial failure logged; logs: %v", logs.All())
}
