package tokensource_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/docker-credential-stackit/docker-credential-stackit/tokensource"
	"github.com/docker-credential-stackit/docker-credential-stackit/tokensource/tokensourcetest"
)

const (
	email       = "ci-sa@sa.stackit.cloud"
	explicitTok = "/run/ci/token"
	ghURL       = "https://pipelines.actions.githubusercontent.example/idtoken?api-version=2.0"
)

func TestChooseFlowPrecedence(t *testing.T) {
	type want struct {
		flow       tokensource.Kind
		tokenFile  string
		github     bool
		reason     string
		errContain string
	}
	fed := tokensource.FlowFederation
	key := tokensource.FlowKey
	cases := []struct {
		name     string
		env      map[string]string
		o        tokensource.Overrides
		existing []string
		want     want
	}{
		{"nothing set: key flow", nil, tokensource.Overrides{}, nil,
			want{flow: key, reason: "STACKIT_SERVICE_ACCOUNT_EMAIL is not set"}},
		{"key only: key flow", map[string]string{tokensource.EnvServiceAccountKeyPath: "/k.json"}, tokensource.Overrides{}, nil,
			want{flow: key, reason: "STACKIT_SERVICE_ACCOUNT_EMAIL is not set"}},
		{"email and explicit token file that exists: federation beats the key",
			map[string]string{tokensource.EnvServiceAccountEmail: email, tokensource.EnvFederatedTokenFile: explicitTok, tokensource.EnvServiceAccountKeyPath: "/k.json"},
			tokensource.Overrides{}, []string{explicitTok},
			want{flow: fed, tokenFile: explicitTok, reason: "federated token file /run/ci/token (from STACKIT_FEDERATED_TOKEN_FILE) exists"}},
		{"email and default token file that exists: federation",
			map[string]string{tokensource.EnvServiceAccountEmail: email}, tokensource.Overrides{}, []string{tokensource.DefaultFederatedTokenFile},
			want{flow: fed, tokenFile: tokensource.DefaultFederatedTokenFile, reason: "(the default path) exists"}},
		{"email but no token file and no OIDC: key flow, saying why",
			map[string]string{tokensource.EnvServiceAccountEmail: email, tokensource.EnvServiceAccountKeyPath: "/k.json"}, tokensource.Overrides{}, nil,
			want{flow: key, reason: "STACKIT_SERVICE_ACCOUNT_EMAIL is set but there is no federated token: " + tokensource.DefaultFederatedTokenFile + " (from the default path) does not exist and STACKIT_USE_OIDC is not set"}},
		{"email and explicit token file that is missing: key flow",
			map[string]string{tokensource.EnvServiceAccountEmail: email, tokensource.EnvFederatedTokenFile: explicitTok}, tokensource.Overrides{}, nil,
			want{flow: key, reason: "/run/ci/token (from STACKIT_FEDERATED_TOKEN_FILE) does not exist"}},
		{"token file without email: key flow, saying the email is missing",
			map[string]string{tokensource.EnvFederatedTokenFile: explicitTok}, tokensource.Overrides{}, []string{explicitTok},
			want{flow: key, reason: "STACKIT_SERVICE_ACCOUNT_EMAIL is not set (STACKIT_FEDERATED_TOKEN_FILE is set, but federation needs the email too)"}},
		{"OIDC without email: key flow, saying the email is missing",
			map[string]string{tokensource.EnvUseOIDC: "1", tokensource.EnvActionsIDTokenRequestURL: ghURL}, tokensource.Overrides{}, nil,
			want{flow: key, reason: "(STACKIT_USE_OIDC is set, but federation needs the email too)"}},
		{"GitHub Actions with OIDC: federation via GitHub",
			map[string]string{tokensource.EnvServiceAccountEmail: email, tokensource.EnvUseOIDC: "1", tokensource.EnvActionsIDTokenRequestURL: ghURL, tokensource.EnvServiceAccountKeyPath: "/k.json"},
			tokensource.Overrides{}, nil,
			want{flow: fed, github: true, reason: "STACKIT_USE_OIDC=1 on GitHub Actions"}},
		{"STACKIT_USE_OIDC=true is accepted",
			map[string]string{tokensource.EnvServiceAccountEmail: email, tokensource.EnvUseOIDC: "true", tokensource.EnvActionsIDTokenRequestURL: ghURL},
			tokensource.Overrides{}, nil, want{flow: fed, github: true}},
		{"GitHub runner URL without STACKIT_USE_OIDC: not used",
			map[string]string{tokensource.EnvServiceAccountEmail: email, tokensource.EnvActionsIDTokenRequestURL: ghURL}, tokensource.Overrides{}, nil,
			want{flow: key, reason: "STACKIT_USE_OIDC is not set"}},
		{"explicit existing file beats GitHub",
			map[string]string{tokensource.EnvServiceAccountEmail: email, tokensource.EnvUseOIDC: "1", tokensource.EnvActionsIDTokenRequestURL: ghURL, tokensource.EnvFederatedTokenFile: explicitTok},
			tokensource.Overrides{}, []string{explicitTok}, want{flow: fed, tokenFile: explicitTok}},
		{"GitHub beats the default file",
			map[string]string{tokensource.EnvServiceAccountEmail: email, tokensource.EnvUseOIDC: "1", tokensource.EnvActionsIDTokenRequestURL: ghURL},
			tokensource.Overrides{}, []string{tokensource.DefaultFederatedTokenFile}, want{flow: fed, github: true}},
		{"OIDC outside GitHub with a token file (meshStack style): the file",
			map[string]string{tokensource.EnvServiceAccountEmail: email, tokensource.EnvUseOIDC: "1", tokensource.EnvFederatedTokenFile: explicitTok},
			tokensource.Overrides{}, []string{explicitTok}, want{flow: fed, tokenFile: explicitTok}},
		{"OIDC but no runner URL and no file: error naming the job permission",
			map[string]string{tokensource.EnvServiceAccountEmail: email, tokensource.EnvUseOIDC: "1", tokensource.EnvServiceAccountKeyPath: "/k.json"},
			tokensource.Overrides{}, nil,
			want{errContain: `ACTIONS_ID_TOKEN_REQUEST_URL is not set (give the GitHub Actions job "permissions: id-token: write")`}},
		{"STACKIT_USE_OIDC typo is an error, not off",
			map[string]string{tokensource.EnvServiceAccountEmail: email, tokensource.EnvUseOIDC: "ture"}, tokensource.Overrides{}, nil,
			want{errContain: `STACKIT_USE_OIDC="ture" is not a switch`}},
		{"STACKIT_USE_OIDC=0 is off",
			map[string]string{tokensource.EnvServiceAccountEmail: email, tokensource.EnvUseOIDC: "0", tokensource.EnvActionsIDTokenRequestURL: ghURL}, tokensource.Overrides{}, nil,
			want{flow: key}},
		{"config key path forces the key flow over env federation",
			map[string]string{tokensource.EnvServiceAccountEmail: email, tokensource.EnvFederatedTokenFile: explicitTok},
			tokensource.Overrides{Origin: "the helper config", ServiceAccountKeyPath: "/other.json"}, []string{explicitTok},
			want{flow: key, reason: "the helper config sets serviceAccountKeyPath for this registry"}},
		{"config email forces federation with the env token file",
			map[string]string{tokensource.EnvServiceAccountEmail: "env-sa@sa.stackit.cloud", tokensource.EnvFederatedTokenFile: explicitTok},
			tokensource.Overrides{Origin: "the helper config", ServiceAccountEmail: email}, []string{explicitTok},
			want{flow: fed, tokenFile: explicitTok, reason: "serviceAccountEmail in the helper config is set"}},
		{"config token file is used even when missing, so the error names it",
			map[string]string{tokensource.EnvServiceAccountEmail: email},
			tokensource.Overrides{Origin: "the helper config", FederatedTokenFile: "/cfg/token"}, nil,
			want{flow: fed, tokenFile: "/cfg/token", reason: "the helper config sets federatedTokenFile /cfg/token"}},
		{"config federation without any email: error",
			nil, tokensource.Overrides{Origin: "the helper config", FederatedTokenFile: "/cfg/token"}, []string{"/cfg/token"},
			want{errContain: "sets federatedTokenFile for this registry but no service account email"}},
		{"config key and federation fields together: error",
			nil, tokensource.Overrides{Origin: "the helper config", ServiceAccountKeyPath: "/k.json", ServiceAccountEmail: email}, nil,
			want{errContain: "sets serviceAccountKeyPath (key flow) and serviceAccountEmail (workload identity federation)"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			exists := func(p string) bool {
				for _, e := range tc.existing {
					if e == p {
						return true
					}
				}
				return false
			}
			c, err := tokensource.ChooseFlow(envOf(tc.env), tc.o, exists)
			if tc.want.errContain != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.want.errContain)
				assert.NotContains(t, err.Error(), "\n")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want.flow, c.Flow, c.Reason)
			assert.Equal(t, tc.want.tokenFile, c.TokenFile)
			assert.Equal(t, tc.want.github, c.GitHubOIDC)
			assert.Contains(t, c.Reason, tc.want.reason)
			assert.NotEmpty(t, c.Reason, "the debug log always says why")
			if c.Flow == fed {
				assert.Equal(t, email, c.Email)
			}
		})
	}
}

