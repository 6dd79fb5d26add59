package cache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofrs/flock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/docker-credential-stackit/docker-credential-stackit/internal/testfs"
	"github.com/docker-credential-stackit/docker-credential-stackit/tokensource"
)

// countingSource mints numbered tokens and counts calls.
type countingSource struct {
	calls    atomic.Int64
	lifetime time.Duration
	delay    time.Duration
	err      error
	now      func() time.Time
}

func (s *countingSource) Token(ctx context.Context) (*tokensource.Token, error) {
	n := s.calls.Add(1)
	if s.delay > 0 {
		time.Sleep(s.delay)
	}
	if s.err != nil {
		return nil, s.err
	}
	now := time.Now()
	if s.now != nil {
		now = s.now()
	}
	return &tokensource.Token{AccessToken: fmt.Sprintf("token-%d", n), IssuedAt: now, Expiry: now.Add(s.lifetime)}, nil
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func newCache(t *testing.T) (*Cache, *[]string) {
	var notes []string
	var mu sync.Mutex
	log := func(format string, args ...any) {
		mu.Lock()
		notes = append(notes, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	return &Cache{Dir: filepath.Join(t.TempDir(), "cache"), Debugf: log, Warnf: log}, &notes
}

func TestHitAfterFetch(t *testing.T) {
	c, _ := newCache(t)
	src := &countingSource{lifetime: time.Hour}
	tok, res, err := c.Token(context.Background(), "endpoint\x00kid", "sa via endpoint", src)
	require.NoError(t, err)
	assert.Equal(t, Fetched, res)
	again, err := c.TokenSource("endpoint\x00kid", "", src).Token(context.Background())
	require.NoError(t, err)
	assert.Equal(t, tok.AccessToken, again.AccessToken)
	assert.EqualValues(t, 1, src.calls.Load())

	other, err := c.TokenSource("endpoint\x00other-kid", "", src).Token(context.Background())
	require.NoError(t, err)
	assert.NotEqual(t, tok.AccessToken, other.AccessToken, "identities do not share tokens")
}

func TestReuseRuleAgainstClock(t *testing.T) {
	clk := &clock{t: time.Now()}
	c, _ := newCache(t)
	c.Now = clk.Now
	src := &countingSource{lifetime: 20 * time.Minute, now: clk.Now}
	first, _, err := c.Token(context.Background(), "id", "", src)
	require.NoError(t, err)
	clk.Advance(14 * time.Minute) // 6 min left, margin 5 min: reuse
	tok, res, err := c.Token(context.Background(), "id", "", src)
	require.NoError(t, err)
	assert.Equal(t, first.AccessToken, tok.AccessToken)
	assert.Equal(t, Hit, res)
	clk.Advance(2 * time.Minute) // 4 min left: refresh
	tok, _, err = c.Token(context.Background(), "id", "", src)
	require.NoError(t, err)
	assert.NotEqual(t, first.AccessToken, tok.AccessToken)
	assert.EqualValues(t, 2, src.calls.Load())
}

func TestConcurrentFetchesOnce(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	src := &countingSource{lifetime: time.Hour, delay: 100 * time.Millisecond}
	var wg sync.WaitGroup
	tokens := make([]string, 32)
	errs := make([]error, 32)
	for i := range tokens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Separate Cache values open separate lock fds, as processes do.
			c := &Cache{Dir: dir}
			tok, err := c.TokenSource("id", "", src).Token(context.Background())
			errs[i] = err
			if err == nil {
				tokens[i] = tok.AccessToken
			}
		}()
	}
	wg.Wait()
	for i := range tokens {
		require.NoError(t, errs[i])
		assert.Equal(t, "token-1", tokens[i])
	}
	assert.EqualValues(t, 1, src.calls.Load())
}

func TestBadEntriesAreReplaced(t *testing.T) {
	for name, content := range map[string]string{
		"garbage":        "\x00\x01 not json",
		"truncated":      `{"version":1,"access_token":"tok`,
		"future version": `{"version":99,"access_token":"x","issued_at":"2026-01-01T00:00:00Z","expiry":"2099-01-01T00:00:00Z"}`,
		"no token":       `{"version":1,"issued_at":"2026-01-01T00:00:00Z","expiry":"2099-01-01T00:00:00Z"}`,
		"empty":          ``,
	} {
		t.Run(name, func(t *testing.T) {
			c, _ := newCache(t)
			require.NoError(t, os.MkdirAll(c.Dir, 0o700))
			path := filepath.Join(c.Dir, FileName("id")+".json")
			require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
			src := &countingSource{lifetime: time.Hour}
			tok, err := c.TokenSource("id", "", src).Token(context.Background())
			require.NoError(t, err)
			data, err := os.ReadFile(path)
			require.NoError(t, err)
			e, err := DecodeEntry(data)
			require.NoError(t, err, "the entry was rewritten")
			assert.Equal(t, tok.AccessToken, e.AccessToken)
		})
	}
}

func TestStaleTokenServedWhenFetchFails(t *testing.T) {
	clk := &clock{t: time.Now()}
	c, notes := newCache(t)
	c.Now = clk.Now
	good := &countingSource{lifetime: 10 * time.Minute, now: clk.Now}
	first, err := c.TokenSource("id", "", good).Token(context.Background())
	require.NoError(t, err)

	clk.Advance(7 * time.Minute) // stale (3 min left < 5 min margin), not expired
	down := &countingSource{err: outage{}}
	tok, res, err := c.Token(context.Background(), "id", "", down)
	require.NoError(t, err)
	assert.Equal(t, first.AccessToken, tok.AccessToken)
	assert.Equal(t, Stale, res)
	assert.Contains(t, strings.Join(*notes, "\n"), "could not refresh the token (token endpoint unreachable); using the cached one")

	clk.Advance(3 * time.Minute) // now expired: never hand it out
	_, _, err = c.Token(context.Background(), "id", "", down)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "unreachable")
}

