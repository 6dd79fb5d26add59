package credhelper

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/docker-credential-stackit/docker-credential-stackit/internal/testfs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestConfigTypoSuggestsTheFieldMeant(t *testing.T) {
	_, err := ParseConfig([]byte(`{"registries":{"cr.example.com":{"serviceAcountKeyPath":"/k.json"}}}`))
	require.Error(t, err)
	assert.Equal(t, `unknown field "serviceAcountKeyPath" in registries[cr.example.com]; did you mean serviceAccountKeyPath?`, err.Error())

	_, err = ParseConfig([]byte(`{"registry":{}}`))
	require.Error(t, err)
	assert.Equal(t, `unknown field "registry" at the top level; did you mean registries?`, err.Error())

	_, err = ParseConfig([]byte(`{"registries":{"cr.example.com":{"frobnicate":1}}}`))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `unknown field "frobnicate" in registries[cr.example.com]; the fields are serviceAccountKeyPath, privateKeyPath`)

	_, err = ParseConfig([]byte(`{"registries":{"cr.example.com":{"serviceAccountKeypath":"/k.json"}}}`))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `"serviceAccountKeypath" must be spelt "serviceAccountKeyPath"`, "a case slip keeps its own words")
}

func TestConfigSyntaxErrorsGiveLineAndColumn(t *testing.T) {
	_, err := ParseConfig([]byte("{\n  \"registries\": {\n    \"cr.example.com\": {},,\n  }\n}\n"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "invalid JSON at line 3, column 26")

	_, err = ParseConfig([]byte(`{"registries": {`))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "invalid JSON: it ends in the middle of the JSON")

	_, err = ParseConfig([]byte(`{"registries":{"cr.example.com":{"username":5}}}`))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "must be a string, not a number")
}

func TestRelativeKeyPathsInTheConfigMustBeAbsolute(t *testing.T) {
	for field, value := range map[string]string{"serviceAccountKeyPath": "keys/sa.json", "privateKeyPath": "~/key.pem"} {
		_, err := ParseConfig([]byte(`{"registries":{"cr.example.com":{"` + field + `":"` + value + `"}}}`))
		require.Error(t, err, field)
		assert.Contains(t, err.Error(), "registries.cr.example.com."+field+": \""+value+"\" is not an absolute path; it must be absolute")
	}
	_, err := ParseConfig([]byte(`{"registries":{"cr.example.com":{"serviceAccountKeyPath":"{\"credentials\":{\"privateKey\":\"SECRETSECRET\"}}"}}}`))
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "SECRETSECRET", "pasted content is never echoed")
	_, err = ParseConfig([]byte(testfs.HostAbs(`{"registries":{"cr.example.com":{"serviceAccountKeyPath":"/etc/sa.json","privateKeyPath":"/etc/key.pem"}}}`)))
	assert.NoError(t, err)
}

func TestRelativeCacheDirIsIgnoredWithOneWarning(t *testing.T) {
	env := map[string]string{EnvCacheDir: "cache", EnvConfig: filepath.Join(t.TempDir(), "config.json")}
	var stderr bytes.Buffer
	h, err := New(WithEnv(func(k string) string { return env[k] }), WithWarnings(&stderr))
	require.NoError(t, err)
	assert.Empty(t, h.Settings().Cache.Path, "the cache is not used")
	assert.Equal(t, "docker-credential-stackit: warning: DOCKER_CREDENTIAL_STACKIT_CACHE_DIR \"cache\" is not an absolute path, so the token cache is not used; set an absolute path\n", stderr.String())
	_, err = os.Stat("cache")
	assert.True(t, os.IsNotExist(err), "nothing is created relative to the working directory")
}

func TestNegativeRetryBudgetSaysNegative(t *testing.T) {
	s := ParseSettings(func(k string) string { return map[string]string{EnvRetryBudget: "-1s"}[k] }, CurrentPlatform(), "")
	require.Error(t, s.Err)
	assert.Equal(t, `DOCKER_CREDENTIAL_STACKIT_RETRY_BUDGET="-1s" is negative; use a positive duration such as 20s, or 0`, s.Err.Error())
}
