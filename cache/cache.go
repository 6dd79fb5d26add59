// Package cache keeps access tokens on disk so that many processes asking
// at once cost one token request.
//
// Reads take no lock. A miss takes a sidecar lock file, re-reads, fetches
// only if still needed and publishes the result by rename, so a reader sees
// either the old entry or the new one, never a torn write.
package cache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/docker-credential-stackit/docker-credential-stackit/internal/lockfile"
	"github.com/docker-credential-stackit/docker-credential-stackit/internal/platform"
	"github.com/docker-credential-stackit/docker-credential-stackit/internal/privdir"

	"github.com/docker-credential-stackit/docker-credential-stackit/internal/atomicfile"
	"github.com/docker-credential-stackit/docker-credential-stackit/tokensource"
)

// formatVersion is written into every entry; entries from other versions
// are ignored and replaced.
const formatVersion = 1

const (
	defaultLockTimeout = 25 * time.Second
	// staleTempAge is how old a temp file left by a killed writer must be
	// before anyone removes it.
	staleTempAge = time.Minute
	entrySuffix  = ".json"
	lockSuffix   = ".lock"
)

// Cache is a directory of token entries, one file per identity.
type Cache struct {
	// Dir is created with mode 0700 on first write. Empty disables caching.
	Dir string
	// LockTimeout bounds the wait for another process's fetch; after it the
	// token is fetched without the cache. Default 25 s.
	LockTimeout time.Duration
	// Debugf receives notes on degraded operation. May be nil.
	Debugf func(format string, args ...any)
	// Warnf receives warnings the user should see. May be nil.
	Warnf func(format string, args ...any)
	// Now defaults to time.Now.
	Now func() time.Time
}

// Entry is the on-disk form of a cached token.
type Entry struct {
	Version     int       `json:"version"`
	AccessToken string    `json:"access_token"`
	IssuedAt    time.Time `json:"issued_at"`
	Expiry      time.Time `json:"expiry"`
	// Identity describes whose token this is, for humans (no secrets).
	Identity string `json:"identity,omitempty"`
}

// Result says how a token was obtained, for the debug log.
type Result int

// Ways a token can be obtained.
const (
	Hit       Result = iota // served from the cache without locking
	HitLocked               // another process fetched it while we waited
	Fetched                 // fetched and stored
	Uncached                // fetched without the cache (degraded)
	Stale                   // the fetch failed; served a stale but unexpired token
)

func (r Result) String() string {
	return [...]string{"hit", "hit-after-wait", "miss", "bypassed", "stale"}[r]
}

// FileName maps an identity (e.g. token endpoint and key id) to its entry
// file name. Hashing keeps the name safe and fixed-length.
func FileName(identity string) string {
	sum := sha256.Sum256([]byte(identity))
	return hex.EncodeToString(sum[:16])
}

// Token returns a token for identity: from the cache when one there may
// still be handed out, else from src, stored for the next caller. The
// Result says which, for the debug log. Safe for concurrent use, across
// goroutines and processes.
func (c *Cache) Token(ctx context.Context, identity, description string, src tokensource.TokenSource) (*tokensource.Token, Result, error) {
	return c.get(ctx, FileName(identity), description, src)
}

// TokenSource wraps src with this cache under the given identity, for
// callers that compose TokenSources and need no Result.
func (c *Cache) TokenSource(identity, description string, src tokensource.TokenSource) tokensource.TokenSource {
	return &cachedSource{cache: c, name: FileName(identity), description: description, src: src}
}

type cachedSource struct {
	cache       *Cache
	name        string
	description string
	src         tokensource.TokenSource
}

func (s *cachedSource) Token(ctx context.Context) (*tokensource.Token, error) {
	tok, _, err := s.cache.get(ctx, s.name, s.description, s.src)
	return tok, err
}

// Peek returns the cached entry for identity without locking or fetching,
// or nil if there is none that decodes.
func (c *Cache) Peek(identity string) *Entry {
	if c.Dir == "" {
		return nil
	}
	e, _ := c.read(FileName(identity))
	return e
}

