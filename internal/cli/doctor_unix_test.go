//go:build unix

package cli

import (
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
