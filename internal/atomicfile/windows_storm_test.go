package atomicfile

import (
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/docker-credential-stackit/docker-credential-stackit/internal/platform"
)

// windowsLikeFS plays Windows' rule on Linux: a rename over a file, or a
// remove, fails with a sharing violation while any reader has it open.
type windowsLikeFS struct {
	open     atomic.Int32
	attempts atomic.Int32
}

func (w *windowsLikeFS) rename(oldpath, newpath string) error {
	w.attempts.Add(1)
	if w.open.Load() > 0 {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: sharingViolation}
	}
	return os.Rename(oldpath, newpath)
}

func (w *windowsLikeFS) remove(path string) error { return os.Remove(path) }

// read holds the file open for a moment, as a lock-free cache reader does.
func (w *windowsLikeFS) read(path string) {
	w.open.Add(1)
	defer w.open.Add(-1)
	_, _ = os.ReadFile(path)
	time.Sleep(200 * time.Microsecond)
}

// storm plays rounds of a token refresh: the fetcher, which holds the
// entry's lock and so is its only writer, replaces the entry while readers
// (the other gets, which read without a lock) each open it once at a
// moment of their own in the same few milliseconds. It returns how many
// writes failed.
func (w *windowsLikeFS) storm(t *testing.T, p platform.Platform, readers, rounds int) (failed int) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "entry.json")
	require.NoError(t, os.WriteFile(path, []byte("seed"), 0o600))
	ops := fileOps{p: p, rename: w.rename, remove: w.remove, sleep: time.Sleep}
	for round := range rounds {
		var wg sync.WaitGroup
		for r := range readers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Spread over 4 ms, deterministically per round and reader.
				time.Sleep(time.Duration((round*7+r*13)%40) * 100 * time.Microsecond)
				w.read(path)
			}()
		}
		time.Sleep(2 * time.Millisecond)
		if err := ops.write(path, []byte("token"), 0o600); err != nil {
			failed++
		}
		wg.Wait()
	}
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Contains(t, []string{"seed", "token"}, string(data), "the file only ever holds a whole write")
	return failed
}

// TestWindowsRefreshStormLosesNoWrite is the storm of the issue on Linux
// with Windows' sharing rule: 16 concurrent gets read the entry while the
// fetcher replaces it, 50 times. Without retries writes fail (and each
// failure cost a second token request); with them, none does.
func TestWindowsRefreshStormLosesNoWrite(t *testing.T) {
	const readers, rounds = 16, 50
	var with windowsLikeFS
	failed := with.storm(t, platform.Platform{GOOS: "windows"}, readers, rounds)
	assert.Zero(t, failed, "every write lands once the readers let go")
	assert.Greater(t, int(with.attempts.Load()), rounds, "sharing violations happened and were retried")
	t.Logf("windows rule, with retries: %d writes, %d rename attempts, %d failed", rounds, with.attempts.Load(), failed)

	// The same storm where the error is not retried (as on a platform
	// where it is not transient) shows what the retries prevent.
	var without windowsLikeFS
	lost := without.storm(t, platform.Platform{GOOS: "linux"}, readers, rounds)
	t.Logf("windows rule, no retries: %d writes, %d failed", rounds, lost)
	assert.Positive(t, lost, "the simulation is real: without retries some writes fail")
}
