package cli

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker-credential-helpers/credentials"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/docker-credential-stackit/docker-credential-stackit/credhelper"
	"github.com/docker-credential-stackit/docker-credential-stackit/tokensource"
	"github.com/docker-credential-stackit/docker-credential-stackit/tokensource/tokensourcetest"
)

const wifEmail = "ci-wif@sa.stackit.cloud"

// withFederation adds federation inputs to the fixture's environment, which
// already configures a service account key: federation must win.
func (f *fixture) withFederation(t *testing.T) (*tokensourcetest.Federation, string) {
	t.Helper()
	fed := f.srv.NewFederation(t, wifEmail)
	tokenFile := filepath.Join(f.dir, "federated-token")
	f.env[tokensource.EnvServiceAccountEmail] = wifEmail
	f.env[tokensource.EnvFederatedTokenFile] = tokenFile
	f.env[tokensource.EnvIDPTokenEndpoint] = f.srv.IdPURL()
	return fed, tokenFile
}

func TestGetPrefersFederationOverTheKeyAndCachesIt(t *testing.T) {
	f := newFixture(t)
	fed, tokenFile := f.withFederation(t)
	federated := fed.WriteTokenFile(t, tokenFile)

	user, secret, err := f.helper().Get(credhelper.DefaultRegistry)
	require.NoError(t, err)
	assert.Equal(t, wifEmail, user)
	assert.True(t, f.srv.Valid(wifEmail, secret))
	assert.Equal(t, 1, f.srv.IdPRequests())
	assert.Equal(t, f.srv.IdPRequests(), f.srv.Requests(), "the key flow endpoint was not asked")
	assert.Contains(t, f.stderr.String(), "get registry.onstackit.cloud: chose workload identity federation: STACKIT_SERVICE_ACCOUNT_EMAIL is set and the federated token file "+tokenFile+" (from STACKIT_FEDERATED_TOKEN_FILE) exists")
	assert.Contains(t, f.stderr.String(), "source=workload identity federation with the token from file "+tokenFile)

	// Cached like key flow tokens: the next get, in a new process, is a hit.
	fed.WriteTokenFile(t, tokenFile)
	_, again, err := f.helper().Get(credhelper.DefaultRegistry)
	require.NoError(t, err)
	assert.Equal(t, secret, again)
	assert.Equal(t, 1, f.srv.IdPRequests())
	assert.Contains(t, f.stderr.String(), "cache=hit")

	list, err := f.helper().List()
	require.NoError(t, err)
	assert.Equal(t, wifEmail, list[credhelper.DefaultRegistry])

	// Erase drops the federation's cached token: the next get exchanges
	// again, with the rotated file.
	require.NoError(t, f.helper().Delete(credhelper.DefaultRegistry))
	_, third, err := f.helper().Get(credhelper.DefaultRegistry)
	require.NoError(t, err)
	assert.NotEqual(t, secret, third)
	assert.Equal(t, 2, f.srv.IdPRequests())
	assert.Len(t, f.srv.Assertions(), 2)
	assert.NotEqual(t, f.srv.Assertions()[0], f.srv.Assertions()[1], "the rotated token was sent")

	for _, leak := range []string{federated, f.srv.Assertions()[1], secret, third} {
		assert.NotContains(t, f.stderr.String(), leak, "debug log never shows a token")
	}
}

