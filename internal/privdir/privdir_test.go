package privdir

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/docker-credential-stackit/docker-credential-stackit/internal/platform"
	"github.com/docker-credential-stackit/docker-credential-stackit/internal/safefile"
)

// us is a Unix platform on which the test process owns what it creates,
// whatever the host OS.
func us() platform.Platform {
	return platform.Platform{GOOS: "linux", Geteuid: func() int { return 1000 }, Owner: func(fs.FileInfo) int { return 1000 }}
}

func mode(t *testing.T, path string) fs.FileMode {
	t.Helper()
	fi, err := os.Lstat(path)
	require.NoError(t, err)
	return fi.Mode().Perm()
}

// unixModes skips tests that assert real Unix modes or make symlinks, which
// Windows does not have (or allows only to administrators).
func unixModes(t *testing.T) {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("needs Unix file modes")
	}
}

func TestEnsureCreatesMissingDirsPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	require.NoError(t, Ensure(dir, platform.Current()))
	fi, err := os.Stat(dir)
	require.NoError(t, err)
	assert.True(t, fi.IsDir())
	if platform.Current().UnixPermissions() {
		assert.Equal(t, fs.FileMode(0o700), fi.Mode().Perm())
	}
}

func TestEnsureTightensLooseDirOwnedByUs(t *testing.T) {
	unixModes(t)
	dir := t.TempDir()
	require.NoError(t, os.Chmod(dir, 0o777))
	require.NoError(t, Ensure(dir, us()))
	assert.Equal(t, fs.FileMode(0o700), mode(t, dir))
}

func TestEnsureRefusesDirOwnedByAnotherUser(t *testing.T) {
	unixModes(t)
	dir := t.TempDir()
	require.NoError(t, os.Chmod(dir, 0o777))
	p := platform.Platform{GOOS: "linux", Geteuid: func() int { return 1000 }, Owner: func(fs.FileInfo) int { return 1001 }}
	err := Ensure(dir, p)
	require.ErrorIs(t, err, safefile.ErrUntrusted)
	assert.Equal(t, dir+": is owned by uid 1001, not by you (uid 1000); if it is yours, run: chown 1000 "+dir, err.Error())
	assert.Equal(t, fs.FileMode(0o777), mode(t, dir), "someone else's dir is not touched")
}

func TestEnsureRefusesSymlinkedDir(t *testing.T) {
	unixModes(t)
	target := t.TempDir()
	require.NoError(t, os.Chmod(target, 0o755))
	link := filepath.Join(t.TempDir(), "cache")
	require.NoError(t, os.Symlink(target, link))
	for _, p := range []platform.Platform{us(), {GOOS: "windows"}} {
		err := Ensure(link, p)
		require.ErrorIs(t, err, safefile.ErrUntrusted, p.GOOS)
		assert.Contains(t, err.Error(), "symbolic link")
	}
	assert.Equal(t, fs.FileMode(0o755), mode(t, target), "the link's target is not touched")
}

func TestEnsureRefusesDanglingSymlink(t *testing.T) {
	unixModes(t)
	link := filepath.Join(t.TempDir(), "cache")
	require.NoError(t, os.Symlink(filepath.Join(t.TempDir(), "gone"), link))
	err := Ensure(link, us())
	require.ErrorIs(t, err, safefile.ErrUntrusted)
}

func TestEnsureRefusesFileInTheWay(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache")
	require.NoError(t, os.WriteFile(path, nil, 0o600))
	err := Ensure(path, us())
	require.ErrorIs(t, err, ErrNotDir)
	assert.Equal(t, path+": is a file, not a directory; move it out of the way", err.Error())
}

func TestEnsureFailsWhenAParentIsAFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	err := Ensure(filepath.Join(file, "sub"), us())
	var e *safefile.Error
	require.ErrorAs(t, err, &e)
	assert.Contains(t, e.Problem, "cannot create the directory")
}

func TestEnsureReportsFailedChmod(t *testing.T) {
	unixModes(t)
	dir := t.TempDir()
	require.NoError(t, os.Chmod(dir, 0o755))
	denied := &fs.PathError{Op: "chmod", Path: dir, Err: fs.ErrPermission}
	err := ensure(dir, us(), func(string, fs.FileMode) error { return denied })
	require.ErrorIs(t, err, safefile.ErrUntrusted)
	require.ErrorIs(t, err, fs.ErrPermission)
	assert.Equal(t, dir+": has mode 0755 and could not be made private (permission denied); run: chmod 700 "+dir, err.Error())
}

func TestEnsureLeavesPrivateDirAlone(t *testing.T) {
	unixModes(t)
	dir := t.TempDir()
	require.NoError(t, os.Chmod(dir, 0o700))
	err := ensure(dir, us(), func(string, fs.FileMode) error { return errors.New("chmod must not be called") })
	assert.NoError(t, err)
}

func TestEnsureOnWindowsSkipsModeAndOwner(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.Chmod(dir, 0o777))
	win := platform.Platform{GOOS: "windows", Owner: func(fs.FileInfo) int { return 4242 }}
	err := ensure(dir, win, func(string, fs.FileMode) error { return errors.New("chmod must not be called") })
	require.NoError(t, err)
	assert.Equal(t, fs.FileMode(0o777), mode(t, dir))
}
