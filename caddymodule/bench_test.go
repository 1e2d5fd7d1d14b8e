package caddymodule

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-2fa/caddy-2fa/internal/redistest"
	"github.com/caddy-2fa/caddy-2fa/sessions"
)

// benchGate provisions a handler on the given store config and returns it
// with the Cookie header of a verified session of alice.
func benchGate(b *testing.B, store *StoreConfig) (*Handler, string) {
	b.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	b.Cleanup(cancel)
	h := &Handler{Secret: "benchmark-secret-of-at-least-32-bytes!", Store: store}
	if err := h.Provision(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { h.Cleanup() })
	t := time.Now()
	id := "benchmarksessionid0123456"
	if err := h.store.PutSession(context.Background(), h.Realm, id, sessions.Session{User: "alice", Method: MethodTOTP, Created: t, Expires: t.Add(time.Hour), LastSeen: t}); err != nil {
		b.Fatal(err)
	}
	enc, err := h.codecs.session.Encode(sessionCookie, []byte(id))
	if err != nil {
		b.Fatal(err)
	}
	return h, sessionCookie + "=" + enc + "; theme=dark"
}

// benchmarkHotPath measures ServeHTTP for a request with a verified
// session: cookie decode, session lookup, placeholders, cookie stripping.
func benchmarkHotPath(b *testing.B, store *StoreConfig) {
	h, cookie := benchGate(b, store)
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r := httptest.NewRequest("GET", "/app", nil)
		r.Header.Set("Cookie", cookie)
		repl := caddy.NewReplacer()
		repl.Set("http.auth.user.id", "alice")
		ctx := context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl)
		ctx = context.WithValue(ctx, caddyhttp.VarsCtxKey, map[string]any{caddyhttp.ClientIPVarKey: "127.0.0.1"})
		r = r.WithContext(ctx)
		w := httptest.NewRecorder()
		if err := h.ServeHTTP(w, r, next); err != nil || w.Code != http.StatusNoContent {
			b.Fatalf("status %d, err %v", w.Code, err)
		}
	}
}

// BenchmarkHotPathFile is the hot path with the embedded file store.
func BenchmarkHotPathFile(b *testing.B) {
	benchmarkHotPath(b, &StoreConfig{Backend: "file", Path: b.TempDir() + "/bench.db"})
}

// BenchmarkHotPathRedis is the hot path with Redis on a unix socket.
func BenchmarkHotPathRedis(b *testing.B) {
	rs := redistest.Start(b)
	benchmarkHotPath(b, &StoreConfig{Backend: "redis", URLs: []string{"unix://" + rs.Socket}})
}
