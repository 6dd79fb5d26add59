package cli

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker/docker-credential-helpers/credentials"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/docker-credential-stackit/docker-credential-stackit/credhelper"
	"github.com/docker-credential-stackit/docker-credential-stackit/internal/testfs"
	"github.com/docker-credential-stackit/docker-credential-stackit/tokensource"
	"github.com/docker-credential-stackit/docker-credential-stackit/tokensource/tokensourcetest"
)

type fixture struct {
	srv    *tokensourcetest.Server
	acct   *tokensourcetest.Account
	env    map[string]string
	stderr *bytes.Buffer
	dir    string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	srv := tokensourcetest.NewServer(t)
	acct := srv.NewAccount(t, "ci-sa@sa.stackit.cloud")
	dir := t.TempDir()
	writeEmptyConfig(t, filepath.Join(dir, "config", "config.json"))
	return &fixture{
		srv:  srv,
		acct: acct,
		dir:  dir,
		env: map[string]string{
			"HOME":                               dir,
			tokensource.EnvServiceAccountKeyPath: acct.WriteKeyFile(t, dir, true),
			tokensource.EnvTokenBaseURL:          srv.TokenURL(),
			credhelper.EnvConfig:                 filepath.Join(dir, "config", "config.json"),
			credhelper.EnvCacheDir:               filepath.Join(dir, "cache"),
			credhelper.EnvRetryBudget:            "1s",
		},
		stderr: &bytes.Buffer{},
	}
}

// helper returns a fresh Helper, as each process would build one.
func (f *fixture) helper(opts ...credhelper.Option) *credhelper.Helper {
	h, err := credhelper.New(append([]credhelper.Option{
		credhelper.WithEnv(func(k string) string { return f.env[k] }),
		credhelper.WithWarnings(f.stderr),
		credhelper.WithDebug(true),
		credhelper.WithErrorReports(false),
	}, opts...)...)
	if err != nil {
		panic(err) // the fixture's paths are absolute
	}
	return h
}

func (f *fixture) run(t *testing.T, stdin string, args ...string) (stdout string, code int) {
	t.Helper()
	var out bytes.Buffer
	code = Main(args, strings.NewReader(stdin), &out, f.stderr, func(k string) string { return f.env[k] })
	return out.String(), code
}

func TestGetDefaultRegistry(t *testing.T) {
	f := newFixture(t)
	user, secret, err := f.helper().Get("registry.onstackit.cloud")
	require.NoError(t, err)
	assert.Equal(t, "ci-sa@sa.stackit.cloud", user)
	assert.True(t, f.srv.Valid(user, secret))

	for _, form := range []string{"https://registry.onstackit.cloud/v1/", "REGISTRY.onstackit.cloud/myproj/app", "registry.onstackit.cloud"} {
		u, s, err := f.helper().Get(form)
		require.NoError(t, err, form)
		assert.Equal(t, user, u)
		assert.Equal(t, secret, s, "served from the cache")
	}
	assert.Equal(t, 1, f.srv.Requests())
	assert.NotContains(t, f.stderr.String(), secret, "debug log never shows the token")
	assert.Contains(t, f.stderr.String(), "cache=hit")
}

func TestForeignHostsAreNotFoundWithoutTouchingAnything(t *testing.T) {
	f := newFixture(t)
	// A broken key proves the key is never read for foreign hosts.
	f.env[tokensource.EnvServiceAccountKeyPath] = filepath.Join(f.dir, "does-not-exist.json")
	for _, host := range []string{
		"https://index.docker.io/v1/", "docker.io", "ghcr.io/x/y", "registry.onstackit.cloud.evil.com",
		"evil.com/registry.onstackit.cloud", "registry.onstackit.cloud@evil.com", "https://registry.onstackit.cloud@evil.com/v2/",
		"onstackit.cloud", "xregistry.onstackit.cloud", "not a host",
	} {
		_, _, err := f.helper().Get(host)
		assert.True(t, credentials.IsErrCredentialsNotFound(err), "%s: %v", host, err)
		out, code := f.run(t, host, "get")
		assert.Equal(t, 1, code)
		assert.Equal(t, "credentials not found in native keychain\n", out, host)
	}
	assert.Equal(t, 0, f.srv.Requests())
	_, err := os.Stat(f.env[credhelper.EnvCacheDir])
	assert.True(t, os.IsNotExist(err), "no cache dir created for foreign hosts")
}

