// Package cache keeps access tokens on disk so that many processes asking
// at once cost one token request.
//
// Reads take no lock. A miss takes a sidecar lock file, re-reads, fetches
// only if still needed and publishes the result by rename, so a reader sees
// either the old entry or the new one, never a torn write.
//
// Nothing in the directory is trusted unless the directory is a real
// directory of the user's own that no one else can write to, and each
// entry and lock file is a regular file of the user's own, opened without
// following links or blocking. Otherwise the cache is not used at all: the
// token is fetched directly, with one warning that names the fix.
package cache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/docker-credential-stackit/docker-credential-stackit/internal/lockfile"
	"github.com/docker-credential-stackit/docker-credential-stackit/internal/platform"
	"github.com/docker-credential-stackit/docker-credential-stackit/internal/privdir"
	"github.com/docker-credential-stackit/docker-credential-stackit/internal/safefile"

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
	// Platform decides whether owners and modes are checked (not on
	// Windows; links are refused everywhere). Zero: platform.Current().
	Platform platform.Platform

	// warned is set once the untrusted-cache warning has been shown.
	warned atomic.Bool
}

// Entry is the on-disk form of a cached token.
type Entry struct {
	Version     int       `json:"version"`
	AccessToken string    `json:"access_token"`
	IssuedAt    time.Time `json:"issued_at"`
	Expiry      time.Time `json:"expiry"`
	// Identity describes whose token this is, for humans (no secrets).
	Identity string `json:"identity,omitempty"`
	// Username is the login the token belongs to, so that a hit needs
	// nothing else (not even the key) to answer.
	Username string `json:"username,omitempty"`
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
// or nil if there is none that decodes or the cache is not trusted (which
// it warns about, as get does).
func (c *Cache) Peek(identity string) *Entry {
	if c.Dir == "" {
		return nil
	}
	exists, err := c.checkDir()
	if err != nil {
		c.warnUntrusted(err)
		return nil
	}
	if !exists {
		return nil
	}
	e, err := c.read(FileName(identity))
	if isUntrusted(err) {
		c.warnUntrusted(err)
		return nil
	}
	return e
}

func (c *Cache) get(ctx context.Context, name, description string, src tokensource.TokenSource) (*tokensource.Token, Result, error) {
	if c.Dir == "" {
		tok, err := src.Token(ctx)
		return tok, Uncached, err
	}
	now := c.now()
	var cached *Entry
	exists, err := c.checkDir()
	if err == nil && exists {
		cached, err = c.read(name)
	}
	if isUntrusted(err) {
		return c.bypass(ctx, src, err)
	}
	if tok := cached.token(); tok.Reusable(now) {
		return tok, Hit, nil
	}

	if err := c.ensureDir(); err != nil {
		if errors.Is(err, safefile.ErrUntrusted) {
			return c.bypass(ctx, src, &untrustedError{subject: "cache dir", path: c.Dir, problem: problemOf(err), fix: fixOf(err)})
		}
		c.debugf("cache: %v; fetching without the cache", err)
		return c.fetchOrStale(ctx, src, cached)
	}
	lockPath := filepath.Join(c.Dir, name+lockSuffix)
	deadline := time.Now().Add(c.lockTimeout())
	for {
		unlock, locked, err := lockfile.TryLock(lockPath, lockfile.Private(c.platform()))
		if err != nil {
			if uerr := untrustedLock(lockPath, err); uerr != nil {
				return c.bypass(ctx, src, uerr)
			}
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
		release, err := lockfile.WaitShared(ctx, lockPath, time.Until(deadline), lockfile.Private(c.platform()))
		if err != nil {
			if uerr := untrustedLock(lockPath, err); uerr != nil {
				return c.bypass(ctx, src, uerr)
			}
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
		cached, err = c.read(name)
		release()
		if isUntrusted(err) {
			return c.bypass(ctx, src, err)
		}
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
	if isUntrusted(readErr) {
		return c.bypass(ctx, src, readErr)
	}
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

// bypass is the answer when the cache cannot be trusted: warn (once) and
// fetch directly, with no stale fallback and no store.
func (c *Cache) bypass(ctx context.Context, src tokensource.TokenSource, why error) (*tokensource.Token, Result, error) {
	c.warnUntrusted(why)
	tok, err := src.Token(ctx)
	return tok, Uncached, err
}

func (c *Cache) lock(ctx context.Context, name string) (func(), error) {
	if err := c.ensureDir(); err != nil {
		return nil, err
	}
	path := filepath.Join(c.Dir, name+lockSuffix)
	unlock, err := lockfile.Lock(ctx, path, c.lockTimeout(), lockfile.Private(c.platform()))
	if uerr := untrustedLock(path, err); uerr != nil {
		return nil, uerr
	}
	return unlock, err
}

// ensureDir makes the cache directory a private directory of ours.
func (c *Cache) ensureDir() error {
	if !filepath.IsAbs(c.Dir) {
		return fmt.Errorf("cache dir %q is not an absolute path", c.Dir)
	}
	return privdir.Ensure(c.Dir, c.platform())
}

// checkDir is the read path's check of the directory, one Lstat: it must
// be a real directory (not a link), owned by the effective user and not
// writable by group or others, or nothing in it is trusted. A mode that
// is merely readable by others is tightened, since the directory is ours;
// if that fails the check fails. A missing or unusable directory is not
// an error here (exists is false): there is nothing to read, and the
// write path says what is wrong.
// Problem says why the cache directory is not used (a symlink, another
// owner, writable by others), or nil when it is fine or does not exist
// yet. It reads nothing in the directory, for doctor and status.
func (c *Cache) Problem() error {
	if c.Dir == "" {
		return nil
	}
	_, err := c.checkDir()
	return err
}

func (c *Cache) checkDir() (exists bool, err error) {
	if !filepath.IsAbs(c.Dir) {
		return false, nil
	}
	fi, err := os.Lstat(c.Dir)
	if err != nil {
		return false, nil
	}
	untrusted := func(problem, fix string) (bool, error) {
		return false, &untrustedError{subject: "cache dir", path: c.Dir, problem: problem, fix: fix}
	}
	quoted := safefile.ShellQuote(c.Dir)
	if fi.Mode()&fs.ModeSymlink != 0 {
		return untrusted("is a symbolic link", "replace it with a directory of your own, or set DOCKER_CREDENTIAL_STACKIT_CACHE_DIR to one")
	}
	if !fi.IsDir() {
		return false, nil
	}
	p := c.platform()
	if !p.UnixPermissions() {
		return true, nil
	}
	if euid, owner := p.Euid(), p.FileOwner(fi); owner >= 0 && owner != euid {
		return untrusted(fmt.Sprintf("is owned by uid %d, not you (uid %d)", owner, euid),
			"use a directory of your own with DOCKER_CREDENTIAL_STACKIT_CACHE_DIR")
	}
	perm := fi.Mode().Perm()
	if perm&0o022 != 0 {
		who := "others"
		if perm&0o002 == 0 {
			who = "its group"
		}
		return untrusted(fmt.Sprintf("is writable by %s (mode %04o)", who, perm), "run: chmod 700 "+quoted)
	}
	// Entries hold bearer tokens: a copy or restore that loosened the mode
	// is tightened on sight.
	if perm != 0o700 {
		if err := os.Chmod(c.Dir, 0o700); err != nil {
			return untrusted(fmt.Sprintf("has mode %04o and could not be made private (%s)", perm, safefile.DescribeFileError(err)), "run: chmod 700 "+quoted)
		}
	}
	return true, nil
}

// read reads and decodes the entry name. A missing entry matches
// fs.ErrNotExist; an entry that must not be trusted (a link, a FIFO or
// other non-regular file, a file of another user) is an *untrustedError.
func (c *Cache) read(name string) (*Entry, error) {
	path := filepath.Join(c.Dir, name+entrySuffix)
	p := c.platform()
	data, fi, err := safefile.ReadFileNoFollow(path, p)
	if err != nil {
		// A directory in the entry's place can neither hand out a token
		// nor hang a read: it is an unusable entry, which the write that
		// follows reports. Links, FIFOs, devices and sockets are refused.
		if errors.Is(err, safefile.ErrNotRegular) && !isDir(path) {
			return nil, untrustedFile("cache entry", path, err)
		}
		return nil, err
	}
	if p.UnixPermissions() {
		if euid, owner := p.Euid(), p.FileOwner(fi); owner >= 0 && owner != euid {
			return nil, &untrustedError{subject: "cache entry", path: path,
				problem: fmt.Sprintf("is owned by uid %d, not you (uid %d)", owner, euid), fix: "remove it: rm " + safefile.ShellQuote(path)}
		}
		// A copy or restore that loosened the mode is tightened on sight.
		// The file was just opened without following links in a directory
		// no one else can write to, so the path still names it.
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			if err := os.Chmod(path, 0o600); err != nil {
				return nil, &untrustedError{subject: "cache entry", path: path,
					problem: fmt.Sprintf("has mode %04o and could not be made private (%s)", perm, safefile.DescribeFileError(err)), fix: "run: chmod 600 " + safefile.ShellQuote(path)}
			}
		}
	}
	if len(data) > maxEntrySize {
		return nil, errors.New("entry larger than 64 KiB")
	}
	return DecodeEntry(data)
}

func isDir(path string) bool {
	fi, err := os.Lstat(path)
	return err == nil && fi.IsDir()
}

// untrustedError says why the cache is not used, with the fix, in one line.
type untrustedError struct {
	subject, path, problem, fix string
}

func (e *untrustedError) Error() string {
	what := "so the cache is not used"
	if e.subject == "cache dir" {
		what = "so it is not used"
	}
	s := e.subject + " " + e.path + " " + e.problem + ", " + what
	if e.fix != "" {
		s += "; " + e.fix
	}
	return s
}

// Unwrap makes it match safefile.ErrUntrusted.
func (e *untrustedError) Unwrap() error { return safefile.ErrUntrusted }

// HowToFix returns the fix, for doctor.
func (e *untrustedError) HowToFix() string { return e.fix }

func isUntrusted(err error) bool {
	var u *untrustedError
	return errors.As(err, &u)
}

// untrustedFile words a refusal from safefile or lockfile.
func untrustedFile(subject, path string, err error) error {
	return &untrustedError{subject: subject, path: path, problem: problemOf(err), fix: "remove it: rm " + safefile.ShellQuote(path)}
}

// untrustedLock returns the refusal for a lock file that is not a regular
// file of ours, or nil if err is no such refusal.
func untrustedLock(path string, err error) error {
	if errors.Is(err, safefile.ErrNotRegular) || errors.Is(err, safefile.ErrUntrusted) {
		return untrustedFile("cache lock file", path, err)
	}
	return nil
}

func problemOf(err error) string {
	var e *safefile.Error
	if errors.As(err, &e) && e.Problem != "" {
		return e.Problem
	}
	return err.Error()
}

func fixOf(err error) string {
	var e *safefile.Error
	if errors.As(err, &e) {
		return e.Fix
	}
	return ""
}

// warnUntrusted shows why the cache is not used, once per Cache.
func (c *Cache) warnUntrusted(err error) {
	if c.warned.CompareAndSwap(false, true) {
		c.warnf("%v", err)
	} else {
		c.debugf("cache: %v", err)
	}
}

func (c *Cache) platform() platform.Platform {
	if c.Platform.GOOS == "" {
		return platform.Current()
	}
	return c.Platform
}

// maxEntrySize bounds an entry read; real ones are well under 4 KiB.
const maxEntrySize = 64 << 10

// DecodeEntry parses a cache file. Anything unexpected is an error so the
// caller replaces the entry.
func DecodeEntry(data []byte) (*Entry, error) {
	e, err := decodeEntryFields(data)
	if err != nil {
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
	return e, nil
}

// decodeEntryFields decodes an entry field by field. Decoding into the
// struct would make encoding/json build the struct's field table first,
// about a tenth of a warm get; a map of raw values and per-field decodes
// of strings, numbers and times skip it. Names are matched exactly, and
// unknown fields are ignored, as the struct decode did.
func decodeEntryFields(data []byte) (*Entry, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, err
	}
	var e Entry
	for name, v := range raw {
		var err error
		switch name {
		case "version":
			err = json.Unmarshal(v, &e.Version)
		case "access_token":
			err = json.Unmarshal(v, &e.AccessToken)
		case "issued_at":
			err = e.IssuedAt.UnmarshalJSON(v)
		case "expiry":
			err = e.Expiry.UnmarshalJSON(v)
		case "identity":
			err = json.Unmarshal(v, &e.Identity)
		case "username":
			err = json.Unmarshal(v, &e.Username)
		}
		if err != nil {
			return nil, err
		}
	}
	return &e, nil
}

func (e *Entry) token() *tokensource.Token {
	if e == nil {
		return nil
	}
	return &tokensource.Token{AccessToken: e.AccessToken, IssuedAt: e.IssuedAt, Expiry: e.Expiry, Username: e.Username}
}

// write publishes an entry atomically: temp file, fsync, rename.
func (c *Cache) write(name, description string, tok *tokensource.Token) error {
	data, err := json.Marshal(Entry{
		Version:     formatVersion,
		AccessToken: tok.AccessToken,
		IssuedAt:    tok.IssuedAt.UTC(),
		Expiry:      tok.Expiry.UTC(),
		Identity:    description,
		Username:    tok.Username,
	})
	if err != nil {
		return err
	}
	return atomicfile.WriteRecomputable(filepath.Join(c.Dir, name+entrySuffix), data, 0o600)
}

// Drop removes the entry for identity, under its lock so that a concurrent
// fetch does not resurrect a token the user just logged out of.
func (c *Cache) Drop(ctx context.Context, identity string) error {
	if c.Dir == "" {
		return nil
	}
	if _, err := c.checkDir(); err != nil {
		c.warnUntrusted(err)
		return err
	}
	name := FileName(identity)
	unlock, err := c.lock(ctx, name)
	if err != nil {
		if isUntrusted(err) {
			c.warnUntrusted(err)
		}
		return err
	}
	defer unlock()
	err = atomicfile.Remove(filepath.Join(c.Dir, name+entrySuffix))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	// A writer killed between writing its temp file and renaming it
	// leaves the token in the temp file. Under the lock no writer of this
	// entry is running, so every one of them is a leftover.
	if dirents, err := os.ReadDir(c.Dir); err == nil {
		prefix := atomicfile.TempPrefix + name + entrySuffix + "-"
		for _, d := range dirents {
			if strings.HasPrefix(d.Name(), prefix) {
				_ = os.Remove(filepath.Join(c.Dir, d.Name()))
			}
		}
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
			// Never follow a link or block on a FIFO, even to tidy up.
			data, _, err := safefile.ReadFileNoFollow(path, c.platform())
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
