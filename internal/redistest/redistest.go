// Package redistest starts private redis-server processes for tests.
//
// Each server listens on a unix socket and on a free 127.0.0.1 TCP port
// (never the machine's own Redis on 6379), keeps its files in a test
// temporary directory, and is stopped when the test ends. Tests that need
// Redis call Start; when redis-server is not installed they are skipped,
// except under CI (CI=true), where a missing redis-server is a failure.
package redistest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// StartTimeout bounds how long Start and Restart wait for the server to
// answer PING.
const StartTimeout = 10 * time.Second

// stopTimeout bounds how long Stop waits for a graceful shutdown before
// killing the process.
const stopTimeout = 10 * time.Second

// Server is a running (or stopped) private redis-server.
type Server struct {
	// Addr is the TCP address, 127.0.0.1:port.
	Addr string
	// Socket is the unix socket path.
	Socket string
	// Dir is the server's working directory (RDB and AOF files, and the
	// server log in redis.log).
	Dir string

	t    testing.TB
	args []string // all command-line arguments

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// Start starts a redis-server that listens on a unix socket in a temporary
// directory and on a free 127.0.0.1 TCP port, with persistence off by
// default:
//
//	--port N --bind 127.0.0.1 --unixsocket <dir>/redis.sock
//	--save "" --appendonly no --dir <dir>
//
// args are appended to these and override them (redis-server applies
// the last value of a setting), for example "--appendonly", "yes". Start
// waits until the server answers PING (at most StartTimeout) and stops it
// when the test ends.
//
// If redis-server is not on PATH, the test is skipped, or fails when the
// environment variable CI is "true".
func Start(t testing.TB, args ...string) *Server {
	t.Helper()
	return startServer(t, nil, args)
}

// StartSentinel starts a Redis Sentinel (redis-server in sentinel mode)
// that monitors master under the name master set name, with quorum 1 and
// short timeouts so that a failover happens within a few seconds of the
// master going down: down-after 500 ms, failover timeout 3 s. It listens
// like Start's servers (Addr and Socket) and is stopped when the test ends.
// Clients give go-redis the Sentinel's Addr and the master set name.
func StartSentinel(t testing.TB, master *Server, name string) *Server {
	t.Helper()
	conf := func(dir string) (string, error) {
		host, port, err := net.SplitHostPort(master.Addr)
		if err != nil {
			return "", err
		}
		p := filepath.Join(dir, "sentinel.conf")
		text := fmt.Sprintf("sentinel monitor %[1]s %[2]s %[3]s 1\n"+
			"sentinel down-after-milliseconds %[1]s 500\n"+
			"sentinel failover-timeout %[1]s 3000\n"+
			"sentinel parallel-syncs %[1]s 1\n", name, host, port)
		// Sentinel rewrites its configuration file: it must be writable.
		return p, os.WriteFile(p, []byte(text), 0o600)
	}
	return startServer(t, conf, []string{"--sentinel"})
}

// startServer starts a redis-server; config, if not nil, writes a
// configuration file into the server's directory and returns its path,
// which becomes the first argument.
func startServer(t testing.TB, config func(dir string) (string, error), args []string) *Server {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		const msg = "redis-server not installed: skipping Redis tests (CI installs it with apt-get)"
		if os.Getenv("CI") == "true" {
			t.Fatal("redis-server not installed, and CI=true: install it (apt-get install redis-server)")
		}
		t.Skip(msg)
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "redis.sock")
	if len(sock) > 100 {
		// A unix socket path is limited to about 107 bytes; long test
		// names make long temporary directories.
		short, err := os.MkdirTemp("", "redistest")
		if err != nil {
			t.Fatalf("redistest: %v", err)
		}
		t.Cleanup(func() { os.RemoveAll(short) })
		sock = filepath.Join(short, "redis.sock")
	}
	s := &Server{Socket: sock, Dir: dir, t: t}
	var first []string
	if config != nil {
		p, err := config(dir)
		if err != nil {
			t.Fatalf("redistest: writing the configuration: %v", err)
		}
		first = []string{p}
	}
	var lastErr error
	for range 5 {
		port, err := freePort()
		if err != nil {
			t.Fatalf("redistest: finding a free port: %v", err)
		}
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		s.args = append(append(first[:len(first):len(first)], []string{
			"--port", strconv.Itoa(port),
			"--bind", "127.0.0.1",
			"--unixsocket", sock,
			"--unixsocketperm", "700",
			"--save", "",
			"--appendonly", "no",
			"--dir", dir,
			"--logfile", "",
		}...), args...)
		lastErr = s.start()
		if lastErr == nil {
			t.Cleanup(s.Stop)
			return s
		}
		if !strings.Contains(lastErr.Error(), "in use") {
			break
		}
		// Someone took the port between freePort and the server's bind:
		// try another one.
	}
	t.Fatalf("redistest: starting redis-server: %v", lastErr)
	return nil
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago,
// never 6379.
func freePort() (int, error) {
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if port != 6379 {
			return port, nil
		}
	}
}

