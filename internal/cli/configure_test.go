package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker-credential-stackit/docker-credential-stackit/credhelper"
	"github.com/docker-credential-stackit/docker-credential-stackit/internal/testfs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func configureEnv(t *testing.T) (map[string]string, string) {
	dir := t.TempDir()
	env := map[string]string{
		"HOME":               dir,
		"DOCKER_CONFIG":      filepath.Join(dir, "docker"),
		credhelper.EnvConfig: filepath.Join(dir, "helper", "config.json"),
	}
	return env, filepath.Join(dir, "docker", "config.json")
}

func configure(t *testing.T, env map[string]string, args ...string) (string, error) {
	var stderr bytes.Buffer
	err := configureFor(dockerConfigFile, args, env, &stderr)
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
	testfs.AssertPerm(t, 0o644, fi, "mode kept")

	cfg, err := credhelper.LoadConfig(env[credhelper.EnvConfig])
	require.NoError(t, err)
	assert.Contains(t, cfg.Registries, "team.example.com:5000", "non-default host is now served")
	assert.NotContains(t, cfg.Registries, credhelper.DefaultRegistry)

	// Run twice: nothing changes, byte for byte.
	helperBefore, err := os.ReadFile(env[credhelper.EnvConfig])
	require.NoError(t, err)
	msg, err = configure(t, env, "--registry", "registry.onstackit.cloud", "--registry", "team.example.com:5000")
	require.NoError(t, err)
	assert.Contains(t, msg, "nothing changed")
	after, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, string(data), string(after))
	helperAfter, err := os.ReadFile(env[credhelper.EnvConfig])
	require.NoError(t, err)
	assert.Equal(t, string(helperBefore), string(helperAfter))
}

func TestConfigureDockerFreshAndDefaults(t *testing.T) {
	env, path := configureEnv(t)
	env[credhelper.EnvRegistries] = "extra.example.com"
	_, err := configure(t, env)
	require.NoError(t, err)
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.JSONEq(t, `{"credHelpers":{"registry.onstackit.cloud":"stackit","extra.example.com":"stackit"}}`, string(data))
	fi, err := os.Stat(path)
	require.NoError(t, err)
	testfs.AssertPerm(t, 0o600, fi)
}

func TestConfigureDockerFollowsSymlink(t *testing.T) {
	env, path := configureEnv(t)
	real := filepath.Join(env["HOME"], "dotfiles-docker.json")
	require.NoError(t, os.WriteFile(real, []byte(`{"auths":{}}`), 0o600))
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o700))
	testfs.SymlinkOrSkip(t, real, path)
	_, err := configure(t, env, "--registry", credhelper.DefaultRegistry)
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

func configurePodman(t *testing.T, env map[string]string, args ...string) (string, error) {
	var stderr bytes.Buffer
	err := configureFor(containersAuth, args, env, &stderr)
	return stderr.String(), err
}

func TestConfigurePodmanAuthFile(t *testing.T) {
	env, _ := configureEnv(t)
	authFile := filepath.Join(env["HOME"], "run", "auth.json")
	env["REGISTRY_AUTH_FILE"] = authFile
	require.NoError(t, os.MkdirAll(filepath.Dir(authFile), 0o700))
	original := `{"auths":{"quay.io":{"auth":"dTpw"}},"credHelpers":{"gcr.io":"gcloud"}}`
	require.NoError(t, os.WriteFile(authFile, []byte(original), 0o640))
	require.NoError(t, os.Chmod(authFile, 0o640))

	msg, err := configurePodman(t, env, "--registry", credhelper.DefaultRegistry, "--registry", "127.0.0.1:5000")
	require.NoError(t, err)
	assert.Contains(t, msg, authFile+" now uses docker-credential-stackit for registry.onstackit.cloud, 127.0.0.1:5000")
	data, err := os.ReadFile(authFile)
	require.NoError(t, err)
	assert.JSONEq(t, `{"auths":{"quay.io":{"auth":"dTpw"}},"credHelpers":{"gcr.io":"gcloud","registry.onstackit.cloud":"stackit","127.0.0.1:5000":"stackit"}}`, string(data))
	fi, err := os.Stat(authFile)
	require.NoError(t, err)
	testfs.AssertPerm(t, 0o640, fi, "mode kept")
	cfg, err := credhelper.LoadConfig(env[credhelper.EnvConfig])
	require.NoError(t, err)
	assert.Contains(t, cfg.Registries, "127.0.0.1:5000", "the helper now serves the extra host")

	msg, err = configurePodman(t, env, "--registry", credhelper.DefaultRegistry, "--registry", "127.0.0.1:5000")
	require.NoError(t, err)
	assert.Contains(t, msg, "nothing changed")
	again, err := os.ReadFile(authFile)
	require.NoError(t, err)
	assert.Equal(t, string(data), string(again), "idempotent, byte for byte")

	// The Docker config was not touched.
	_, err = os.Stat(filepath.Join(env["DOCKER_CONFIG"], "config.json"))
	assert.True(t, os.IsNotExist(err))
}