func TestAllowedHostsFromEnvAndConfig(t *testing.T) {
	f := newFixture(t)
	other := f.srv.NewAccount(t, "other-sa@sa.stackit.cloud")
	otherKey := other.WriteKeyFile(t, f.dir, true)
	f.env[credhelper.EnvRegistries] = " extra.example.com , 127.0.0.1:5000,"
	require.NoError(t, os.MkdirAll(filepath.Dir(f.env[credhelper.EnvConfig]), 0o700))
	require.NoError(t, os.WriteFile(f.env[credhelper.EnvConfig], []byte(`{"registries": {
		"Team.Example.com": {"serviceAccountKeyPath": `+testfs.JSONQuote(otherKey)+`},
		"robot.example.com": {"username": "robot$proj+ci"}
	}}`), 0o600))

	user, secret, err := f.helper().Get("team.example.com")
	require.NoError(t, err)
	assert.Equal(t, "other-sa@sa.stackit.cloud", user, "per-registry service account")
	assert.True(t, f.srv.Valid(user, secret))

	user, _, err = f.helper().Get("extra.example.com")
	require.NoError(t, err)
	assert.Equal(t, "ci-sa@sa.stackit.cloud", user)

	user, _, err = f.helper().Get("127.0.0.1:5000/some/repo")
	require.NoError(t, err)
	assert.Equal(t, "ci-sa@sa.stackit.cloud", user)

	user, _, err = f.helper().Get("robot.example.com")
	require.NoError(t, err)
	assert.Equal(t, "robot$proj+ci", user, "username override")

	_, _, err = f.helper().Get("127.0.0.1:5001")
	assert.True(t, credentials.IsErrCredentialsNotFound(err), "another port is another host")

	list, err := f.helper().List()
	require.NoError(t, err)
	assert.Equal(t, map[string]string{
		credhelper.DefaultRegistry: "ci-sa@sa.stackit.cloud",
		"extra.example.com":        "ci-sa@sa.stackit.cloud",
		"127.0.0.1:5000":           "ci-sa@sa.stackit.cloud",
		"team.example.com":         "other-sa@sa.stackit.cloud",
		"robot.example.com":        "robot$proj+ci",
	}, list)
	assert.Equal(t, 2, f.srv.Requests(), "one token per identity; list touched no network")
}

func TestStoreEraseList(t *testing.T) {
	f := newFixture(t)
	h := f.helper()
	robot := &credentials.Credentials{ServerURL: "https://registry.onstackit.cloud", Username: "robot$proj+ci", Secret: "robot-secret-value"}
	require.NoError(t, h.Add(robot))

	loginsPath := filepath.Join(filepath.Dir(f.env[credhelper.EnvConfig]), "logins.json")
	fi, err := os.Stat(loginsPath)
	require.NoError(t, err)
	testfs.AssertPerm(t, 0o600, fi)
	di, err := os.Stat(filepath.Dir(loginsPath))
	require.NoError(t, err)
	testfs.AssertPerm(t, 0o700, di)

	user, secret, err := f.helper().Get("registry.onstackit.cloud")
	require.NoError(t, err)
	assert.Equal(t, "robot$proj+ci", user, "the $ survives")
	assert.Equal(t, "robot-secret-value", secret)
	assert.Equal(t, 0, f.srv.Requests(), "a static login needs no token")
	assert.NotContains(t, f.stderr.String(), "robot-secret-value")

	list, err := f.helper().List()
	require.NoError(t, err)
	assert.Equal(t, "robot$proj+ci", list[credhelper.DefaultRegistry])

	// Erase removes the login, then get mints a token again.
	require.NoError(t, f.helper().Delete("registry.onstackit.cloud"))
	user, secret, err = f.helper().Get("registry.onstackit.cloud")
	require.NoError(t, err)
	assert.Equal(t, "ci-sa@sa.stackit.cloud", user)
	assert.True(t, f.srv.Valid(user, secret))

	// Erase also drops the cached token: the next get fetches again.
	require.NoError(t, f.helper().Delete("registry.onstackit.cloud"))
	_, second, err := f.helper().Get("registry.onstackit.cloud")
	require.NoError(t, err)
	assert.NotEqual(t, secret, second)
	assert.Equal(t, 2, f.srv.Requests())
}

