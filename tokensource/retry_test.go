package tokensource

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type scriptedSource struct {
	errs  []error
	calls int
}

func (s *scriptedSource) Token(context.Context) (*Token, error) {
	s.calls++
	if s.calls <= len(s.errs) {
		return nil, s.errs[s.calls-1]
	}
	return &Token{AccessToken: "ok", IssuedAt: time.Now(), Expiry: time.Now().Add(time.Hour)}, nil
}

func recordSleeps(slept *[]time.Duration) func(context.Context, time.Duration) error {
	return func(ctx context.Context, d time.Duration) error {
		*slept = append(*slept, d)
		return ctx.Err()
	}
}

func TestRetryTransientThenSuccess(t *testing.T) {
	unavailable := &rejectedError{endpoint: "e", status: http.StatusServiceUnavailable}
	src := &scriptedSource{errs: []error{unavailable, &unreachableError{endpoint: "e", reason: "connection refused"}}}
	var slept []time.Duration
	p := RetryPolicy{Budget: time.Minute, BaseDelay: 100 * time.Millisecond, MaxDelay: time.Second, Sleep: recordSleeps(&slept)}
	tok, err := WithRetry(src, p).Token(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "ok", tok.AccessToken)
	assert.Equal(t, 3, src.calls)
	require.Len(t, slept, 2)
	assert.True(t, slept[0] >= 50*time.Millisecond && slept[0] <= 100*time.Millisecond, "jittered first delay %s", slept[0])
	assert.True(t, slept[1] >= 100*time.Millisecond && slept[1] <= 200*time.Millisecond, "doubled second delay %s", slept[1])
}

func TestRetryHonoursRetryAfter(t *testing.T) {
	src := &scriptedSource{errs: []error{&rejectedError{status: http.StatusTooManyRequests, retryAfter: 3 * time.Second}}}
	var slept []time.Duration
	_, err := WithRetry(src, RetryPolicy{Budget: time.Minute, BaseDelay: time.Millisecond, MaxDelay: time.Second, Sleep: recordSleeps(&slept)}).Token(context.Background())
	require.NoError(t, err)
	assert.Equal(t, []time.Duration{3 * time.Second}, slept)

	src = &scriptedSource{errs: []error{&rejectedError{endpoint: "e", status: http.StatusTooManyRequests, retryAfter: time.Hour}}}
	_, err = WithRetry(src, RetryPolicy{Budget: 10 * time.Second, BaseDelay: time.Millisecond, Sleep: recordSleeps(&slept)}).Token(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "asked to retry after 1h0m0s, beyond the retry budget")
	assert.Equal(t, 1, src.calls)
}

func TestNoRetryOnClientErrors(t *testing.T) {
	for _, status := range []int{400, 401, 403, 404} {
		src := &scriptedSource{errs: []error{&rejectedError{status: status}}}
		var slept []time.Duration
		_, err := WithRetry(src, RetryPolicy{Budget: time.Minute, BaseDelay: time.Millisecond, Sleep: recordSleeps(&slept)}).Token(context.Background())
		require.Error(t, err)
		assert.Equal(t, 1, src.calls, "status %d", status)
		assert.Empty(t, slept)
	}
	src := &scriptedSource{errs: []error{errors.New("bad key file")}}
	_, err := WithRetry(src, DefaultRetryPolicy).Token(context.Background())
	require.Error(t, err)
	assert.Equal(t, 1, src.calls, "local errors are not retried")
}

func TestRetryBudget(t *testing.T) {
	errs := make([]error, 100)
	for i := range errs {
		errs[i] = &rejectedError{endpoint: "e", status: 502}
	}
	src := &scriptedSource{errs: errs}
	_, err := WithRetry(src, RetryPolicy{Budget: 0}).Token(context.Background())
	require.Error(t, err)
	assert.Equal(t, 1, src.calls, "zero budget disables retries")

	src = &scriptedSource{errs: errs}
	start := time.Now()
	_, err = WithRetry(src, RetryPolicy{Budget: 300 * time.Millisecond, BaseDelay: 20 * time.Millisecond, MaxDelay: 40 * time.Millisecond}).Token(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "HTTP 502")
	assert.Contains(t, err.Error(), "gave up after")
	assert.Greater(t, src.calls, 2)
	assert.Less(t, time.Since(start), 10*time.Second, "hang guard")

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	src = &scriptedSource{errs: errs}
	_, err = WithRetry(src, RetryPolicy{Budget: time.Hour, BaseDelay: 10 * time.Millisecond, MaxDelay: 10 * time.Millisecond}).Token(ctx)
	require.Error(t, err)
	assert.Less(t, src.calls, 100, "the context deadline bounds retries")
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	assert.Equal(t, 7*time.Second, parseRetryAfter("7", now))
	assert.Equal(t, 30*time.Second, parseRetryAfter(now.Add(30*time.Second).Format(http.TimeFormat), now))
	assert.Zero(t, parseRetryAfter("", now))
	assert.Zero(t, parseRetryAfter("-3", now))
	assert.Zero(t, parseRetryAfter("soon", now))
	assert.Zero(t, parseRetryAfter(now.Add(-time.Minute).Format(http.TimeFormat), now))
}

func TestRetryDebugLogNamesEachFailureAndWait(t *testing.T) {
	src := &scriptedSource{errs: []error{
		&rejectedError{endpoint: "e", status: http.StatusServiceUnavailable, retryAfter: 2 * time.Second},
		&unreachableError{endpoint: "e", reason: "connection refused"},
		&unreachableError{endpoint: "e", reason: "bad header", kind: kindMalformed},
	}}
	var lines []string
	var slept []time.Duration
	p := RetryPolicy{Budget: time.Minute, BaseDelay: time.Millisecond, MaxDelay: time.Millisecond, Sleep: recordSleeps(&slept),
		Debugf: func(format string, args ...any) { lines = append(lines, fmt.Sprintf(format, args...)) }}
	_, err := WithRetry(src, p).Token(context.Background())
	require.Error(t, err)
	assert.Equal(t, 3, src.calls, "the malformed answer ends it")
	require.Len(t, lines, 3)
	assert.Equal(t, "token request attempt 1 failed (HTTP 503, Retry-After 2s); retrying in 2s", lines[0])
	assert.Regexp(t, `^token request attempt 2 failed \(network error\); retrying in [0-9.]+(ms|µs|ns|s)$`, lines[1])
	assert.Equal(t, "token request attempt 3 failed (malformed HTTP answer); not retried", lines[2])

	lines = nil
	src = &scriptedSource{errs: []error{&rejectedError{endpoint: "e", status: 502}}}
	_, err = WithRetry(src, p).Token(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "token request attempt 2 succeeded", lines[len(lines)-1])
}

func TestRetryGivingUpKeepsTheLastFailure(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	src := &scriptedSource{errs: []error{&rejectedError{endpoint: "e", status: 502}}}
	_, err := WithRetry(src, RetryPolicy{Budget: time.Minute, BaseDelay: time.Millisecond, Sleep: func(context.Context, time.Duration) error {
		cancel()
		return context.Canceled
	}}).Token(ctx)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "answered HTTP 502")
	assert.Contains(t, err.Error(), "gave up after 1 attempts: context canceled")
	assert.ErrorIs(t, err, context.Canceled)
}