// wifFixture is a fake IdP with one federation and a token file for it.
type wifFixture struct {
	srv       *tokensourcetest.Server
	fed       *tokensourcetest.Federation
	tokenFile string
	env       map[string]string
}

func newWIFFixture(t *testing.T) *wifFixture {
	t.Helper()
	srv := tokensourcetest.NewServer(t)
	f := &wifFixture{srv: srv, fed: srv.NewFederation(t, email), tokenFile: filepath.Join(t.TempDir(), "token")}
	f.env = map[string]string{
		tokensource.EnvServiceAccountEmail: email,
		tokensource.EnvFederatedTokenFile:  f.tokenFile,
		tokensource.EnvIDPTokenEndpoint:    srv.IdPURL(),
	}
	return f
}

func (f *wifFixture) flow(t *testing.T) *tokensource.WorkloadIdentity {
	t.Helper()
	c, err := tokensource.ChooseFlow(envOf(f.env), tokensource.Overrides{}, tokensource.FileExists)
	require.NoError(t, err)
	require.Equal(t, tokensource.FlowFederation, c.Flow, c.Reason)
	w, err := tokensource.NewWorkloadIdentity(envOf(f.env), tokensource.Overrides{}, c)
	require.NoError(t, err)
	return w
}

func TestWorkloadIdentityWithTokenFile(t *testing.T) {
	f := newWIFFixture(t)
	federated := f.fed.WriteTokenFile(t, f.tokenFile)
	w := f.flow(t)
	assert.Equal(t, email, w.Username())
	assert.Equal(t, tokensource.EnvIDPTokenEndpoint, w.EndpointSource)

	before := time.Now().Add(-time.Second)
	tok, err := w.Token(context.Background())
	require.NoError(t, err)
	assert.True(t, f.srv.Valid(email, tok.AccessToken), "the IdP accepted the form and issued a token for the SA")
	assert.WithinDuration(t, before.Add(30*time.Minute), tok.Expiry, 3*time.Second, "expiry from the access token's exp")
	assert.Equal(t, []string{federated}, f.srv.Assertions(), "the file's token, without its newline, is the client_assertion")
	assert.Equal(t, 1, f.srv.IdPRequests())
}

