package tokensource

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestReuseRule(t *testing.T) {
	issued := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name     string
		lifetime time.Duration
		age      time.Duration
		reusable bool
	}{
		{"fresh hour token", time.Hour, 0, true},
		// Hour token: margin is capped at 5 min.
		{"hour token with 6 min left", time.Hour, 54 * time.Minute, true},
		{"hour token with exactly 5 min left", time.Hour, 55 * time.Minute, true},
		{"hour token with 4 min left", time.Hour, 56 * time.Minute, false},
		// 10 min token: margin is half the lifetime, 5 min.
		{"10 min token at 4 min", 10 * time.Minute, 4 * time.Minute, true},
		{"10 min token at 6 min", 10 * time.Minute, 6 * time.Minute, false},
		// 4 min token: margin is 2 min.
		{"4 min token at 1 min", 4 * time.Minute, time.Minute, true},
		{"4 min token at 3 min", 4 * time.Minute, 3 * time.Minute, false},
		{"expired", time.Hour, 2 * time.Hour, false},
		{"exactly at expiry", time.Hour, time.Hour, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tok := &Token{AccessToken: "x", IssuedAt: issued, Expiry: issued.Add(c.lifetime)}
			assert.Equal(t, c.reusable, tok.Reusable(issued.Add(c.age)))
		})
	}
}

func TestReusableRejectsEmptyAndNil(t *testing.T) {
	now := time.Now()
	var nilTok *Token
	assert.False(t, nilTok.Reusable(now))
	assert.True(t, nilTok.Expired(now))
	assert.False(t, (&Token{IssuedAt: now, Expiry: now.Add(time.Hour)}).Reusable(now))
}

func TestExpired(t *testing.T) {
	now := time.Now()
	tok := &Token{AccessToken: "x", IssuedAt: now.Add(-time.Hour), Expiry: now.Add(time.Second)}
	assert.False(t, tok.Expired(now))
	assert.False(t, tok.Reusable(now), "one second left is stale but not expired")
	assert.True(t, tok.Expired(now.Add(time.Second)))
}