func TestConfigurePodmanLocations(t *testing.T) {
	env, _ := configureEnv(t)
	home := env["HOME"]

	_, err := configurePodman(t, env)
	require.NoError(t, err)
	data, err := os.ReadFile(filepath.Join(home, ".config", "containers", "auth.json"))
	require.NoError(t, err, "HOME/.config/containers/auth.json by default")
	assert.JSONEq(t, `{"credHelpers":{"registry.onstackit.cloud":"stackit"}}`, string(data))
	fi, err := os.Stat(filepath.Join(home, ".config", "containers", "auth.json"))
	require.NoError(t, err)
	testfs.AssertPerm(t, 0o600, fi, "a new auth file is private")

	env["XDG_CONFIG_HOME"] = filepath.Join(home, "xdg")
	_, err = configurePodman(t, env)
	require.NoError(t, err)
	_, err = os.Stat(filepath.Join(home, "xdg", "containers", "auth.json"))
	require.NoError(t, err, "XDG_CONFIG_HOME from the injected environment")

	for _, k := range []string{"HOME", "XDG_CONFIG_HOME"} {
		delete(env, k)
	}
	_, err = configurePodman(t, env)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "REGISTRY_AUTH_FILE, XDG_CONFIG_HOME and HOME are all unset; set REGISTRY_AUTH_FILE")
}

func TestConfigurePodmanWarnsAboutRuntimeLogins(t *testing.T) {
	env, _ := configureEnv(t)
	runtime := filepath.Join(env["HOME"], "run-user")
	env["XDG_RUNTIME_DIR"] = runtime
	require.NoError(t, os.MkdirAll(filepath.Join(runtime, "containers"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(runtime, "containers", "auth.json"), []byte(`{"auths":{"registry.onstackit.cloud":{"auth":"eDp5"}}}`), 0o600))
	msg, err := configurePodman(t, env)
	require.NoError(t, err)
	assert.Contains(t, msg, "has an entry for registry.onstackit.cloud from an earlier podman login, and podman reads that file first; run podman logout registry.onstackit.cloud")
}

func TestConfigurePodmanThroughMain(t *testing.T) {
	f := newFixture(t)
	f.env["REGISTRY_AUTH_FILE"] = filepath.Join(f.dir, "auth.json")
	_, code := f.run(t, "", "configure-podman", "--registry", "registry.onstackit.cloud")
	require.Equal(t, 0, code, f.stderr.String())
	data, err := os.ReadFile(f.env["REGISTRY_AUTH_FILE"])
	require.NoError(t, err)
	assert.JSONEq(t, `{"credHelpers":{"registry.onstackit.cloud":"stackit"}}`, string(data))

	f.stderr.Reset()
	_, code = f.run(t, "", "configure-podman", "stray")
	assert.Equal(t, 1, code)
	assert.Contains(t, f.stderr.String(), `docker-credential-stackit: configure-podman: unexpected argument "stray"`)
}

func TestBareConfigureLeavesEnvHostsToTheEnv(t *testing.T) {
	env, _ := configureEnv(t)
	env[credhelper.EnvRegistries] = "extra.example.com"
	_, err := configure(t, env)
	require.NoError(t, err)
	data, err := os.ReadFile(env[credhelper.EnvConfig])
	require.NoError(t, err, "the named config is created, since get refuses a missing one")
	assert.NotContains(t, string(data), "extra.example.com", "hosts served by the variable are not copied into the helper config")
}

// configureFor runs a configure command the way Main does.
func configureFor(target credHelpersFile, args []string, env map[string]string, stderr *bytes.Buffer) error {
	lookup := func(k string) string { return env[k] }
	h, err := newHelper(lookup, stderr, "", credhelper.CurrentPlatform())
	if err != nil {
		return err
	}
	return configureCredHelpers(target, args, lookup, h, stderr)
}

func TestConfigureFindsTheHomeAsTheOSDoes(t *testing.T) {
	dir := t.TempDir()
	// PowerShell: no HOME, the profile in USERPROFILE.
	env := map[string]string{"USERPROFILE": dir, credhelper.EnvConfig: filepath.Join(dir, "helper", "config.json")}
	docker, podman := dockerConfigFile, containersAuth
	docker.goos, podman.goos = "windows", "windows"
	var stderr bytes.Buffer
	require.NoError(t, configureFor(docker, nil, env, &stderr), stderr.String())
	require.NoError(t, configureFor(podman, nil, env, &stderr), stderr.String())
	for _, path := range []string{filepath.Join(dir, ".docker", "config.json"), filepath.Join(dir, ".config", "containers", "auth.json")} {
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		assert.JSONEq(t, `{"credHelpers":{"registry.onstackit.cloud":"stackit"}}`, string(data))
	}

	// On Unix USERPROFILE means nothing; HOME is the home.
	docker.goos, podman.goos = "linux", "linux"
	err := configureFor(docker, nil, env, &stderr)
	require.Error(t, err)
	assert.Equal(t, "HOME is not set; set DOCKER_CONFIG to the directory of Docker's config.json", err.Error())
	err = configureFor(podman, nil, env, &stderr)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "REGISTRY_AUTH_FILE, XDG_CONFIG_HOME and HOME are all unset")

	docker.goos = "windows"
	delete(env, "USERPROFILE")
	env["HOME"] = dir
	err = configureFor(docker, nil, env, &stderr)
	require.Error(t, err)
	assert.Equal(t, "USERPROFILE is not set; set DOCKER_CONFIG to the directory of Docker's config.json", err.Error())
}