func TestStoreWithOwnUsernameStoresNothing(t *testing.T) {
	f := newFixture(t)
	require.NoError(t, f.helper().Add(&credentials.Credentials{ServerURL: credhelper.DefaultRegistry, Username: "robot$x", Secret: "s1-secret"}))
	// Logging in as the service account itself replaces the static login.
	require.NoError(t, f.helper().Add(&credentials.Credentials{ServerURL: credhelper.DefaultRegistry, Username: "ci-sa@sa.stackit.cloud", Secret: "pasted-token"}))
	user, secret, err := f.helper().Get(credhelper.DefaultRegistry)
	require.NoError(t, err)
	assert.Equal(t, "ci-sa@sa.stackit.cloud", user)
	assert.NotEqual(t, "pasted-token", secret, "the pasted token is not stored; a fresh one is minted")
	data, err := os.ReadFile(filepath.Join(filepath.Dir(f.env[credhelper.EnvConfig]), "logins.json"))
	require.NoError(t, err)
	assert.NotContains(t, string(data), "pasted-token")
	assert.NotContains(t, string(data), "s1-secret")
}

func TestStoreRefusals(t *testing.T) {
	f := newFixture(t)
	err := f.helper().Add(&credentials.Credentials{ServerURL: "ghcr.io", Username: "u", Secret: "s"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "ghcr.io is not a STACKIT registry served by this helper")
	err = f.helper().Add(&credentials.Credentials{ServerURL: credhelper.DefaultRegistry, Username: "<token>", Secret: "s"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "identity-token")
	assert.True(t, credentials.IsErrCredentialsNotFound(f.helper().Delete("ghcr.io")))
}

func TestNoCredentialsConfiguredIsNotFoundWithHint(t *testing.T) {
	f := newFixture(t)
	delete(f.env, tokensource.EnvServiceAccountKeyPath)
	out, code := f.run(t, credhelper.DefaultRegistry, "get")
	assert.Equal(t, 1, code)
	assert.Equal(t, "credentials not found in native keychain\n", out)
	assert.Contains(t, f.stderr.String(), "no credentials for registry.onstackit.cloud: no STACKIT service account key configured (workload identity federation not used either: STACKIT_SERVICE_ACCOUNT_EMAIL is not set); set STACKIT_SERVICE_ACCOUNT_KEY_PATH")
}

func TestGetErrorsAreOneLineOnStdout(t *testing.T) {
	f := newFixture(t)
	cases := map[string]func(){
		"missing key file": func() { f.env[tokensource.EnvServiceAccountKeyPath] = filepath.Join(f.dir, "gone.json") },
		"PEM as key": func() {
			f.env[tokensource.EnvServiceAccountKeyPath] = filepath.Join(f.dir, "key.pem")
			require.NoError(t, os.WriteFile(f.env[tokensource.EnvServiceAccountKeyPath], f.acct.PrivateKeyPEM, 0o600))
		},
		"unreachable endpoint": func() { f.env[tokensource.EnvTokenBaseURL] = "http://127.0.0.1:1/token" },
		"deleted key":          func() { f.srv.DeleteKey(f.acct) },
		"bad registries env":   func() { f.env[credhelper.EnvRegistries] = "a b" },
	}
	want := map[string]string{
		"missing key file":     "registry.onstackit.cloud: read service account key " + filepath.Join(f.dir, "gone.json") + " (from STACKIT_SERVICE_ACCOUNT_KEY_PATH): file not found",
		"PEM as key":           "this is a PEM private key, not the JSON service account key",
		"unreachable endpoint": "token endpoint http://127.0.0.1:1/token unreachable",
		"deleted key":          "does not know key id " + f.acct.Kid,
		"bad registries env":   `DOCKER_CREDENTIAL_STACKIT_REGISTRIES: "a b" is not a registry host`,
	}
	saved := map[string]string{}
	for k, v := range f.env {
		saved[k] = v
	}
	for name, setup := range cases {
		t.Run(name, func(t *testing.T) {
			for k := range f.env {
				delete(f.env, k)
			}
			for k, v := range saved {
				f.env[k] = v
			}
			setup()
			f.stderr.Reset()
			out, code := f.run(t, credhelper.DefaultRegistry, "get")
			assert.Equal(t, 1, code)
			assert.Contains(t, out, want[name])
			assert.Equal(t, 1, strings.Count(out, "\n"), "exactly one line: %q", out)
			for _, leak := range []string{"BEGIN PRIVATE KEY", "eyJ", string(f.acct.PrivateKeyPEM[30:60])} {
				assert.NotContains(t, out+f.stderr.String(), leak)
			}
		})
	}
}

func TestMainProtocolEdges(t *testing.T) {
	f := newFixture(t)
	out, code := f.run(t, "", "get")
	assert.Equal(t, 1, code)
	assert.Contains(t, out, "no credentials server URL: pass the registry host on stdin")

	out, code = f.run(t, "not json", "store")
	assert.Equal(t, 1, code)
	assert.Contains(t, out, `stdin is not a credentials JSON object; send {"ServerURL"`)

	out, code = f.run(t, credhelper.DefaultRegistry, "get")
	assert.Equal(t, 0, code)
	assert.Regexp(t, `^\{"ServerURL":"registry.onstackit.cloud","Username":"ci-sa@sa.stackit.cloud","Secret":"[^"]+"\}\n$`, out)

	out, code = f.run(t, "", "list")
	assert.Equal(t, 0, code)
	assert.JSONEq(t, `{"registry.onstackit.cloud":"ci-sa@sa.stackit.cloud"}`, out)

	out, code = f.run(t, "", "version")
	assert.Equal(t, 0, code)
	assert.True(t, strings.HasPrefix(out, "docker-credential-stackit "))

	out, code = f.run(t, "", "--help")
	assert.Equal(t, 0, code)
	assert.Contains(t, out, "configure-docker")

	f.stderr.Reset()
	out, code = f.run(t, "", "frobnicate")
	assert.Equal(t, 1, code)
	assert.Empty(t, out)
	assert.Contains(t, f.stderr.String(), `unknown command "frobnicate"`)
}

func TestConfigParsing(t *testing.T) {
	_, err := credhelper.ParseConfig([]byte(`{"registries": {"x.example.com": {"serviceAccountKeyFile": "/k"}}}`))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `unknown field "serviceAccountKeyFile"`)

	_, err = credhelper.ParseConfig([]byte(`{"registries": {"x@evil.com": {}}}`))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `"x@evil.com" is not a registry host`)

	_, err = credhelper.ParseConfig([]byte(`{"registries": {"x.example.com": {"tokenEndpoint": "http://evil.example/token"}}}`))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "plain http")

	cfg, err := credhelper.ParseConfig([]byte(`{"registries": {"HTTPS://X.Example.com/v2/": {"username": "u"}}}`))
	require.NoError(t, err)
	assert.Equal(t, "u", cfg.Registries["x.example.com"].Username)

	f := newFixture(t)
	require.NoError(t, os.MkdirAll(filepath.Dir(f.env[credhelper.EnvConfig]), 0o700))
	require.NoError(t, os.WriteFile(f.env[credhelper.EnvConfig], []byte(`{"registries": [`), 0o600))
	out, code := f.run(t, "docker.io", "get")
	assert.Equal(t, 1, code)
	assert.Contains(t, out, "helper config "+f.env[credhelper.EnvConfig]+": invalid JSON")
}

