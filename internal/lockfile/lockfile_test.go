package lockfile

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// generous bounds a "does not hang" check; nothing here asserts speed.
const generous = 5 * time.Second

func lockPath(t *testing.T) string { return filepath.Join(t.TempDir(), "entry.lock") }

func TestLockCreatesPrivateLockFile(t *testing.T) {
	path := lockPath(t)
	unlock, err := Lock(context.Background(), path, time.Second)
	require.NoError(t, err)
	defer unlock()
	fi, err := os.Stat(path)
	require.NoError(t, err)
	if runtime.GOOS != "windows" {
		assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	}
}

func TestSecondHolderTimesOutWithHeldError(t *testing.T) {
	path := lockPath(t)
	unlock, err := Lock(context.Background(), path, time.Second)
	require.NoError(t, err)

	_, err = Lock(context.Background(), path, 30*time.Millisecond)
	require.ErrorIs(t, err, ErrHeld)
	var held *HeldError
	require.ErrorAs(t, err, &held)
	assert.Equal(t, path, held.Path)
	assert.Equal(t, "lock "+path+" is held by another process for more than 30ms", err.Error())

	_, err = Lock(context.Background(), path, 0)
	require.ErrorIs(t, err, ErrHeld, "wait 0 tries once")

	unlock()
	unlock() // idempotent
	unlock2, err := Lock(context.Background(), path, 0)
	require.NoError(t, err, "free again after unlock")
	unlock2()
}

func TestLockWaitsForTheHolderToLetGo(t *testing.T) {
	path := lockPath(t)
	unlock, err := Lock(context.Background(), path, time.Second)
	require.NoError(t, err)
	got := make(chan error, 1)
	go func() {
		u, err := Lock(context.Background(), path, time.Minute)
		if err == nil {
			u()
		}
		got <- err
	}()
	unlock()
	select {
	case err := <-got:
		assert.NoError(t, err)
	case <-time.After(generous):
		t.Fatal("waiter did not get the lock after it was released")
	}
}

func TestLockHonoursContextCancellation(t *testing.T) {
	path := lockPath(t)
	unlock, err := Lock(context.Background(), path, time.Second)
	require.NoError(t, err)
	defer unlock()

	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan error, 1)
	go func() { _, err := Lock(ctx, path, time.Hour); got <- err }()
	cancel()
	select {
	case err := <-got:
		require.ErrorIs(t, err, context.Canceled)
		assert.NotErrorIs(t, err, ErrHeld, "the caller gave up; the holder is not to blame")
		assert.Contains(t, err.Error(), path)
	case <-time.After(generous):
		t.Fatal("Lock ignored the cancelled context")
	}

	_, err = Lock(ctx, path, 0)
	assert.ErrorIs(t, err, context.Canceled)
}

func TestTryLockReportsHeldWithoutError(t *testing.T) {
	path := lockPath(t)
	unlock, ok, err := TryLock(path)
	require.NoError(t, err)
	require.True(t, ok)
	_, ok, err = TryLock(path)
	require.NoError(t, err)
	assert.False(t, ok)
	unlock()
	unlock, ok, err = TryLock(path)
	require.NoError(t, err)
	assert.True(t, ok)
	unlock()
}

func TestTryLockFailsInMissingDirectory(t *testing.T) {
	_, ok, err := TryLock(filepath.Join(t.TempDir(), "missing", "x.lock"))
	require.Error(t, err)
	assert.False(t, ok)
}

func TestWaitSharedIsGrantedToAllWaitersWhenTheHolderLetsGo(t *testing.T) {
	path := lockPath(t)
	unlock, err := Lock(context.Background(), path, time.Second)
	require.NoError(t, err)

	type result struct {
		unlock func()
		err    error
	}
	got := make(chan result, 2)
	for range 2 {
		go func() {
			u, err := WaitShared(context.Background(), path, time.Minute)
			got <- result{u, err}
		}()
	}
	unlock()
	var unlocks []func()
	for range 2 {
		select {
		case r := <-got:
			require.NoError(t, r.err)
			unlocks = append(unlocks, r.unlock)
		case <-time.After(generous):
			t.Fatal("shared waiter not granted after release")
		}
	}
	_, ok, err := TryLock(path)
	require.NoError(t, err)
	assert.False(t, ok, "shared holders exclude an exclusive one")
	for _, u := range unlocks {
		u()
	}
	u, ok, err := TryLock(path)
	require.NoError(t, err)
	assert.True(t, ok)
	u()
}

func TestWaitSharedTimesOutAndLaterReleasesTheAbandonedLock(t *testing.T) {
	path := lockPath(t)
	unlock, err := Lock(context.Background(), path, time.Second)
	require.NoError(t, err)

	_, err = WaitShared(context.Background(), path, 20*time.Millisecond)
	require.ErrorIs(t, err, ErrHeld)
	assert.Contains(t, err.Error(), path)

	unlock()
	// The abandoned request is granted now and must be let go by itself.
	assert.Eventually(t, func() bool {
		u, ok, err := TryLock(path)
		if ok {
			u()
		}
		return ok && err == nil
	}, generous, 10*time.Millisecond, "the abandoned shared request kept the lock")
}

func TestWaitSharedHonoursContextCancellation(t *testing.T) {
	path := lockPath(t)
	unlock, err := Lock(context.Background(), path, time.Second)
	require.NoError(t, err)
	defer unlock()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan error, 1)
	go func() { _, err := WaitShared(ctx, path, time.Hour); done <- err }()
	select {
	case err := <-done:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(generous):
		t.Fatal("WaitShared ignored the cancelled context")
	}
}