func TestConfigureRemoveTakesOutOnlyThisHelpersEntries(t *testing.T) {
	for _, target := range []credHelpersFile{dockerConfigFile, containersAuth} {
		t.Run(target.command, func(t *testing.T) {
			env, path := configureEnv(t)
			if target.command == "configure-podman" {
				path = filepath.Join(env["HOME"], "auth.json")
				env["REGISTRY_AUTH_FILE"] = path
			}
			require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
			original := `{"auths":{"x.example.com":{"auth":"dTpw"}},"credsStore":"desktop","credHelpers":{"gcr.io":"gcloud","registry.onstackit.cloud":"stackit","team.example.com:5000":"stackit","other.example.com":"desktop"},"experimental":"enabled"}`
			require.NoError(t, os.WriteFile(path, []byte(original), 0o640))
			require.NoError(t, os.Chmod(path, 0o640))
			run := func(args ...string) string {
				var stderr bytes.Buffer
				require.NoError(t, configureFor(target, args, env, &stderr))
				return stderr.String()
			}
			var want map[string]any
			require.NoError(t, json.Unmarshal([]byte(original), &want))
			check := func(helpers map[string]any) {
				t.Helper()
				data, err := os.ReadFile(path)
				require.NoError(t, err)
				var doc map[string]any
				require.NoError(t, json.Unmarshal(data, &doc))
				want["credHelpers"] = helpers
				assert.Equal(t, want, doc)
				fi, err := os.Stat(path)
				require.NoError(t, err)
				testfs.AssertPerm(t, 0o640, fi, "mode kept")
			}

			// A named host of another helper stays.
			msg := run("--remove", "--registry", "Team.Example.com:5000", "--registry", "other.example.com")
			assert.Equal(t, "docker-credential-stackit: "+path+" no longer uses docker-credential-stackit for team.example.com:5000\n", msg)
			check(map[string]any{"gcr.io": "gcloud", "registry.onstackit.cloud": "stackit", "other.example.com": "desktop"})

			msg = run("--remove")
			assert.Equal(t, "docker-credential-stackit: "+path+" no longer uses docker-credential-stackit for registry.onstackit.cloud\n", msg)
			check(map[string]any{"gcr.io": "gcloud", "other.example.com": "desktop"})

			// Again: nothing to do, byte for byte.
			before, err := os.ReadFile(path)
			require.NoError(t, err)
			msg = run("--remove")
			assert.Equal(t, "docker-credential-stackit: "+path+" does not use docker-credential-stackit for any registry; nothing changed\n", msg)
			msg = run("--remove", "--registry", "gcr.io")
			assert.Equal(t, "docker-credential-stackit: "+path+" does not use docker-credential-stackit for gcr.io; nothing changed\n", msg)
			after, err := os.ReadFile(path)
			require.NoError(t, err)
			assert.Equal(t, string(before), string(after))
			assert.NoFileExists(t, env[credhelper.EnvConfig], "the helper config is not touched")
		})
	}
}

func TestConfigureRemoveLeavesAMissingFileMissing(t *testing.T) {
	env, path := configureEnv(t)
	msg, err := configure(t, env, "--remove")
	require.NoError(t, err)
	assert.Equal(t, "docker-credential-stackit: "+path+" does not use docker-credential-stackit for any registry; nothing changed\n", msg)
	assert.NoFileExists(t, path)
	assert.NoDirExists(t, filepath.Dir(path))
}

func TestConfigureRemoveUndoesConfigureThroughMain(t *testing.T) {
	f := newFixture(t)
	f.env["DOCKER_CONFIG"] = filepath.Join(f.dir, "docker")
	path := filepath.Join(f.dir, "docker", "config.json")
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o700))
	require.NoError(t, os.WriteFile(path, []byte(`{"auths":{}}`), 0o600))
	_, code := f.run(t, "", "configure-docker")
	require.Equal(t, 0, code, f.stderr.String())
	f.stderr.Reset()
	_, code = f.run(t, "", "configure-docker", "--remove")
	require.Equal(t, 0, code, f.stderr.String())
	assert.Equal(t, 1, strings.Count(f.stderr.String(), "\n"), "one line: %q", f.stderr.String())
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.JSONEq(t, `{"auths":{}}`, string(data), "the file is as it was before configure-docker, with no empty credHelpers left")
}