func TestTransientFailuresAreRetried(t *testing.T) {
	f := newFixture(t)
	f.env[credhelper.EnvRetryBudget] = "30s"
	failures := 2
	f.srv.Respond = func(w http.ResponseWriter, r *http.Request) bool {
		if failures == 0 {
			return false
		}
		failures--
		w.Header().Set("Retry-After", "0")
		w.WriteHeader(http.StatusServiceUnavailable)
		return true
	}
	user, secret, err := f.helper().Get(credhelper.DefaultRegistry)
	require.NoError(t, err)
	assert.True(t, f.srv.Valid(user, secret))
	assert.Equal(t, 3, f.srv.Requests(), "503, 503, then success")
}

func TestClientErrorsAreNotRetried(t *testing.T) {
	f := newFixture(t)
	f.env[credhelper.EnvRetryBudget] = "30s"
	f.srv.DeleteKey(f.acct)
	_, _, err := f.helper().Get(credhelper.DefaultRegistry)
	require.Error(t, err)
	assert.Equal(t, 1, f.srv.Requests())
}

func TestBadTimeoutSettings(t *testing.T) {
	f := newFixture(t)
	f.env[credhelper.EnvTimeout] = "soon"
	_, _, err := f.helper().Get(credhelper.DefaultRegistry)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `DOCKER_CREDENTIAL_STACKIT_TIMEOUT="soon" is not a duration`)
	f.env[credhelper.EnvTimeout] = "5m"
	s := credhelper.ParseSettings(func(k string) string { return f.env[k] }, credhelper.CurrentPlatform(), "")
	require.NoError(t, s.Err)
	assert.Equal(t, credhelper.DefaultBudgets.Get, s.Budgets.Get, "capped at 45s")
}

