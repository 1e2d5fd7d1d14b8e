package caddymodule

import (
	"fmt"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/caddy-2fa/caddy-2fa/internal/redistest"
)

// loadTwoSites loads a config of two sites whose two_factor blocks are a
// and b, and returns the load error.
func loadTwoSites(t *testing.T, a, b string) error {
	t.Helper()
	cfg := fmt.Sprintf(`{
	admin off
	storage file_system %s
	persist_config off
}
http://localhost:%d {
	two_factor {
%s
	}
	respond "one"
}
http://localhost:%d {
	two_factor {
%s
	}
	respond "two"
}
`, caddyStorage, freePort(t), a, freePort(t), b)
	js, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cfg), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		t.Fatalf("adapting: %v", err)
	}
	t.Cleanup(func() { caddy.Stop() })
	return caddy.Load(js, true)
}

// TestOneStorePerRealm: two sites with one realm name but different
// stores (file at two paths, or file and Redis) are refused at load with
// a message naming the realm and both stores, since the admin API would
// act on one of them only; the same store (however its client is tuned),
// or different realm names, load; and a reload may move a realm to
// another store.
func TestOneStorePerRealm(t *testing.T) {
	dir := t.TempDir()
	rs := redistest.Start(t)
	const secret = "secret 0123456789abcdef0123456789abcdef"
	redisA := fmt.Sprintf("%s\n\t\tstore redis unix://%s", secret, rs.Socket)
	redisB := fmt.Sprintf("%s\n\t\tstore redis unix://%s {\n\t\t\tpool_size 3\n\t\t}", secret, rs.Socket)
	for _, tc := range []struct {
		name string
		a, b string
		want []string // substrings of the error; none: loads
	}{
		{
			"file at two paths", "store file " + dir + "/a.db", "store file " + dir + "/b.db",
			[]string{`realm "default": configured with two different stores`, "file " + dir + "/a.db", "file " + dir + "/b.db", "different realm names"},
		},
		{
			"file and redis", "realm staff\n\t\tstore file " + dir + "/c.db", "realm staff\n\t\t" + redisA,
			[]string{`realm "staff": configured with two different stores`, "file " + dir + "/c.db", "redis " + rs.Socket},
		},
		{
			"redis, two key prefixes", "realm ops\n\t\t" + redisA, "realm ops\n\t\t" + secret + "\n\t\tstore redis unix://" + rs.Socket + " {\n\t\t\tkey_prefix other\n\t\t}",
			[]string{`realm "ops": configured with two different stores`, `key_prefix="caddy2fa"`, `key_prefix="other"`},
		},
		{"same file", "store file " + dir + "/d.db", "store file " + dir + "/d.db", nil},
		{"same file, spelled differently", "store file " + dir + "/e.db", "store file " + dir + "/./sub/../e.db", nil},
		{"same redis, other pool size", redisA, redisB, nil},
		{"different realms", "realm one\n\t\tstore file " + dir + "/f.db", "realm two\n\t\t" + redisA, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := loadTwoSites(t, tc.a, tc.b)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("loaded")
			}
			t.Log(err)
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q:\n%v", w, err)
				}
			}
		})
	}

	t.Run("reload moves a realm to another store", func(t *testing.T) {
		if err := loadTwoSites(t, "store file "+dir+"/g.db", "store file "+dir+"/g.db"); err != nil {
			t.Fatal(err)
		}
		if err := loadTwoSites(t, redisA, redisA); err != nil {
			t.Fatalf("reload to Redis refused: %v", err)
		}
		info, ok := runningRealm(DefaultRealm)
		if !ok {
			t.Fatal("realm gone after reload")
		}
		if _, err := info.Store.Users(t.Context(), DefaultRealm); err != nil {
			t.Fatal(err)
		}
	})
}
