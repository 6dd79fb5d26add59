package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker-credential-stackit/docker-credential-stackit/tokensource"
	"github.com/docker-credential-stackit/docker-credential-stackit/tokensource/tokensourcetest"
	"github.com/docker/docker-credential-helpers/client"
)

// TestWorkloadIdentityFederationThroughTheBinary: a CI job with a federated
// token file and no stored secret pushes and pulls; the token file rotates
// between runs and the new token is what gets exchanged.
func TestWorkloadIdentityFederationThroughTheBinary(t *testing.T) {
	e := newHelperEnv(t)
	fed, tokenFile := e.useFederationFile(t)
	first := fed.WriteTokenFile(t, tokenFile)
	e.secrets.add(first)

	r := e.run(defaultRegistry, "get")
	if r.code != 0 {
		t.Fatalf("get with a federated token file failed:\n%s", r)
	}
	c := e.parseCreds(r)
	if c.Username != wifEmail || !e.srv.Valid(wifEmail, c.Secret) {
		t.Fatalf("get: user %q; want %s with an access token the IdP issued", c.Username, wifEmail)
	}
	if !strings.Contains(r.stderr, "chose workload identity federation: STACKIT_SERVICE_ACCOUNT_EMAIL is set and the federated token file "+tokenFile) {
		t.Errorf("the debug log does not say federation was chosen and why:\n%s", r.stderr)
	}
	e.requireAssertions("first get", first)
	e.requireRequests("first get: one IdP exchange, the key flow endpoint never asked", 1)
	e.requireCached(c.Secret)

	// A second process is served from the cache.
	if again := e.get(defaultRegistry); again.Secret != c.Secret {
		t.Fatal("second get did not reuse the cached federation token")
	}
	e.requireRequests("second get", 1)

	// The job's token is rotated, the cached access token is dropped
	// (docker logout), and the next get exchanges the new token.
	second := fed.WriteTokenFile(t, tokenFile)
	e.secrets.add(second)
	if r := e.run(defaultRegistry, "erase"); r.code != 0 {
		t.Fatalf("erase failed:\n%s", r)
	}
	rotated := e.get(defaultRegistry)
	if rotated.Secret == c.Secret || !e.srv.Valid(wifEmail, rotated.Secret) {
		t.Fatal("get after rotation and erase did not return a fresh access token")
	}
	e.requireAssertions("after rotation", first, second)

	// The token file disappears: the key in the environment takes over,
	// and the debug log says why.
	if err := os.Remove(tokenFile); err != nil {
		t.Fatal(err)
	}
	e.vars[envCacheDir] = filepath.Join(e.root, "cache-2")
	r = e.run(defaultRegistry, "get")
	if r.code != 0 {
		t.Fatalf("get without a token file failed:\n%s", r)
	}
	if c := e.parseCreds(r); c.Username != e.acct.Email {
		t.Fatalf("without a federated token: user %q, want the key's %s", c.Username, e.acct.Email)
	}
	if !strings.Contains(r.stderr, "chose key flow: STACKIT_SERVICE_ACCOUNT_EMAIL is set but there is no federated token: "+tokenFile) {
		t.Errorf("the debug log does not say why the key flow was chosen:\n%s", r.stderr)
	}

	// A push and pull from a job with nothing but the federated token.
	third := fed.WriteTokenFile(t, tokenFile)
	e.secrets.add(third)
	e.vars[envKeyPath] = ""
	e.vars[envCacheDir] = filepath.Join(e.root, "cache-3")
	reg := newFakeRegistry(t, e.srv, wifEmail)
	e.vars[envRegistries] = reg.Host
	e.useDockerConfig(t, reg.Host)
	stop := captureStderr(t)
	err := pushAndPull(t, reg.Host, "wif/app:v1")
	stderr := stop()
	e.checkStderr("the helper under go-containerregistry", stderr)
	if err != nil {
		t.Fatalf("push and pull with workload identity federation: %v\nhelper stderr:\n%s", err, stderr)
	}
	if reg.logins.Load() < 2 || reg.rejected.Load() != 0 {
		t.Errorf("registry granted %d logins and refused %d; want one per transport and no refusal", reg.logins.Load(), reg.rejected.Load())
	}
	e.requireAssertions("after the push", first, second, third)
}

// TestGitHubActionsOIDCThroughTheBinary: STACKIT_USE_OIDC=1 on a runner
// with id-token: write.
func TestGitHubActionsOIDCThroughTheBinary(t *testing.T) {
	e := newHelperEnv(t)
	fed := e.srv.NewFederation(t, wifEmail)
	gh := tokensourcetest.NewGitHubOIDC(t, fed)
	e.secrets.add(gh.RequestToken)
	e.vars[tokensource.EnvServiceAccountEmail] = wifEmail
	e.vars[tokensource.EnvUseOIDC] = "1"
	e.vars[tokensource.EnvActionsIDTokenRequestURL] = gh.RequestURL()
	e.vars[tokensource.EnvActionsIDTokenRequestToken] = gh.RequestToken
	e.vars[tokensource.EnvIDPEndpoint] = e.srv.IdPURL() // the older SDKs' name

	vars := e.varMap()
	prog := client.NewShellProgramFuncWithEnv(helperBin, &vars)
	stop := captureStderr(t)
	c, err := client.Get(prog, defaultRegistry)
	stderr := stop()
	e.checkStderr("get through the client", stderr)
	if err != nil {
		t.Fatalf("get on GitHub Actions: %v\nstderr:\n%s", err, stderr)
	}
	e.secrets.add(c.Secret)
	if c.Username != wifEmail || !e.srv.Valid(wifEmail, c.Secret) {
		t.Fatalf("get: user %q; want %s with an access token the IdP issued", c.Username, wifEmail)
	}
	if gh.Requests() != 1 {
		t.Errorf("the runner's token service saw %d requests, want 1", gh.Requests())
	}
	e.requireAssertions("GitHub token exchanged", gh.Issued()...)

	// Without id-token: write the runner sets no request URL: one clear
	// line, naming the permission, instead of a silent key fallback.
	e.vars[tokensource.EnvActionsIDTokenRequestURL] = ""
	e.vars[envCacheDir] = filepath.Join(e.root, "cache-2")
	r := e.run(defaultRegistry, "get")
	if r.code != 1 || !strings.Contains(r.stdout, `"permissions: id-token: write"`) {
		t.Fatalf("get without the runner's request URL: want exit 1 naming the job permission, got\n%s", r)
	}
}
