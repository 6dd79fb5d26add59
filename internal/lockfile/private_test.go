package lockfile

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/docker-credential-stackit/docker-credential-stackit/internal/platform"
	"github.com/docker-credential-stackit/docker-credential-stackit/internal/safefile"
	"github.com/docker-credential-stackit/docker-credential-stackit/internal/testfs"
)

func TestPrivateLockCreatesAndLocksAPrivateFile(t *testing.T) {
	path := lockPath(t)
	p := platform.Current()
	unlock, ok, err := TryLock(path, Private(p))
	require.NoError(t, err)
	require.True(t, ok)
	_, ok, err = TryLock(path, Private(p))
	require.NoError(t, err)
	assert.False(t, ok, "still excludes a second holder")
	unlock()

	unlock, err = Lock(context.Background(), path, time.Second, Private(p))
	require.NoError(t, err)
	unlock()
	unlock, err = WaitShared(context.Background(), path, time.Second, Private(p))
	require.NoError(t, err)
	unlock()
	if runtime.GOOS != "windows" {
		fi, err := os.Stat(path)
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	}
}

func TestPrivateLockRefusesASymlinkAndLeavesItsTargetAlone(t *testing.T) {
	target := filepath.Join(t.TempDir(), "victim")
	path := lockPath(t)
	testfs.SymlinkOrSkip(t, target, path)
	p := platform.Current()
	_, _, err := TryLock(path, Private(p))
	require.ErrorIs(t, err, safefile.ErrNotRegular)
	assert.Contains(t, err.Error(), path+": is a symbolic link")
	_, err = Lock(context.Background(), path, time.Second, Private(p))
	require.ErrorIs(t, err, safefile.ErrNotRegular)
	_, err = WaitShared(context.Background(), path, time.Second, Private(p))
	require.ErrorIs(t, err, safefile.ErrNotRegular)
	assert.NoFileExists(t, target, "the link's target was not created")
}

func TestPrivateLockRefusesAFileOwnedBySomeoneElse(t *testing.T) {
	path := lockPath(t)
	require.NoError(t, os.WriteFile(path, nil, 0o600))
	p := platform.Platform{GOOS: "linux", Geteuid: func() int { return 1000 }, Owner: func(fs.FileInfo) int { return 1001 }}
	_, _, err := TryLock(path, Private(p))
	require.ErrorIs(t, err, safefile.ErrUntrusted)
	assert.Equal(t, path+": is owned by uid 1001, not by you (uid 1000); remove it: rm "+safefile.ShellQuote(path), err.Error())

	win := platform.Platform{GOOS: "windows", Owner: func(fs.FileInfo) int { return 1001 }}
	unlock, ok, err := TryLock(path, Private(win))
	require.NoError(t, err, "owners are not checked where there are no uids")
	require.True(t, ok)
	unlock()
}

func TestPrivateLockRefusesADirectory(t *testing.T) {
	path := lockPath(t)
	require.NoError(t, os.Mkdir(path, 0o700))
	_, _, err := TryLock(path, Private(platform.Current()))
	require.Error(t, err)
}
