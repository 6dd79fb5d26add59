// Package testfs holds the file-system helpers the tests of several
// packages share, so that their platform rules are written once: Unix
// modes that Windows does not have, symbolic links that Windows (and
// Wine) may refuse, and paths pasted into JSON fixtures. It is for tests
// only.
package testfs

import (
	"encoding/json"
	"io/fs"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// AssertPerm checks the Unix permission bits of fi. Windows has none: Go
// reports 0666 (or 0444 for a read-only file) whatever was asked for, so
// there it checks nothing and the rest of the test still runs.
func AssertPerm(t *testing.T, want fs.FileMode, fi fs.FileInfo, msgAndArgs ...any) {
	t.Helper()
	if runtime.GOOS == "windows" {
		return
	}
	assert.Equal(t, want, fi.Mode().Perm(), msgAndArgs...)
}

// SymlinkOrSkip makes link point at target, or skips the test where this
// system cannot: Windows refuses without the symlink privilege (Developer
// Mode), and Wine's CreateSymbolicLink reports success but makes nothing
// that Lstat sees.
func SymlinkOrSkip(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Skipf("cannot create symbolic links here: %v", err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Skipf("os.Symlink reported success but made no symbolic link (Wine does this): %v", err)
	}
}

// JSONQuote is s as a JSON string, quotes included: a path pasted into a
// JSON fixture as it is breaks on Windows, where its backslashes are escapes.
func JSONQuote(s string) string {
	b, _ := json.Marshal(s) // a string always marshals
	return string(b)
}

// HostAbs makes the Unix absolute paths in a fixture ("/k.json") absolute on
// this host too: on Windows a path needs a drive, so "/k.json" becomes
// "C:/k.json" there. Elsewhere s is returned as it is.
func HostAbs(s string) string {
	if runtime.GOOS != "windows" {
		return s
	}
	return strings.ReplaceAll(s, `"/`, `"C:/`)
}