func TestSettingAndKeyEdgeCases(t *testing.T) {
	t.Run("setting names are case-sensitive", func(t *testing.T) {
		_, err := credhelper.ParseConfig([]byte(`{"registries": {"x.example.com": {"serviceAccountKeypath": "/k"}}}`))
		require.Error(t, err)
		assert.Contains(t, err.Error(), `"serviceAccountKeypath" must be spelt "serviceAccountKeyPath"`)
		_, err = credhelper.ParseConfig([]byte(`{"Registries": {}}`))
		require.Error(t, err)
	})
	t.Run("a bad timeout never breaks foreign hosts", func(t *testing.T) {
		f := newFixture(t)
		f.env[credhelper.EnvTimeout] = "soon"
		_, _, err := f.helper().Get("docker.io")
		assert.True(t, credentials.IsErrCredentialsNotFound(err), "%v", err)
	})
	t.Run("a registry's own key ignores the default private key", func(t *testing.T) {
		f := newFixture(t)
		other := f.srv.NewAccount(t, "team-sa@sa.stackit.cloud")
		// The default account's key lives outside its key file.
		f.env[tokensource.EnvServiceAccountKeyPath] = f.acct.WriteKeyFile(t, t.TempDir(), false)
		f.env[tokensource.EnvPrivateKeyPath] = filepath.Join(f.dir, "default.pem")
		require.NoError(t, os.WriteFile(f.env[tokensource.EnvPrivateKeyPath], f.acct.PrivateKeyPEM, 0o600))
		require.NoError(t, os.MkdirAll(filepath.Dir(f.env[credhelper.EnvConfig]), 0o700))
		require.NoError(t, os.WriteFile(f.env[credhelper.EnvConfig], []byte(`{"registries": {"team.example.com": {"serviceAccountKeyPath": `+testfs.JSONQuote(other.WriteKeyFile(t, f.dir, true))+`}}}`), 0o600))
		user, secret, err := f.helper().Get("team.example.com")
		require.NoError(t, err)
		assert.Equal(t, "team-sa@sa.stackit.cloud", user)
		assert.True(t, f.srv.Valid(user, secret))
		user, secret, err = f.helper().Get(credhelper.DefaultRegistry)
		require.NoError(t, err)
		assert.True(t, f.srv.Valid(user, secret))
	})
}

func TestSecretContentInPathVariablesIsNeverShown(t *testing.T) {
	const fakeJWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJwb2QifQ.SECRETSIGNATURE"
	cases := map[string]func(f *fixture){
		"PEM in STACKIT_PRIVATE_KEY_PATH": func(f *fixture) {
			f.env[tokensource.EnvServiceAccountKeyPath] = f.acct.WriteKeyFile(t, t.TempDir(), false)
			f.env[tokensource.EnvPrivateKeyPath] = string(f.acct.PrivateKeyPEM)
		},
		"key JSON in STACKIT_SERVICE_ACCOUNT_KEY_PATH": func(f *fixture) {
			f.env[tokensource.EnvServiceAccountKeyPath] = string(f.acct.KeyJSON(true))
		},
		"token in STACKIT_FEDERATED_TOKEN_FILE": func(f *fixture) {
			f.env[tokensource.EnvServiceAccountEmail] = "ci@sa.stackit.cloud"
			f.env[tokensource.EnvFederatedTokenFile] = fakeJWT
		},
	}
	for name, setup := range cases {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			setup(f)
			var outputs []string
			for _, args := range [][]string{{"get"}, {"doctor"}, {"token", "--username"}} {
				f.stderr.Reset()
				out, code := f.run(t, credhelper.DefaultRegistry, args...)
				if args[0] == "get" {
					assert.Equal(t, 1, code)
				}
				outputs = append(outputs, out+f.stderr.String())
			}
			all := strings.Join(outputs, "\n")
			assert.Contains(t, all, "looks like secret content")
			for _, leak := range []string{"BEGIN PRIVATE KEY", "SECRETSIGNATURE", "eyJ", string(f.acct.PrivateKeyPEM[40:80])} {
				assert.NotContains(t, all, leak)
			}
		})
	}
}

