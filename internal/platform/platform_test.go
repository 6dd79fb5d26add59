package platform

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCurrentDescribesTheRunningSystem(t *testing.T) {
	p := Current()
	assert.Equal(t, runtime.GOOS, p.GOOS)
	assert.Equal(t, runtime.GOOS == "windows", p.Windows())
	home, err := os.UserHomeDir()
	got, gotErr := p.HomeDir()
	assert.Equal(t, home, got)
	assert.Equal(t, err, gotErr)
	if p.UnixPermissions() {
		assert.Equal(t, os.Geteuid(), p.Euid())
	}
}

func TestWindowsHasNoUnixPermissionsNorUids(t *testing.T) {
	p := Platform{GOOS: "windows", Geteuid: func() int { return 1000 }, Owner: func(fs.FileInfo) int { return 1000 }}
	assert.False(t, p.UnixPermissions())
	assert.Equal(t, -1, p.Euid(), "uids do not apply on Windows even if a getter is set")
	assert.Equal(t, -1, p.FileOwner(nil))
}

func TestUnixPlatformsHaveUnixPermissions(t *testing.T) {
	for _, goos := range []string{"linux", "darwin", "freebsd"} {
		assert.True(t, Platform{GOOS: goos}.UnixPermissions(), goos)
	}
}

func TestInjectedLookupsWin(t *testing.T) {
	p := Platform{
		GOOS:        "darwin",
		UserHomeDir: func() (string, error) { return "/Users/ann", nil },
		Geteuid:     func() int { return 501 },
		Owner:       func(fs.FileInfo) int { return 42 },
	}
	home, err := p.HomeDir()
	require.NoError(t, err)
	assert.Equal(t, "/Users/ann", home)
	assert.Equal(t, 501, p.Euid())
	assert.Equal(t, 42, p.FileOwner(nil))
}

func TestHomeDirErrorIsPassedOn(t *testing.T) {
	boom := errors.New("no home")
	_, err := Platform{GOOS: "linux", UserHomeDir: func() (string, error) { return "", boom }}.HomeDir()
	assert.ErrorIs(t, err, boom)
}

func TestFileOwnerReadsTheRealOwnerOnUnix(t *testing.T) {
	p := Current()
	if !p.UnixPermissions() {
		t.Skip("no uids here")
	}
	path := filepath.Join(t.TempDir(), "f")
	require.NoError(t, os.WriteFile(path, nil, 0o600))
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.Geteuid(), p.FileOwner(fi))
}

func TestTransientFileErrorOnlyForWindowsSharingErrors(t *testing.T) {
	win := Platform{GOOS: "windows"}
	for _, code := range []syscall.Errno{5, 32, 33} {
		err := &os.LinkError{Op: "rename", Old: "a", New: "b", Err: code}
		assert.True(t, win.TransientFileError(err), "errno %d", code)
		assert.False(t, Platform{GOOS: "linux"}.TransientFileError(err), "never transient on Unix")
	}
	assert.False(t, win.TransientFileError(&os.LinkError{Op: "rename", Err: syscall.Errno(2)}), "not found is final")
	assert.False(t, win.TransientFileError(errors.New("other")))
	assert.False(t, win.TransientFileError(nil))
}
