package caddymodule

import (
	"fmt"
	"path/filepath"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddy-2fa/caddy-2fa/sessions"
	"github.com/caddy-2fa/caddy-2fa/sessions/filestore"
)

// stores holds every open store, keyed by backend and location, so that
// all handlers (and all realms) using the same file share one open
// database, and a config reload reuses it instead of closing and reopening
// it: sessions stay alive and bbolt's file lock never trips over itself.
var stores = caddy.NewUsagePool()

// pooledStore is a store held in the usage pool; it is closed when the
// last config using it is unloaded.
type pooledStore struct {
	sessions.Store
	close func() error
}

// Destruct implements caddy.Destructor.
func (p pooledStore) Destruct() error { return p.close() }

// openStore returns the store described by cfg and the pool key to release
// in Cleanup.
func openStore(cfg *StoreConfig, logger *zap.Logger) (sessions.Store, string, error) {
	if cfg.Backend == "redis" {
		return openRedisStore(cfg, logger)
	}
	path := cfg.Path
	if path == "" {
		path = filepath.Join(caddy.AppDataDir(), "two_factor", "store.db")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, "", fmt.Errorf("file store path %q: %v", path, err)
	}
	key := "file:" + abs
	v, _, err := stores.LoadOrNew(key, func() (caddy.Destructor, error) {
		s, err := filestore.Open(abs, filestore.Options{Logger: logger.Named("store")})
		if err != nil {
			return nil, err
		}
		return pooledStore{Store: s, close: s.Close}, nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("opening file store %s: %v", abs, err)
	}
	return v.(pooledStore).Store, key, nil
}
