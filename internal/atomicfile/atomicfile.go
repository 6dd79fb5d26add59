// Package atomicfile replaces files so that readers see the old content or
// the new, never a mix, even if the writer is killed halfway.
//
// On Windows a rename over a file, or a remove, fails with ACCESS_DENIED or
// a sharing violation while another process (an antivirus scanner, the
// search indexer, a concurrent reader of a cache entry) has the file open
// for a moment. Write (for its final rename), Rename and Remove retry
// those errors, and only those, for up to RetryBudget; on Unix they never
// retry.
package atomicfile

import (
	"os"
	"path/filepath"
	"time"

	"github.com/docker-credential-stackit/docker-credential-stackit/internal/platform"
)

// TempPrefix starts the name of every temp file Write creates, so that
// leftovers of killed writers can be recognised and cleaned up.
const TempPrefix = ".tmp-"

// RetryBudget bounds the total time spent waiting between retries of one
// rename or remove. Scanners hold files for milliseconds; a file still
// locked after a second is held for good, and the error is returned.
const RetryBudget = time.Second

const (
	firstRetryDelay = 5 * time.Millisecond
	maxRetryDelay   = 200 * time.Millisecond
)

// Write writes data to a temp file in path's directory with mode perm,
// fsyncs it and renames it over path.
func Write(path string, data []byte, perm os.FileMode) error {
	return system().write(path, data, perm)
}

// WriteRecomputable is Write without the fsync, for data that is only a
// copy of something that can be had again (a cached token): a crash may
// leave the old content, or an empty or partial file, which its readers
// must treat as missing. Readers still never see a mix while the system
// runs. The fsync costs about half a millisecond, an eighth of a cold get.
func WriteRecomputable(path string, data []byte, perm os.FileMode) error {
	o := system()
	o.noSync = true
	return o.write(path, data, perm)
}

// Rename is os.Rename, retrying transient Windows errors.
func Rename(oldpath, newpath string) error { return system().renameFile(oldpath, newpath) }

// Remove is os.Remove, retrying transient Windows errors.
func Remove(path string) error { return system().removeFile(path) }

// fileOps are the OS calls Write makes that can fail transiently, so that
// a test on Linux can play Windows.
type fileOps struct {
	p      platform.Platform
	rename func(oldpath, newpath string) error
	remove func(path string) error
	sleep  func(time.Duration)
	// noSync skips the fsync (WriteRecomputable).
	noSync bool
}

func system() fileOps {
	return fileOps{p: platform.Current(), rename: os.Rename, remove: os.Remove, sleep: time.Sleep}
}

func (o fileOps) renameFile(oldpath, newpath string) error {
	return o.retry(func() error { return o.rename(oldpath, newpath) })
}

func (o fileOps) removeFile(path string) error {
	return o.retry(func() error { return o.remove(path) })
}

// retry runs op until it succeeds, fails in a way that is not transient on
// o.p, or RetryBudget has been spent sleeping, with doubling delays.
func (o fileOps) retry(op func() error) error {
	delay, slept := firstRetryDelay, time.Duration(0)
	for {
		err := op()
		if err == nil || !o.p.TransientFileError(err) || slept >= RetryBudget {
			return err
		}
		d := min(delay, RetryBudget-slept)
		o.sleep(d)
		slept += d
		delay = min(2*delay, maxRetryDelay)
	}
}

func (o fileOps) write(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), TempPrefix+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	done := false
	defer func() {
		if !done {
			_ = f.Close()
			// One try: retrying here too could double the wait, and a
			// leftover temp file is removed by the cache's pruning.
			_ = o.remove(tmp)
		}
	}()
	// CreateTemp uses 0600; Chmod also undoes any umask for wider modes the
	// caller asked to keep.
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if !o.noSync {
		if err := f.Sync(); err != nil {
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := o.renameFile(tmp, path); err != nil {
		return err
	}
	done = true
	return nil
}