func TestGetFallsBackToTheKeyAndSaysWhy(t *testing.T) {
	f := newFixture(t)
	_, tokenFile := f.withFederation(t) // but the file is never written
	user, _, err := f.helper().Get(credhelper.DefaultRegistry)
	require.NoError(t, err)
	assert.Equal(t, "ci-sa@sa.stackit.cloud", user)
	assert.Contains(t, f.stderr.String(), "chose key flow: STACKIT_SERVICE_ACCOUNT_EMAIL is set but there is no federated token: "+tokenFile+" (from STACKIT_FEDERATED_TOKEN_FILE) does not exist and STACKIT_USE_OIDC is not set")
	assert.Equal(t, 0, f.srv.IdPRequests())

	// Neither flow configured: anonymous, with both reasons in the warning.
	delete(f.env, tokensource.EnvServiceAccountKeyPath)
	f.stderr.Reset()
	out, code := f.run(t, credhelper.DefaultRegistry, "get")
	assert.Equal(t, 1, code)
	assert.Equal(t, "credentials not found in native keychain\n", out)
	assert.Contains(t, f.stderr.String(), "no STACKIT service account key configured")
	assert.Contains(t, f.stderr.String(), "workload identity federation not used either: STACKIT_SERVICE_ACCOUNT_EMAIL is set but there is no federated token")
}

func TestGetViaGitHubActionsOIDC(t *testing.T) {
	f := newFixture(t)
	fed, _ := f.withFederation(t)
	delete(f.env, tokensource.EnvFederatedTokenFile)
	gh := tokensourcetest.NewGitHubOIDC(t, fed)
	f.env[tokensource.EnvUseOIDC] = "1"
	f.env[tokensource.EnvActionsIDTokenRequestURL] = gh.RequestURL()
	f.env[tokensource.EnvActionsIDTokenRequestToken] = gh.RequestToken
	f.env[EnvDebug] = "1"

	out, code := f.run(t, credhelper.DefaultRegistry, "get")
	require.Equal(t, 0, code, out)
	var got credentials.Credentials
	require.NoError(t, json.Unmarshal([]byte(out), &got))
	assert.Equal(t, wifEmail, got.Username)
	assert.True(t, f.srv.Valid(wifEmail, got.Secret))
	assert.Equal(t, 1, gh.Requests())
	assert.Equal(t, gh.Issued(), f.srv.Assertions())
	assert.Contains(t, f.stderr.String(), "chose workload identity federation: STACKIT_SERVICE_ACCOUNT_EMAIL is set and STACKIT_USE_OIDC=1 on GitHub Actions")

	_, code = f.run(t, credhelper.DefaultRegistry, "get")
	require.Equal(t, 0, code)
	assert.Equal(t, 1, gh.Requests(), "a cache hit asks neither GitHub nor the IdP")

	for _, leak := range append(gh.Issued(), gh.RequestToken, got.Secret) {
		assert.NotContains(t, f.stderr.String(), leak)
	}
}

func TestFederationErrorsAreOneLineAndLeakNothing(t *testing.T) {
	f := newFixture(t)
	fed, tokenFile := f.withFederation(t)
	f.env[EnvDebug] = "1" // the debug log is scanned for secrets too
	other := f.srv.NewFederation(t, "someone-else@sa.stackit.cloud")
	var secrets []string
	cases := []struct {
		name  string
		setup func()
		want  string
	}{
		{"OIDC on but no runner variables", func() {
			require.NoError(t, os.Remove(tokenFile))
			f.env[tokensource.EnvUseOIDC] = "1"
		}, `STACKIT_USE_OIDC is set but there is no federated token: ACTIONS_ID_TOKEN_REQUEST_URL is not set (give the GitHub Actions job "permissions: id-token: write")`},
		{"OIDC typo", func() { f.env[tokensource.EnvUseOIDC] = "yes please" }, `STACKIT_USE_OIDC="yes please" is not a switch`},
		{"bad email", func() { f.env[tokensource.EnvServiceAccountEmail] = "ci-wif" }, "STACKIT_SERVICE_ACCOUNT_EMAIL: this is not an email address"},
		{"plain http IdP", func() { f.env[tokensource.EnvIDPTokenEndpoint] = "http://idp.example/token" }, "IdP token endpoint from STACKIT_IDP_TOKEN_ENDPOINT: http://idp.example/token uses plain http"},
		{"untrusted token", func() {
			tok := other.IssueToken(t, 10*time.Minute)
			secrets = append(secrets, tok)
			require.NoError(t, os.WriteFile(tokenFile, []byte(tok), 0o600))
		}, "was not accepted for " + wifEmail},
		{"expired token", func() {
			tok := fed.IssueToken(t, -time.Minute)
			secrets = append(secrets, tok)
			require.NoError(t, os.WriteFile(tokenFile, []byte(tok), 0o600))
		}, "federated token from file " + tokenFile + " (STACKIT_FEDERATED_TOKEN_FILE): it expired at"},
	}
	saved := map[string]string{}
	for k, v := range f.env {
		saved[k] = v
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for k := range f.env {
				delete(f.env, k)
			}
			for k, v := range saved {
				f.env[k] = v
			}
			secrets = append(secrets, fed.WriteTokenFile(t, tokenFile))
			tc.setup()
			f.stderr.Reset()
			out, code := f.run(t, credhelper.DefaultRegistry, "get")
			assert.Equal(t, 1, code)
			assert.Contains(t, out, "registry.onstackit.cloud: ")
			assert.Contains(t, out, tc.want)
			assert.Equal(t, 1, strings.Count(out, "\n"), "exactly one line: %q", out)
			for _, s := range append(secrets, f.srv.Assertions()...) {
				assert.NotContains(t, out+f.stderr.String(), s)
			}
		})
	}
}

