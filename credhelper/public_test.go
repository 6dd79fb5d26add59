package credhelper

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker/docker-credential-helpers/credentials"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/docker-credential-stackit/docker-credential-stackit/internal/problem"
	"github.com/docker-credential-stackit/docker-credential-stackit/internal/testfs"
)

func TestIsPublicRegistry(t *testing.T) {
	for _, host := range []string{
		"docker.io", "index.docker.io", "https://index.docker.io/v1/", "registry-1.docker.io", "ghcr.io", "GHCR.IO/owner/img",
		"quay.io", "quay.io:443", "gcr.io", "europe-west3-docker.pkg.dev", "public.ecr.aws", "mcr.microsoft.com", "registry.gitlab.com", "ghcr.io.",
	} {
		assert.True(t, IsPublicRegistry(host), host)
	}
	for _, host := range []string{
		DefaultRegistry, "cr.example.com", "pkg.dev.example.com", "evil.com/ghcr.io", "ghcr.io.example.com", "eu.gcr.io.example.com", "", "a@ghcr.io",
	} {
		assert.False(t, IsPublicRegistry(host), host)
	}
}

func publicHelper(t *testing.T, registries, config string) (*Helper, *bytes.Buffer, string) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "config.json")
	if config == "" {
		config = `{"registries": {}}`
	}
	writeConfigFile(t, path, config)
	env := map[string]string{EnvRegistries: registries, EnvConfig: path, "HOME": dir}
	var stderr bytes.Buffer
	h, err := New(WithEnv(func(k string) string { return env[k] }), WithWarnings(&stderr), WithCacheDir(""))
	require.NoError(t, err)
	return h, &stderr, path
}

func TestGetForAPublicRegistryIsNotFoundWithOneWarningNamingTheOverride(t *testing.T) {
	for name, c := range map[string]struct{ registries, config string }{
		"from the variable": {"ghcr.io", ""},
		"from the config":   {"", `{"registries":{"ghcr.io":{}}}`},
	} {
		t.Run(name, func(t *testing.T) {
			h, stderr, path := publicHelper(t, c.registries, c.config)
			_, _, err := h.Get("ghcr.io")
			require.Error(t, err)
			assert.True(t, IsNotFound(err))
			out := stderr.String()
			assert.Equal(t, 1, strings.Count(out, "\n"), out)
			assert.Contains(t, out, "refusing to serve ghcr.io: it is a public registry, and STACKIT tokens would go to it")
			assert.Contains(t, out, `set "allowPublicRegistry": true in registries[ghcr.io] of `+path)

			hosts, err := h.ServedHosts()
			require.NoError(t, err)
			assert.Equal(t, []string{DefaultRegistry}, hosts, "a refused host is not listed as served")
			plan, err := h.Plan("ghcr.io")
			require.NoError(t, err)
			var refused *PublicRegistryError
			assert.True(t, errors.As(plan.Err, &refused), "doctor shows why: %v", plan.Err)
		})
	}
}

func TestAllowPublicRegistryOverridesTheRefusal(t *testing.T) {
	h, stderr, _ := publicHelper(t, "", `{"registries":{"ghcr.io":{"allowPublicRegistry":true}}}`)
	hosts, err := h.ServedHosts()
	require.NoError(t, err)
	assert.Contains(t, hosts, "ghcr.io")
	plan, err := h.Plan("ghcr.io")
	require.NoError(t, err)
	var refused *PublicRegistryError
	assert.False(t, errors.As(plan.Err, &refused))
	_, _, _ = h.Get("ghcr.io")
	assert.NotContains(t, stderr.String(), "public registry")
}

func TestRobotFilesAndStoredLoginsForPublicRegistriesStayAllowed(t *testing.T) {
	dir := t.TempDir()
	robot := filepath.Join(dir, "robot.json")
	require.NoError(t, os.WriteFile(robot, []byte(`{"name":"org+ci","token":"quay-robot-secret"}`), 0o600))
	h, stderr, _ := publicHelper(t, "", `{"registries":{"quay.io":{"robotAccountPath":`+testfs.JSONQuote(robot)+`}}}`)
	user, secret, err := h.Get("quay.io")
	require.NoError(t, err)
	assert.Equal(t, "org+ci", user)
	assert.Equal(t, "quay-robot-secret", secret)
	assert.NotContains(t, stderr.String(), "public registry")

	h, stderr, _ = publicHelper(t, "ghcr.io", "")
	require.NoError(t, h.Add(&credentials.Credentials{ServerURL: "ghcr.io", Username: "me", Secret: "ghcr-pat"}))
	user, secret, err = h.Get("ghcr.io")
	require.NoError(t, err, "a login stored for the host is meant for it")
	assert.Equal(t, "me", user)
	assert.Equal(t, "ghcr-pat", secret)
	assert.NotContains(t, stderr.String(), "public registry")
}

func TestServeRegistriesRefusesAPublicRegistry(t *testing.T) {
	h, _, path := publicHelper(t, "", "")
	_, added, err := h.ServeRegistries([]string{"cr.example.com", "ghcr.io"})
	require.Error(t, err)
	assert.False(t, added)
	var refused *PublicRegistryError
	require.True(t, errors.As(err, &refused))
	assert.Equal(t, "ghcr.io", refused.Host)
	what, fix := problem.Split(err)
	assert.Contains(t, what, "public registry")
	assert.Contains(t, fix, `"allowPublicRegistry": true`)
	data, rerr := os.ReadFile(path)
	require.NoError(t, rerr)
	assert.JSONEq(t, `{"registries": {}}`, string(data), "nothing is written")
	assert.Error(t, h.CheckPublicRegistries([]string{"docker.io"}))
	assert.NoError(t, h.CheckPublicRegistries([]string{"cr.example.com", DefaultRegistry}))

	h, _, _ = publicHelper(t, "", `{"registries":{"ghcr.io":{"allowPublicRegistry":true}}}`)
	_, _, err = h.ServeRegistries([]string{"ghcr.io"})
	assert.NoError(t, err, "the override lets it through")
	assert.NoError(t, h.CheckPublicRegistries([]string{"ghcr.io"}))
}
