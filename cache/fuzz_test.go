package cache

import (
	"encoding/json"
	"testing"
)

func FuzzDecodeEntry(f *testing.F) {
	f.Add([]byte(`{"version":1,"access_token":"tok","issued_at":"2026-01-01T00:00:00Z","expiry":"2026-01-01T01:00:00Z","identity":"sa via e"}`))
	f.Add([]byte(`{"version":2}`))
	f.Add([]byte(`{"version":1,"access_token":"tok","issued_at":"2026-01-01T02:00:00Z","expiry":"2026-01-01T01:00:00Z"}`))
	f.Add([]byte(`{"version":1,"access_token":"tok`))
	f.Add([]byte("\x00\xff"))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := DecodeEntry(data)
		if err != nil {
			return
		}
		if e.Version != formatVersion || e.AccessToken == "" || e.Expiry.IsZero() || e.IssuedAt.After(e.Expiry) {
			t.Fatalf("accepted an invalid entry: %+v", e)
		}
		// What we accept must survive our own write path unchanged.
		again, err := json.Marshal(e)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		e2, err := DecodeEntry(again)
		if err != nil {
			t.Fatalf("round trip failed: %v", err)
		}
		if e2.AccessToken != e.AccessToken || !e2.Expiry.Equal(e.Expiry) || !e2.IssuedAt.Equal(e.IssuedAt) {
			t.Fatalf("round trip changed the entry: %+v vs %+v", e, e2)
		}
	})
}