func TestUnusableDirDegradesToNoCache(t *testing.T) {
	file := filepath.Join(t.TempDir(), "a-file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	for name, dir := range map[string]string{
		"dir under a regular file": filepath.Join(file, "cache"),
		"dir is a regular file":    file,
		"relative dir":             "relative/cache",
	} {
		t.Run(name, func(t *testing.T) {
			var notes []string
			c := &Cache{Dir: dir, Debugf: func(f string, a ...any) { notes = append(notes, fmt.Sprintf(f, a...)) }}
			src := &countingSource{lifetime: time.Hour}
			tok, res, err := c.Token(context.Background(), "id", "", src)
			require.NoError(t, err)
			assert.Equal(t, "token-1", tok.AccessToken)
			assert.Equal(t, Uncached, res)
			require.NotEmpty(t, notes)
			assert.Contains(t, notes[0], "fetching without the cache")
		})
	}
}

func TestLockTimeoutFetchesWithoutCache(t *testing.T) {
	c, notes := newCache(t)
	c.LockTimeout = 100 * time.Millisecond
	require.NoError(t, os.MkdirAll(c.Dir, 0o700))
	holder := flock.New(filepath.Join(c.Dir, FileName("id")+".lock"))
	locked, err := holder.TryLock()
	require.NoError(t, err)
	require.True(t, locked)
	defer holder.Unlock()

	src := &countingSource{lifetime: time.Hour}
	_, res, err := c.Token(context.Background(), "id", "", src)
	require.NoError(t, err)
	assert.Equal(t, Uncached, res)
	assert.Contains(t, strings.Join(*notes, "\n"), "not released within 100ms")
}

func TestPermissions(t *testing.T) {
	c, _ := newCache(t)
	require.NoError(t, os.MkdirAll(c.Dir, 0o755))
	require.NoError(t, os.Chmod(c.Dir, 0o755))
	_, err := c.TokenSource("id", "", &countingSource{lifetime: time.Hour}).Token(context.Background())
	require.NoError(t, err)
	fi, err := os.Stat(c.Dir)
	require.NoError(t, err)
	testfs.AssertPerm(t, 0o700, fi, "a looser cache dir is tightened")
	entries, err := os.ReadDir(c.Dir)
	require.NoError(t, err)
	require.NotEmpty(t, entries)
	for _, e := range entries {
		fi, err := e.Info()
		require.NoError(t, err)
		testfs.AssertPerm(t, 0o600, fi, e.Name())
	}
}

