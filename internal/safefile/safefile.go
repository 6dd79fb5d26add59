// Package safefile reads the helper's small input files (keys, tokens,
// robot accounts, cache entries) in one hardened way, and words file and
// JSON errors so that they never echo file content: these files hold
// private keys and bearer tokens.
//
// A read never blocks (a FIFO or device path fails at once instead of
// hanging docker), never loads more than MaxSize bytes (a path pointing at
// /dev/zero or a log fails fast), and every failure is an *Error that names
// the path, the problem and, where there is one, the fix.
package safefile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/docker-credential-stackit/docker-credential-stackit/internal/platform"
)

// MaxSize bounds every read. Real inputs are a few KiB at most.
const MaxSize = 1 << 20

// Kinds of failure, for errors.Is. OS errors such as fs.ErrNotExist and
// fs.ErrPermission stay matchable as well.
var (
	// ErrNotRegular: the path is a directory, FIFO, device, socket, or (for
	// ReadFileNoFollow) a symbolic link.
	ErrNotRegular = errors.New("not a regular file")
	// ErrTooLarge: the file is larger than MaxSize.
	ErrTooLarge = errors.New("larger than 1 MiB")
	// ErrUntrusted: another user could have written or replaced the file.
	ErrUntrusted = errors.New("writable by another user")
)

// Error is a failure about one path, in words fit for the user. It never
// carries file content.
type Error struct {
	Path    string
	Problem string // e.g. "is a named pipe (FIFO), not a regular file"
	Fix     string // a command or step that resolves it; may be empty
	Err     error  // the kind (ErrNotRegular, ...) or the OS error
}

// Error returns "PATH: PROBLEM; FIX" on one line.
func (e *Error) Error() string {
	s := e.Path + ": " + e.Problem
	if e.Fix != "" {
		s += "; " + e.Fix
	}
	return s
}

// Unwrap returns the kind or the OS error.
// HowToFix returns the fix, so that callers (doctor) can print it on its
// own line without parsing the message.
func (e *Error) HowToFix() string { return e.Fix }

func (e *Error) Unwrap() error { return e.Err }

// ReadFile reads a small regular file, following symbolic links (users
// link key files from secret stores and dotfile repositories). It returns
// the content and the opened file's info, for mode warnings.
func ReadFile(path string, p platform.Platform) ([]byte, fs.FileInfo, error) {
	return read(path, p, false)
}

// ReadFileNoFollow is ReadFile for files the helper writes itself, such as
// cache entries: a symbolic link in their place was not made by the helper
// and is refused with ErrNotRegular.
func ReadFileNoFollow(path string, p platform.Platform) ([]byte, fs.FileInfo, error) {
	return read(path, p, true)
}