func (c *Cache) get(ctx context.Context, name, description string, src tokensource.TokenSource) (*tokensource.Token, Result, error) {
	if c.Dir == "" {
		tok, err := src.Token(ctx)
		return tok, Uncached, err
	}
	now := c.now()
	cached, _ := c.read(name)
	if tok := cached.token(); tok.Reusable(now) {
		return tok, Hit, nil
	}

	if err := c.ensureDir(); err != nil {
		c.debugf("cache: %v; fetching without the cache", err)
		return c.fetchOrStale(ctx, src, cached)
	}
	lockPath := filepath.Join(c.Dir, name+lockSuffix)
	deadline := time.Now().Add(c.lockTimeout())
	for {
		unlock, locked, err := lockfile.TryLock(lockPath)
		if err != nil {
			c.debugf("cache: lock %s: %v; fetching without the cache", lockPath, err)
			return c.fetchOrStale(ctx, src, cached)
		}
		if locked {
			tok, res, err := c.fetchAndStore(ctx, name, description, src)
			unlock()
			if res == Fetched {
				// Pruning is housekeeping: do it after the waiters are free.
				c.prune(name)
			}
			return tok, res, err
		}
		// Another process is fetching. Wait for it with a shared lock,
		// which the kernel grants to all waiters the moment the fetcher
		// lets go, instead of polling.
		waitStart := time.Now()
		release, err := lockfile.WaitShared(ctx, lockPath, time.Until(deadline))
		if err != nil {
			if ctx.Err() != nil {
				// The caller's whole budget is gone: a fetch now could only
				// fail, and blaming the endpoint would mislead.
				if stale := cached.token(); !stale.Expired(c.now()) {
					c.warnf("gave up waiting for another process's token fetch; using the cached token, valid until %s", stale.Expiry.UTC().Format(time.TimeOnly+" UTC"))
					return stale, Stale, nil
				}
				return nil, Uncached, fmt.Errorf("gave up after %s waiting for another docker-credential-stackit process to fetch the token (lock %s); check the token endpoint, or raise DOCKER_CREDENTIAL_STACKIT_TIMEOUT",
					time.Since(waitStart).Round(time.Millisecond), lockPath)
			}
			c.debugf("cache: lock %s not released within %s; fetching without the cache", lockPath, c.lockTimeout())
			return c.fetchOrStale(ctx, src, cached)
		}
		cached, _ = c.read(name)
		release()
		if tok := cached.token(); tok.Reusable(c.now()) {
			return tok, HitLocked, nil
		}
		// The other fetch failed; try to become the fetcher ourselves.
	}
}

// fetchAndStore runs under the exclusive lock: re-read, fetch only if the
// entry is still stale, publish.
func (c *Cache) fetchAndStore(ctx context.Context, name, description string, src tokensource.TokenSource) (*tokensource.Token, Result, error) {
	cached, readErr := c.read(name)
	if tok := cached.token(); tok.Reusable(c.now()) {
		return tok, HitLocked, nil
	}
	if readErr != nil && !errors.Is(readErr, fs.ErrNotExist) {
		c.debugf("cache: ignoring unreadable entry %s: %v", name, readErr)
	}
	tok, res, err := c.fetchOrStale(ctx, src, cached)
	if err != nil || res == Stale {
		return tok, res, err
	}
	if err := c.write(name, description, tok); err != nil {
		c.debugf("cache: could not store the token: %v", err)
		return tok, Uncached, nil
	}
	return tok, Fetched, nil
}

func (c *Cache) lockTimeout() time.Duration {
	if c.LockTimeout > 0 {
		return c.LockTimeout
	}
	return defaultLockTimeout
}

// fetchOrStale fetches a token; if that fails and the cache still holds one
// that has not expired, that one is served with a warning, because a token
// with a little life left beats a failed pull.
func (c *Cache) fetchOrStale(ctx context.Context, src tokensource.TokenSource, cached *Entry) (*tokensource.Token, Result, error) {
	tok, err := src.Token(ctx)
	if err == nil {
		return tok, Uncached, nil
	}
	// Only an outage justifies it: a 401 for a deleted key or a 400 must
	// surface at once, not after the cached token runs out.
	if stale := cached.token(); !stale.Expired(c.now()) && tokensource.IsTransient(err) {
		c.warnf("could not refresh the token (%v); using the cached one, valid until %s", err, stale.Expiry.UTC().Format(time.TimeOnly+" UTC"))
		return stale, Stale, nil
	}
	return nil, Uncached, err
}

func (c *Cache) lock(ctx context.Context, name string) (func(), error) {
	if err := c.ensureDir(); err != nil {
		return nil, err
	}
	return lockfile.Lock(ctx, filepath.Join(c.Dir, name+lockSuffix), c.lockTimeout())
}

