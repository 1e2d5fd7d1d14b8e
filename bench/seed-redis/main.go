// Command seed-redis fills a Redis server with verified sessions through
// the real session store (package sessions/redisstore), and reports what
// they cost in memory: the growth of INFO used_memory per session.
//
// It is the scale check of SPEC §9 ("1 M stored sessions: same hot-path
// cost; Redis memory per session < 300 bytes"); bench/run.sh runs it when
// SEED is set. Example, against a private server:
//
//	redis-server --port 0 --unixsocket /tmp/r.sock --save "" --appendonly no &
//	go run ./bench/seed-redis -url unix:///tmp/r.sock -sessions 1000000 -per-user 5
//
// Like the gate, it first makes the users exist: each one is enrolled
// (with -recovery-codes recovery code hashes) and has verified once
// (RecordVerification, which creates the profile their sessions are
// indexed in). Then it writes -sessions sessions, -per-user for each user,
// with the IDs, user agent and client address a browser's session has.
// The two phases are measured apart: bytes per user, then bytes per
// session. With -users=false the users are not created first, and each
// user's first session also pays for the hash that indexes it.
//
// Before and after the sessions it reads the same 1,000 probe sessions
// in turn (Session, one GET each) and prints the median time of a read: a
// rough check, on a busy machine, that a read does not get slower as the
// store fills. Figures are printed, never checked.
//
// It refuses a server whose database is not empty (-force to override),
// so that it is not run against a Redis that holds real data by mistake.
// It works with a standalone server or Sentinel, not a Cluster (INFO
// would describe one node only).
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-2fa/caddy-2fa/keyring"
	"github.com/caddy-2fa/caddy-2fa/sessions"
	"github.com/caddy-2fa/caddy-2fa/sessions/redisstore"
)

func main() {
	var (
		url       = flag.String("url", "", "Redis URL (redis://, rediss:// or unix://); required")
		prefix    = flag.String("prefix", redisstore.DefaultKeyPrefix, "key prefix, as the gate's key_prefix")
		realm     = flag.String("realm", "default", "realm of the users and sessions")
		n         = flag.Int("sessions", 1_000_000, "number of sessions to write")
		perUser   = flag.Int("per-user", 1, "sessions per user")
		users     = flag.Bool("users", true, "enroll the users and record a verification before writing their sessions")
		codes     = flag.Int("recovery-codes", 10, "recovery code hashes per enrolled user")
		ttl       = flag.Duration("ttl", 12*time.Hour, "session lifetime")
		workers   = flag.Int("workers", 32, "concurrent writers")
		reads     = flag.Int("reads", 20_000, "Session reads timed before and after the sessions")
		force     = flag.Bool("force", false, "write into a database that is not empty")
		userNames = flag.String("user-format", "user%07d@example.com", "user names: a format for the user's number")
	)
	flag.Parse()
	if *url == "" || *n <= 0 || *perUser <= 0 || *workers <= 0 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(config{
		url: *url, prefix: *prefix, realm: *realm, sessions: *n, perUser: *perUser,
		users: *users, codes: *codes, ttl: *ttl, workers: *workers, reads: *reads,
		force: *force, userFormat: *userNames,
	}); err != nil {
		fmt.Fprintln(os.Stderr, "seed-redis:", err)
		os.Exit(1)
	}
}

// probeSessions is how many sessions the read timings read in turn.
const probeSessions = 1000

type config struct {
	url, prefix, realm string
	sessions, perUser  int
	users              bool
	codes              int
	ttl                time.Duration
	workers, reads     int
	force              bool
	userFormat         string
}

