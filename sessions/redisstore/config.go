package redisstore

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Config describes how to reach Redis. Build it by hand or with ParseURLs,
// and make a client with redis.NewUniversalClient(c.UniversalOptions()).
type Config struct {
	// Addrs are the servers: one "host:port" or unix socket path for a
	// standalone server, the Sentinels' "host:port" if MasterName is set,
	// or several cluster nodes' "host:port" otherwise.
	Addrs []string
	// MasterName is the Sentinel master set name; set it to use Sentinel.
	MasterName string
	// Username and Password authenticate to the Redis servers (ACL user,
	// or only a password for requirepass). Sentinels are reached without
	// authentication.
	Username string
	Password string
	// DB is the database number (standalone and Sentinel only: a cluster
	// has database 0 only).
	DB int
	// TLS turns on TLS (1.2 or later) with the system roots, verifying
	// each server's host name.
	TLS bool
	// KeyPrefix starts every key; empty means DefaultKeyPrefix. It is
	// for the store (Options.KeyPrefix), not the client.
	KeyPrefix string
	// PoolSize is the number of connections per server (zero: the
	// go-redis default, 10 per CPU).
	PoolSize int
	// DialTimeout, ReadTimeout and WriteTimeout bound connecting,
	// reading a reply and writing a command (zero: the go-redis
	// defaults, 5 s and 3 s).
	DialTimeout  time.Duration
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
}

// Validate reports what is wrong with c, if anything. Its errors never
// contain the password.
func (c Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("redisstore: invalid Redis configuration: "+format, args...)
	}
	if len(c.Addrs) == 0 {
		return bad("no address")
	}
	seen := map[string]bool{}
	for _, a := range c.Addrs {
		switch {
		case a == "":
			return bad("empty address")
		case seen[a]:
			return bad("address %s listed twice", a)
		case strings.HasPrefix(a, "/") && len(c.Addrs) > 1:
			return bad("a unix socket must be the only address")
		case strings.HasPrefix(a, "/") && c.TLS:
			return bad("TLS over a unix socket")
		}
		seen[a] = true
	}
	switch {
	case c.DB < 0:
		return bad("negative database number")
	case c.DB != 0 && len(c.Addrs) > 1 && c.MasterName == "":
		return bad("database %d with several addresses (a Redis Cluster has database 0 only)", c.DB)
	case c.PoolSize < 0:
		return bad("negative pool size")
	case c.DialTimeout < 0, c.ReadTimeout < 0, c.WriteTimeout < 0:
		return bad("negative timeout")
	}
	return nil
}

