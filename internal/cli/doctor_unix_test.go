//go:build unix

package cli

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/docker-credential-stackit/docker-credential-stackit/credhelper"
)

func TestDoctorFilesSectionNamesAFIFOConfig(t *testing.T) {
	f := newFixture(t)
	fifo := filepath.Join(f.dir, "fifo.json")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600))
	f.env[credhelper.EnvConfig] = fifo
	out, _, code := f.doctor(t)
	assert.Equal(t, 1, code)
	assert.Contains(t, out, "cannot be used: read helper config "+fifo+": is a named pipe")
}

func TestDoctorAndStatusSayWhyTheCacheDirIsNotUsed(t *testing.T) {
	f := newFixture(t)
	dir := f.env[credhelper.EnvCacheDir]
	require.NoError(t, os.MkdirAll(dir, 0o700))
	require.NoError(t, os.Chmod(dir, 0o777))
	out, _, _ := f.doctor(t)
	assert.Contains(t, out, "cache           not used, so every request fetches a new token: cache dir "+dir+" is writable by others")
	assert.Contains(t, out, "chmod 700")
	st, code := f.run(t, "", "status")
	assert.Equal(t, 0, code)
	assert.Contains(t, st, "cache not used (see doctor)")
}