func run(c config) error {
	ctx := context.Background()
	cfg, err := redisstore.ParseURLs(c.url)
	if err != nil {
		return err
	}
	if len(cfg.Addrs) > 1 && cfg.MasterName == "" {
		return errors.New("a Redis Cluster is not supported: INFO would describe one node only")
	}
	opts := cfg.UniversalOptions()
	opts.PoolSize = c.workers + 2
	client := redis.NewUniversalClient(opts)
	defer client.Close()
	store := redisstore.New(client, redisstore.Options{KeyPrefix: c.prefix})
	// The read timings use a client of their own with one connection, so
	// that before and after they read through the same kind of client
	// (not through a pool the writers left with many connections).
	ropts := cfg.UniversalOptions()
	ropts.PoolSize = 1
	rclient := redis.NewUniversalClient(ropts)
	defer rclient.Close()
	reader := redisstore.New(rclient, redisstore.Options{KeyPrefix: c.prefix})
	if err := store.Ping(ctx); err != nil {
		return err
	}
	size, err := client.DBSize(ctx).Result()
	if err != nil {
		return err
	}
	if size != 0 && !c.force {
		return fmt.Errorf("the database holds %d keys; use an empty one (or -force)", size)
	}
	version, _ := infoField(ctx, client, "server", "redis_version")
	nUsers := (c.sessions + c.perUser - 1) / c.perUser
	user := func(i int) string { return fmt.Sprintf(c.userFormat, i) }
	now := time.Now()
	fmt.Printf("seed-redis: Redis %s, realm %q, prefix %q: %d sessions, %d per user (%d users), %d writers\n",
		version, c.realm, c.prefix, c.sessions, c.perUser, nUsers, c.workers)

	m0, err := usedMemory(ctx, client)
	if err != nil {
		return err
	}
	if c.users {
		start := time.Now()
		enr := sessions.Enrollment{SealedSecret: randomBytes(48), Algorithm: "SHA1", Digits: 6, Period: 30, Created: now}
		err := parallel(c.workers, nUsers, func(i int) error {
			hashes := make([]string, c.codes)
			for j := range hashes {
				hashes[j] = hex.EncodeToString(randomBytes(32))
			}
			if err := store.Enroll(ctx, c.realm, user(i), enr, hashes); err != nil && !errors.Is(err, sessions.ErrExists) {
				return err
			}
			return store.RecordVerification(ctx, c.realm, user(i), "totp", now)
		})
		if err != nil {
			return fmt.Errorf("enrolling users: %w", err)
		}
		m1, err := usedMemory(ctx, client)
		if err != nil {
			return err
		}
		fmt.Printf("users:    %d enrolled with %d recovery codes and a profile in %v; used_memory %d -> %d: %.0f bytes per user\n",
			nUsers, c.codes, time.Since(start).Round(time.Millisecond), m0, m1, float64(m1-m0)/float64(nUsers))
	}

	// Probe sessions, read before the others exist and again after, and a
	// warm-up user's session, which loads the session scripts into the
	// server's script cache. All are written before the measurement.
	probes := make([]string, probeSessions)
	for i := range probes {
		probes[i] = rand.Text()
		if err := store.PutSession(ctx, c.realm, probes[i], session(fmt.Sprintf("seed-redis probe %d", i), now, c.ttl)); err != nil {
			return err
		}
	}
	if err := store.PutSession(ctx, c.realm, rand.Text(), session("seed-redis warm-up", now, c.ttl)); err != nil {
		return err
	}
	if err := store.ResetUser(ctx, c.realm, "seed-redis warm-up"); err != nil {
		return err
	}
	emptyRead, err := timeReads(ctx, reader, c.realm, probes, c.reads)
	if err != nil {
		return err
	}

	before, err := usedMemory(ctx, client)
	if err != nil {
		return err
	}
	start := time.Now()
	ids := make([]string, c.sessions)
	var done atomic.Int64
	stop := progress(&done, c.sessions)
	err = parallel(c.workers, c.sessions, func(i int) error {
		ids[i] = rand.Text()
		err := store.PutSession(ctx, c.realm, ids[i], session(user(i/c.perUser), now, c.ttl))
		done.Add(1)
		return err
	})
	stop()
	if err != nil {
		return fmt.Errorf("writing sessions: %w", err)
	}
	took := time.Since(start)
	after, err := usedMemory(ctx, client)
	if err != nil {
		return err
	}
	keys, err := client.DBSize(ctx).Result()
	if err != nil {
		return err
	}
	fmt.Printf("sessions: %d written in %v (%.0f/s); used_memory %d -> %d: %.1f bytes per session; %d keys\n",
		c.sessions, took.Round(time.Millisecond), float64(c.sessions)/took.Seconds(), before, after,
		float64(after-before)/float64(c.sessions), keys)

	// Every session reads back as its user's.
	sample := ids[:min(len(ids), 1000)]
	for i, id := range sample {
		s, err := store.Session(ctx, c.realm, id)
		if err != nil {
			return fmt.Errorf("reading back a session: %w", err)
		}
		if want := user(i / c.perUser); s.User != want {
			return fmt.Errorf("session of %q reads as %q's", want, s.User)
		}
	}
	fullRead, err := timeReads(ctx, reader, c.realm, probes, c.reads)
	if err != nil {
		return err
	}
	fmt.Printf("reads:    Session median %v with %d sessions, %v with %d (the same %d sessions read in turn, %d reads, one at a time)\n",
		emptyRead, probeSessions, fullRead, c.sessions+probeSessions, probeSessions, c.reads)
	return nil
}

