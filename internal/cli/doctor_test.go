package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/docker-credential-stackit/docker-credential-stackit/credhelper"
	"github.com/docker-credential-stackit/docker-credential-stackit/internal/testfs"
	"github.com/docker-credential-stackit/docker-credential-stackit/tokensource"
)

func (f *fixture) doctor(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = runDoctor(args, func(k string) string { return f.env[k] }, &out, &errOut, testPlatform(t))
	return out.String(), errOut.String(), code
}

// assertNoSecrets fails if text holds the access token or any piece of the
// private key or key JSON.
func assertNoSecrets(t *testing.T, f *fixture, text string) {
	t.Helper()
	_, token, err := f.helper().Get(credhelper.DefaultRegistry)
	require.NoError(t, err)
	assert.NotContains(t, text, token)
	assert.NotContains(t, text, "PRIVATE KEY")
	pem := string(f.acct.PrivateKeyPEM)
	for _, line := range strings.Split(pem, "\n") {
		if len(line) > 20 && !strings.HasPrefix(line, "-----") {
			assert.NotContains(t, text, line[:20])
		}
	}
	assert.NotContains(t, text, `"credentials"`)
}

func TestDoctorHealthy(t *testing.T) {
	f := newFixture(t)
	keyPath := f.env[tokensource.EnvServiceAccountKeyPath]
	out, stderr, code := f.doctor(t)
	require.Equal(t, 0, code, out+stderr)
	for _, want := range []string{
		"helper config   " + f.env[credhelper.EnvConfig] + " (DOCKER_CREDENTIAL_STACKIT_CONFIG); exists",
		"token cache     " + f.env[credhelper.EnvCacheDir] + " (DOCKER_CREDENTIAL_STACKIT_CACHE_DIR)",
		"registry.onstackit.cloud  built in",
		"credentials     service account key from STACKIT_SERVICE_ACCOUNT_KEY_PATH (" + keyPath + ")",
		"why             STACKIT_SERVICE_ACCOUNT_KEY_PATH is set; the order is",
		"account         ci-sa@sa.stackit.cloud",
		"key id          " + f.acct.Kid,
		"token endpoint  " + f.srv.TokenURL() + " (STACKIT_TOKEN_BASEURL)",
		"private key     credentials.privateKey in the key",
		"cache           no cached token; the next request fetches one",
		"token now       OK: fetched from the token endpoint just now, valid for",
		"Result: every registry checked (1) can get credentials now.",
	} {
		assert.Contains(t, out, want)
	}
	assert.Regexp(t, `(?m)^  STACKIT_SERVICE_ACCOUNT_KEY_PATH +`+regexp.QuoteMeta(keyPath)+`$`, out)
	assertNoSecrets(t, f, out+stderr)

	out, _, code = f.doctor(t)
	require.Equal(t, 0, code)
	assert.Contains(t, out, "cache           a token valid for")
	assert.Contains(t, out, "it is handed out until 5m0s remain, then refreshed")
	assert.Contains(t, out, "token now       OK: served from the cache")
	assert.Equal(t, 1, f.srv.Requests())
	assertNoSecrets(t, f, out)
}

func TestDoctorNeverPrintsInlineSecrets(t *testing.T) {
	f := newFixture(t)
	// The whole key, private key included, inline in the environment, and
	// a shadowed path that loses to nothing: the inline value is used.
	delete(f.env, tokensource.EnvServiceAccountKeyPath)
	f.env[tokensource.EnvServiceAccountKey] = string(f.acct.KeyJSON(true))
	f.env["STACKIT_SERVICE_ACCOUNT_TOKEN"] = "legacy-long-lived-token-value"
	out, stderr, code := f.doctor(t)
	require.Equal(t, 0, code, out+stderr)
	assert.Regexp(t, `(?m)^  STACKIT_SERVICE_ACCOUNT_KEY +set \(\d+ bytes, not shown\)$`, out)
	assert.Contains(t, out, "why             STACKIT_SERVICE_ACCOUNT_KEY is set and STACKIT_SERVICE_ACCOUNT_KEY_PATH is not")
	assert.Contains(t, out, "retired in December 2025")
	assert.NotContains(t, out+stderr, "legacy-long-lived-token-value")
	assertNoSecrets(t, f, out+stderr)
}

func TestDoctorExplainsSourcesPerRegistry(t *testing.T) {
	f := newFixture(t)
	other := f.srv.NewAccount(t, "team-sa@sa.stackit.cloud")
	otherKey := other.WriteKeyFile(t, f.dir, true)
	f.env[credhelper.EnvRegistries] = "extra.example.com"
	f.env[tokensource.EnvServiceAccountKey] = "{}"
	require.NoError(t, os.MkdirAll(filepath.Dir(f.env[credhelper.EnvConfig]), 0o700))
	require.NoError(t, os.WriteFile(f.env[credhelper.EnvConfig], []byte(`{"registries":{"team.example.com":{"serviceAccountKeyPath":`+testfs.JSONQuote(otherKey)+`}}}`), 0o600))
	robot := robotLogin()
	robot.ServerURL = "extra.example.com"
	require.NoError(t, f.helper().Add(robot))

	out, stderr, code := f.doctor(t)
	require.Equal(t, 0, code, out+stderr)
	assert.Contains(t, out, "extra.example.com         DOCKER_CREDENTIAL_STACKIT_REGISTRIES")
	assert.Contains(t, out, "team.example.com          the helper config (with its own settings for this registry)")
	assert.Contains(t, out, "ignored         STACKIT_SERVICE_ACCOUNT_KEY is set too, but STACKIT_SERVICE_ACCOUNT_KEY_PATH comes first")
	assert.Contains(t, out, "why             the helper config sets serviceAccountKeyPath for this registry")
	assert.Contains(t, out, "account         team-sa@sa.stackit.cloud")
	assert.Contains(t, out, "credentials     static login robot$proj+ci, stored by docker login in")
	assert.Contains(t, out, "Result: every registry checked (3) can get credentials now.")
	assert.NotContains(t, out, "robot-secret-value")

	out, _, code = f.doctor(t, "--registry", "team.example.com")
	require.Equal(t, 0, code)
	assert.Contains(t, out, "Result: every registry checked (1)")
	assert.NotContains(t, out, "\nregistry.onstackit.cloud\n")
}

