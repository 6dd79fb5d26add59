package atomicfile

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/docker-credential-stackit/docker-credential-stackit/internal/testfs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWriteReplacesAndKeepsMode(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.json")
	require.NoError(t, os.WriteFile(path, []byte("old"), 0o600))

	require.NoError(t, Write(path, []byte("new"), 0o644))
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "new", string(data))
	fi, err := os.Stat(path)
	require.NoError(t, err)
	testfs.AssertPerm(t, 0o644, fi, "the requested mode, not the umask's")

	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 1, "no temp file left behind")
}

func TestWriteFailureLeavesTargetAndNoTemp(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "target")
	require.NoError(t, os.Mkdir(path, 0o700)) // renaming a file over a directory fails
	err := Write(path, []byte("data"), 0o600)
	require.Error(t, err)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		assert.False(t, strings.HasPrefix(e.Name(), TempPrefix), "temp file %s left behind", e.Name())
	}

	err = Write(filepath.Join(dir, "missing-dir", "f"), []byte("x"), 0o600)
	require.Error(t, err)
}

func TestWriteRecomputableReplacesLikeWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "entry.json")
	require.NoError(t, WriteRecomputable(path, []byte("old"), 0o600))
	require.NoError(t, WriteRecomputable(path, []byte("new"), 0o600))
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "new", string(data))
	if runtime.GOOS != "windows" { // Unix modes
		fi, err := os.Stat(path)
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	}
	left, err := filepath.Glob(filepath.Join(filepath.Dir(path), TempPrefix+"*"))
	require.NoError(t, err)
	assert.Empty(t, left, "no temp file is left behind")
}
