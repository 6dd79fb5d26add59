//go:build unix

package safefile

import (
	"context"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/docker-credential-stackit/docker-credential-stackit/internal/platform"
)

func TestReadFileRefusesFIFOWithoutHanging(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Skipf("no FIFOs here: %v", err)
	}
	var err error
	within(t, func() { _, _, err = ReadFile(path, platform.Current()) })
	require.ErrorIs(t, err, ErrNotRegular)
	assert.Contains(t, err.Error(), "named pipe")
}

func TestReadFileRefusesDevice(t *testing.T) {
	if _, err := os.Stat("/dev/zero"); err != nil {
		t.Skip("no /dev/zero")
	}
	var err error
	within(t, func() { _, _, err = ReadFile("/dev/zero", platform.Current()) })
	require.ErrorIs(t, err, ErrNotRegular)
	assert.Equal(t, "/dev/zero: is a device, not a regular file", err.Error())
}

func TestReadFileRefusesSocket(t *testing.T) {
	dir, err := os.MkdirTemp("", "sock") // short path: socket names are limited
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	path := filepath.Join(dir, "s")
	l, err := (&net.ListenConfig{}).Listen(context.Background(), "unix", path)
	if err != nil {
		t.Skipf("no unix sockets here: %v", err)
	}
	defer l.Close()
	within(t, func() { _, _, err = ReadFile(path, platform.Current()) })
	require.ErrorIs(t, err, ErrNotRegular)
	assert.Contains(t, err.Error(), "socket")
}

func TestReadFileFollowsSymlinksButNoFollowRefusesThem(t *testing.T) {
	target := writeFile(t, "key.json", []byte("content"), 0o600)
	link := filepath.Join(t.TempDir(), "link.json")
	require.NoError(t, os.Symlink(target, link))

	data, _, err := ReadFile(link, platform.Current())
	require.NoError(t, err)
	assert.Equal(t, "content", string(data))

	_, _, err = ReadFileNoFollow(link, platform.Current())
	require.ErrorIs(t, err, ErrNotRegular)
	assert.Contains(t, err.Error(), "symbolic link")
	assert.True(t, strings.HasPrefix(err.Error(), link+": "), err.Error())

	data, _, err = ReadFileNoFollow(target, platform.Current())
	require.NoError(t, err)
	assert.Equal(t, "content", string(data))
}

func TestCheckTrustedAcceptsPrivateFileInPrivateDir(t *testing.T) {
	path := writeFile(t, "key.json", []byte(secret), 0o600)
	require.NoError(t, os.Chmod(filepath.Dir(path), 0o700))
	assert.NoError(t, CheckTrusted(path, platform.Current()))
}

func TestCheckTrustedRefusesGroupWritableFile(t *testing.T) {
	path := writeFile(t, "key.json", []byte(secret), 0o620)
	err := CheckTrusted(path, platform.Current())
	require.ErrorIs(t, err, ErrUntrusted)
	assert.Equal(t, path+": is writable by group or others (mode 0620); run: chmod go-w "+path, err.Error())
	assert.NotContains(t, err.Error(), "s3cr3t")
}

func TestCheckTrustedRefusesWorldWritableDirectory(t *testing.T) {
	path := writeFile(t, "key.json", []byte(secret), 0o600)
	dir := filepath.Dir(path)
	require.NoError(t, os.Chmod(dir, 0o777))
	err := CheckTrusted(path, platform.Current())
	require.ErrorIs(t, err, ErrUntrusted)
	assert.Contains(t, err.Error(), dir+": is writable by group or others (mode 0777); run: chmod go-w "+dir)
}

func TestCheckTrustedAcceptsStickyDirectoryLikeTmp(t *testing.T) {
	path := writeFile(t, "key.json", []byte(secret), 0o600)
	require.NoError(t, os.Chmod(filepath.Dir(path), 0o777|fs.ModeSticky))
	assert.NoError(t, CheckTrusted(path, platform.Current()))
}

func TestCheckTrustedChecksTheSymlinkTargetsDirectory(t *testing.T) {
	target := writeFile(t, "key.json", []byte(secret), 0o600)
	require.NoError(t, os.Chmod(filepath.Dir(target), 0o777))
	linkDir := t.TempDir()
	require.NoError(t, os.Chmod(linkDir, 0o700))
	link := filepath.Join(linkDir, "key.json")
	require.NoError(t, os.Symlink(target, link))
	err := CheckTrusted(link, platform.Current())
	require.ErrorIs(t, err, ErrUntrusted)
	assert.Contains(t, err.Error(), filepath.Dir(target)+":")
}
