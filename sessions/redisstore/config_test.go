package redisstore

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseURLs(t *testing.T) {
	good := []struct {
		urls []string
		want Config
	}{
		{[]string{"redis://localhost"}, Config{Addrs: []string{"localhost:6379"}}},
		{[]string{"redis://user:pass@host:6380/2"}, Config{Addrs: []string{"host:6380"}, Username: "user", Password: "pass", DB: 2}},
		{[]string{"redis://:only%40pass@host"}, Config{Addrs: []string{"host:6379"}, Password: "only@pass"}},
		{[]string{"rediss://host"}, Config{Addrs: []string{"host:6379"}, TLS: true}},
		{[]string{"redis://[::1]:7000/0"}, Config{Addrs: []string{"[::1]:7000"}}},
		{[]string{"unix:///run/redis.sock?db=1"}, Config{Addrs: []string{"/run/redis.sock"}, DB: 1}},
		{[]string{"unix://u:p@/run/redis.sock"}, Config{Addrs: []string{"/run/redis.sock"}, Username: "u", Password: "p"}},
		{
			[]string{"redis://h/3?db=3&pool_size=20&dial_timeout=1s&read_timeout=500ms&write_timeout=2s"},
			Config{Addrs: []string{"h:6379"}, DB: 3, PoolSize: 20, DialTimeout: time.Second, ReadTimeout: 500 * time.Millisecond, WriteTimeout: 2 * time.Second},
		},
		{
			[]string{"redis://:pw@a:7000", "redis://b:7001", "redis://:pw@c:7002"},
			Config{Addrs: []string{"a:7000", "b:7001", "c:7002"}, Password: "pw"},
		},
		{
			[]string{"redis://s1:26379/1?master_name=mymaster", "redis://s2:26379?master_name=mymaster"},
			Config{Addrs: []string{"s1:26379", "s2:26379"}, MasterName: "mymaster", DB: 1},
		},
	}
	for _, tc := range good {
		got, err := ParseURLs(tc.urls...)
		if err != nil {
			t.Errorf("ParseURLs(%q): %v", tc.urls, err)
			continue
		}
		if !configEqual(got, tc.want) {
			t.Errorf("ParseURLs(%q) = %+v, want %+v", tc.urls, got, tc.want)
		}
	}

	const secret = "s3cr3t-PW"
	bad := [][]string{
		nil,
		{""},
		{"localhost:6379"},
		{"http://host"},
		{"redis://"},
		{"redis://host:0"},
		{"redis://host:99999"},
		{"redis://host:port"},
		{"redis://host/x"},
		{"redis://host/-1"},
		{"redis://host/01"},
		{"redis://host/1/2"},
		{"redis://host/1?db=2"},
		{"redis://host?db=1&db=1"},
		{"redis://host?unknown=1"},
		{"redis://host?pool_size=0"},
		{"redis://host?dial_timeout=fast"},
		{"redis://host?dial_timeout=-1s"},
		{"redis://host?master_name="},
		{"redis://host#frag"},
		{"redis:host"},
		{"unix://host/run/redis.sock"},
		{"unix://"},
		{"unix:///run/a.sock", "unix:///run/b.sock"},
		{"redis://a", "rediss://b"},
		{"redis://a", "unix:///run/redis.sock"},
		{"redis://a", "redis://a"},
		{"redis://a/1", "redis://b/1"},
		{"redis://a/1?master_name=m", "redis://b/2?master_name=m"},
		{"redis://a?master_name=m", "redis://b?master_name=n"},
		{"redis://a?pool_size=5", "redis://b?pool_size=6"},
		// Credentials, with the secret, that conflict or are malformed.
		{"redis://u:" + secret + "@a", "redis://u:other@b"},
		{"redis://u:" + secret + "@a", "redis://v:" + secret + "@b"},
		{"redis://host?password=" + secret},
		{"redis://u:" + secret + "/x@host"},
		{"redis://u:12/" + secret + "@host"},
		{"redis://u:" + secret + "?x@host"},
		{"redis://u:" + secret + "#x@host"},
		{"redis://u:" + secret + "%zz@host"},
		{"redis://u:" + secret + " @host"},
		{"redis://u:" + secret + "@host:bad"},
		{"redis://u:" + secret + "@host/x"},
		{"redis://u:" + secret + "@host?db=x"},
		{"unix://u:" + secret + "@host/run/redis.sock"},
		{"rediss://u:" + secret + "@a", "redis://u:" + secret + "@b"},
	}
	for _, urls := range bad {
		c, err := ParseURLs(urls...)
		if err == nil {
			t.Errorf("ParseURLs(%q) = %+v, want an error", urls, c)
			continue
		}
		if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "12/") {
			t.Errorf("ParseURLs(%q) error contains the password: %v", urls, err)
		}
		if !strings.HasPrefix(err.Error(), "redisstore: ") {
			t.Errorf("error %q lacks the package prefix", err)
		}
	}
}

