package tokensource_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/docker-credential-stackit/docker-credential-stackit/tokensource"
	"github.com/docker-credential-stackit/docker-credential-stackit/tokensource/tokensourcetest"
)

func TestCheckPrivateKey(t *testing.T) {
	srv := tokensourcetest.NewServer(t)
	acct := srv.NewAccount(t, "ci-sa@sa.stackit.cloud")
	other := srv.NewAccount(t, "other@sa.stackit.cloud")
	dir := t.TempDir()
	flowWith := func(env map[string]string) *tokensource.KeyFlow {
		t.Helper()
		flow, err := tokensource.NewKeyFlow(envOf(env), tokensource.Overrides{})
		require.NoError(t, err)
		return flow
	}

	embedded := flowWith(map[string]string{tokensource.EnvServiceAccountKeyPath: acct.WriteKeyFile(t, dir, true)})
	source, err := embedded.CheckPrivateKey()
	require.NoError(t, err)
	assert.Equal(t, "credentials.privateKey in the key", source)

	pemPath := writeFile(t, dir, "key.pem", acct.PrivateKeyPEM)
	separate := flowWith(map[string]string{
		tokensource.EnvServiceAccountKeyPath: acct.WriteKeyFile(t, dir, false),
		tokensource.EnvPrivateKeyPath:        pemPath,
	})
	source, err = separate.CheckPrivateKey()
	require.NoError(t, err)
	assert.Equal(t, "STACKIT_PRIVATE_KEY_PATH ("+pemPath+")", source)

	// Another account's private key is caught before any request.
	wrong := flowWith(map[string]string{
		tokensource.EnvServiceAccountKeyPath: acct.WriteKeyFile(t, dir, false),
		tokensource.EnvPrivateKey:            string(other.PrivateKeyPEM),
	})
	source, err = wrong.CheckPrivateKey()
	require.Error(t, err)
	assert.Equal(t, "STACKIT_PRIVATE_KEY", source)
	assert.Contains(t, err.Error(), "the private key from STACKIT_PRIVATE_KEY does not belong to key id "+acct.Kid)
	assert.NotContains(t, err.Error(), "PRIVATE KEY-----")

	// Without a publicKey in the key file there is nothing to compare.
	var key map[string]any
	require.NoError(t, json.Unmarshal(acct.KeyJSON(false), &key))
	delete(key, "publicKey")
	noPub, _ := json.Marshal(key)
	unchecked := flowWith(map[string]string{
		tokensource.EnvServiceAccountKey: string(noPub),
		tokensource.EnvPrivateKey:        string(other.PrivateKeyPEM),
	})
	_, err = unchecked.CheckPrivateKey()
	assert.NoError(t, err)

	missing := flowWith(map[string]string{tokensource.EnvServiceAccountKeyPath: acct.WriteKeyFile(t, dir, false)})
	_, err = missing.CheckPrivateKey()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "has no embedded private key; set STACKIT_PRIVATE_KEY_PATH")
}