func TestWorkloadIdentitySendsExactlyTheSDKForm(t *testing.T) {
	f := newWIFFixture(t)
	federated := f.fed.WriteTokenFile(t, f.tokenFile)
	var got url.Values
	var contentType string
	f.srv.Respond = func(w http.ResponseWriter, r *http.Request) bool {
		contentType = r.Header.Get("Content-Type")
		_ = r.ParseForm()
		got = r.PostForm
		return false // and let the fake validate it as well
	}
	_, err := f.flow(t).Token(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "application/x-www-form-urlencoded", contentType)
	assert.Equal(t, url.Values{
		"grant_type":            {"client_credentials"},
		"client_assertion_type": {"urn:schwarz:params:oauth:client-assertion-type:workload-jwt"},
		"client_assertion":      {federated},
		"client_id":             {email},
	}, got)
}

func TestWorkloadIdentityRereadsRotatedTokenFile(t *testing.T) {
	f := newWIFFixture(t)
	first := f.fed.WriteTokenFile(t, f.tokenFile)
	w := f.flow(t)
	_, err := w.Token(context.Background())
	require.NoError(t, err)

	// The kubelet or the CI job replaces the file between exchanges.
	second := f.fed.WriteTokenFile(t, f.tokenFile)
	require.NotEqual(t, first, second)
	_, err = w.Token(context.Background())
	require.NoError(t, err)
	assert.Equal(t, []string{first, second}, f.srv.Assertions(), "each exchange sends the file's current token")
	assert.Equal(t, "wif\x00"+f.srv.IdPURL()+"\x00"+email, w.CacheKey(), "the cache key ignores the rotating token")
}

