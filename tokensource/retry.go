package tokensource

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// RetryPolicy bounds how long and how often a failed token request is
// repeated. Only transient failures are retried: 5xx, 429 and network
// failures (connection refused or reset, timeouts). A 400 or 401, a
// redirect, a malformed answer, an untrusted certificate or a host name
// that does not resolve will not fix itself, so it comes back at once.
type RetryPolicy struct {
	// Budget is the total time spent retrying after the first attempt;
	// zero disables retries.
	Budget time.Duration
	// BaseDelay is the first backoff; each later one doubles, with full
	// jitter, up to MaxDelay.
	BaseDelay time.Duration
	MaxDelay  time.Duration
	// Sleep waits between attempts; tests replace it. It must return early
	// with the context's error when ctx ends.
	Sleep func(ctx context.Context, d time.Duration) error
	// Debugf, when set, is told about every failed attempt: what kind of
	// failure it was and how long the next wait is. nil is silent.
	Debugf func(format string, args ...any)
}

// DefaultRetryPolicy leaves room inside the 45 s `get` budget for a lock
// wait and a last attempt.
var DefaultRetryPolicy = RetryPolicy{Budget: 15 * time.Second, BaseDelay: 250 * time.Millisecond, MaxDelay: 4 * time.Second}

// WithRetry wraps src so transient failures are retried under p.
func WithRetry(src TokenSource, p RetryPolicy) TokenSource {
	return &retrying{src: src, policy: p}
}

type retrying struct {
	src    TokenSource
	policy RetryPolicy
}

func (r *retrying) Token(ctx context.Context) (*Token, error) {
	p := r.policy
	sleep := p.Sleep
	if sleep == nil {
		sleep = sleepCtx
	}
	deadline := time.Now().Add(p.Budget)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	debugf := p.Debugf
	if debugf == nil {
		debugf = func(string, ...any) {}
	}
	delay := p.BaseDelay
	for attempt := 1; ; attempt++ {
		tok, err := r.src.Token(ctx)
		if err == nil {
			if attempt > 1 {
				debugf("token request attempt %d succeeded", attempt)
			}
			return tok, nil
		}
		class := failureClass(err)
		wait, retryable := retryDelay(err, delay)
		if !retryable || p.Budget <= 0 {
			if retryable {
				debugf("token request attempt %d failed (%s); retries are off", attempt, class)
			} else {
				debugf("token request attempt %d failed (%s); not retried", attempt, class)
			}
			return nil, err
		}
		if time.Until(deadline) < wait {
			debugf("token request attempt %d failed (%s); a wait of %s would overrun the retry budget, giving up", attempt, class, wait.Round(time.Millisecond))
			if attempt == 1 && wait > delay {
				return nil, fmt.Errorf("%w (the server asked to retry after %s, beyond the retry budget)", err, wait.Round(time.Second))
			}
			return nil, fmt.Errorf("%w (gave up after %d attempts)", err, attempt)
		}
		debugf("token request attempt %d failed (%s); retrying in %s", attempt, class, wait.Round(time.Millisecond))
		if serr := sleep(ctx, wait); serr != nil {
			return nil, fmt.Errorf("%w (gave up after %d attempts: %w)", err, attempt, serr)
		}
		delay = min(delay*2, p.MaxDelay)
	}
}

// failureClass says in a few words what kind of failure err is, for the
// debug log. It never includes text the server sent.
func failureClass(err error) string {
	var rej *rejectedError
	var unreachable *unreachableError
	switch {
	case errors.As(err, &rej):
		if rej.retryAfter > 0 {
			return fmt.Sprintf("HTTP %d, Retry-After %s", rej.status, rej.retryAfter)
		}
		return fmt.Sprintf("HTTP %d", rej.status)
	case errors.As(err, &unreachable):
		return unreachable.kind.String()
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded):
		return "deadline exceeded"
	}
	return "permanent error"
}

// IsTransient reports whether err is a failure that may pass by itself
// (5xx, 429, network), as opposed to one a retry cannot fix (400, 401, a
// bad key file).
func IsTransient(err error) bool {
	var t interface{ Transient() bool }
	if errors.As(err, &t) {
		return t.Transient()
	}
	_, ok := retryDelay(err, 0)
	return ok
}

// retryDelay decides whether err is transient and how long to wait: the
// server's Retry-After if it sent one, else full jitter on the backoff so a
// fleet of nodes does not retry in lockstep.
func retryDelay(err error, backoff time.Duration) (time.Duration, bool) {
	var rej *rejectedError
	if errors.As(err, &rej) {
		if rej.status != http.StatusTooManyRequests && rej.status < 500 {
			return 0, false
		}
		if rej.retryAfter > 0 {
			return rej.retryAfter, true
		}
		return jitter(backoff), true
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return 0, false
	}
	var t interface{ Transient() bool }
	if errors.As(err, &t) {
		if t.Transient() {
			return jitter(backoff), true
		}
		return 0, false
	}
	// A bare transport error from elsewhere: the same rules as exchange's.
	var urlErr *url.Error
	var opErr *net.OpError
	if errors.As(err, &urlErr) || errors.As(err, &opErr) {
		if k := classifyTransport(err); k == kindNetwork || k == kindTimeout {
			return jitter(backoff), true
		}
	}
	return 0, false
}

func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d/2 + rand.N(d/2+1)
}

// parseRetryAfter reads delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil {
		if secs < 0 {
			return 0
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
