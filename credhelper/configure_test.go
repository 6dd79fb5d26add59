package credhelper

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func configureEnv(t *testing.T) (map[string]string, string) {
	dir := t.TempDir()
	env := map[string]string{
		"HOME":          dir,
		"DOCKER_CONFIG": filepath.Join(dir, "docker"),
		EnvConfig:       filepath.Join(dir, "helper", "config.json"),
	}
	return env, filepath.Join(dir, "docker", "config.json")
}

func configure(t *testing.T, env map[string]string, args ...string) (string, error) {
	var stderr bytes.Buffer
	err := ConfigureDocker(args, func(k string) string { return env[k] }, env[EnvConfig], &stderr)
	return stderr.String(), err
}

func TestConfigureDockerKeepsEverythingElse(t *testing.T) {
	env, path := configureEnv(t)
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	original := `{"auths":{"x.example.com":{"auth":"dTpw"}},"credsStore":"desktop","credHelpers":{"gcr.io":"gcloud","registry.onstackit.cloud":"old"},"experimental":"enabled","proxies":{"default":{"httpProxy":"http://p:3128"}}}`
	require.NoError(t, os.WriteFile(path, []byte(original), 0o644))
	require.NoError(t, os.Chmod(path, 0o644))

	msg, err := configure(t, env, "--registry", "registry.onstackit.cloud", "--registry=HTTPS://Team.Example.com:5000/v2/")
	require.NoError(t, err)
	assert.Contains(t, msg, `credHelpers["registry.onstackit.cloud"] was "old"`)

	var doc map[string]any
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &doc))
	var want map[string]any
	require.NoError(t, json.Unmarshal([]byte(original), &want))
	want["credHelpers"] = map[string]any{"gcr.io": "gcloud", "registry.onstackit.cloud": "stackit", "team.example.com:5000": "stackit"}
	assert.Equal(t, want, doc)

	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o644), fi.Mode().Perm(), "mode kept")

	cfg, err := LoadConfig(env[EnvConfig])
	require.NoError(t, err)
	assert.Contains(t, cfg.Registries, "team.example.com:5000", "non-default host is now served")
	assert.NotContains(t, cfg.Registries, DefaultRegistry)

	// Run twice: nothing changes, byte for byte.
	helperBefore, err := os.ReadFile(env[EnvConfig])
	require.NoError(t, err)
	msg, err = configure(t, env, "--registry", "registry.onstackit.cloud", "--registry", "team.example.com:5000")
	require.NoError(t, err)
	assert.Contains(t, msg, "nothing changed")
	after, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, string(data), string(after))
	helperAfter, err := os.ReadFile(env[EnvConfig])
	require.NoError(t, err)
	assert.Equal(t, string(helperBefore), string(helperAfter))
}

func TestConfigureDockerFreshAndDefaults(t *testing.T) {
	env, path := configureEnv(t)
	env[EnvRegistries] = "extra.example.com"
	_, err := configure(t, env)
	require.NoError(t, err)
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.JSONEq(t, `{"credHelpers":{"registry.onstackit.cloud":"stackit","extra.example.com":"stackit"}}`, string(data))
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
}

func TestConfigureDockerFollowsSymlink(t *testing.T) {
	env, path := configureEnv(t)
	real := filepath.Join(env["HOME"], "dotfiles-docker.json")
	require.NoError(t, os.WriteFile(real, []byte(`{"auths":{}}`), 0o600))
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o700))
	require.NoError(t, os.Symlink(real, path))
	_, err := configure(t, env, "--registry", DefaultRegistry)
	require.NoError(t, err)
	li, err := os.Lstat(path)
	require.NoError(t, err)
	assert.NotZero(t, li.Mode()&os.ModeSymlink, "the link stays a link")
	data, err := os.ReadFile(real)
	require.NoError(t, err)
	assert.JSONEq(t, `{"auths":{},"credHelpers":{"registry.onstackit.cloud":"stackit"}}`, string(data))
}

func TestConfigureDockerErrors(t *testing.T) {
	env, path := configureEnv(t)
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o700))
	require.NoError(t, os.WriteFile(path, []byte(`[1,2]`), 0o600))
	_, err := configure(t, env)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "is not a JSON object")
	data, _ := os.ReadFile(path)
	assert.Equal(t, "[1,2]", string(data), "a file we cannot parse is left alone")

	_, err = configure(t, env, "--registry", "a@b")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `"a@b" is not a registry host`)

	delete(env, "DOCKER_CONFIG")
	delete(env, "HOME")
	_, err = configure(t, env)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "set DOCKER_CONFIG")
}

func TestBareConfigureLeavesEnvHostsToTheEnv(t *testing.T) {
	env, _ := configureEnv(t)
	env[EnvRegistries] = "extra.example.com"
	_, err := configure(t, env)
	require.NoError(t, err)
	assert.NoFileExists(t, env[EnvConfig], "hosts served by the variable are not copied into the helper config")
}