func TestPruneAndDrop(t *testing.T) {
	clk := &clock{t: time.Now()}
	c, _ := newCache(t)
	c.Now = clk.Now
	short := &countingSource{lifetime: 2 * time.Minute, now: clk.Now}
	_, err := c.TokenSource("old", "", short).Token(context.Background())
	require.NoError(t, err)
	leftover := filepath.Join(c.Dir, ".tmp-leftover")
	require.NoError(t, os.WriteFile(leftover, []byte("half"), 0o600))
	require.NoError(t, os.Chtimes(leftover, clk.Now().Add(-time.Hour), clk.Now().Add(-time.Hour)))
	foreign := filepath.Join(c.Dir, "0123.json")
	require.NoError(t, os.WriteFile(foreign, []byte(`{"version":2}`), 0o600))

	clk.Advance(3 * time.Minute)
	_, err = c.TokenSource("new", "", &countingSource{lifetime: time.Hour, now: clk.Now}).Token(context.Background())
	require.NoError(t, err)

	assert.NoFileExists(t, filepath.Join(c.Dir, FileName("old")+".json"), "expired entry pruned")
	assert.NoFileExists(t, leftover, "temp file of a killed writer pruned")
	assert.FileExists(t, foreign, "entries of other versions are left alone")
	assert.FileExists(t, filepath.Join(c.Dir, FileName("old")+".lock"), "lock files are never deleted")
	assert.NotNil(t, c.Peek("new"))

	require.NoError(t, c.Drop(context.Background(), "new"))
	assert.Nil(t, c.Peek("new"))
	require.NoError(t, c.Drop(context.Background(), "never-existed"))
}

func TestNoDirMeansNoCache(t *testing.T) {
	c := &Cache{}
	src := &countingSource{lifetime: time.Hour}
	for range 2 {
		_, err := c.TokenSource("id", "", src).Token(context.Background())
		require.NoError(t, err)
	}
	assert.EqualValues(t, 2, src.calls.Load())
}

func TestLooseEntryPermissionsAreTightened(t *testing.T) {
	c, _ := newCache(t)
	src := &countingSource{lifetime: time.Hour}
	_, err := c.TokenSource("id", "", src).Token(context.Background())
	require.NoError(t, err)
	path := filepath.Join(c.Dir, FileName("id")+".json")
	require.NoError(t, os.Chmod(path, 0o644))
	require.NoError(t, os.Chmod(c.Dir, 0o755))

	_, err = c.TokenSource("id", "", src).Token(context.Background())
	require.NoError(t, err)
	assert.EqualValues(t, 1, src.calls.Load(), "still a hit")
	fi, err := os.Stat(path)
	require.NoError(t, err)
	testfs.AssertPerm(t, 0o600, fi)
	di, err := os.Stat(c.Dir)
	require.NoError(t, err)
	testfs.AssertPerm(t, 0o700, di)
}

// failOnceSource fails its first call (slowly, so others queue up behind
// it) and succeeds afterwards.
type failOnceSource struct {
	countingSource
	failed atomic.Bool
}

func (s *failOnceSource) Token(ctx context.Context) (*tokensource.Token, error) {
	if s.failed.CompareAndSwap(false, true) {
		s.calls.Add(1)
		time.Sleep(150 * time.Millisecond)
		return nil, errors.New("endpoint hiccup")
	}
	return s.countingSource.Token(ctx)
}

func TestWaitersTakeOverWhenTheFetcherFails(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	src := &failOnceSource{countingSource: countingSource{lifetime: time.Hour}}
	var wg sync.WaitGroup
	var failures, successes atomic.Int64
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := (&Cache{Dir: dir}).TokenSource("id", "", src).Token(context.Background()); err != nil {
				failures.Add(1)
			} else {
				successes.Add(1)
			}
		}()
	}
	wg.Wait()
	assert.LessOrEqual(t, failures.Load(), int64(1), "only the unlucky first fetcher fails")
	assert.EqualValues(t, 2, src.calls.Load(), "one failed fetch, then exactly one successful one")
	assert.GreaterOrEqual(t, successes.Load(), int64(7))
}