// ensureDir makes the cache directory a private directory of ours.
func (c *Cache) ensureDir() error {
	if !filepath.IsAbs(c.Dir) {
		return fmt.Errorf("cache dir %q is not an absolute path", c.Dir)
	}
	return privdir.Ensure(c.Dir, platform.Current())
}

func (c *Cache) read(name string) (*Entry, error) {
	f, err := os.Open(filepath.Join(c.Dir, name+entrySuffix))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// Entries hold bearer tokens: a copy or restore that loosened the mode
	// of the file or the directory is tightened on sight (one stat).
	if fi, err := f.Stat(); err == nil && fi.Mode().Perm()&0o077 != 0 {
		_ = f.Chmod(0o600)
	}
	if di, err := os.Stat(c.Dir); err == nil && di.Mode().Perm() != 0o700 {
		_ = os.Chmod(c.Dir, 0o700)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxEntrySize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxEntrySize {
		return nil, errors.New("entry larger than 64 KiB")
	}
	return DecodeEntry(data)
}

// maxEntrySize bounds an entry read; real ones are well under 4 KiB.
const maxEntrySize = 64 << 10

// DecodeEntry parses a cache file. Anything unexpected is an error so the
// caller replaces the entry.
func DecodeEntry(data []byte) (*Entry, error) {
	var e Entry
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, errors.New("corrupt entry")
	}
	switch {
	case e.Version != formatVersion:
		return nil, fmt.Errorf("entry has format version %d, want %d", e.Version, formatVersion)
	case e.AccessToken == "" || e.Expiry.IsZero() || e.IssuedAt.IsZero():
		return nil, errors.New("incomplete entry")
	case e.IssuedAt.After(e.Expiry):
		return nil, errors.New("entry issued after it expires")
	}
	return &e, nil
}

func (e *Entry) token() *tokensource.Token {
	if e == nil {
		return nil
	}
	return &tokensource.Token{AccessToken: e.AccessToken, IssuedAt: e.IssuedAt, Expiry: e.Expiry}
}

// write publishes an entry atomically: temp file, fsync, rename.
func (c *Cache) write(name, description string, tok *tokensource.Token) error {
	data, err := json.Marshal(Entry{
		Version:     formatVersion,
		AccessToken: tok.AccessToken,
		IssuedAt:    tok.IssuedAt.UTC(),
		Expiry:      tok.Expiry.UTC(),
		Identity:    description,
	})
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(c.Dir, name+entrySuffix), data, 0o600)
}

// Drop removes the entry for identity, under its lock so that a concurrent
// fetch does not resurrect a token the user just logged out of.
func (c *Cache) Drop(ctx context.Context, identity string) error {
	if c.Dir == "" {
		return nil
	}
	name := FileName(identity)
	unlock, err := c.lock(ctx, name)
	if err != nil {
		return err
	}
	defer unlock()
	err = os.Remove(filepath.Join(c.Dir, name+entrySuffix))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// prune removes expired entries of other identities and temp files left by
// killed writers. Lock files stay: deleting one while another process waits
// on it would let two processes hold "the" lock at once.
func (c *Cache) prune(keep string) {
	dirents, err := os.ReadDir(c.Dir)
	if err != nil {
		return
	}
	now := c.now()
	for _, d := range dirents {
		n := d.Name()
		path := filepath.Join(c.Dir, n)
		switch {
		case strings.HasPrefix(n, atomicfile.TempPrefix):
			if fi, err := d.Info(); err == nil && now.Sub(fi.ModTime()) > staleTempAge {
				_ = os.Remove(path)
			}
		case strings.HasSuffix(n, entrySuffix) && n != keep+entrySuffix:
			data, err := os.ReadFile(path)
			if err != nil {
				continue
			}
			// Entries that do not decode may belong to another version of
			// this helper; only their own identity's next fetch replaces them.
			if e, err := DecodeEntry(data); err == nil && !now.Before(e.Expiry) {
				_ = os.Remove(path)
			}
		}
	}
}

func (c *Cache) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Cache) warnf(format string, args ...any) {
	if c.Warnf != nil {
		c.Warnf(format, args...)
	}
}

func (c *Cache) debugf(format string, args ...any) {
	if c.Debugf != nil {
		c.Debugf(format, args...)
	}
}
