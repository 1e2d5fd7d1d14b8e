package keyring

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// LoadOrCreateSecret returns the secret kept in the file at path, creating
// it (mode 0600, 48 random bytes, base64) if it does not exist yet. Used
// when the operator configured no secret and the store is local, so that
// sessions survive restarts.
//
// Starts that race for the first secret, in one process or several, all
// get the same one: the file is written in full to a temporary file in
// the same directory, synced, and only then given its name (under a lock
// file, and never over a secret already there), and the directory is
// synced, so no start ever reads a half-written secret and a crash leaves
// either no secret or a whole one. An empty or blank file, which earlier
// versions left when they crashed between creating and writing it, is
// treated as absent.
func LoadOrCreateSecret(path string) ([]byte, error) {
	if raw, ok, err := readSecretFile(path); ok || err != nil {
		return raw, err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating secret directory: %v", err)
	}
	unlock, err := lockFile(path + ".lock")
	if err != nil {
		return nil, fmt.Errorf("locking secret file: %v", err)
	}
	defer unlock()
	// Another start may have published one while this one waited.
	if raw, ok, err := readSecretFile(path); ok || err != nil {
		return raw, err
	}
	raw := make([]byte, 48)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	if err := publishSecret(path, base64.StdEncoding.EncodeToString(raw)+"\n"); err != nil {
		if errors.Is(err, os.ErrExist) {
			// Published by a start that could not take the lock (a
			// platform without one): use theirs.
			if raw, ok, err := readSecretFile(path); ok || err != nil {
				return raw, err
			}
		}
		return nil, err
	}
	return raw, nil
}

// readSecretFile reads the secret at path. ok is false, with no error, if
// there is none yet: no file, or an empty or blank one.
func readSecretFile(path string) (raw []byte, ok bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("reading secret file: %v", err)
	}
	if strings.TrimSpace(string(b)) == "" {
		return nil, false, nil
	}
	raw, err = decodeSecretFile(path, b)
	return raw, err == nil, err
}

func decodeSecretFile(path string, b []byte) ([]byte, error) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(raw) < MinSecretLen {
		return nil, fmt.Errorf("secret file %s is damaged (expected base64 of at least %d bytes); remove it to generate a new one (this signs everyone out)", path, MinSecretLen)
	}
	return raw, nil
}

// publishSecret writes content to a temporary file next to path, syncs
// it, gives it the name path and syncs the directory. Where there is no
// file at path, the name is given with a hard link, which fails (with
// os.ErrExist) rather than replace a secret that appeared meanwhile; an
// empty leftover is replaced by a rename.
func publishSecret(path, content string) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".secret-*.tmp") // mode 0600
	if err != nil {
		return fmt.Errorf("creating secret file: %v", err)
	}
	defer os.Remove(tmp.Name()) // after a link or a failure; gone after a rename
	if _, err := tmp.WriteString(content); err != nil {
		tmp.Close()
		return fmt.Errorf("writing secret file: %v", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("writing secret file: %v", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing secret file: %v", err)
	}
	_, statErr := os.Lstat(path)
	switch {
	case errors.Is(statErr, os.ErrNotExist):
		err = os.Link(tmp.Name(), path)
		if err != nil && !errors.Is(err, os.ErrExist) {
			// A file system without hard links; under the lock, a
			// rename is as safe.
			err = os.Rename(tmp.Name(), path)
		}
	case statErr != nil:
		err = statErr
	default:
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return err
		}
		return fmt.Errorf("creating secret file: %v", err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("syncing secret directory: %v", err)
	}
	return nil
}

// syncDir makes a new name in dir durable. Windows cannot sync a
// directory (and does not need to).
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