func TestAbandonedWaitReleasesItsLockLater(t *testing.T) {
	c, _ := newCache(t)
	c.LockTimeout = 50 * time.Millisecond
	require.NoError(t, os.MkdirAll(c.Dir, 0o700))
	lockPath := filepath.Join(c.Dir, FileName("id")+".lock")
	holder := flock.New(lockPath)
	ok, err := holder.TryLock()
	require.NoError(t, err)
	require.True(t, ok)

	_, err = c.TokenSource("id", "", &countingSource{lifetime: time.Hour}).Token(context.Background())
	require.NoError(t, err, "timed-out wait fetches without the cache")
	require.NoError(t, holder.Unlock())

	// The abandoned shared-lock wait is granted now and must let go at once,
	// or this exclusive lock would never be granted.
	other := flock.New(lockPath)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ok, err = other.TryLockContext(ctx, 5*time.Millisecond)
	require.NoError(t, err)
	assert.True(t, ok)
	_ = other.Unlock()
}

func TestCallerDeadlineDuringLockWaitIsReportedAsSuch(t *testing.T) {
	c, _ := newCache(t)
	require.NoError(t, os.MkdirAll(c.Dir, 0o700))
	holder := flock.New(filepath.Join(c.Dir, FileName("id")+".lock"))
	ok, err := holder.TryLock()
	require.NoError(t, err)
	require.True(t, ok)
	defer holder.Unlock()

	src := &countingSource{lifetime: time.Hour}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = c.TokenSource("id", "", src).Token(ctx)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "waiting for another docker-credential-stackit process to fetch the token")
	assert.EqualValues(t, 0, src.calls.Load(), "no doomed fetch with a dead context")
}

// outage is a transient failure, as tokensource reports a 503 or a refused
// connection.
type outage struct{}

func (outage) Error() string   { return "token endpoint unreachable" }
func (outage) Transient() bool { return true }

func TestStaleTokenNotServedForPermanentErrors(t *testing.T) {
	clk := &clock{t: time.Now()}
	c, _ := newCache(t)
	c.Now = clk.Now
	_, err := c.TokenSource("id", "", &countingSource{lifetime: 10 * time.Minute, now: clk.Now}).Token(context.Background())
	require.NoError(t, err)
	clk.Advance(7 * time.Minute) // stale, not expired
	_, err = c.TokenSource("id", "", &countingSource{err: errors.New("HTTP 401: key with kid x was not found")}).Token(context.Background())
	require.Error(t, err, "a deleted key must surface now, not when the cached token runs out")
}

func TestLooseDirIsTightenedOnAWarmHit(t *testing.T) {
	c, _ := newCache(t)
	src := &countingSource{lifetime: time.Hour}
	_, err := c.TokenSource("id", "", src).Token(context.Background())
	require.NoError(t, err)
	require.NoError(t, os.Chmod(c.Dir, 0o755))
	_, err = c.TokenSource("id", "", src).Token(context.Background())
	require.NoError(t, err)
	assert.EqualValues(t, 1, src.calls.Load(), "a warm hit")
	di, err := os.Stat(c.Dir)
	require.NoError(t, err)
	testfs.AssertPerm(t, 0o700, di)
}

func TestDecodeEntryMatchesTheStructDecode(t *testing.T) {
	for _, data := range []string{
		`{"version":1,"access_token":"tok","issued_at":"2026-01-01T00:00:00Z","expiry":"2026-01-01T01:00:00Z","identity":"sa via e","username":"sa@sa.stackit.cloud"}`,
		`{"version":1,"access_token":"tok","issued_at":"2026-01-01T00:00:00Z","expiry":"2026-01-01T01:00:00Z","extra":[1,2]}`,
		`{"version":"1","access_token":"tok","issued_at":"2026-01-01T00:00:00Z","expiry":"2026-01-01T01:00:00Z"}`,
		`{"version":1,"access_token":7}`,
		`{"version":1,"expiry":"yesterday"}`,
		`[]`, `null`, `{`,
	} {
		var want Entry
		wantErr := json.Unmarshal([]byte(data), &want)
		got, err := decodeEntryFields([]byte(data))
		if wantErr != nil {
			assert.Error(t, err, data)
			continue
		}
		require.NoError(t, err, data)
		assert.Equal(t, want, *got, data)
	}
}
