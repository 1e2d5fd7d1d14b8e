package keyring

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestLoadOrCreateSecretConcurrent: many first starts at once (handlers
// of one config provisioning in parallel) all get the same secret, none
// reads a half-written file as damaged, and the file holds that secret.
func TestLoadOrCreateSecretConcurrent(t *testing.T) {
	for round := range 50 {
		path := filepath.Join(t.TempDir(), "two_factor", "secret")
		const n = 32
		secrets := make([][]byte, n)
		errs := make([]error, n)
		var start, done sync.WaitGroup
		start.Add(1)
		for i := range n {
			done.Add(1)
			go func() {
				defer done.Done()
				start.Wait()
				secrets[i], errs[i] = LoadOrCreateSecret(path)
			}()
		}
		start.Done()
		done.Wait()
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("round %d, start %d: %v", round, i, errs[i])
			}
			if len(secrets[i]) < MinSecretLen || !bytes.Equal(secrets[i], secrets[0]) {
				t.Fatalf("round %d: start %d got another secret", round, i)
			}
		}
		onDisk, err := LoadOrCreateSecret(path)
		if err != nil || !bytes.Equal(onDisk, secrets[0]) {
			t.Fatalf("round %d: the file holds another secret (%v)", round, err)
		}
		assertNoTempFiles(t, filepath.Dir(path))
	}
}

// TestLoadOrCreateSecretProcesses: several processes starting at once on
// one data directory (the test binary run again) all end with the same
// non-empty secret.
func TestLoadOrCreateSecretProcesses(t *testing.T) {
	if path := os.Getenv("KEYRING_TEST_SECRET_PATH"); path != "" {
		for _, err := os.Stat(path + ".go"); os.IsNotExist(err); _, err = os.Stat(path + ".go") {
			time.Sleep(time.Millisecond)
		}
		raw, err := LoadOrCreateSecret(path)
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println(base64.StdEncoding.EncodeToString(raw))
		os.Exit(0)
	}
	if testing.Short() {
		t.Skip("starts processes")
	}
	for round := range 8 {
		path := filepath.Join(t.TempDir(), "two_factor", "secret")
		const n = 8
		cmds := make([]*exec.Cmd, n)
		outs := make([]*bytes.Buffer, n)
		for i := range n {
			cmds[i] = exec.Command(os.Args[0], "-test.run=^TestLoadOrCreateSecretProcesses$")
			cmds[i].Env = append(os.Environ(), "KEYRING_TEST_SECRET_PATH="+path)
			outs[i] = new(bytes.Buffer)
			cmds[i].Stdout, cmds[i].Stderr = outs[i], outs[i]
			if err := cmds[i].Start(); err != nil {
				t.Fatal(err)
			}
		}
		// Release them together once all are waiting.
		time.Sleep(300 * time.Millisecond)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path+".go", nil, 0o600); err != nil {
			t.Fatal(err)
		}
		var first string
		for i, c := range cmds {
			err := c.Wait()
			out := strings.TrimSpace(outs[i].String())
			if err != nil {
				t.Fatalf("round %d, process %d: %v: %s", round, i, err, out)
			}
			if i == 0 {
				first = out
			}
			if out == "" || out != first {
				t.Fatalf("round %d: process %d got %q, process 0 %q", round, i, out, first)
			}
		}
		raw, err := LoadOrCreateSecret(path)
		if err != nil || base64.StdEncoding.EncodeToString(raw) != first {
			t.Fatalf("round %d: the file holds another secret (%v)", round, err)
		}
	}
}

// TestLoadOrCreateSecretAfterCrash: an empty (or blank) file, which an
// earlier version left when it crashed between creating and writing the
// file, is treated as absent: a secret is generated and kept, not
// refused as damaged at every later start. A file with content that is
// not a secret is still refused.
func TestLoadOrCreateSecretAfterCrash(t *testing.T) {
	for _, leftover := range []string{"", "\n", "  \n"} {
		dir := t.TempDir()
		path := filepath.Join(dir, "secret")
		if err := os.WriteFile(path, []byte(leftover), 0o600); err != nil {
			t.Fatal(err)
		}
		s1, err := LoadOrCreateSecret(path)
		if err != nil {
			t.Fatalf("leftover %q: %v", leftover, err)
		}
		s2, err := LoadOrCreateSecret(path)
		if err != nil || !bytes.Equal(s1, s2) || len(s1) < MinSecretLen {
			t.Fatalf("leftover %q: second start got another secret (%v)", leftover, err)
		}
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("leftover %q: mode %v (%v)", leftover, fi.Mode().Perm(), err)
		}
		assertNoTempFiles(t, dir)
	}
	path := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(path, []byte("c2hvcnQ=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateSecret(path); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("a short secret file: %v, want damaged", err)
	}
}

// assertNoTempFiles checks that only the secret (and its lock) remain in
// dir: temporary files are renamed or removed.
func assertNoTempFiles(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if n := e.Name(); n != "secret" && n != "secret.lock" && n != "secret.go" {
			t.Errorf("left behind in %s: %s", dir, n)
		}
	}
}
