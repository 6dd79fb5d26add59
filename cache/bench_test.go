package cache

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/docker-credential-stackit/docker-credential-stackit/tokensource"
)

// BenchmarkWarmHit is the cache's share of every warm `get`: open, read and
// decode one entry and apply the reuse rule.
func BenchmarkWarmHit(b *testing.B) {
	c := &Cache{Dir: filepath.Join(b.TempDir(), "cache")}
	src := &countingSource{lifetime: time.Hour}
	cs := c.TokenSource("endpoint\x00kid", "", src)
	if _, err := cs.Token(context.Background()); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := cs.Token(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	if src.calls.Load() != 1 {
		b.Fatalf("%d fetches, want 1", src.calls.Load())
	}
}

func BenchmarkDecodeEntry(b *testing.B) {
	data := []byte(`{"version":1,"access_token":"eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjE4MDAwMDE4MDB9.c2lnbmF0dXJl","issued_at":"2026-01-01T00:00:00Z","expiry":"2026-01-01T01:00:00Z","identity":"ci-sa@sa.stackit.cloud via https://service-account.api.stackit.cloud/token"}`)
	for b.Loop() {
		if _, err := DecodeEntry(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMissAndStore is the cache's share of a cold `get`: lock, write
// (with fsync) and rename, with a source that costs nothing.
func BenchmarkMissAndStore(b *testing.B) {
	c := &Cache{Dir: filepath.Join(b.TempDir(), "cache")}
	src := &countingSource{lifetime: time.Hour}
	now := time.Now()
	i := 0
	for b.Loop() {
		i++
		// An expired clock each round forces a fetch and a write.
		c.Now = func() time.Time { return now.Add(time.Duration(i) * 2 * time.Hour) }
		src.now = c.Now
		if _, err := c.TokenSource("id", "", src).Token(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	_ = tokensource.Token{}
}
