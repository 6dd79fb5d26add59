package main

// End-to-end tests for workload identity federation and robot account
// files, through the real binary built by TestMain in e2e_test.go.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker-credential-helpers/client"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/docker-credential-stackit/docker-credential-stackit/tokensource"
	"github.com/docker-credential-stackit/docker-credential-stackit/tokensource/tokensourcetest"
)

const (
	wifEmail    = "e2e-wif@sa.stackit.cloud"
	robotName   = "robot$e2e+ci"
	robotSecret = "Rb7xQ2mN9vK4pL8sT3wZ6yH1"
)

// useFederationFile points the helper at a federated token file and the
// fake IdP. The environment still holds a service account key: federation
// must win, as in the SDK.
func (e *helperEnv) useFederationFile(t *testing.T) (*tokensourcetest.Federation, string) {
	t.Helper()
	fed := e.srv.NewFederation(t, wifEmail)
	tokenFile := filepath.Join(e.root, "run", "federated-token")
	e.vars[tokensource.EnvServiceAccountEmail] = wifEmail
	e.vars[tokensource.EnvFederatedTokenFile] = tokenFile
	e.vars[tokensource.EnvIDPTokenEndpoint] = e.srv.IdPURL()
	return fed, tokenFile
}

// pushAndPull pushes a random image to host/repo:tag and pulls it back
// through authn.DefaultKeychain, which runs the helper named in
// DOCKER_CONFIG's credHelpers from PATH. The caller has set the process
// environment.
func pushAndPull(t *testing.T, host, repo string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	opts := []remote.Option{remote.WithAuthFromKeychain(authn.DefaultKeychain), remote.WithContext(ctx)}
	ref, err := name.ParseReference(host + "/" + repo)
	if err != nil {
		return err
	}
	img, err := random.Image(2048, 2)
	if err != nil {
		return err
	}
	want, err := img.Digest()
	if err != nil {
		return err
	}
	if err := remote.Write(ref, img, opts...); err != nil {
		return err
	}
	pulled, err := remote.Image(ref, opts...)
	if err != nil {
		return err
	}
	got, err := pulled.Digest()
	if err != nil {
		return err
	}
	if got != want {
		t.Fatalf("pulled digest %s, pushed %s", got, want)
	}
	return nil
}

// useDockerConfig makes the test process look like a CI job whose Docker
// config sends host to this helper.
func (e *helperEnv) useDockerConfig(t *testing.T, host string) {
	t.Helper()
	writeJSON(t, filepath.Join(e.docker, "config.json"), map[string]any{
		"credHelpers": map[string]string{host: "stackit"},
	}, 0o600)
	for k, v := range e.varMap() {
		t.Setenv(k, v)
	}
	t.Setenv("REGISTRY_AUTH_FILE", "")
	t.Setenv("PATH", filepath.Dir(helperBin)+string(os.PathListSeparator)+os.Getenv("PATH"))
}

func (e *helperEnv) requireAssertions(what string, want ...string) {
	e.t.Helper()
	got := e.srv.Assertions()
	if len(got) != len(want) {
		e.t.Fatalf("%s: the IdP received %d federated tokens, want %d", what, len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			e.t.Fatalf("%s: federated token %d sent to the IdP is not the one expected (the file's current token)", what, i+1)
		}
	}
}

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

// robotRegistry is a registry with an unlinked robot account: its token
// endpoint accepts only the robot's static name and secret.
type robotRegistry struct {
	*httptest.Server
	Host     string
	logins   atomic.Int64
	rejected atomic.Int64

	mu     sync.Mutex
	tokens map[string]bool
}

func newRobotRegistry(t *testing.T, user, secret string) *robotRegistry {
	t.Helper()
	r := &robotRegistry{tokens: map[string]bool{}}
	backend := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/service/token" {
			u, p, ok := req.BasicAuth()
			if !ok || u != user || p != secret {
				r.rejected.Add(1)
				http.Error(w, `{"errors":[{"code":"UNAUTHORIZED"}]}`, http.StatusUnauthorized)
				return
			}
			var b [16]byte
			_, _ = rand.Read(b[:])
			tok := "robot-regtok-" + hex.EncodeToString(b[:])
			r.mu.Lock()
			r.tokens[tok] = true
			r.mu.Unlock()
			r.logins.Add(1)
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{"token": tok, "expires_in": 300})
			return
		}
		tok, _ := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
		r.mu.Lock()
		ok := r.tokens[tok]
		r.mu.Unlock()
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="`+r.URL+`/service/token",service="harbor-registry"`)
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED"}]}`, http.StatusUnauthorized)
			return
		}
		backend.ServeHTTP(w, req)
	}))
	t.Cleanup(r.Close)
	r.Host = strings.TrimPrefix(r.URL, "http://")
	return r
}