// UniversalOptions returns the go-redis options for c: with one address a
// standalone client, with MasterName a Sentinel (failover) client, with
// several addresses a Cluster client. ContextTimeoutEnabled is set, so
// that the store's per-call deadline also bounds socket reads and writes.
func (c Config) UniversalOptions() *redis.UniversalOptions {
	o := &redis.UniversalOptions{
		Addrs:                 slices.Clone(c.Addrs),
		MasterName:            c.MasterName,
		Username:              c.Username,
		Password:              c.Password,
		DB:                    c.DB,
		PoolSize:              c.PoolSize,
		DialTimeout:           c.DialTimeout,
		ReadTimeout:           c.ReadTimeout,
		WriteTimeout:          c.WriteTimeout,
		ContextTimeoutEnabled: true,
	}
	if c.TLS {
		// The server name comes from each address when dialing.
		o.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return o
}

// passwordKey keys the password fingerprint in String: random per process,
// so that the fingerprint tells configurations apart within a process
// without letting anyone who reads a log guess the password offline.
var passwordKey = sync.OnceValue(func() []byte {
	k := make([]byte, 32)
	rand.Read(k)
	return k
})

// String describes c for logs and as a key for sharing clients: equal
// configurations give equal strings within a process. It never contains
// the password: a set password appears as an HMAC fingerprint under a
// random per-process key.
func (c Config) String() string {
	var b strings.Builder
	b.WriteString("redis")
	switch {
	case c.MasterName != "":
		b.WriteString(" sentinel master=" + strconv.Quote(c.MasterName) + " sentinels=")
	case len(c.Addrs) > 1:
		b.WriteString(" cluster nodes=")
	default:
		b.WriteString(" addr=")
	}
	b.WriteString(strings.Join(c.Addrs, ","))
	fmt.Fprintf(&b, " db=%d", c.DB)
	if c.Username != "" {
		b.WriteString(" user=" + strconv.Quote(c.Username))
	}
	if c.Password != "" {
		m := hmac.New(sha256.New, passwordKey())
		m.Write([]byte(c.Password))
		b.WriteString(" password=hmac:" + hex.EncodeToString(m.Sum(nil)[:8]))
	}
	fmt.Fprintf(&b, " tls=%t prefix=%s pool=%d dial_timeout=%v read_timeout=%v write_timeout=%v",
		c.TLS, strconv.Quote(escapePrefix(c.KeyPrefix)), c.PoolSize, c.DialTimeout, c.ReadTimeout, c.WriteTimeout)
	return b.String()
}

// ParseURLs builds a Config from one or more URLs:
//
//	redis://[[user][:password]@]host[:port][/db][?options]
//	rediss://…   the same, with TLS
//	unix://[[user][:password]@]/path/to/redis.sock[?db=N&options]
//
// The port defaults to 6379. Options: db, master_name (use Sentinel: the
// URLs are then the Sentinels), pool_size, dial_timeout, read_timeout and
// write_timeout (Go durations, like 500ms). Several URLs give several
// addresses (Cluster nodes, or Sentinels with master_name); they must
// all have the same scheme, and the credentials, database and options
// that more than one of them sets must agree. Special characters in the
// user name and password must be percent-encoded. Errors never contain
// the password.
func ParseURLs(urls ...string) (Config, error) {
	var c Config
	if len(urls) == 0 {
		return c, errors.New("redisstore: no Redis URL")
	}
	p := urlParser{set: map[string]string{}}
	for i, raw := range urls {
		if err := p.parse(&c, i+1, raw); err != nil {
			return Config{}, err
		}
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// urlParser merges several URLs into one Config.
type urlParser struct {
	scheme string
	// set holds, for each setting some URL set, a canonical form of its
	// value (for the password a hash, never the password), to detect
	// conflicts between URLs.
	set map[string]string
}

// describe is a URL without its user info and query, for error messages.
func describe(u *url.URL) string {
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
}

// merge records that a URL sets name to value (canonical), or reports a
// conflict with an earlier URL.
func (p *urlParser) merge(where, name, value string) error {
	if prev, ok := p.set[name]; ok && prev != value {
		return fmt.Errorf("redisstore: %s: %s conflicts with an earlier URL", where, name)
	}
	p.set[name] = value
	return nil
}

func (p *urlParser) parse(c *Config, n int, raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse errors quote the URL, password included.
		return fmt.Errorf("redisstore: Redis URL %d is not a valid URL "+
			"(percent-encode special characters such as @ : / ? # %% in the user name and password)", n)
	}
	where := fmt.Sprintf("Redis URL %d", n)
	if strings.Contains(u.Path, "@") || strings.Contains(u.RawQuery, "@") || strings.Contains(u.Fragment, "@") {
		// An '@' after the host is the end of a user info that contains
		// an unencoded '/', '?' or '#': part of the password is in what
		// url.Parse took for the host and path, so echo none of it.
		return fmt.Errorf("redisstore: %s: '@' after the host "+
			"(percent-encode special characters such as / ? # in the user name and password)", where)
	}
	switch u.Scheme {
	case "redis", "rediss", "unix":
	case "":
		return fmt.Errorf("redisstore: %s has no scheme (want redis://, rediss:// or unix://)", where)
	default:
		return fmt.Errorf("redisstore: %s: unsupported scheme %q (want redis, rediss or unix)", where, u.Scheme)
	}
	where = fmt.Sprintf("Redis URL %d (%s)", n, describe(u))
	if p.scheme != "" && u.Scheme != p.scheme {
		return fmt.Errorf("redisstore: %s: scheme %s mixed with %s", where, u.Scheme, p.scheme)
	}
	p.scheme = u.Scheme
	switch {
	case u.Opaque != "":
		return fmt.Errorf("redisstore: %s: want %s://…", where, u.Scheme)
	case u.Fragment != "" || strings.HasSuffix(raw, "#"):
		return fmt.Errorf("redisstore: %s: unexpected fragment", where)
	}

	if u.User != nil {
		pw, _ := u.User.Password()
		sum := sha256.Sum256([]byte(pw))
		if err := p.merge(where, "user name", u.User.Username()); err != nil {
			return err
		}
		if err := p.merge(where, "password", hex.EncodeToString(sum[:])); err != nil {
			return err
		}
		c.Username, c.Password = u.User.Username(), pw
	}

	var addr string
	db := ""
	if u.Scheme == "unix" {
		if u.Host != "" {
			return fmt.Errorf("redisstore: %s: a unix URL has no host (unix:///path/to/redis.sock)", where)
		}
		if !strings.HasPrefix(u.Path, "/") || len(u.Path) < 2 {
			return fmt.Errorf("redisstore: %s: want an absolute socket path", where)
		}
		addr = u.Path
	} else {
		host, port := u.Hostname(), u.Port()
		if host == "" {
			return fmt.Errorf("redisstore: %s: no host", where)
		}
		if port == "" {
			port = "6379"
		}
		if pn, err := strconv.Atoi(port); err != nil || pn < 1 || pn > 65535 {
			return fmt.Errorf("redisstore: %s: invalid port", where)
		}
		addr = net.JoinHostPort(host, port)
		if path := strings.TrimPrefix(u.Path, "/"); path != "" {
			db = path
		}
		c.TLS = u.Scheme == "rediss"
	}
	c.Addrs = append(c.Addrs, addr)

	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return fmt.Errorf("redisstore: %s: malformed query", where)
	}
	for name, vs := range q {
		if len(vs) != 1 {
			return fmt.Errorf("redisstore: %s: option %s given %d times", where, name, len(vs))
		}
		v := vs[0]
		switch name {
		case "db":
			if db != "" && db != v {
				return fmt.Errorf("redisstore: %s: database given twice", where)
			}
			db = v
		case "master_name":
			if v == "" {
				return fmt.Errorf("redisstore: %s: empty master_name", where)
			}
			if err := p.merge(where, name, v); err != nil {
				return err
			}
			c.MasterName = v
		case "pool_size":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return fmt.Errorf("redisstore: %s: invalid pool_size %q", where, v)
			}
			if err := p.merge(where, name, strconv.Itoa(n)); err != nil {
				return err
			}
			c.PoolSize = n
		case "dial_timeout", "read_timeout", "write_timeout":
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return fmt.Errorf("redisstore: %s: invalid %s %q (want a positive duration like 500ms)", where, name, v)
			}
			if err := p.merge(where, name, d.String()); err != nil {
				return err
			}
			switch name {
			case "dial_timeout":
				c.DialTimeout = d
			case "read_timeout":
				c.ReadTimeout = d
			default:
				c.WriteTimeout = d
			}
		case "password", "username", "user":
			// Never echo the value.
			return fmt.Errorf("redisstore: %s: option %s is not supported: put credentials in the URL's user info", where, name)
		default:
			return fmt.Errorf("redisstore: %s: unknown option %q", where, name)
		}
	}
	if db != "" {
		n, err := strconv.Atoi(db)
		if err != nil || n < 0 || strconv.Itoa(n) != db {
			return fmt.Errorf("redisstore: %s: invalid database number %q", where, db)
		}
		if err := p.merge(where, "database", db); err != nil {
			return err
		}
		c.DB = n
	}
	return nil
}
