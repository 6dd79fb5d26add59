// Package lockfile serialises processes through a sidecar lock file with a
// bounded wait, so that concurrent docker pulls neither corrupt shared files
// nor hang forever behind a stuck process.
//
// Lock files are created 0600 and never deleted: removing one while another
// process waits on it would let two processes hold "the" lock at once.
package lockfile

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/gofrs/flock"
)

// retryDelay is how often Lock polls for an exclusive lock.
const retryDelay = 15 * time.Millisecond

// ErrHeld matches (errors.Is) every *HeldError.
var ErrHeld = errors.New("lock is held by another process")

// HeldError says that another process kept the lock longer than the caller
// was willing to wait.
type HeldError struct {
	Path   string        // the lock file
	Waited time.Duration // how long the caller waited
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("lock %s is held by another process for more than %s", e.Path, e.Waited)
}

// Unwrap returns ErrHeld.
func (e *HeldError) Unwrap() error { return ErrHeld }

// Lock takes the exclusive lock on path, creating the file 0600 if needed,
// waiting at most wait (wait <= 0: one try). It returns a *HeldError if the
// lock stays held, and ctx's error, wrapped, if ctx ends first. unlock is
// safe to call more than once. Options such as Private apply to the file.
func Lock(ctx context.Context, path string, wait time.Duration, opts ...Option) (unlock func(), err error) {
	fl, checked, err := newLock(path, opts)
	if err != nil {
		return nil, err
	}
	var ok bool
	if wait <= 0 {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("wait for lock %s: %w", path, err)
		}
		ok, err = fl.TryLock()
	} else {
		lctx, cancel := context.WithTimeout(ctx, wait)
		ok, err = fl.TryLockContext(lctx, retryDelay)
		cancel()
	}
	if ok {
		if err := verify(fl, path, checked); err != nil {
			return nil, err
		}
		return release(fl), nil
	}
	_ = fl.Close()
	switch {
	case ctx.Err() != nil:
		return nil, fmt.Errorf("wait for lock %s: %w", path, ctx.Err())
	case err == nil || errors.Is(err, context.DeadlineExceeded):
		return nil, &HeldError{Path: path, Waited: max(wait, 0)}
	}
	return nil, fmt.Errorf("lock %s: %w", path, err)
}

// TryLock takes the exclusive lock on path if it is free, without waiting.
// ok is false, with a nil error, when another process holds it.
func TryLock(path string, opts ...Option) (unlock func(), ok bool, err error) {
	fl, checked, err := newLock(path, opts)
	if err != nil {
		return nil, false, err
	}
	ok, err = fl.TryLock()
	if err != nil {
		_ = fl.Close()
		return nil, false, fmt.Errorf("lock %s: %w", path, err)
	}
	if !ok {
		_ = fl.Close()
		return nil, false, nil
	}
	if err := verify(fl, path, checked); err != nil {
		return nil, false, err
	}
	return release(fl), true, nil
}

// WaitShared waits, at most wait, for a shared lock on path. Its use is to
// wait for another process's exclusive hold to end: the kernel grants a
// blocked shared lock to every waiter the moment the holder lets go, so no
// waiter polls and none lags behind a retry delay.
//
// The blocking request cannot be withdrawn. On timeout or cancellation it
// is left to a goroutine that releases the lock and closes the file if it
// is granted later, so a long-lived process never keeps a stray lock.
func WaitShared(ctx context.Context, path string, wait time.Duration, opts ...Option) (unlock func(), err error) {
	if err := ctx.Err(); err != nil {
		// Already cancelled: start no request that would outlive the call.
		return nil, fmt.Errorf("wait for lock %s: %w", path, err)
	}
	fl, checked, err := newLock(path, opts)
	if err != nil {
		return nil, err
	}
	granted := make(chan error, 1)
	go func() { granted <- fl.RLock() }()
	timer := time.NewTimer(max(wait, 0))
	defer timer.Stop()
	select {
	case err := <-granted:
		if err != nil {
			_ = fl.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if err := verify(fl, path, checked); err != nil {
			return nil, err
		}
		return release(fl), nil
	case <-timer.C:
		err = &HeldError{Path: path, Waited: max(wait, 0)}
	case <-ctx.Done():
		err = fmt.Errorf("wait for lock %s: %w", path, ctx.Err())
	}
	go func() {
		if <-granted == nil {
			_ = fl.Unlock()
		}
		_ = fl.Close()
	}()
	return nil, err
}

func release(fl *flock.Flock) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			_ = fl.Unlock()
			_ = fl.Close()
		})
	}
}
