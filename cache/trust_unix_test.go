//go:build unix

package cache

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFIFOEntryDoesNotHang(t *testing.T) {
	c, w := newWatchedCache(filepath.Join(t.TempDir(), "cache"))
	require.NoError(t, os.Mkdir(c.Dir, 0o700))
	require.NoError(t, syscall.Mkfifo(entryPath(c, "id"), 0o600))
	src := &countingSource{lifetime: time.Hour}
	done := make(chan struct{})
	go func() {
		defer close(done)
		requireFetchedDirectly(t, c, src)
		assert.Nil(t, c.Peek("id"))
	}()
	select {
	case <-done:
	case <-time.After(generous):
		t.Fatal("get hung on a FIFO in place of the cache entry")
	}
	assert.EqualValues(t, 1, src.calls.Load())
	require.Len(t, w.all(), 1)
	assert.Contains(t, w.all()[0], "is a named pipe (FIFO), not a regular file, so the cache is not used")
}

func TestFIFOLockFileDoesNotHang(t *testing.T) {
	c, w := newWatchedCache(filepath.Join(t.TempDir(), "cache"))
	require.NoError(t, os.Mkdir(c.Dir, 0o700))
	require.NoError(t, syscall.Mkfifo(filepath.Join(c.Dir, FileName("id")+lockSuffix), 0o600))
	done := make(chan struct{})
	go func() {
		defer close(done)
		requireFetchedDirectly(t, c, &countingSource{lifetime: time.Hour})
	}()
	select {
	case <-done:
	case <-time.After(generous):
		t.Fatal("get hung on a FIFO in place of the lock file")
	}
	require.Len(t, w.all(), 1)
	assert.Contains(t, w.all()[0], "cache lock file")
}

func TestPruneDoesNotHangOnAFIFOOfAnotherEntry(t *testing.T) {
	c, _ := newWatchedCache(filepath.Join(t.TempDir(), "cache"))
	require.NoError(t, os.Mkdir(c.Dir, 0o700))
	fifo := filepath.Join(c.Dir, FileName("other")+entrySuffix)
	require.NoError(t, syscall.Mkfifo(fifo, 0o600))
	done := make(chan Result, 1)
	go func() {
		_, res, err := c.Token(context.Background(), "id", "", &countingSource{lifetime: time.Hour})
		assert.NoError(t, err)
		done <- res
	}()
	select {
	case res := <-done:
		assert.Equal(t, Fetched, res)
	case <-time.After(generous):
		t.Fatal("pruning hung on a FIFO")
	}
}

func TestPlantedEntryOfAnotherRealUidIsNotServed(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown a file to another uid")
	}
	c, w := newWatchedCache(filepath.Join(t.TempDir(), "cache"))
	require.NoError(t, os.Mkdir(c.Dir, 0o700))
	planted := entryPath(c, "id")
	require.NoError(t, os.WriteFile(planted, []byte(plantedEntry), 0o600))
	require.NoError(t, os.Chown(planted, 12345, 12345))

	requireFetchedDirectly(t, c, &countingSource{lifetime: time.Hour})
	assert.Nil(t, c.Peek("id"))
	assert.Equal(t, []string{"cache entry " + planted + " is owned by uid 12345, not you (uid 0), so the cache is not used; remove it: rm " + planted}, w.all())
}

func TestDirOfAnotherRealUidIsNotUsed(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown a directory to another uid")
	}
	c, w := newWatchedCache(filepath.Join(t.TempDir(), "cache"))
	require.NoError(t, os.Mkdir(c.Dir, 0o700))
	require.NoError(t, os.WriteFile(entryPath(c, "id"), []byte(plantedEntry), 0o600))
	require.NoError(t, os.Chown(c.Dir, 65534, 65534))

	requireFetchedDirectly(t, c, &countingSource{lifetime: time.Hour})
	require.Len(t, w.all(), 1)
	assert.Contains(t, w.all()[0], "cache dir "+c.Dir+" is owned by uid 65534, not you (uid 0), so it is not used")
}
