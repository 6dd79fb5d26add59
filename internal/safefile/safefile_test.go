package safefile

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/docker-credential-stackit/docker-credential-stackit/internal/platform"
)

const secret = "-----BEGIN PRIVATE KEY----- s3cr3t"

var linux = platform.Platform{GOOS: "linux"}

func writeFile(t *testing.T, name string, data []byte, perm fs.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(path, data, perm))
	require.NoError(t, os.Chmod(path, perm))
	return path
}

// unixModes skips tests that assert real Unix modes or make symlinks, which
// Windows does not have (or allows only to administrators).
func unixModes(t *testing.T) {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("needs Unix file modes")
	}
}

// within fails the test if f does not return within a generous bound; it
// guards against hangs, not against slowness.
func within(t *testing.T, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("did not return within 5 s")
	}
}

func TestReadFileReturnsContentAndInfo(t *testing.T) {
	unixModes(t)
	path := writeFile(t, "key.json", []byte(`{"a":1}`), 0o640)
	data, fi, err := ReadFile(path, platform.Current())
	require.NoError(t, err)
	assert.Equal(t, `{"a":1}`, string(data))
	assert.Equal(t, fs.FileMode(0o640), fi.Mode().Perm())
}

func TestReadFileRefusesDirectory(t *testing.T) {
	dir := t.TempDir()
	_, _, err := ReadFile(dir, platform.Current())
	require.ErrorIs(t, err, ErrNotRegular)
	assert.Equal(t, "is a directory, not a file", DescribeFileError(err))
}

func TestReadFileRefusesFilesOverMaxSize(t *testing.T) {
	path := writeFile(t, "big", bytes.Repeat([]byte("x"), MaxSize+1), 0o600)
	_, _, err := ReadFile(path, platform.Current())
	require.ErrorIs(t, err, ErrTooLarge)
	assert.NotContains(t, err.Error(), "xxx")

	path = writeFile(t, "exact", bytes.Repeat([]byte("x"), MaxSize), 0o600)
	data, _, err := ReadFile(path, platform.Current())
	require.NoError(t, err)
	assert.Len(t, data, MaxSize)
}

func TestReadFileMissingIsNotExist(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing.json")
	_, _, err := ReadFile(path, platform.Current())
	require.ErrorIs(t, err, fs.ErrNotExist)
	assert.Equal(t, path+": file not found", err.Error())
}

func TestPermissionDeniedFixDependsOnPlatform(t *testing.T) {
	perm := &fs.PathError{Op: "open", Path: "/k", Err: fs.ErrPermission}
	unix := osError("/k", linux, perm)
	assert.ErrorIs(t, unix, fs.ErrPermission)
	assert.Equal(t, "/k: permission denied; check its owner and mode and those of its directories (ls -l /k)", unix.Error())
	win := osError(`C:\k`, platform.Platform{GOOS: "windows"}, perm)
	assert.Contains(t, win.Error(), "Properties, Security")
	assert.NotContains(t, win.Error(), "ls -l")
}

func TestErrorIsOneLinePathProblemFix(t *testing.T) {
	e := &Error{Path: "/p", Problem: "is bad", Fix: "run: fix /p", Err: ErrUntrusted}
	assert.Equal(t, "/p: is bad; run: fix /p", e.Error())
	assert.ErrorIs(t, e, ErrUntrusted)
	assert.Equal(t, "/p: is bad", (&Error{Path: "/p", Problem: "is bad"}).Error())
}

func TestCheckTrustedRefusesFileOwnedByAnotherUser(t *testing.T) {
	unixModes(t)
	path := writeFile(t, "key.json", []byte(secret), 0o600)
	p := platform.Platform{
		GOOS:    "linux",
		Geteuid: func() int { return 1000 },
		Owner: func(fi fs.FileInfo) int {
			if fi.Name() == "key.json" {
				return 1001
			}
			return 1000
		},
	}
	err := CheckTrusted(path, p)
	require.ErrorIs(t, err, ErrUntrusted)
	assert.Equal(t, path+": is owned by uid 1001, not by you (uid 1000) or root; if it is yours, run: chown 1000 "+path, err.Error())
}

func TestCheckTrustedAcceptsRootOwnedFile(t *testing.T) {
	unixModes(t)
	path := writeFile(t, "key.json", []byte(secret), 0o644)
	p := platform.Platform{GOOS: "linux", Geteuid: func() int { return 1000 }, Owner: func(fs.FileInfo) int { return 0 }}
	require.NoError(t, os.Chmod(filepath.Dir(path), 0o755))
	assert.NoError(t, CheckTrusted(path, p))
}

func TestCheckTrustedSkipsWindows(t *testing.T) {
	path := writeFile(t, "key.json", []byte(secret), 0o666)
	require.NoError(t, os.Chmod(filepath.Dir(path), 0o777))
	win := platform.Platform{GOOS: "windows", Owner: func(fs.FileInfo) int { return 4242 }}
	assert.NoError(t, CheckTrusted(path, win), "modes and owners mean nothing on Windows")
	assert.NoError(t, CheckTrusted(filepath.Join(t.TempDir(), "missing"), win), "nothing is even looked at")
}

func TestCheckTrustedMissingFileIsNotExist(t *testing.T) {
	// A Unix platform: on Windows CheckTrusted looks at nothing (see above).
	err := CheckTrusted(filepath.Join(t.TempDir(), "missing"), platform.Platform{GOOS: "linux"})
	assert.ErrorIs(t, err, fs.ErrNotExist)
}

func TestFixQuotesPathsForTheShell(t *testing.T) {
	assert.Equal(t, "/a/b-c_d.json", ShellQuote("/a/b-c_d.json"))
	assert.Equal(t, "'/a b/k'", ShellQuote("/a b/k"))
	assert.Equal(t, `'/it'\''s'`, ShellQuote("/it's"))
}

func TestDescribeFileErrorUsesPortableWords(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&fs.PathError{Op: "open", Path: "/x", Err: fs.ErrNotExist}, "file not found"},
		{&fs.PathError{Op: "open", Path: "/x", Err: fs.ErrPermission}, "permission denied"},
		{&fs.PathError{Op: "read", Path: "/x", Err: syscall.EISDIR}, "is a directory, not a file"},
		{ErrTooLarge, "is larger than 1 MiB, too large for this input"},
		{ErrNotRegular, "is not a regular file"},
		{&Error{Path: "/x", Problem: "is a socket, not a regular file", Err: ErrNotRegular}, "is a socket, not a regular file"},
		{&fs.PathError{Op: "open", Path: "/x", Err: errors.New("weird")}, "weird"},
	} {
		assert.Equal(t, tc.want, DescribeFileError(tc.err))
	}
}