func TestLooseLoginsFileIsTightened(t *testing.T) {
	f := newFixture(t)
	require.NoError(t, f.helper().Add(&credentials.Credentials{ServerURL: credhelper.DefaultRegistry, Username: "robot$x", Secret: "robot-secret"}))
	loginsPath := filepath.Join(filepath.Dir(f.env[credhelper.EnvConfig]), "logins.json")
	require.NoError(t, os.Chmod(loginsPath, 0o644))
	require.NoError(t, os.Chmod(filepath.Dir(loginsPath), 0o755))
	_, _, err := f.helper().Get(credhelper.DefaultRegistry)
	require.NoError(t, err)
	fi, err := os.Stat(loginsPath)
	require.NoError(t, err)
	testfs.AssertPerm(t, 0o600, fi)
	di, err := os.Stat(filepath.Dir(loginsPath))
	require.NoError(t, err)
	testfs.AssertPerm(t, 0o700, di)
}

func TestConfigureFlagErrorsAreOneLine(t *testing.T) {
	f := newFixture(t)
	for _, cmd := range []string{"configure-docker", "configure-podman"} {
		f.stderr.Reset()
		_, code := f.run(t, "", cmd, "--bogus")
		assert.Equal(t, 1, code)
		assert.Equal(t, 1, strings.Count(f.stderr.String(), "\n"), "%s: %q", cmd, f.stderr.String())
		assert.Contains(t, f.stderr.String(), "bogus")
	}
}

func TestFixHintsNameTheHelperConfigWhenItWins(t *testing.T) {
	f := newFixture(t)
	require.NoError(t, os.MkdirAll(filepath.Dir(f.env[credhelper.EnvConfig]), 0o700))
	require.NoError(t, os.WriteFile(f.env[credhelper.EnvConfig], []byte(testfs.HostAbs(`{"registries": {"cr.example.com": {"serviceAccountKeyPath": "/nonexistent/team.json"}}}`)), 0o600))
	out, code := f.run(t, "cr.example.com", "get")
	assert.Equal(t, 1, code)
	assert.Contains(t, out, "file not found; fix serviceAccountKeyPath for this registry in the helper config")
	assert.NotContains(t, out, "set STACKIT_SERVICE_ACCOUNT_KEY_PATH")

	// list says on stderr which hosts it had to leave out, and why.
	f.stderr.Reset()
	out, code = f.run(t, "", "list")
	assert.Equal(t, 0, code)
	assert.NotContains(t, out, "cr.example.com")
	assert.Contains(t, f.stderr.String(), "list: leaving out cr.example.com: ")
}

func TestUsageListsEveryCommand(t *testing.T) {
	f := newFixture(t)
	out, code := f.run(t, "", "--help")
	assert.Equal(t, 0, code)
	for _, cmd := range []string{"configure-docker", "configure-podman", "kubelet [--cache-dir DIR]", "token [--registry HOST] [--username] [--force]", "doctor [--registry HOST]", "/var/lib/docker-credential-stackit"} {
		assert.Contains(t, out, cmd)
	}
}

func TestProtocolErrorsAreAlsoOneLineOnStderr(t *testing.T) {
	f := newFixture(t)
	f.srv.DeleteKey(f.acct)
	out, code := f.run(t, credhelper.DefaultRegistry, "get")
	assert.Equal(t, 1, code)
	require.Equal(t, 1, strings.Count(out, "\n"), out)
	assert.Contains(t, out, "does not know key id")
	assert.Contains(t, f.stderr.String(), "docker-credential-stackit: get: "+out, "Docker hides stdout; stderr says the same, with the prefix")

	for _, c := range []struct{ stdin, cmd, want string }{
		{"not json", "store", `docker-credential-stackit: store: stdin is not a credentials JSON object; send {"ServerURL":"…","Username":"…","Secret":"…"}, as docker login does` + "\n"},
		{"", "erase", "docker-credential-stackit: erase: no credentials server URL: pass the registry host on stdin, e.g. echo registry.onstackit.cloud | docker-credential-stackit erase\n"},
		{"", "get", "docker-credential-stackit: get: no credentials server URL: pass the registry host on stdin, e.g. echo registry.onstackit.cloud | docker-credential-stackit get\n"},
	} {
		f.stderr.Reset()
		out, code := f.run(t, c.stdin, c.cmd)
		assert.Equal(t, 1, code, c.cmd)
		assert.Equal(t, c.want, f.stderr.String(), c.cmd)
		assert.Equal(t, strings.TrimPrefix(c.want, "docker-credential-stackit: "+c.cmd+": "), out, "stdout keeps the protocol text")
	}
}