// TestRobotAccountFileThroughTheBinary: a Harbor robot export named in the
// helper config logs in byte for byte, with its $, and its secret stays in
// its file.
func TestRobotAccountFileThroughTheBinary(t *testing.T) {
	e := newHelperEnv(t)
	e.secrets.add(robotSecret)
	reg := newRobotRegistry(t, robotName, robotSecret)
	robotFile := filepath.Join(e.root, "keys", "robot.json")
	writeRobot := func(expiresAt int64) {
		writeJSON(t, robotFile, map[string]any{
			"creation_time": "2021-08-04T13:58:45.934Z", "id": 1, "name": robotName, "secret": robotSecret, "expires_at": expiresAt,
		}, 0o600)
	}
	writeRobot(-1)
	if err := os.MkdirAll(filepath.Dir(e.config), 0o700); err != nil {
		t.Fatal(err)
	}
	writeJSON(t, e.config, map[string]any{"registries": map[string]any{reg.Host: map[string]string{"robotAccountPath": robotFile}}}, 0o600)

	// The raw protocol output holds the name literally.
	r := e.run(reg.Host, "get")
	want := `{"ServerURL":"` + reg.Host + `","Username":"robot$e2e+ci","Secret":"` + robotSecret + `"}` + "\n"
	if r.code != 0 || r.stdout != want {
		t.Fatalf("get for the robot host: want exactly %q, got\n%s", want, r)
	}

	vars := e.varMap()
	prog := client.NewShellProgramFuncWithEnv(helperBin, &vars)
	stop := captureStderr(t)
	c, err := client.Get(prog, reg.Host)
	if err != nil {
		t.Fatalf("get through the client: %v", err)
	}
	if c.Username != robotName || c.Secret != robotSecret {
		t.Fatalf("get through the client: user %q; want %q and the file's secret", c.Username, robotName)
	}
	list, err := client.List(prog)
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if list[reg.Host] != robotName {
		t.Errorf("list[%s] = %q, want %q", reg.Host, list[reg.Host], robotName)
	}
	e.checkStderr("the helper through the client", stop())

	e.useDockerConfig(t, reg.Host)
	stop = captureStderr(t)
	err = pushAndPull(t, reg.Host, "legacy/app:v1")
	stderr := stop()
	e.checkStderr("the helper under go-containerregistry", stderr)
	if err != nil {
		t.Fatalf("push and pull with the robot file: %v\nhelper stderr:\n%s", err, stderr)
	}
	if reg.logins.Load() < 2 || reg.rejected.Load() != 0 {
		t.Errorf("registry granted %d robot logins and refused %d; want one per transport and no refusal", reg.logins.Load(), reg.rejected.Load())
	}
	e.requireRequests("robot logins need no STACKIT token", 0)

	// Close to expiry: a warning, at most once a day.
	writeRobot(time.Now().Add(3 * 24 * time.Hour).Unix())
	r = e.run(reg.Host, "get")
	if r.code != 0 || !strings.Contains(r.stderr, "warning: robot account robot$e2e+ci ("+robotFile+") expires on ") {
		t.Fatalf("get of a robot expiring in 3 days: want success and a warning, got\n%s", r)
	}
	if r = e.run(reg.Host, "get"); r.code != 0 || strings.Contains(r.stderr, "warning: robot account") {
		t.Fatalf("second get the same day: want success without a warning, got\n%s", r)
	}

	// Expired: one line naming the robot and the date.
	writeRobot(time.Date(2024, 2, 29, 12, 0, 0, 0, time.UTC).Unix())
	r = e.run(reg.Host, "get")
	if r.code != 1 || !strings.Contains(r.stdout, "robot account robot$e2e+ci ("+robotFile+") expired on 2024-02-29T12:00:00Z; refresh its secret in Harbor") {
		t.Fatalf("get of an expired robot: want exit 1 naming robot and date, got\n%s", r)
	}

	// The secret lives only in the robot file.
	for _, dir := range []string{e.cacheDir, filepath.Dir(e.config), e.docker, e.home} {
		_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return nil
			}
			if data, err := os.ReadFile(p); err == nil && strings.Contains(string(data), robotSecret) {
				t.Errorf("the robot secret was copied into %s", p)
			}
			return nil
		})
	}
}
