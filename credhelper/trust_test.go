//go:build unix

package credhelper

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker-credential-helpers/credentials"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/docker-credential-stackit/docker-credential-stackit/cache"
	"github.com/docker-credential-stackit/docker-credential-stackit/internal/safefile"
)

// trustFixture is a helper whose config lives in dir/helper/config.json.
type trustFixture struct {
	dir, config string
	env         map[string]string
	stderr      bytes.Buffer
	platform    Platform
}

func newTrustFixture(t *testing.T) *trustFixture {
	t.Helper()
	if !CurrentPlatform().System().UnixPermissions() {
		t.Skip("no Unix owners and modes here")
	}
	dir := t.TempDir()
	f := &trustFixture{dir: dir, config: filepath.Join(dir, "helper", "config.json"), platform: CurrentPlatform()}
	f.env = map[string]string{EnvConfig: f.config, "HOME": dir}
	writeConfigFile(t, f.config, `{"registries": {}}`)
	return f
}

func (f *trustFixture) helper(t *testing.T) *Helper {
	t.Helper()
	h, err := New(WithEnv(func(k string) string { return f.env[k] }), WithWarnings(&f.stderr), WithCacheDir(""), WithPlatform(f.platform))
	require.NoError(t, err)
	return h
}

func (f *trustFixture) writeConfig(t *testing.T, body string, mode os.FileMode) {
	t.Helper()
	require.NoError(t, os.WriteFile(f.config, []byte(body), 0o600))
	require.NoError(t, os.Chmod(f.config, mode))
}

func TestHelperConfigWritableByGroupOrOthersIsRefusedWithTheChmodFix(t *testing.T) {
	for _, mode := range []os.FileMode{0o620, 0o602, 0o666} {
		f := newTrustFixture(t)
		f.writeConfig(t, `{"registries":{"cr.example.com":{}}}`, mode)
		_, _, err := f.helper(t).Get("cr.example.com")
		require.Error(t, err, "mode %04o", mode)
		assert.False(t, IsNotFound(err))
		assert.Contains(t, err.Error(), "helper config "+f.config+" is writable by group or others")
		assert.Contains(t, err.Error(), "refusing to use it; run: chmod go-w "+f.config)
		assert.ErrorIs(t, err, safefile.ErrUntrusted)

		_, _, err = f.helper(t).Get("ghcr.example.org")
		assert.Error(t, err, "the config decides what is served, so even a foreign host cannot be answered")
	}
}

func TestHelperConfigReadableByOthersIsFine(t *testing.T) {
	f := newTrustFixture(t)
	f.writeConfig(t, `{"registries":{"cr.example.com":{}}}`, 0o644)
	require.NoError(t, os.Chmod(filepath.Dir(f.config), 0o755))
	_, ok, err := f.helper(t).Served("cr.example.com")
	require.NoError(t, err)
	assert.True(t, ok)
}

func TestHelperConfigInADirectoryOthersCanWriteIsRefused(t *testing.T) {
	f := newTrustFixture(t)
	f.writeConfig(t, `{}`, 0o600)
	require.NoError(t, os.Chmod(filepath.Dir(f.config), 0o775))
	_, err := f.helper(t).ServedHosts()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "helper config "+f.config+": its directory "+filepath.Dir(f.config)+" is writable by group or others (mode 0775)")
	assert.Contains(t, err.Error(), "run: chmod go-w "+filepath.Dir(f.config))
}

func TestHelperConfigOwnedBySomeoneElseIsRefusedWithTheChownFix(t *testing.T) {
	f := newTrustFixture(t)
	f.writeConfig(t, `{}`, 0o600)
	me := os.Geteuid()
	f.platform.EUID = me
	f.platform.Owner = func(fi fs.FileInfo) int {
		if fi.Name() == "config.json" {
			return 4242
		}
		return me
	}
	_, err := f.helper(t).ServedHosts()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "helper config "+f.config+" is owned by uid 4242, not by you")
	assert.Contains(t, err.Error(), "chown")
}

