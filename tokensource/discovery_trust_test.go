package tokensource_test

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/docker-credential-stackit/docker-credential-stackit/internal/problem"
	"github.com/docker-credential-stackit/docker-credential-stackit/tokensource"
)

func TestCredentialsFileOthersCanWriteIsRefused(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Unix owners and modes; Windows has ACLs, which the helper does not judge")
	}
	dir := t.TempDir()
	creds := filepath.Join(dir, "credentials.json")
	require.NoError(t, os.WriteFile(creds, []byte(`{"STACKIT_SERVICE_ACCOUNT_KEY_PATH": "/attacker/key.json"}`), 0o600))
	require.NoError(t, os.Chmod(creds, 0o666))
	env := envOf(map[string]string{tokensource.EnvCredentialsPath: creds})

	_, err := tokensource.Discover(tokensource.Options{Env: env}, tokensource.Overrides{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), creds)
	assert.NotContains(t, err.Error(), "/attacker/key.json", "nothing the untrusted file says is used or shown")
	_, fix := problem.Split(err)
	assert.Contains(t, fix, "chmod", "the fix says how, the way ssh does")

	require.NoError(t, os.Chmod(creds, 0o600))
	require.NoError(t, os.Chmod(dir, 0o777))
	_, err = tokensource.Discover(tokensource.Options{Env: env}, tokensource.Overrides{})
	require.Error(t, err, "a directory others can write is as bad as the file")
	assert.Contains(t, err.Error(), dir)
}