func TestWorkloadIdentityViaGitHubActions(t *testing.T) {
	srv := tokensourcetest.NewServer(t)
	fed := srv.NewFederation(t, email)
	gh := tokensourcetest.NewGitHubOIDC(t, fed)
	env := map[string]string{
		tokensource.EnvServiceAccountEmail:        email,
		tokensource.EnvUseOIDC:                    "1",
		tokensource.EnvActionsIDTokenRequestURL:   gh.RequestURL(),
		tokensource.EnvActionsIDTokenRequestToken: gh.RequestToken,
		tokensource.EnvIDPEndpoint:                srv.IdPURL(), // the older alias
	}
	c, err := tokensource.ChooseFlow(envOf(env), tokensource.Overrides{}, tokensource.FileExists)
	require.NoError(t, err)
	require.True(t, c.GitHubOIDC, c.Reason)
	w, err := tokensource.NewWorkloadIdentity(envOf(env), tokensource.Overrides{}, c)
	require.NoError(t, err)
	assert.Equal(t, tokensource.EnvIDPEndpoint, w.EndpointSource)

	tok, err := w.Token(context.Background())
	require.NoError(t, err)
	assert.True(t, srv.Valid(email, tok.AccessToken))
	// The fake answers only with the runner's bearer token, the runner
	// URL's own query intact and audience=sts.accounts.stackit.cloud.
	assert.Equal(t, 1, gh.Requests())
	assert.Equal(t, gh.Issued(), srv.Assertions(), "GitHub's token is what the IdP received")

	_, err = w.Token(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 2, gh.Requests(), "a fresh GitHub token for every exchange")

	// Failures name the fix and never echo the runner's request token.
	gh.SetStatus(http.StatusForbidden)
	_, err = w.Token(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "GitHub Actions OIDC token request to "+gh.URL+"/idtoken answered HTTP 403")
	assert.Contains(t, err.Error(), `"permissions: id-token: write"`)
	assert.NotContains(t, err.Error(), "api-version", "the runner URL's query is not logged")
	gh.SetStatus(0)

	wrong := *w.Federated.(*tokensource.GitHubOIDC)
	wrong.RequestToken = "not-the-runner-token"
	w.Federated = &wrong
	_, err = w.Token(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "HTTP 401")
	for _, secret := range append(gh.Issued(), gh.RequestToken, "not-the-runner-token", tok.AccessToken) {
		assert.NotContains(t, err.Error(), secret)
	}
}

func TestGitHubOIDCConfigErrors(t *testing.T) {
	_, err := tokensource.NewGitHubOIDC(envOf(nil))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `STACKIT_USE_OIDC=1 but ACTIONS_ID_TOKEN_REQUEST_URL is not set; give the GitHub Actions job "permissions: id-token: write"`)

	_, err = tokensource.NewGitHubOIDC(envOf(map[string]string{tokensource.EnvActionsIDTokenRequestURL: ghURL}))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "ACTIONS_ID_TOKEN_REQUEST_TOKEN is empty")

	_, err = tokensource.NewGitHubOIDC(envOf(map[string]string{
		tokensource.EnvActionsIDTokenRequestURL:   "http://runner.example/idtoken?x=1",
		tokensource.EnvActionsIDTokenRequestToken: "runner-token-value",
	}))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "plain http")
	assert.NotContains(t, err.Error(), "runner-token-value")
}

func TestGitHubOIDCAnswers(t *testing.T) {
	const requestToken = "runner-request-token-1234"
	cases := []struct {
		name    string
		handler http.HandlerFunc
		want    string
	}{
		{"not JSON", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "<html>") }, "the answer is not JSON"},
		{"no value", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, `{"count":0}`) }, `the answer has no "value"`},
		{"huge", func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, strings.Repeat("x", 1<<20+10))
		}, "larger than 1 MiB"},
		{"500 echoing the request token", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprintf(w, "boom for %s", r.Header.Get("Authorization"))
		}, "answered HTTP 500: boom for Bearer [redacted]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := newLoopbackServer(t, tc.handler)
			g := &tokensource.GitHubOIDC{RequestURL: srv + "/idtoken?api-version=2.0", RequestToken: requestToken, Audience: tokensource.GitHubOIDCAudience}
			_, err := g.FederatedToken(context.Background())
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.NotContains(t, err.Error(), requestToken)
			assert.NotContains(t, err.Error(), "\n")
		})
	}
}

