//go:build linux

package caddymodule

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"
)

// phpFPM returns the php-fpm executable, or skips the test (fails it
// under CI).
func phpFPM(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("php-fpm"); err == nil {
		return p
	}
	if m, _ := filepath.Glob("/usr/sbin/php-fpm*"); len(m) > 0 {
		return m[0]
	}
	toolMissing(t, "php-fpm", "Debian: apt-get install php-fpm; .ci/run installs it")
	return ""
}

// startPHP runs php-fpm on a private socket with its own pool, serving
// root, and returns the socket's path.
func startPHP(t *testing.T, root string) string {
	t.Helper()
	bin := phpFPM(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "fpm.sock")
	conf := filepath.Join(dir, "fpm.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf(`[global]
error_log = %s/fpm.log
daemonize = no
[test]
listen = %s
pm = static
pm.max_children = 2
clear_env = no
`, dir, sock)), 0o600)
	args := []string{"-n", "-y", conf, "-F"}
	if os.Geteuid() == 0 {
		args = append(args, "-R")
	}
	cmd := exec.Command(bin, args...)
	// Its own process group, so that the workers go with the master even
	// when the master dies first; and never outliving the test binary.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting php-fpm: %v", err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
	for deadline := time.Now().Add(10 * time.Second); ; {
		if _, err := os.Stat(sock); err == nil {
			return sock
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "fpm.log"))
			t.Fatalf("php-fpm did not start: %s", log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestFiledNamesMatchPHP: for cookie names built to confuse, the key
// under which real PHP files the cookie in $_COOKIE is one of the names
// filedNames gives (so the gate takes every spelling PHP reads as a
// session cookie for one), and PHP keeps the first of two duplicates.
func TestFiledNamesMatchPHP(t *testing.T) {
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "index.php"), []byte(`<?php header("Content-Type: application/json"); echo json_encode(array_map("strval", array_keys($_COOKIE)));`), 0o600)
	sock := startPHP(t, root)
	s := startCustomSite(t, "", fmt.Sprintf("\troot * %s\n\tphp_fastcgi unix/%s", root, sock))
	raw := &browser{t: t, s: s, client: &http.Client{}}
	names := []string{
		"PHPSESSID", " PHPSESSID", "PHPSESS%49D", "PHPSESSID%00x", "PHPSESSID[x]", "PHPSESSID[", "PHPSESSID[x",
		"wordpress.logged_in_x", "wordpress[logged_in_x", "wordpress logged_in_x", "wordpress+logged_in_x",
		"wordpress%2Elogged_in_x", "wordpress_logged_in_x[a.b", "a[b.c", "a.b[c", "%20a", "\ta", "a]b", "a[]", "a[b][c",
		"wordpress%2Elogged.in_x", "PHPSESS%49D.", "a%00.b",
	}
	for _, name := range names {
		r := raw.do("GET", "/index.php", nil, http.Header{"Cookie": {name + "=v"}}).expect(t, http.StatusOK)
		var keys []string
		if err := json.Unmarshal([]byte(r.body), &keys); err != nil {
			t.Fatalf("%q: PHP answered %q", name, r.body)
		}
		trimmed := name
		if p, _ := parseCookieHeader([]string{name + "=v"}); len(p) == 1 {
			trimmed = p[0].name
		}
		for _, k := range keys {
			if !slices.Contains(filedNames(trimmed), k) {
				t.Errorf("PHP files %q under %q; filedNames gives %q", name, k, filedNames(trimmed))
			}
		}
	}
	r := raw.do("GET", "/index.php", nil, http.Header{"Cookie": {"a.b=1; a_b=2"}}).expect(t, http.StatusOK)
	if r.body != `["a_b"]` {
		t.Errorf("a.b and a_b: PHP has %s", r.body)
	}
}