func read(path string, p platform.Platform, noFollow bool) ([]byte, fs.FileInfo, error) {
	var linkInfo fs.FileInfo
	if noFollow && !openRefusesSymlinks {
		// No O_NOFOLLOW here: look first, and below make sure that what
		// was opened is what was looked at.
		fi, err := os.Lstat(path)
		if err != nil {
			return nil, nil, osError(path, p, err)
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return nil, nil, notRegular(path, fi.Mode())
		}
		linkInfo = fi
	}
	f, err := open(path, noFollow)
	if err != nil {
		return nil, nil, openError(path, p, noFollow, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, osError(path, p, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, nil, notRegular(path, fi.Mode())
	}
	if linkInfo != nil && !os.SameFile(linkInfo, fi) {
		return nil, nil, &Error{Path: path, Problem: "was replaced while being opened", Fix: "try again", Err: ErrNotRegular}
	}
	if fi.Size() > MaxSize {
		return nil, nil, tooLarge(path)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, nil, osError(path, p, err)
	}
	if len(data) > MaxSize { // it grew since the fstat
		return nil, nil, tooLarge(path)
	}
	return data, fi, nil
}

func tooLarge(path string) error {
	return &Error{Path: path, Problem: "is larger than 1 MiB, too large for this input", Err: ErrTooLarge}
}

// openError words a failed open. Opening a socket fails with ENXIO and a
// symbolic link under O_NOFOLLOW with ELOOP (EMLINK on some BSDs); rather
// than match those numbers, look at what is at the path.
func openError(path string, p platform.Platform, noFollow bool, err error) error {
	if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, fs.ErrPermission) {
		if fi, lerr := os.Lstat(path); lerr == nil {
			if noFollow && fi.Mode()&fs.ModeSymlink != 0 {
				return notRegular(path, fi.Mode())
			}
			if fi, serr := os.Stat(path); serr == nil && !fi.Mode().IsRegular() {
				return notRegular(path, fi.Mode())
			}
		}
	}
	return osError(path, p, err)
}

func osError(path string, p platform.Platform, err error) error {
	e := &Error{Path: path, Problem: DescribeFileError(err), Err: err}
	if errors.Is(err, fs.ErrPermission) {
		if p.UnixPermissions() {
			e.Fix = "check its owner and mode and those of its directories (ls -l " + ShellQuote(path) + ")"
		} else {
			e.Fix = "check that your account may read it (Properties, Security)"
		}
	}
	return e
}

func notRegular(path string, mode fs.FileMode) error {
	var what string
	switch {
	case mode.IsDir():
		what = "is a directory, not a file"
	case mode&fs.ModeSymlink != 0:
		what = "is a symbolic link, which is not followed for this file"
	case mode&fs.ModeNamedPipe != 0:
		what = "is a named pipe (FIFO), not a regular file"
	case mode&fs.ModeSocket != 0:
		what = "is a socket, not a regular file"
	case mode&fs.ModeDevice != 0:
		what = "is a device, not a regular file"
	default:
		what = "is not a regular file"
	}
	return &Error{Path: path, Problem: what, Err: ErrNotRegular}
}

// CheckTrusted applies ssh's rule for key files: the file and its directory
// must be owned by the effective user or root and writable by no one else,
// or another user could have put their own key or token there. If path is
// a symbolic link, the target's directory is checked too. A world-writable
// directory with the sticky bit (such as /tmp) passes, because there no one
// else can replace a file we own. On platforms without Unix permissions
// there is nothing to check and it returns nil.
func CheckTrusted(path string, p platform.Platform) error {
	if !p.UnixPermissions() {
		return nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return osError(path, p, err)
	}
	if err := checkOwnerAndMode(path, fi, p, false); err != nil {
		return err
	}
	dirs := []string{filepath.Dir(path)}
	if real, err := filepath.EvalSymlinks(path); err == nil && filepath.Dir(real) != dirs[0] {
		dirs = append(dirs, filepath.Dir(real))
	}
	for _, dir := range dirs {
		di, err := os.Stat(dir)
		if err != nil {
			return osError(dir, p, err)
		}
		if err := checkOwnerAndMode(dir, di, p, true); err != nil {
			return err
		}
	}
	return nil
}

func checkOwnerAndMode(path string, fi fs.FileInfo, p platform.Platform, isDir bool) error {
	euid := p.Euid()
	if owner := p.FileOwner(fi); owner >= 0 && owner != euid && owner != 0 {
		return &Error{
			Path:    path,
			Problem: fmt.Sprintf("is owned by uid %d, not by you (uid %d) or root", owner, euid),
			Fix:     fmt.Sprintf("if it is yours, run: chown %d %s", euid, ShellQuote(path)),
			Err:     ErrUntrusted,
		}
	}
	perm := fi.Mode().Perm()
	if perm&0o022 == 0 || (isDir && fi.Mode()&fs.ModeSticky != 0) {
		return nil
	}
	return &Error{
		Path:    path,
		Problem: fmt.Sprintf("is writable by group or others (mode %04o)", perm),
		Fix:     "run: chmod go-w " + ShellQuote(path),
		Err:     ErrUntrusted,
	}
}

// ShellQuote quotes path for a POSIX shell if it needs it, so that a fix
// naming it can be pasted as it is.
func ShellQuote(path string) string {
	if path != "" && !strings.ContainsFunc(path, func(c rune) bool {
		return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("/._-+:@%,=~", c))
	}) {
		return path
	}
	return "'" + strings.ReplaceAll(path, "'", `'\''`) + "'"
}
