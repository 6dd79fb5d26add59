package cache

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/docker-credential-stackit/docker-credential-stackit/internal/platform"
	"github.com/docker-credential-stackit/docker-credential-stackit/internal/testfs"
)

// generous bounds a "does not hang" check; nothing here asserts speed.
const generous = 5 * time.Second

const plantedToken = "ATTACKER-PLANTED-TOKEN"

// plantedEntry is what another user would write to have get print it.
const plantedEntry = `{"version":1,"access_token":"` + plantedToken + `","issued_at":"2026-01-01T00:00:00Z","expiry":"2099-01-01T00:00:00Z"}`

// warnings is a Cache's Warnf output, separate from its debug notes.
type warnings struct {
	mu    sync.Mutex
	lines []string
}

func (w *warnings) warnf(format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.lines = append(w.lines, fmt.Sprintf(format, args...))
}

func (w *warnings) all() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.lines...)
}

func newWatchedCache(dir string) (*Cache, *warnings) {
	w := &warnings{}
	return &Cache{Dir: dir, Warnf: w.warnf}, w
}

func entryPath(c *Cache, identity string) string {
	return filepath.Join(c.Dir, FileName(identity)+entrySuffix)
}

// requireFetchedDirectly checks that the token came from src, not the
// cache, and that the planted token was not handed out.
func requireFetchedDirectly(t *testing.T, c *Cache, src *countingSource) {
	t.Helper()
	tok, res, err := c.Token(context.Background(), "id", "", src)
	require.NoError(t, err)
	assert.NotEqual(t, plantedToken, tok.AccessToken, "the planted token was served")
	assert.Equal(t, Uncached, res)
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

func mode(t *testing.T, path string) fs.FileMode {
	t.Helper()
	fi, err := os.Lstat(path)
	require.NoError(t, err)
	return fi.Mode().Perm()
}

func TestPlantedTokenInWorldWritableDirIsNotServed(t *testing.T) {
	if !platform.Current().UnixPermissions() {
		t.Skip("no Unix modes here")
	}
	dir := filepath.Join(t.TempDir(), "docker-credential-stackit")
	require.NoError(t, os.Mkdir(dir, 0o700))
	require.NoError(t, os.Chmod(dir, 0o777))
	c, w := newWatchedCache(dir)
	require.NoError(t, os.WriteFile(entryPath(c, "id"), []byte(plantedEntry), 0o600))
	src := &countingSource{lifetime: time.Hour}

	requireFetchedDirectly(t, c, src)
	requireFetchedDirectly(t, c, src)
	assert.EqualValues(t, 2, src.calls.Load(), "every call fetches: the cache is not used")
	assert.Equal(t, []string{"cache dir " + dir + " is writable by others (mode 0777), so it is not used; run: chmod 700 " + dir}, w.all(),
		"one warning naming the directory and the fix")
	assert.Equal(t, fs.FileMode(0o777), mode(t, dir), "a directory others could write to is not adopted")
	assert.Nil(t, c.Peek("id"))
	data, err := os.ReadFile(entryPath(c, "id"))
	require.NoError(t, err)
	assert.Equal(t, plantedEntry, string(data), "nothing was stored there")
}

func TestPlantedTokenInDirOwnedByAnotherUserIsNotServed(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	require.NoError(t, os.Mkdir(dir, 0o700))
	c, w := newWatchedCache(dir)
	c.Platform = platform.Platform{GOOS: "linux", Geteuid: func() int { return 1000 }, Owner: func(fs.FileInfo) int { return 1001 }}
	require.NoError(t, os.WriteFile(entryPath(c, "id"), []byte(plantedEntry), 0o600))

	requireFetchedDirectly(t, c, &countingSource{lifetime: time.Hour})
	assert.Equal(t, []string{"cache dir " + dir + " is owned by uid 1001, not you (uid 1000), so it is not used; use a directory of your own with DOCKER_CREDENTIAL_STACKIT_CACHE_DIR"}, w.all())
	assert.Nil(t, c.Peek("id"))
}

func TestPlantedEntryOwnedByAnotherUserIsNotServed(t *testing.T) {
	if !platform.Current().UnixPermissions() {
		t.Skip("the faked Linux platform would see this host's made-up modes (0777 for every directory) and refuse the directory first")
	}
	dir := filepath.Join(t.TempDir(), "cache")
	require.NoError(t, os.Mkdir(dir, 0o700))
	c, w := newWatchedCache(dir)
	planted := entryPath(c, "id")
	require.NoError(t, os.WriteFile(planted, []byte(plantedEntry), 0o600))
	// Only the entry belongs to someone else; the directory is ours.
	c.Platform = platform.Platform{GOOS: "linux", Geteuid: func() int { return 1000 }, Owner: func(fi fs.FileInfo) int {
		if fi.Name() == filepath.Base(planted) {
			return 1001
		}
		return 1000
	}}

	requireFetchedDirectly(t, c, &countingSource{lifetime: time.Hour})
	assert.Equal(t, []string{"cache entry " + planted + " is owned by uid 1001, not you (uid 1000), so the cache is not used; remove it: rm " + planted}, w.all())
	assert.Nil(t, c.Peek("id"))
}

func TestSymlinkedCacheDirIsNotUsedAndItsTargetIsUntouched(t *testing.T) {
	victim := t.TempDir()
	require.NoError(t, os.Chmod(victim, 0o755))
	link := filepath.Join(t.TempDir(), "cache")
	testfs.SymlinkOrSkip(t, victim, link)
	c, w := newWatchedCache(link)
	// Something that looks like an entry in the target: neither served nor
	// tightened.
	victimFile := filepath.Join(victim, FileName("id")+entrySuffix)
	require.NoError(t, os.WriteFile(victimFile, []byte(plantedEntry), 0o644))
	require.NoError(t, os.Chmod(victimFile, 0o644))
	before := listDir(t, victim)

	requireFetchedDirectly(t, c, &countingSource{lifetime: time.Hour})
	assert.Nil(t, c.Peek("id"))
	assert.Error(t, c.Drop(context.Background(), "id"))
	require.Len(t, w.all(), 1)
	assert.Equal(t, "cache dir "+link+" is a symbolic link, so it is not used; replace it with a directory of your own, or set DOCKER_CREDENTIAL_STACKIT_CACHE_DIR to one", w.all()[0])

	assert.Equal(t, before, listDir(t, victim), "no file was written to or removed from the target")
	if platform.Current().UnixPermissions() {
		assert.Equal(t, fs.FileMode(0o755), mode(t, victim), "the target's mode is unchanged")
		assert.Equal(t, fs.FileMode(0o644), mode(t, victimFile))
	}
}

func TestSymlinkedEntryIsRefused(t *testing.T) {
	c, w := newWatchedCache(filepath.Join(t.TempDir(), "cache"))
	require.NoError(t, os.Mkdir(c.Dir, 0o700))
	elsewhere := filepath.Join(t.TempDir(), "token.json")
	require.NoError(t, os.WriteFile(elsewhere, []byte(plantedEntry), 0o600))
	testfs.SymlinkOrSkip(t, elsewhere, entryPath(c, "id"))

	requireFetchedDirectly(t, c, &countingSource{lifetime: time.Hour})
	assert.Nil(t, c.Peek("id"))
	require.Len(t, w.all(), 1)
	assert.Contains(t, w.all()[0], "cache entry "+entryPath(c, "id")+" is a symbolic link")
	assert.Contains(t, w.all()[0], "so the cache is not used; remove it: rm ")
	data, err := os.ReadFile(elsewhere)
	require.NoError(t, err)
	assert.Equal(t, plantedEntry, string(data), "the link's target is untouched")
}

func TestSymlinkedLockFileIsRefused(t *testing.T) {
	c, w := newWatchedCache(filepath.Join(t.TempDir(), "cache"))
	require.NoError(t, os.Mkdir(c.Dir, 0o700))
	target := filepath.Join(t.TempDir(), "victim-file")
	lock := filepath.Join(c.Dir, FileName("id")+lockSuffix)
	testfs.SymlinkOrSkip(t, target, lock)

	requireFetchedDirectly(t, c, &countingSource{lifetime: time.Hour})
	require.Error(t, c.Drop(context.Background(), "id"))
	require.Len(t, w.all(), 1)
	assert.Contains(t, w.all()[0], "cache lock file "+lock+" is a symbolic link")
	assert.NoFileExists(t, target, "the link was not followed to create its target")
	assert.NoFileExists(t, entryPath(c, "id"), "nothing was stored without the lock")
}

func TestDropRemovesLeftoverTempFilesOfItsEntry(t *testing.T) {
	c, _ := newCache(t)
	_, err := c.TokenSource("id", "", &countingSource{lifetime: time.Hour}).Token(context.Background())
	require.NoError(t, err)
	// A writer killed -9 between write and rename leaves the token in a
	// fresh temp file; Drop must not leave it behind.
	mine := filepath.Join(c.Dir, ".tmp-"+FileName("id")+entrySuffix+"-123456")
	require.NoError(t, os.WriteFile(mine, []byte(`{"access_token":"token-1"}`), 0o600))
	other := filepath.Join(c.Dir, ".tmp-"+FileName("other")+entrySuffix+"-654321")
	require.NoError(t, os.WriteFile(other, []byte("x"), 0o600))

	require.NoError(t, c.Drop(context.Background(), "id"))
	assert.NoFileExists(t, entryPath(c, "id"))
	assert.NoFileExists(t, mine, "the leftover temp file of the dropped entry is removed")
	assert.FileExists(t, other, "another identity's writer may still be running")
}

func TestWindowsPlatformSkipsModeAndOwnerChecksButNotLinkChecks(t *testing.T) {
	win := platform.Platform{GOOS: "windows"}
	dir := filepath.Join(t.TempDir(), "cache")
	require.NoError(t, os.Mkdir(dir, 0o700))
	require.NoError(t, os.Chmod(dir, 0o777)) // Go reports made-up modes on Windows
	c, w := newWatchedCache(dir)
	c.Platform = win
	src := &countingSource{lifetime: time.Hour}
	_, res, err := c.Token(context.Background(), "id", "", src)
	require.NoError(t, err)
	assert.Equal(t, Fetched, res)
	_, res, err = c.Token(context.Background(), "id", "", src)
	require.NoError(t, err)
	assert.Equal(t, Hit, res, "modes mean nothing on Windows")
	assert.Empty(t, w.all())

	link := filepath.Join(t.TempDir(), "link")
	testfs.SymlinkOrSkip(t, dir, link)
	lc, lw := newWatchedCache(link)
	lc.Platform = win
	_, res, err = lc.Token(context.Background(), "id", "", src)
	require.NoError(t, err)
	assert.Equal(t, Uncached, res, "a linked cache dir is refused on Windows too")
	require.Len(t, lw.all(), 1)
	assert.Contains(t, lw.all()[0], "is a symbolic link")
}
