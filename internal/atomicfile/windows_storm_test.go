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
func (w *windowsLikeFS) storm(t testing.TB, p platform.Platform, readers, rounds int) (failed int) {
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

// TestWindowsReaderHoldingTheEntryDoesNotLoseTheWrite scripts the race
// of the issue on Linux with Windows' sharing rule, without timing: a
// reader has the entry open when the fetcher's rename comes, and closes
// it only after that rename failed. The retry then lands the write; with
// the error not retried, the write is lost (and on Windows, where that
// was the case, every waiter then fetched a second token).
func TestWindowsReaderHoldingTheEntryDoesNotLoseTheWrite(t *testing.T) {
	for _, c := range []struct {
		name    string
		p       platform.Platform
		landed  bool
		renames int32
	}{
		{"windows: retried", platform.Platform{GOOS: "windows"}, true, 2},
		{"not retried", platform.Platform{GOOS: "linux"}, false, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "entry.json")
			require.NoError(t, os.WriteFile(path, []byte("old"), 0o600))
			var fs windowsLikeFS
			fs.open.Add(1) // the reader has it open
			ops := fileOps{p: c.p, rename: fs.rename, remove: fs.remove,
				// The reader lets go while the writer waits to retry.
				sleep: func(time.Duration) { fs.open.Add(-1) }}
			err := ops.write(path, []byte("new"), 0o600)
			data, rerr := os.ReadFile(path)
			require.NoError(t, rerr)
			assert.Equal(t, c.renames, fs.attempts.Load())
			if c.landed {
				require.NoError(t, err)
				assert.Equal(t, "new", string(data))
			} else {
				require.Error(t, err, "without the retry the write is lost")
				assert.Equal(t, "old", string(data), "and the old entry stays whole")
			}
		})
	}
}

// BenchmarkWindowsRefreshStorm measures the storm of the issue under
// Windows' sharing rule: each round, 16 gets read the entry at moments of
// their own while the fetcher replaces it. It reports the writes that
// failed per round, with the retries and without them:
//
//	go test -run '^$' -bench WindowsRefreshStorm ./internal/atomicfile
func BenchmarkWindowsRefreshStorm(b *testing.B) {
	for _, c := range []struct {
		name string
		p    platform.Platform
	}{{"retried", platform.Platform{GOOS: "windows"}}, {"not-retried", platform.Platform{GOOS: "linux"}}} {
		b.Run(c.name, func(b *testing.B) {
			var fs windowsLikeFS
			rounds := 0
			failed := 0
			for b.Loop() {
				failed += fs.storm(b, c.p, 16, 1)
				rounds++
			}
			b.ReportMetric(float64(failed)/float64(rounds), "failed-writes/round")
			b.ReportMetric(float64(fs.attempts.Load())/float64(rounds), "renames/round")
		})
	}
}
