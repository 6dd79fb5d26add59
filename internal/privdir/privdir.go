// Package privdir makes sure the directories holding tokens, logins and
// warning markers are private: created 0700, really directories, not links
// to somewhere else, owned by the user running the helper, and readable by
// no one else. A loose mode left by a copy or restore is tightened, since
// that is safe when the directory is ours; anything else is refused with
// the fix, because writing secrets there could leak them.
package privdir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/docker-credential-stackit/docker-credential-stackit/internal/platform"
	"github.com/docker-credential-stackit/docker-credential-stackit/internal/safefile"
)

// ErrNotDir: something other than a directory is at the path.
var ErrNotDir = errors.New("not a directory")

// Ensure creates dir (and its parents) with mode 0700 if needed and checks
// it as described in the package comment. Every failure is a
// *safefile.Error; refusals match safefile.ErrUntrusted or ErrNotDir.
// Where p has no Unix permissions (Windows) owner and mode are not
// checked, since Go reports made-up modes there.
func Ensure(dir string, p platform.Platform) error {
	return ensure(dir, p, os.Chmod)
}

func ensure(dir string, p platform.Platform, chmod func(string, fs.FileMode) error) error {
	mkErr := os.MkdirAll(dir, 0o700)
	fi, err := os.Lstat(dir)
	switch {
	case err != nil && mkErr != nil:
		return &safefile.Error{Path: dir, Problem: "cannot create the directory: " + safefile.DescribeFileError(mkErr), Err: mkErr}
	case err != nil:
		return &safefile.Error{Path: dir, Problem: safefile.DescribeFileError(err), Err: err}
	case fi.Mode()&fs.ModeSymlink != 0:
		return &safefile.Error{
			Path:    dir,
			Problem: "is a symbolic link; the helper keeps secrets only in a real directory",
			Fix:     "replace the link with a directory of the same name",
			Err:     safefile.ErrUntrusted,
		}
	case !fi.IsDir():
		return &safefile.Error{Path: dir, Problem: "is a file, not a directory", Fix: "move it out of the way", Err: ErrNotDir}
	case mkErr != nil:
		return &safefile.Error{Path: dir, Problem: "cannot create the directory: " + safefile.DescribeFileError(mkErr), Err: mkErr}
	}
	if !p.UnixPermissions() {
		return nil
	}
	euid := p.Euid()
	if owner := p.FileOwner(fi); owner >= 0 && owner != euid {
		return &safefile.Error{
			Path:    dir,
			Problem: fmt.Sprintf("is owned by uid %d, not by you (uid %d)", owner, euid),
			Fix:     fmt.Sprintf("if it is yours, run: chown %d %s", euid, safefile.ShellQuote(dir)),
			Err:     safefile.ErrUntrusted,
		}
	}
	if perm := fi.Mode().Perm(); perm != 0o700 {
		if err := chmod(dir, 0o700); err != nil {
			return &safefile.Error{
				Path:    dir,
				Problem: fmt.Sprintf("has mode %04o and could not be made private (%s)", perm, safefile.DescribeFileError(err)),
				Fix:     "run: chmod 700 " + safefile.ShellQuote(dir),
				Err:     fmt.Errorf("%w: %w", safefile.ErrUntrusted, err),
			}
		}
	}
	return nil
}