// start starts the process and waits until it answers PING.
func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("already running")
	}
	logFile, err := os.OpenFile(filepath.Join(s.Dir, "redis.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	logStart, _ := logFile.Seek(0, 2)
	cmd := exec.Command("redis-server", s.args...)
	cmd.Dir = s.Dir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return err
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		logFile.Close()
		close(done)
	}()
	if err := waitReady(s.Socket, done); err != nil {
		cmd.Process.Kill()
		<-done
		return fmt.Errorf("%w; server log:\n%s", err, s.logSince(logStart))
	}
	s.cmd, s.done = cmd, done
	return nil
}

// logSince returns the server log from offset on (at most 4 KiB of it).
func (s *Server) logSince(offset int64) string {
	b, err := os.ReadFile(filepath.Join(s.Dir, "redis.log"))
	if err != nil || offset > int64(len(b)) {
		return "(no log)"
	}
	b = b[offset:]
	if len(b) > 4096 {
		b = b[len(b)-4096:]
	}
	return string(b)
}

// waitReady waits until the server on sock answers PING, the process
// exits (done is closed) or StartTimeout passes.
func waitReady(sock string, done <-chan struct{}) error {
	deadline := time.Now().Add(StartTimeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return errors.New("redis-server exited during start-up")
		default:
		}
		if last = ping(sock); last == nil {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("redis-server did not answer PING within %v: %v", StartTimeout, last)
}

// ping sends PING over the unix socket. A server that requires
// authentication counts as ready; one still loading its data does not.
func ping(sock string) error {
	c, err := net.DialTimeout("unix", sock, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil {
		return err
	}
	switch {
	case bytes.HasPrefix(line, []byte("+PONG")), bytes.HasPrefix(line, []byte("-NOAUTH")):
		return nil
	}
	return fmt.Errorf("PING answered %q", bytes.TrimSpace(line))
}

// Stop shuts the server down gracefully (SIGTERM: Redis then writes its
// RDB file if save points are configured, and flushes its AOF), killing
// it if it has not exited within 10 seconds. It may be called any number
// of times, and the server can be started again with Restart.
func (s *Server) Stop() {
	s.stop(syscall.SIGTERM)
}

// Kill stops the server with SIGKILL, as a crash would: nothing is
// flushed beyond what Redis had already written. Restart starts it again.
func (s *Server) Kill() {
	s.stop(syscall.SIGKILL)
}

func (s *Server) stop(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(sig)
	select {
	case <-s.done:
	case <-time.After(stopTimeout):
		s.t.Errorf("redistest: redis-server did not stop within %v; killing it", stopTimeout)
		s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd, s.done = nil, nil
}

// Restart stops the server if it is running and starts it again with the
// same arguments, directory, socket and port, so that a server with
// persistence (e.g. "--appendonly", "yes") comes back with its data. It
// fails the test if the server does not come back.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	if err := s.start(); err != nil {
		s.t.Fatalf("redistest: restarting redis-server: %v", err)
	}
}

// Running reports whether the server process is running (it may be stopped
// with Stop or Kill).
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}