func TestDoctorFailuresSayHowToFix(t *testing.T) {
	cases := []struct {
		name         string
		setup        func(f *fixture)
		args         []string
		problem, fix string
	}{
		{"no key", func(f *fixture) {
			delete(f.env, tokensource.EnvServiceAccountKeyPath)
			delete(f.env, "HOME")
		}, nil, "no STACKIT service account key configured", "set STACKIT_SERVICE_ACCOUNT_KEY_PATH to the key JSON"},
		{"missing key file", func(f *fixture) {
			f.env[tokensource.EnvServiceAccountKeyPath] = filepath.Join(f.dir, "gone.json")
		}, nil, "file not found", "set STACKIT_SERVICE_ACCOUNT_KEY_PATH to the key JSON STACKIT issued"},
		{"private key of another account", func(f *fixture) {
			other := f.srv.NewAccount(t, "x@sa.stackit.cloud")
			path := filepath.Join(f.dir, "other.pem")
			require.NoError(t, os.WriteFile(path, other.PrivateKeyPEM, 0o600))
			f.env[tokensource.EnvPrivateKeyPath] = path
		}, nil, "does not belong to key id", "use the private key this service account key was created with, or create a new key"},
		{"deleted key", func(f *fixture) { f.srv.DeleteKey(f.acct) }, nil, "does not know key id", "create a new key for ci-sa@sa.stackit.cloud or check STACKIT_TOKEN_BASEURL"},
		{"unreachable endpoint", func(f *fixture) { f.env[tokensource.EnvTokenBaseURL] = "http://127.0.0.1:1/token" }, nil, "unreachable", "check the network, HTTPS_PROXY and STACKIT_TOKEN_BASEURL"},
		{"foreign registry", nil, []string{"--registry", "ghcr.io"}, "ghcr.io is not an allowed registry", "run docker-credential-stackit configure-docker --registry ghcr.io to allow it"},
		{"broken config", func(f *fixture) {
			require.NoError(t, os.MkdirAll(filepath.Dir(f.env[credhelper.EnvConfig]), 0o700))
			require.NoError(t, os.WriteFile(f.env[credhelper.EnvConfig], []byte(`{"registries":{"x":{"typo":1}}}`), 0o600))
		}, nil, `unknown field "typo" in registries[x]`, "the fields are serviceAccountKeyPath, privateKeyPath"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			if c.setup != nil {
				c.setup(f)
			}
			out, stderr, code := f.doctor(t, c.args...)
			assert.Equal(t, 1, code, "a token cannot be obtained")
			assert.Regexp(t, `(?m)^  problem +.*`+regexp.QuoteMeta(c.problem), out)
			assert.Regexp(t, `(?m)^  fix +.*`+regexp.QuoteMeta(c.fix), out)
			assert.NotContains(t, out+stderr, "PRIVATE KEY")
			assert.NotContains(t, out+stderr, string(f.acct.PrivateKeyPEM[40:80]))
		})
	}
}

func TestDoctorFlags(t *testing.T) {
	f := newFixture(t)
	_, stderr, code := f.doctor(t, "extra")
	assert.Equal(t, 1, code)
	assert.Equal(t, "docker-credential-stackit: doctor: unexpected argument \"extra\"; run docker-credential-stackit doctor --help\n", stderr)
	out, stderr, code := f.doctor(t, "--help")
	assert.Equal(t, 0, code)
	assert.Empty(t, out)
	assert.Contains(t, stderr, "-registry HOST")
}

func TestDoctorShowsKeyWarnings(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the warning is about Unix modes, which Windows does not have")
	}
	f := newFixture(t)
	keyPath := f.env[tokensource.EnvServiceAccountKeyPath]
	require.NoError(t, os.Chmod(keyPath, 0o644))
	out, _, code := f.doctor(t)
	require.Equal(t, 0, code, out)
	assert.Regexp(t, `(?m)^  warning +service account key `+regexp.QuoteMeta(keyPath)+` is readable by others \(mode 0644\); run: chmod 600 `, out)
}

func TestDoctorFilesSectionAgreesWithGet(t *testing.T) {
	f := newFixture(t)
	f.env[credhelper.EnvConfig] = filepath.Join(f.dir, "named", "config.json")
	out, _, code := f.doctor(t)
	assert.Equal(t, 1, code)
	assert.Contains(t, out, "does not exist, which is an error because DOCKER_CREDENTIAL_STACKIT_CONFIG names it")
	assert.NotContains(t, out, "only the built-in and environment settings apply")
}