func TestHelperConfigThatIsADeviceOrFIFOIsAOneLineError(t *testing.T) {
	f := newTrustFixture(t)
	fifo := filepath.Join(f.dir, "fifo")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600))
	for path, want := range map[string]string{"/dev/zero": "is a device", fifo: "is a named pipe (FIFO)", f.dir: "is a directory"} {
		f.env[EnvConfig] = path
		// A foreign host too: the config is read for every get.
		_, _, err := f.helper(t).Get("foreign.example.org")
		require.Error(t, err, path)
		assert.Contains(t, err.Error(), "read helper config "+path+": "+want)
		assert.NotContains(t, err.Error(), "\n")
	}
}

func TestStoredLoginsWritableByOthersAreRefused(t *testing.T) {
	f := newTrustFixture(t)
	h := f.helper(t)
	require.NoError(t, h.Add(&credentials.Credentials{ServerURL: DefaultRegistry, Username: "robot$x", Secret: "robot-secret"}))
	logins := filepath.Join(filepath.Dir(f.config), "logins.json")
	require.NoError(t, os.Chmod(logins, 0o666))
	_, _, err := f.helper(t).Get(DefaultRegistry)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "stored logins "+logins+" is writable by group or others (mode 0666)")
	assert.Contains(t, err.Error(), "chmod go-w "+logins)
	assert.NotContains(t, err.Error(), "robot-secret")
	fi, err := os.Stat(logins)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o666), fi.Mode().Perm(), "a file someone else may have written is not blessed by tightening it")

	plan, err := f.helper(t).Plan(DefaultRegistry)
	require.NoError(t, err)
	require.Error(t, plan.Err, "doctor and status show it through the plan")
	assert.Contains(t, plan.Err.Error(), "writable by group or others")

	// Readable only: tightened and used, as before.
	require.NoError(t, os.Chmod(logins, 0o644))
	user, _, err := f.helper(t).Get(DefaultRegistry)
	require.NoError(t, err)
	assert.Equal(t, "robot$x", user)
	fi, err = os.Stat(logins)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
}

func TestStoredLoginsOwnedBySomeoneElseAreRefused(t *testing.T) {
	f := newTrustFixture(t)
	require.NoError(t, f.helper(t).Add(&credentials.Credentials{ServerURL: DefaultRegistry, Username: "robot$x", Secret: "robot-secret"}))
	me := os.Geteuid()
	f.platform.EUID = me
	f.platform.Owner = func(fi fs.FileInfo) int {
		if fi.Name() == "logins.json" {
			return 4242
		}
		return me
	}
	_, _, err := f.helper(t).Get(DefaultRegistry)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "is owned by uid 4242")
	assert.True(t, strings.Contains(err.Error(), "chown "), err.Error())
}

// A FIFO planted where a once-a-day marker goes neither hangs the warning
// nor is followed: the marker is read without blocking or following links.
func TestWarningMarkerThatIsAFIFODoesNotHang(t *testing.T) {
	if !CurrentPlatform().System().UnixPermissions() {
		t.Skip("FIFOs are a Unix thing")
	}
	dir := t.TempDir()
	var out bytes.Buffer
	h, err := New(WithEnv(func(string) string { return "" }), WithCacheDir(dir), WithWarnings(&out),
		WithConfigPath(filepath.Join(dir, "config.json")))
	require.NoError(t, err)
	require.NoError(t, syscall.Mkfifo(filepath.Join(dir, "warned-"+cache.FileName("k")), 0o600))
	done := make(chan struct{})
	go func() { h.warnOncePerDay("k", "the key file is readable by others"); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the warning hung on a FIFO where its marker goes")
	}
	assert.Contains(t, out.String(), "the key file is readable by others", "shown, since no marker could be read")
}
