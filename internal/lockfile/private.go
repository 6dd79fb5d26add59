package lockfile

import (
	"fmt"
	"io/fs"
	"os"

	"github.com/gofrs/flock"

	"github.com/docker-credential-stackit/docker-credential-stackit/internal/platform"
	"github.com/docker-credential-stackit/docker-credential-stackit/internal/safefile"
)

// Option changes how a lock file is opened.
type Option func(*options)

type options struct {
	private bool
	p       platform.Platform
}

// Private is for lock files in a directory of the user's own, such as the
// token cache: the file is opened without following a symbolic link and
// without blocking (a FIFO in its place fails at once instead of hanging),
// created 0600 if missing, and checked before it is locked. Unless it is a
// regular file owned by the effective user on p (the owner is not checked
// where p has no Unix permissions) the lock fails with a *safefile.Error
// that matches safefile.ErrNotRegular or safefile.ErrUntrusted. The file
// that is locked is then checked to be the one that was inspected.
func Private(p platform.Platform) Option {
	return func(o *options) { o.private, o.p = true, p }
}

// newLock returns the flock for path and, for Private, the checked file's
// info, which the locked file must match.
func newLock(path string, opts []Option) (*flock.Flock, fs.FileInfo, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if !o.private {
		return flock.New(path, flock.SetPermissions(0o600)), nil, nil
	}
	fi, err := inspect(path, o.p)
	if err != nil {
		return nil, nil, err
	}
	return flock.New(path, flock.SetPermissions(0o600), flock.SetFlag(privateFlags)), fi, nil
}

// inspect opens path as Private describes, checks it and closes it again.
func inspect(path string, p platform.Platform) (fs.FileInfo, error) {
	var seen fs.FileInfo
	if !openRefusesSymlinks {
		fi, err := os.Lstat(path)
		switch {
		case err == nil && fi.Mode()&fs.ModeSymlink != 0:
			return nil, refusal(path, "is a symbolic link, which is not followed for a lock file", safefile.ErrNotRegular)
		case err == nil:
			seen = fi
		}
	}
	f, err := os.OpenFile(path, privateFlags, 0o600)
	if err != nil {
		if fi, lerr := os.Lstat(path); lerr == nil && fi.Mode()&fs.ModeSymlink != 0 {
			return nil, refusal(path, "is a symbolic link, which is not followed for a lock file", safefile.ErrNotRegular)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, refusal(path, fmt.Sprintf("is not a regular file (mode %s)", fi.Mode().Type()), safefile.ErrNotRegular)
	}
	if seen != nil && !os.SameFile(seen, fi) {
		return nil, refusal(path, "was replaced while being opened", safefile.ErrNotRegular)
	}
	if euid, owner := p.Euid(), p.FileOwner(fi); owner >= 0 && owner != euid {
		return nil, refusal(path, fmt.Sprintf("is owned by uid %d, not by you (uid %d)", owner, euid), safefile.ErrUntrusted)
	}
	return fi, nil
}

func refusal(path, problem string, kind error) error {
	return &safefile.Error{Path: path, Problem: problem, Fix: "remove it: rm " + safefile.ShellQuote(path), Err: kind}
}

// verify checks that the locked file is the one inspect checked; on a
// mismatch it releases the lock.
func verify(fl *flock.Flock, path string, want fs.FileInfo) error {
	if want == nil {
		return nil
	}
	got, err := fl.Stat()
	if err == nil && os.SameFile(want, got) {
		return nil
	}
	_ = fl.Unlock()
	_ = fl.Close()
	return refusal(path, "was replaced while being locked", safefile.ErrNotRegular)
}