func TestNotFoundStaysOffStderr(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct{ stdin, cmd string }{{"ghcr.io", "get"}, {"ghcr.io", "erase"}} {
		f.stderr.Reset()
		out, code := f.run(t, c.stdin, c.cmd)
		assert.Equal(t, 1, code)
		assert.Equal(t, "credentials not found in native keychain\n", out)
		assert.NotContains(t, f.stderr.String(), "docker-credential-stackit: "+c.cmd+":", "not-found is an answer, not an error")
	}

	// No key: the core's warning says why, once; no second error line.
	delete(f.env, tokensource.EnvServiceAccountKeyPath)
	f.stderr.Reset()
	_, code := f.run(t, credhelper.DefaultRegistry, "get")
	assert.Equal(t, 1, code)
	assert.Equal(t, 1, strings.Count(f.stderr.String(), "\n"), f.stderr.String())
	assert.Contains(t, f.stderr.String(), "docker-credential-stackit: warning: no credentials for registry.onstackit.cloud")
}

func TestProtocolCommandsRejectArgumentsAndFlags(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"get", "extra"}, `unexpected argument "extra"; run docker-credential-stackit get --help`},
		{[]string{"list", "registry.onstackit.cloud"}, `unexpected argument "registry.onstackit.cloud"; run docker-credential-stackit list --help`},
		{[]string{"store", "--bogus"}, "unknown flag --bogus; run docker-credential-stackit store --help"},
		{[]string{"erase", "-x"}, "unknown flag --x; run docker-credential-stackit erase --help"},
	} {
		f.stderr.Reset()
		out, code := f.run(t, credhelper.DefaultRegistry, c.args...)
		assert.Equal(t, 1, code, c.args)
		assert.Equal(t, c.want+"\n", out, c.args)
		assert.Equal(t, "docker-credential-stackit: "+c.args[0]+": "+c.want+"\n", f.stderr.String(), c.args)
	}
	assert.Equal(t, 0, f.srv.Requests(), "nothing ran")
}

func TestProtocolCommandsShowTheirHelpInsteadOfRunning(t *testing.T) {
	f := newFixture(t)
	for _, args := range [][]string{{"list", "-h"}, {"get", "--help"}, {"store", "-help"}, {"erase", "--help"}} {
		f.stderr.Reset()
		out, code := f.run(t, credhelper.DefaultRegistry, args...)
		assert.Equal(t, 0, code, args)
		assert.Empty(t, out, "%v did not run", args)
		assert.True(t, strings.HasPrefix(f.stderr.String(), "Usage: docker-credential-stackit "+args[0]+"\n\n"), f.stderr.String())
	}
	assert.Equal(t, 0, f.srv.Requests())
}

func TestStoreQuotesOnlyAPrefixOfABadServerURL(t *testing.T) {
	f := newFixture(t)
	url := "registry.onstackit.cloud " + strings.Repeat("x", 60<<10)
	out, code := f.run(t, `{"ServerURL":"`+url+`","Username":"robot$a","Secret":"s"}`, "store")
	assert.Equal(t, 1, code)
	assert.Contains(t, out, `ServerURL "registry.onstackit.cloud xxx`)
	assert.Less(t, len(out), 200, "stdin is not echoed")
	assert.Less(t, len(f.stderr.String()), 300, "stdin is not echoed")
}

// writeEmptyConfig creates the helper config the fixture names, private
// and empty: a named config that does not exist is an error.
func writeEmptyConfig(t *testing.T, path string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o700))
	require.NoError(t, os.WriteFile(path, []byte(`{"registries": {}}`+"\n"), 0o600))
}

func TestNamedConfigThatDoesNotExistIsAnError(t *testing.T) {
	f := newFixture(t)
	f.env[credhelper.EnvConfig] = filepath.Join(f.dir, "typo", "config.json")
	out, code := f.run(t, credhelper.DefaultRegistry, "get")
	assert.Equal(t, 1, code)
	assert.Contains(t, out, "DOCKER_CREDENTIAL_STACKIT_CONFIG="+f.env[credhelper.EnvConfig]+" does not exist")
	assert.Contains(t, f.stderr.String(), "does not exist", "Docker shows stderr, so the error is there too")

	// configure-docker creates it, and then get works.
	f.env["DOCKER_CONFIG"] = filepath.Join(f.dir, "docker")
	_, code = f.run(t, "", "configure-docker", "--registry", "cr.example.com")
	require.Equal(t, 0, code, f.stderr.String())
	assert.FileExists(t, f.env[credhelper.EnvConfig])
	out, code = f.run(t, credhelper.DefaultRegistry, "get")
	assert.Equal(t, 0, code, out)
}

