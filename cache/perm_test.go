package cache

import (
	"io/fs"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
)

// assertPerm checks the Unix permission bits of fi. Windows has none: Go
// reports 0666 (or 0444 for a read-only file) whatever was asked for, so
// there it checks nothing and the rest of the test still runs.
func assertPerm(t *testing.T, want fs.FileMode, fi fs.FileInfo, msgAndArgs ...any) {
	t.Helper()
	if runtime.GOOS == "windows" {
		return
	}
	assert.Equal(t, want, fi.Mode().Perm(), msgAndArgs...)
}
