package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/docker-credential-stackit/docker-credential-stackit/internal/platform"
)

// Windows error numbers, as os.Rename wraps them in an *os.LinkError.
const (
	accessDenied     = syscall.Errno(5)
	sharingViolation = syscall.Errno(32)
)

// flaky is a rename or remove that fails with err the first n times, then
// does the real thing. It counts calls and records the sleeps between them.
type flaky struct {
	n, calls int
	err      error
	slept    []time.Duration
}

func (f *flaky) rename(oldpath, newpath string) error {
	f.calls++
	if f.calls <= f.n {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: f.err}
	}
	return os.Rename(oldpath, newpath)
}

func (f *flaky) remove(path string) error {
	f.calls++
	if f.calls <= f.n {
		return &fs.PathError{Op: "remove", Path: path, Err: f.err}
	}
	return os.Remove(path)
}

func (f *flaky) sleep(d time.Duration) { f.slept = append(f.slept, d) }

func (f *flaky) total() (sum time.Duration) {
	for _, d := range f.slept {
		sum += d
	}
	return sum
}

func windowsOps(f *flaky) fileOps {
	return fileOps{p: platform.Platform{GOOS: "windows"}, rename: f.rename, remove: f.remove, sleep: f.sleep}
}

func noTemps(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		assert.False(t, strings.HasPrefix(e.Name(), TempPrefix), "temp file %s left behind", e.Name())
	}
}

func TestWriteRetriesSharingViolationThenSucceeds(t *testing.T) {
	for _, code := range []syscall.Errno{accessDenied, sharingViolation} {
		dir := t.TempDir()
		path := filepath.Join(dir, "entry.json")
		require.NoError(t, os.WriteFile(path, []byte("old"), 0o600))
		f := &flaky{n: 3, err: code}

		require.NoError(t, windowsOps(f).write(path, []byte("new"), 0o600))
		assert.Equal(t, 4, f.calls, "three failures, then the rename that works")
		assert.Len(t, f.slept, 3)
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		assert.Equal(t, "new", string(data))
		noTemps(t, dir)
	}
}

func TestRetryBacksOffWithGrowingDelays(t *testing.T) {
	f := &flaky{n: 5, err: sharingViolation}
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "a"), nil, 0o600))
	require.NoError(t, windowsOps(f).renameFile(filepath.Join(dir, "a"), filepath.Join(dir, "b")))
	require.Len(t, f.slept, 5)
	for i := 1; i < len(f.slept); i++ {
		assert.Greater(t, f.slept[i], f.slept[i-1])
	}
}

func TestRetryGivesUpAfterTheBudget(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "entry.json")
	require.NoError(t, os.WriteFile(path, []byte("old"), 0o600))
	f := &flaky{n: 1 << 30, err: sharingViolation}
	ops := windowsOps(f)
	ops.remove = os.Remove

	err := ops.write(path, []byte("new"), 0o600)
	require.Error(t, err)
	assert.ErrorIs(t, err, sharingViolation)
	assert.Equal(t, RetryBudget, f.total(), "slept exactly the budget, no more")
	assert.Less(t, f.calls, 30, "bounded number of attempts")
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "old", string(data), "target untouched")
	noTemps(t, dir)
}

func TestOtherErrorsAreNotRetried(t *testing.T) {
	for _, err := range []error{syscall.Errno(2), syscall.Errno(3), errors.New("disk on fire")} {
		f := &flaky{n: 1, err: err}
		dir := t.TempDir()
		got := windowsOps(f).renameFile(filepath.Join(dir, "a"), filepath.Join(dir, "b"))
		require.ErrorIs(t, got, err)
		assert.Equal(t, 1, f.calls, "%v", err)
		assert.Empty(t, f.slept)
	}
}

func TestUnixNeverRetries(t *testing.T) {
	f := &flaky{n: 1, err: sharingViolation}
	ops := windowsOps(f)
	ops.p = platform.Platform{GOOS: "linux"}
	dir := t.TempDir()
	require.Error(t, ops.renameFile(filepath.Join(dir, "a"), filepath.Join(dir, "b")))
	assert.Equal(t, 1, f.calls)
	assert.Empty(t, f.slept)
}

func TestRemoveRetriesSharingViolationThenSucceeds(t *testing.T) {
	path := filepath.Join(t.TempDir(), "entry.json")
	require.NoError(t, os.WriteFile(path, nil, 0o600))
	f := &flaky{n: 2, err: accessDenied}
	require.NoError(t, windowsOps(f).removeFile(path))
	assert.Equal(t, 3, f.calls)
	_, err := os.Stat(path)
	assert.ErrorIs(t, err, fs.ErrNotExist)
}

func TestExportedRenameAndRemoveWork(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	require.NoError(t, os.WriteFile(a, []byte("x"), 0o600))
	require.NoError(t, Rename(a, b))
	require.NoError(t, Remove(b))
	assert.ErrorIs(t, Remove(b), fs.ErrNotExist)
}
