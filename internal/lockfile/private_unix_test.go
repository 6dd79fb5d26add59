//go:build unix

package lockfile

import (
	"context"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/docker-credential-stackit/docker-credential-stackit/internal/platform"
	"github.com/docker-credential-stackit/docker-credential-stackit/internal/safefile"
)

func TestPrivateLockRefusesAFIFOWithoutHanging(t *testing.T) {
	path := lockPath(t)
	require.NoError(t, syscall.Mkfifo(path, 0o600))
	done := make(chan error, 1)
	go func() {
		_, err := Lock(context.Background(), path, time.Second, Private(platform.Current()))
		done <- err
	}()
	select {
	case err := <-done:
		require.ErrorIs(t, err, safefile.ErrNotRegular)
		assert.Contains(t, err.Error(), "is not a regular file")
	case <-time.After(generous):
		t.Fatal("locking a FIFO hung")
	}
}

func TestPrivateLockRefusesARealFileOfAnotherUid(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown a file to another uid")
	}
	path := lockPath(t)
	require.NoError(t, os.WriteFile(path, nil, 0o600))
	require.NoError(t, os.Chown(path, 12345, 12345))
	_, _, err := TryLock(path, Private(platform.Current()))
	require.ErrorIs(t, err, safefile.ErrUntrusted)
	assert.Contains(t, err.Error(), "is owned by uid 12345, not by you (uid 0)")
}
