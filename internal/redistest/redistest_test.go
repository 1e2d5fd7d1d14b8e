package redistest

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// do sends one command in RESP and returns the first line of the reply.
func do(t *testing.T, network, addr string, args ...string) string {
	t.Helper()
	c, err := net.DialTimeout(network, addr, time.Second)
	if err != nil {
		t.Fatalf("dial %s %s: %v", network, addr, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write([]byte(b.String())); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	line = strings.TrimRight(line, "\r\n")
	if strings.HasPrefix(line, "$") && line != "$-1" {
		v, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimRight(v, "\r\n")
	}
	return line
}

func TestStartStop(t *testing.T) {
	s := Start(t)
	if strings.HasSuffix(s.Addr, ":6379") {
		t.Fatalf("server listens on %s", s.Addr)
	}
	if got := do(t, "tcp", s.Addr, "PING"); got != "+PONG" {
		t.Fatalf("PING over TCP = %q", got)
	}
	if got := do(t, "unix", s.Socket, "SET", "k", "v"); got != "+OK" {
		t.Fatalf("SET over the socket = %q", got)
	}
	if got := do(t, "tcp", s.Addr, "GET", "k"); got != "v" {
		t.Fatalf("GET over TCP = %q", got)
	}
	if got := do(t, "unix", s.Socket, "CONFIG", "GET", "appendonly"); got != "*2" {
		t.Fatalf("CONFIG GET = %q", got)
	}
	if !s.Running() {
		t.Fatal("not running")
	}
	s.Stop()
	s.Stop() // idempotent
	if s.Running() {
		t.Fatal("running after Stop")
	}
	if _, err := net.DialTimeout("tcp", s.Addr, time.Second); err == nil {
		t.Fatal("TCP port still open after Stop")
	}
	// Without persistence, a restart comes back empty.
	s.Restart()
	if got := do(t, "unix", s.Socket, "GET", "k"); got != "$-1" {
		t.Fatalf("GET after a restart without persistence = %q, want nil", got)
	}
}

func TestRestartAOF(t *testing.T) {
	s := Start(t, "--appendonly", "yes", "--appendfsync", "always")
	if got := do(t, "unix", s.Socket, "CONFIG", "GET", "appendonly"); got != "*2" {
		t.Fatalf("CONFIG GET = %q", got)
	}
	if got := do(t, "unix", s.Socket, "SET", "k", "kept"); got != "+OK" {
		t.Fatalf("SET = %q", got)
	}
	s.Restart()
	if got := do(t, "tcp", s.Addr, "GET", "k"); got != "kept" {
		t.Fatalf("GET after a graceful restart with AOF = %q", got)
	}
	if got := do(t, "unix", s.Socket, "SET", "k2", "fsynced"); got != "+OK" {
		t.Fatalf("SET = %q", got)
	}
	s.Kill()
	s.Restart()
	if got := do(t, "unix", s.Socket, "GET", "k2"); got != "fsynced" {
		t.Fatalf("GET after kill -9 with appendfsync always = %q", got)
	}
}

func TestArgsOverride(t *testing.T) {
	s := Start(t, "--maxmemory-policy", "allkeys-lru")
	c, err := net.Dial("unix", s.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "CONFIG GET maxmemory-policy\r\n")
	r := bufio.NewReader(c)
	var lines []string
	for range 5 {
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, strings.TrimSpace(l))
	}
	if lines[4] != "allkeys-lru" {
		t.Fatalf("maxmemory-policy reply %q", lines)
	}
}

func TestMissingBinary(t *testing.T) {
	skipped := false
	t.Run("NotInstalled", func(t *testing.T) {
		t.Setenv("PATH", t.TempDir())
		t.Setenv("CI", "")
		defer func() { skipped = t.Skipped() }()
		Start(t)
		t.Error("Start returned without redis-server on PATH")
	})
	if !skipped {
		t.Fatal("Start without redis-server did not skip the test")
	}
}
