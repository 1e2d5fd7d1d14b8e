package caddymodule

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/caddy-2fa/caddy-2fa/sessions"
	"github.com/caddy-2fa/caddy-2fa/sessions/redisstore"
)

// go-redis has one logger for the whole process (redis.SetLogger), shared
// by every plugin in the binary: the gate leaves it alone. What the gate
// needs to know about its own Redis it logs itself, on the handler's
// logger: outages and recoveries (watchRedis) and, at debug level, each
// failed connection attempt (dialLogger).

// dialLogger is a go-redis hook that logs the client's failed connection
// attempts on the gate's logger, at debug level (watchRedis logs the
// outage itself once, at error level).
type dialLogger struct{ logger *zap.Logger }

// DialHook implements redis.Hook.
func (d dialLogger) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := next(ctx, network, addr)
		if err != nil {
			if ce := d.logger.Check(zap.DebugLevel, "connecting to Redis failed"); ce != nil {
				ce.Write(zap.String("addr", addr), zap.Error(err))
			}
		}
		return conn, err
	}
}

// ProcessHook implements redis.Hook.
func (dialLogger) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

// ProcessPipelineHook implements redis.Hook.
func (dialLogger) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// redisHealthInterval is how often the gate checks that Redis answers, to
// log outages and recoveries once each and to re-read the eviction policy
// after a reconnect.
const redisHealthInterval = 5 * time.Second

// openRedisStore returns a store on a Redis client shared by every handler
// with the same Redis configuration (one connection pool per distinct
// configuration, kept across reloads). Creating it never blocks on Redis:
// an unreachable server is logged and every request gets 503 until it
// answers.
func openRedisStore(cfg *StoreConfig, logger *zap.Logger) (sessions.Store, string, error) {
	rc, err := redisConfig(cfg)
	if err != nil {
		return nil, "", err
	}
	key := "redis:" + rc.String()
	v, _, err := stores.LoadOrNew(key, func() (caddy.Destructor, error) {
		client := redis.NewUniversalClient(rc.UniversalOptions())
		client.AddHook(dialLogger{logger: logger.Named("store")})
		store := redisstore.New(client, redisstore.Options{KeyPrefix: rc.KeyPrefix})
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			watchRedis(ctx, store, rc.String(), logger.Named("store"))
		}()
		return pooledStore{Store: store, close: func() error {
			cancel()
			wg.Wait()
			return client.Close()
		}}, nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("redis store %s: %v", rc.String(), err)
	}
	return v.(pooledStore).Store, key, nil
}

// redisConfig builds the client configuration from the handler's store
// options, resolving placeholders ({env.REDIS_PASSWORD}) once.
func redisConfig(cfg *StoreConfig) (redisstore.Config, error) {
	repl := caddy.NewReplacer()
	var rc redisstore.Config
	if len(cfg.URLs) > 0 {
		urls := make([]string, len(cfg.URLs))
		for i, u := range cfg.URLs {
			urls[i] = repl.ReplaceKnown(u, "")
			if urls[i] == "" {
				return rc, fmt.Errorf("redis URL %d resolved to an empty value", i+1)
			}
		}
		var err error
		if rc, err = redisstore.ParseURLs(urls...); err != nil {
			return rc, err
		}
	}
	for _, a := range cfg.Addrs {
		rc.Addrs = append(rc.Addrs, repl.ReplaceKnown(a, ""))
	}
	if cfg.MasterName != "" {
		rc.MasterName = repl.ReplaceKnown(cfg.MasterName, "")
	}
	if cfg.Username != "" {
		rc.Username = repl.ReplaceKnown(cfg.Username, "")
	}
	if cfg.Password != "" {
		rc.Password = repl.ReplaceKnown(cfg.Password, "")
	}
	if cfg.DB != 0 {
		rc.DB = cfg.DB
	}
	rc.TLS = rc.TLS || cfg.TLS
	if cfg.KeyPrefix != "" {
		rc.KeyPrefix = cfg.KeyPrefix
	}
	if cfg.PoolSize != 0 {
		rc.PoolSize = cfg.PoolSize
	}
	if cfg.DialTimeout != 0 {
		rc.DialTimeout = time.Duration(cfg.DialTimeout)
	}
	if cfg.ReadTimeout != 0 {
		rc.ReadTimeout = time.Duration(cfg.ReadTimeout)
	}
	if len(rc.Addrs) == 0 {
		return rc, fmt.Errorf("no Redis address")
	}
	return rc, nil
}

// maxClockOffset is how far an instance's clock may be from the Redis
// server's before the gate warns. Instances write lockout and replay
// records with their own clocks: the replay marker is kept long enough to
// cover any plausible difference (replayMarkerMargin), but a lockout ends
// early, by the difference, on an instance whose clock is ahead of the
// one that started it.
const maxClockOffset = 3 * time.Second

// watchRedis logs when Redis becomes unreachable and when it is back, and
// each time it (re)connects reads maxmemory-policy: an allkeys-* policy
// lets Redis evict enrollments, which would let their users enroll afresh.
// On every check it also compares this instance's clock with the server's
// and warns when they drift more than maxClockOffset apart (and says when
// they agree again).
func watchRedis(ctx context.Context, store *redisstore.Store, name string, logger *zap.Logger) {
	up, first, skewed := false, true, false
	t := time.NewTicker(redisHealthInterval)
	defer t.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := store.Ping(pctx)
		if err == nil {
			skewed = checkClock(pctx, store, name, skewed, logger)
		}
		if err == nil && !up {
			policy, risky, perr := store.EvictionPolicy(pctx)
			switch {
			case perr != nil:
				logger.Info("could not read Redis maxmemory-policy (CONFIG may be disabled); make sure it is noeviction or volatile-*", zap.String("redis", name), zap.Error(perr))
			case risky:
				logger.Warn("Redis maxmemory-policy can evict keys without a TTL: enrollments may be lost and their users asked to enroll again; set maxmemory-policy to noeviction or a volatile-* policy", zap.String("redis", name), zap.String("maxmemory_policy", policy))
			}
			if !first {
				logger.Info("Redis reachable again: two-factor gate serving", zap.String("redis", name))
			}
		}
		cancel()
		if err != nil && (up || first) && ctx.Err() == nil {
			logger.Error("Redis unreachable: the two-factor gate answers 503 until it is back", zap.String("redis", name), zap.Error(err))
		}
		up, first = err == nil, false
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// checkClock compares the gate's clock with the Redis server's, logs a
// warning when the difference grows past maxClockOffset (wasSkewed false)
// and a notice when it is back under it, and reports whether it is past.
func checkClock(ctx context.Context, store *redisstore.Store, name string, wasSkewed bool, logger *zap.Logger) bool {
	before := now()
	server, err := store.ServerTime(ctx)
	if err != nil {
		return wasSkewed
	}
	local := before.Add(now().Sub(before) / 2)
	offset := local.Sub(server)
	skewed := offset > maxClockOffset || offset < -maxClockOffset
	switch {
	case skewed && !wasSkewed:
		logger.Warn("this instance's clock differs from the Redis server's: lockouts started elsewhere may end early here; synchronise the clocks (NTP)",
			zap.String("redis", name), zap.Duration("offset", offset.Round(time.Millisecond)))
	case !skewed && wasSkewed:
		logger.Info("this instance's clock agrees with the Redis server's again", zap.String("redis", name), zap.Duration("offset", offset.Round(time.Millisecond)))
	}
	return skewed
}