func TestPerRegistryFederationConfig(t *testing.T) {
	f := newFixture(t)
	fed := f.srv.NewFederation(t, wifEmail)
	tokenFile := filepath.Join(f.dir, "team-token")
	fed.WriteTokenFile(t, tokenFile)
	f.writeConfig(t, map[string]credhelper.RegistryConfig{
		"team.example.com": {ServiceAccountEmail: wifEmail, FederatedTokenFile: tokenFile, IDPTokenEndpoint: f.srv.IdPURL()},
		"keys.example.com": {},
	})

	user, secret, err := f.helper().Get("team.example.com")
	require.NoError(t, err)
	assert.Equal(t, wifEmail, user)
	assert.True(t, f.srv.Valid(wifEmail, secret))
	assert.Contains(t, f.stderr.String(), "chose workload identity federation: the helper config sets federatedTokenFile "+tokenFile+" for this registry")

	user, _, err = f.helper().Get("keys.example.com")
	require.NoError(t, err)
	assert.Equal(t, "ci-sa@sa.stackit.cloud", user, "other registries keep the key from the environment")

	// docker login as the federated account stores nothing.
	require.NoError(t, f.helper().Add(&credentials.Credentials{ServerURL: "team.example.com", Username: wifEmail, Secret: "pasted-access-token"}))
	_, err = os.Stat(filepath.Join(filepath.Dir(f.env[credhelper.EnvConfig]), "logins.json"))
	assert.True(t, os.IsNotExist(err))

	// A config-named token file that is missing is an error naming it,
	// not a silent switch to the key.
	require.NoError(t, os.Remove(tokenFile))
	require.NoError(t, f.helper().Delete("team.example.com"))
	_, _, err = f.helper().Get("team.example.com")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "team.example.com: read federated token "+tokenFile+" (from federatedTokenFile in the helper config): file not found")
}

func TestFederationRetriesATransientIdPFailure(t *testing.T) {
	f := newFixture(t)
	fed, tokenFile := f.withFederation(t)
	federated := fed.WriteTokenFile(t, tokenFile)
	var calls atomic.Int32
	f.srv.Respond = func(w http.ResponseWriter, r *http.Request) bool {
		if calls.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return true
		}
		return false
	}
	user, secret, err := f.helper().Get(credhelper.DefaultRegistry)
	require.NoError(t, err)
	assert.Equal(t, wifEmail, user)
	assert.True(t, f.srv.Valid(wifEmail, secret))
	assert.Equal(t, 2, f.srv.IdPRequests(), "one 503, then success")
	assert.Equal(t, []string{federated}, f.srv.Assertions(), "the retry re-read the file and sent its token")
}