func TestWorkloadIdentityErrorsNameTheFixAndLeakNothing(t *testing.T) {
	f := newWIFFixture(t)
	other := f.srv.NewFederation(t, "other-sa@sa.stackit.cloud")
	cases := []struct {
		name  string
		setup func(t *testing.T) (secret string)
		want  []string
	}{
		{"token file removed after the choice", func(t *testing.T) string {
			require.NoError(t, os.Remove(f.tokenFile))
			return ""
		}, []string{"read federated token " + f.tokenFile + " (from STACKIT_FEDERATED_TOKEN_FILE): file not found"}},
		{"empty token file", func(t *testing.T) string {
			require.NoError(t, os.WriteFile(f.tokenFile, []byte("\n"), 0o600))
			return ""
		}, []string{"federated token from file " + f.tokenFile + " (STACKIT_FEDERATED_TOKEN_FILE): it is empty"}},
		{"not a JWT", func(t *testing.T) string {
			require.NoError(t, os.WriteFile(f.tokenFile, []byte(`{"value":"secret-looking-json"}`), 0o600))
			return "secret-looking-json"
		}, []string{"it is not a JWT"}},
		{"expired federated token", func(t *testing.T) string {
			tok := f.fed.IssueToken(t, -time.Minute)
			require.NoError(t, os.WriteFile(f.tokenFile, []byte(tok), 0o600))
			return tok
		}, []string{"it expired at", "must refresh it"}},
		{"token of another service account", func(t *testing.T) string {
			tok := other.IssueToken(t, 10*time.Minute)
			require.NoError(t, os.WriteFile(f.tokenFile, []byte(tok), 0o600))
			return tok
		}, []string{"answered HTTP 400", "invalid_grant", "was not accepted for " + email, "federated identity provider"}},
		{"token from an untrusted issuer", func(t *testing.T) string {
			tok := fakeJWTToken(`{"iss":"https://evil.example","exp":9999999999}`)
			require.NoError(t, os.WriteFile(f.tokenFile, []byte(tok), 0o600))
			return tok
		}, []string{"HTTP 400", "not issued by a trusted issuer"}},
		{"IdP echoing the assertion", func(t *testing.T) string {
			tok := f.fed.WriteTokenFile(t, f.tokenFile)
			f.srv.Respond = func(w http.ResponseWriter, r *http.Request) bool {
				_ = r.ParseForm()
				w.WriteHeader(http.StatusUnauthorized)
				fmt.Fprintf(w, "bad assertion %s", r.PostForm.Get("client_assertion"))
				return true
			}
			return tok
		}, []string{"answered HTTP 401: bad assertion [redacted]"}},
		{"IdP unreachable", func(t *testing.T) string {
			f.env[tokensource.EnvIDPTokenEndpoint] = "http://127.0.0.1:1/oauth/v2/token"
			return f.fed.WriteTokenFile(t, f.tokenFile)
		}, []string{"unreachable", "STACKIT_IDP_TOKEN_ENDPOINT"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f.fed.WriteTokenFile(t, f.tokenFile)
			f.env[tokensource.EnvIDPTokenEndpoint] = f.srv.IdPURL()
			f.srv.Respond = nil
			w := f.flow(t)
			secret := tc.setup(t)
			w = rebuild(t, f, w)
			_, err := w.Token(context.Background())
			require.Error(t, err)
			for _, want := range tc.want {
				assert.Contains(t, err.Error(), want)
			}
			assert.NotContains(t, err.Error(), "\n")
			if secret != "" {
				assert.NotContains(t, err.Error(), secret)
			}
			for _, a := range f.srv.Assertions() {
				assert.NotContains(t, err.Error(), a)
			}
		})
	}
}

// rebuild applies env changes made after the flow was built.
func rebuild(t *testing.T, f *wifFixture, w *tokensource.WorkloadIdentity) *tokensource.WorkloadIdentity {
	t.Helper()
	c := tokensource.Choice{Flow: tokensource.FlowFederation, Email: w.Email, EmailSource: w.EmailSource,
		TokenFile: f.tokenFile, TokenFileSource: tokensource.EnvFederatedTokenFile}
	w, err := tokensource.NewWorkloadIdentity(envOf(f.env), tokensource.Overrides{}, c)
	require.NoError(t, err)
	return w
}