func TestWarmGetAnswersWithTheUsernameStoredInTheCacheEntry(t *testing.T) {
	f := newFixture(t)
	out, code := f.run(t, credhelper.DefaultRegistry, "get")
	require.Equal(t, 0, code, out+f.stderr.String())
	entries, err := filepath.Glob(filepath.Join(f.env[credhelper.EnvCacheDir], "*.json"))
	require.NoError(t, err)
	require.Len(t, entries, 1)
	data, err := os.ReadFile(entries[0])
	require.NoError(t, err)
	var entry map[string]any
	require.NoError(t, json.Unmarshal(data, &entry))
	assert.Equal(t, f.acct.Email, entry["username"], "the entry carries the login, so a hit needs no key parsing")

	// An entry from before entries carried the login still answers with
	// the right one, from the key.
	delete(entry, "username")
	old, err := json.Marshal(entry)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(entries[0], old, 0o600))
	requests := f.srv.Requests()
	out, code = f.run(t, credhelper.DefaultRegistry, "get")
	require.Equal(t, 0, code, out)
	var c struct{ Username, Secret string }
	require.NoError(t, json.Unmarshal([]byte(out), &c))
	assert.Equal(t, f.acct.Email, c.Username)
	assert.Equal(t, requests, f.srv.Requests(), "still a cache hit")
}

func TestCredentialsOutputIsWhatTheStructEncodes(t *testing.T) {
	for _, c := range []credentials.Credentials{
		{ServerURL: "registry.onstackit.cloud", Username: "sa@sa.stackit.cloud", Secret: "eyJ.a.b"},
		{ServerURL: "h:5000", Username: "robot$proj+ci", Secret: `s<&>"\` + "\n\t\u2028é"},
		{},
	} {
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		require.NoError(t, enc.Encode(c))
		got, err := encodeCredentials(c.ServerURL, c.Username, c.Secret)
		require.NoError(t, err)
		assert.Equal(t, want.String(), string(got), "byte for byte what the struct encodes")
	}
}

func TestBareConfigureDockerCreatesTheNamedConfig(t *testing.T) {
	f := newFixture(t)
	f.env[credhelper.EnvConfig] = filepath.Join(f.dir, "named", "config.json")
	f.env["DOCKER_CONFIG"] = filepath.Join(f.dir, "docker")
	_, code := f.run(t, "", "configure-docker")
	require.Equal(t, 0, code, f.stderr.String())
	data, err := os.ReadFile(f.env[credhelper.EnvConfig])
	require.NoError(t, err, "get refuses a named config that is missing, so configure-docker creates it")
	assert.JSONEq(t, `{"registries": {}}`, string(data))
	out, code := f.run(t, credhelper.DefaultRegistry, "get")
	assert.Equal(t, 0, code, out)
}

func TestSecretPastedIntoThePathVariablesIsNeverPrinted(t *testing.T) {
	f := newFixture(t)
	key, err := os.ReadFile(f.env[tokensource.EnvServiceAccountKeyPath])
	require.NoError(t, err)
	for _, name := range []string{credhelper.EnvConfig, credhelper.EnvCacheDir} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			f.env[name] = string(key)
			f.stderr.Reset()
			out, _ := f.run(t, credhelper.DefaultRegistry, "get")
			status, _ := f.run(t, "", "status")
			doctor, _ := f.run(t, "", "doctor")
			all := out + status + doctor + f.stderr.String()
			assert.NotContains(t, all, "PRIVATE KEY")
			assert.NotContains(t, all, string(f.acct.PrivateKeyPEM[40:80]))
			assert.Contains(t, all, "not shown", "it says what is wrong without showing it")
		})
	}
}

func TestRelativeConfigPathIsAnError(t *testing.T) {
	f := newFixture(t)
	f.env[credhelper.EnvConfig] = "rel/config.json"
	out, code := f.run(t, credhelper.DefaultRegistry, "get")
	assert.Equal(t, 1, code)
	assert.Contains(t, out, "DOCKER_CREDENTIAL_STACKIT_CONFIG=rel/config.json is not an absolute path; set it to the full path")
	out, code = f.run(t, "ghcr.io", "get")
	assert.Equal(t, 1, code)
	assert.Contains(t, out, "is not an absolute path", "the config decides which hosts are served, so it stops every get, as an unreadable one does")
}