// session is a session as the gate writes it for a desktop browser.
func session(user string, now time.Time, ttl time.Duration) sessions.Session {
	return sessions.Session{
		User:      user,
		Method:    "totp",
		Created:   now,
		Expires:   now.Add(ttl),
		LastSeen:  now,
		ClientIP:  "203.0.113.54",
		UserAgent: "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0",
		MAC:       make([]byte, keyring.RecordTagLen), // the size of the gate's record tag
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// parallel runs f(i) for i in [0, n) on workers goroutines and returns
// the first error (after which the others stop taking work).
func parallel(workers, n int, f func(i int) error) error {
	var (
		next    atomic.Int64
		wg      sync.WaitGroup
		errOnce sync.Once
		first   error
	)
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					errOnce.Do(func() { first = err })
					next.Store(int64(n))
					return
				}
			}
		})
	}
	wg.Wait()
	return first
}

// progress prints how far the writers are every 10 seconds on stderr,
// until the returned function is called.
func progress(done *atomic.Int64, total int) (stop func()) {
	t := time.NewTicker(10 * time.Second)
	quit := make(chan struct{})
	go func() {
		for {
			select {
			case <-t.C:
				fmt.Fprintf(os.Stderr, "seed-redis: %d of %d sessions\n", done.Load(), total)
			case <-quit:
				return
			}
		}
	}()
	return func() { t.Stop(); close(quit) }
}

// timeReads reads the sessions of ids, in turn, n times in all, and
// returns the median time of one read.
func timeReads(ctx context.Context, s *redisstore.Store, realm string, ids []string, n int) (time.Duration, error) {
	if n <= 0 {
		return 0, nil
	}
	d := make([]time.Duration, n)
	for i := range d {
		start := time.Now()
		if _, err := s.Session(ctx, realm, ids[i%len(ids)]); err != nil {
			return 0, fmt.Errorf("timing reads: %w", err)
		}
		d[i] = time.Since(start)
	}
	slices.Sort(d)
	return d[n/2].Round(100 * time.Nanosecond), nil
}

// usedMemory returns INFO memory's used_memory.
func usedMemory(ctx context.Context, c redis.UniversalClient) (int64, error) {
	v, err := infoField(ctx, c, "memory", "used_memory")
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(v, 10, 64)
}

// infoField returns one field of an INFO section.
func infoField(ctx context.Context, c redis.UniversalClient, section, field string) (string, error) {
	info, err := c.Info(ctx, section).Result()
	if err != nil {
		return "", err
	}
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(field) + `:(.*?)\r?$`)
	m := re.FindStringSubmatch(info)
	if m == nil {
		return "", fmt.Errorf("no %s in INFO %s", field, section)
	}
	return m[1], nil
}