func TestIdPEndpointPrecedence(t *testing.T) {
	c := tokensource.Choice{Flow: tokensource.FlowFederation, Email: email, EmailSource: tokensource.EnvServiceAccountEmail, TokenFile: "/t", TokenFileSource: "x"}
	env := map[string]string{}
	w, err := tokensource.NewWorkloadIdentity(envOf(env), tokensource.Overrides{}, c)
	require.NoError(t, err)
	assert.Equal(t, "https://accounts.stackit.cloud/oauth/v2/token", w.Endpoint)
	assert.Equal(t, "default", w.EndpointSource)

	env[tokensource.EnvIDPEndpoint] = "https://old.example/token"
	w, err = tokensource.NewWorkloadIdentity(envOf(env), tokensource.Overrides{}, c)
	require.NoError(t, err)
	assert.Equal(t, "https://old.example/token", w.Endpoint)

	env[tokensource.EnvIDPTokenEndpoint] = "https://new.example/token"
	w, err = tokensource.NewWorkloadIdentity(envOf(env), tokensource.Overrides{}, c)
	require.NoError(t, err)
	assert.Equal(t, "https://new.example/token", w.Endpoint, "STACKIT_IDP_TOKEN_ENDPOINT beats the alias")

	w, err = tokensource.NewWorkloadIdentity(envOf(env), tokensource.Overrides{IDPTokenEndpoint: "https://cfg.example/token"}, c)
	require.NoError(t, err)
	assert.Equal(t, "https://cfg.example/token", w.Endpoint, "the registry's config beats the environment")

	env[tokensource.EnvIDPTokenEndpoint] = "http://idp.example/token"
	_, err = tokensource.NewWorkloadIdentity(envOf(env), tokensource.Overrides{}, c)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "IdP token endpoint from STACKIT_IDP_TOKEN_ENDPOINT: http://idp.example/token uses plain http")

	bad := c
	bad.Email = "eyJhbGciOiJSUzI1NiJ9.pasted.token"
	_, err = tokensource.NewWorkloadIdentity(envOf(nil), tokensource.Overrides{}, bad)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "STACKIT_SERVICE_ACCOUNT_EMAIL: this is not an email address")
	assert.NotContains(t, err.Error(), "pasted")

	_, err = tokensource.NewWorkloadIdentity(envOf(nil), tokensource.Overrides{}, tokensource.Choice{Flow: tokensource.FlowKey})
	require.Error(t, err)
}

func TestCheckFederatedToken(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	ok := []string{fakeJWTToken(`{"exp":1800000600}`), fakeJWTToken(`{"sub":"no exp"}`)}
	for _, tok := range ok {
		assert.NoError(t, tokensource.CheckFederatedToken(tok, now), tok)
	}
	bad := map[string]string{
		"":                                   "it is empty",
		"abc":                                "not a JWT",
		"a.b":                                "not a JWT",
		"a b.c.d":                            "not a JWT",
		"..sig":                              "not a JWT",
		fakeJWTToken(`{"exp":1800000000}`):   "it expired at 2027-01-15T08:00:00Z",
		fakeJWTToken(`{"exp":1799999999}`):   "it expired at",
		"eyJ.eyJ.sig\nsecond-line-of-secret": "not a JWT",
	}
	for tok, want := range bad {
		err := tokensource.CheckFederatedToken(tok, now)
		if assert.Error(t, err, tok) {
			assert.Contains(t, err.Error(), want)
			if len(tok) > 3 {
				assert.NotContains(t, err.Error(), tok)
			}
		}
	}
}

func TestCheckServiceAccountEmail(t *testing.T) {
	assert.NoError(t, tokensource.CheckServiceAccountEmail("ci-sa-abc123@sa.stackit.cloud"))
	for _, bad := range []string{"", "no-at-sign", "@sa.stackit.cloud", "x@", "a b@c.d", "x@y\n", strings.Repeat("a", 250) + "@x.de"} {
		assert.Error(t, tokensource.CheckServiceAccountEmail(bad), bad)
	}
}

// fakeJWTToken builds an unsigned-looking JWT with the given claims.
func fakeJWTToken(claims string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"RS256","typ":"JWT"}`)) + "." + enc([]byte(claims)) + ".c2ln"
}

func newLoopbackServer(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}