func configEqual(a, b Config) bool {
	return slices.Equal(a.Addrs, b.Addrs) && a.MasterName == b.MasterName &&
		a.Username == b.Username && a.Password == b.Password && a.DB == b.DB &&
		a.TLS == b.TLS && a.KeyPrefix == b.KeyPrefix && a.PoolSize == b.PoolSize &&
		a.DialTimeout == b.DialTimeout && a.ReadTimeout == b.ReadTimeout && a.WriteTimeout == b.WriteTimeout
}

func TestConfigString(t *testing.T) {
	const secret = "hunter2-very-secret"
	c, err := ParseURLs("redis://alice:" + secret + "@db.example:6380/2")
	must(t, err)
	s := c.String()
	if strings.Contains(s, secret) {
		t.Fatalf("String() contains the password: %s", s)
	}
	for _, want := range []string{"db.example:6380", "db=2", `user="alice"`, "password=hmac:", `prefix="caddy2fa"`} {
		if !strings.Contains(s, want) {
			t.Errorf("String() = %s, lacks %s", s, want)
		}
	}
	t.Log(s)
	same, _ := ParseURLs("redis://alice:" + secret + "@db.example:6380/2")
	other, _ := ParseURLs("redis://alice:other@db.example:6380/2")
	none, _ := ParseURLs("redis://alice@db.example:6380/2")
	if same.String() != s {
		t.Error("equal configurations give different strings")
	}
	if other.String() == s || none.String() == s || other.String() == none.String() {
		t.Error("different passwords give the same string")
	}
	if strings.Contains(none.String(), "password") {
		t.Errorf("no password, but String() = %s", none.String())
	}
	for _, cfg := range []Config{
		{Addrs: []string{"a:1", "b:2"}},
		{Addrs: []string{"a:1"}, MasterName: "m"},
		{Addrs: []string{"/run/redis.sock"}, KeyPrefix: "x{y}"},
	} {
		t.Log(cfg.String())
	}
}

func TestUniversalOptions(t *testing.T) {
	c, err := ParseURLs("rediss://u:p@h:7000/4?pool_size=3&read_timeout=1s")
	must(t, err)
	o := c.UniversalOptions()
	if !slices.Equal(o.Addrs, []string{"h:7000"}) || o.Username != "u" || o.Password != "p" || o.DB != 4 ||
		o.PoolSize != 3 || o.ReadTimeout != time.Second || o.TLSConfig == nil || !o.ContextTimeoutEnabled || o.MasterName != "" {
		t.Errorf("UniversalOptions = %+v", o)
	}
	if o.TLSConfig.MinVersion == 0 || o.TLSConfig.InsecureSkipVerify {
		t.Errorf("TLS config %+v", o.TLSConfig)
	}
	o.Addrs[0] = "changed"
	if c.Addrs[0] != "h:7000" {
		t.Error("UniversalOptions shares Addrs with the Config")
	}
	for _, bad := range []Config{
		{},
		{Addrs: []string{""}},
		{Addrs: []string{"a:1", "b:1"}, DB: 1},
		{Addrs: []string{"/s"}, TLS: true},
		{Addrs: []string{"a:1"}, PoolSize: -1},
		{Addrs: []string{"a:1"}, ReadTimeout: -1},
		{Addrs: []string{"a:1"}, DB: -1},
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil", bad)
		}
	}
}
