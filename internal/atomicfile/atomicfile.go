// Package atomicfile replaces files so that readers see the old content or
// the new, never a mix, even if the writer is killed halfway.
package atomicfile

import (
	"os"
	"path/filepath"
)

// TempPrefix starts the name of every temp file Write creates, so that
// leftovers of killed writers can be recognised and cleaned up.
const TempPrefix = ".tmp-"

// Write writes data to a temp file in path's directory with mode perm,
// fsyncs it and renames it over path.
func Write(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), TempPrefix+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	done := false
	defer func() {
		if !done {
			_ = f.Close()
			_ = os.Remove(tmp)
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
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	done = true
	return nil
}
