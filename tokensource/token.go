// Package tokensource finds STACKIT credentials the way the STACKIT SDK does
// and turns them into short-lived access tokens.
//
// It follows golang.org/x/oauth2: a TokenSource is a tiny interface, and
// wrappers (such as the on-disk cache) compose around it.
package tokensource

import (
	"context"
	"time"
)

// TokenSource yields access tokens. Implementations decide whether a call
// goes to the network.
type TokenSource interface {
	Token(ctx context.Context) (*Token, error)
}

// Token is a STACKIT access token with the times needed to decide whether it
// may be reused.
type Token struct {
	AccessToken string
	// IssuedAt is the token's iat claim, or the time it was received.
	IssuedAt time.Time
	Expiry   time.Time
	// Username is set when the source reads the login together with the
	// secret (a robot file), so the two always come from one read.
	Username string
	// Detail says more about where this token came from than discovery
	// knew, e.g. a robot file's format; for the debug log, never a secret.
	Detail string
	// Warnings are things the user should fix that were found while
	// obtaining this token; they are not cached with it.
	Warnings []Warning
}

// maxReuseMargin caps the remaining life a token must have before it is
// reused: BuildKit may hold on to one answer for a whole build, so a token
// handed out must still have minutes to live.
const maxReuseMargin = 5 * time.Minute

// ReuseMargin is the remaining life a token needs to be handed out again:
// min(half its lifetime, 5 minutes).
func (t *Token) ReuseMargin() time.Duration {
	margin := t.Expiry.Sub(t.IssuedAt) / 2
	if margin > maxReuseMargin || margin < 0 {
		margin = maxReuseMargin
	}
	return margin
}

// Reusable reports whether the token may be handed out again at now.
func (t *Token) Reusable(now time.Time) bool {
	if t == nil || t.AccessToken == "" {
		return false
	}
	remaining := t.Expiry.Sub(now)
	return remaining > 0 && remaining >= t.ReuseMargin()
}

// Expired reports whether the token can no longer be used at all.
func (t *Token) Expired(now time.Time) bool {
	return t == nil || t.AccessToken == "" || !now.Before(t.Expiry)
}
