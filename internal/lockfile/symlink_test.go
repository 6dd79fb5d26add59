package lockfile

import (
	"io/fs"
	"os"
	"testing"
)

// symlinkOrSkip makes link point at target, or skips the test where this
// system cannot: Windows refuses without the symlink privilege (Developer
// Mode), and Wine's CreateSymbolicLink reports success but makes nothing
// that Lstat sees.
func symlinkOrSkip(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Skipf("cannot create symbolic links here: %v", err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Skipf("os.Symlink reported success but made no symbolic link (Wine does this): %v", err)
	}
}
