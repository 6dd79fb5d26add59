// Package platform describes the operating-system facts that the helper's
// code branches on, as a value rather than runtime.GOOS checks scattered
// through the code. Because it is a value, a test on Linux can hand code a
// Windows or macOS Platform and exercise that branch.
package platform

import (
	"errors"
	"io/fs"
	"os"
	"runtime"
	"syscall"
)

// Platform is the set of OS facts and OS lookups the helper depends on.
// The zero value of each func field means "use the real one", so a test
// can write Platform{GOOS: "windows"} and override only what it needs.
type Platform struct {
	// GOOS is a runtime.GOOS value such as "linux", "darwin" or "windows".
	GOOS string
	// UserHomeDir defaults to os.UserHomeDir.
	UserHomeDir func() (string, error)
	// Geteuid defaults to os.Geteuid. It is not consulted on platforms
	// without Unix permissions.
	Geteuid func() int
	// Owner returns the uid owning the file fi describes, or -1 if unknown.
	// It defaults to reading fi.Sys() on Unix and to -1 elsewhere. Tests
	// running as root fake "owned by someone else" through it.
	Owner func(fi fs.FileInfo) int
}

// Current returns the platform the program runs on.
func Current() Platform {
	return Platform{GOOS: runtime.GOOS, UserHomeDir: os.UserHomeDir, Geteuid: os.Geteuid, Owner: sysOwner}
}

// Windows reports whether p is Windows.
func (p Platform) Windows() bool { return p.GOOS == "windows" }

// UnixPermissions reports whether file modes and owners mean what they do
// on Unix. On Windows Go reports made-up modes (0666/0444) and chmod only
// toggles the read-only bit, so code must neither warn about modes nor
// try to tighten them there.
func (p Platform) UnixPermissions() bool { return p.GOOS != "windows" && p.GOOS != "plan9" }

// HomeDir returns the user's home directory.
func (p Platform) HomeDir() (string, error) {
	if p.UserHomeDir != nil {
		return p.UserHomeDir()
	}
	return os.UserHomeDir()
}

// Euid returns the effective user id, or -1 where uids do not apply
// (Windows).
func (p Platform) Euid() int {
	if !p.UnixPermissions() {
		return -1
	}
	if p.Geteuid != nil {
		return p.Geteuid()
	}
	return os.Geteuid()
}

// FileOwner returns the uid owning the file fi describes, or -1 where
// that is unknown or uids do not apply.
func (p Platform) FileOwner(fi fs.FileInfo) int {
	if !p.UnixPermissions() {
		return -1
	}
	if p.Owner != nil {
		return p.Owner(fi)
	}
	return sysOwner(fi)
}

// Windows error codes a rename or remove returns while another process
// (an antivirus scanner, the search indexer, a reader that opened the file
// without FILE_SHARE_DELETE) briefly holds the file open. They are compared
// as numbers so that a test on Linux can produce them.
const (
	errorAccessDenied     = syscall.Errno(5)
	errorSharingViolation = syscall.Errno(32)
	errorLockViolation    = syscall.Errno(33)
)

// TransientFileError reports whether err, from a rename or remove, is one
// that goes away by itself within moments, so that the operation is worth
// retrying. Only Windows has such errors; on Unix a rename either works or
// fails for good.
func (p Platform) TransientFileError(err error) bool {
	if !p.Windows() {
		return false
	}
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return false
	}
	return errno == errorAccessDenied || errno == errorSharingViolation || errno == errorLockViolation
}
