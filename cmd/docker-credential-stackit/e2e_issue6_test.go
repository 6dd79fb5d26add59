package main

// End-to-end tests of the commands beyond the Docker protocol: kubelet,
// configure-podman with skopeo, token, doctor, and package stackitauthn
// driving go-containerregistry. They reuse the binary, the isolated
// helperEnv and the token-auth fakeRegistry of e2e_test.go.

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/docker-credential-stackit/docker-credential-stackit/stackitauthn"
	"github.com/docker-credential-stackit/docker-credential-stackit/tokensource"
)

// environWithout is e's environment with the named variables truly absent,
// not merely empty.
func (e *helperEnv) environWithout(names ...string) []string {
	var env []string
	for _, kv := range e.environ() {
		k, _, _ := strings.Cut(kv, "=")
		drop := false
		for _, n := range names {
			drop = drop || k == n
		}
		if !drop {
			env = append(env, kv)
		}
	}
	return env
}

// runWith runs the helper with an explicit environment and no hygiene
// rules of the Docker protocol: these commands report errors on stderr.
func (e *helperEnv) runWith(env []string, stdin string, args ...string) result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	cmd := exec.CommandContext(ctx, helperBin, args...)
	cmd.Env = env
	cmd.Dir = e.root
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{args: args, stdout: stdout.String(), stderr: stderr.String()}
	if ctx.Err() != nil {
		e.t.Fatalf("%v hung; stderr:\n%s", args, r.stderr)
	}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		r.code = exitErr.ExitCode()
	} else if err != nil {
		e.t.Fatal(err)
	}
	e.checkStderr(strings.Join(args, " "), r.stderr)
	return r
}

// kubeletResponse mirrors CredentialProviderResponse of
// k8s.io/kubelet/pkg/apis/credentialprovider/v1 field for field; decoding
// with unknown fields disallowed is what the kubelet does.
type kubeletResponse struct {
	APIVersion    string `json:"apiVersion"`
	Kind          string `json:"kind"`
	CacheKeyType  string `json:"cacheKeyType"`
	CacheDuration string `json:"cacheDuration,omitempty"`
	Auth          map[string]struct {
		Username string `json:"username"`
		Password string `json:"password"`
	} `json:"auth,omitempty"`
}

func decodeKubeletResponse(t *testing.T, r result) kubeletResponse {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("kubelet failed:\n%s", r)
	}
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	dec.DisallowUnknownFields()
	var resp kubeletResponse
	if err := dec.Decode(&resp); err != nil {
		t.Fatalf("the kubelet would reject %q: %v", r.stdout, err)
	}
	return resp
}

func kubeletRequest(image string) string {
	return `{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest","image":"` + image + `"}`
}

// pushRandomImage pushes a random image to ref through package stackitauthn
// with e's environment and returns its digest.
func pushRandomImage(t *testing.T, e *helperEnv, ref string) v1.Hash {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(2048, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img, remote.WithAuthFromKeychain(e.keychain(t))); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	digest, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return digest
}

// keychain is go-containerregistry's view of package stackitauthn in e.
func (e *helperEnv) keychain(t *testing.T) authn.Keychain {
	vars := e.varMap()
	warnings := &strings.Builder{}
	t.Cleanup(func() { e.checkStderr("stackitauthn warnings", warnings.String()) })
	return authn.NewKeychainFromHelper(stackitauthn.NewWithOptions(stackitauthn.Options{
		Env:      func(k string) string { return vars[k] },
		Warnings: warnings,
	}))
}

// TestKubeletWithoutHome runs the kubelet plugin the way the kubelet does
// under systemd: no HOME, a request on stdin, the cache dir from a flag and
// then from the environment. The answer must decode strictly and log in to
// a registry that demands a STACKIT token.
func TestKubeletWithoutHome(t *testing.T) {
	t.Parallel()
	e := newHelperEnv(t)
	reg := newFakeRegistry(t, e.srv, e.acct.Email)
	e.vars[envRegistries] = reg.Host
	cacheDir := filepath.Join(e.root, "var-lib-docker-credential-stackit")
	noHome := e.environWithout("HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", envCacheDir)

	resp := decodeKubeletResponse(t, e.runWith(noHome, kubeletRequest(reg.Host+"/e2e/app:v1"), "kubelet", "--cache-dir", cacheDir))
	if resp.APIVersion != "credentialprovider.kubelet.k8s.io/v1" || resp.Kind != "CredentialProviderResponse" || resp.CacheKeyType != "Registry" {
		t.Errorf("response header: %+v", resp)
	}
	d, err := time.ParseDuration(resp.CacheDuration)
	if err != nil || d <= 0 || d > 15*time.Minute {
		t.Errorf("cacheDuration %q: want half of a 30-minute token's remaining life (%v)", resp.CacheDuration, err)
	}
	auth, ok := resp.Auth[reg.Host]
	if !ok || len(resp.Auth) != 1 {
		t.Fatalf("auth = %v, want one entry for %s", resp.Auth, reg.Host)
	}
	e.secrets.add(auth.Password)
	if auth.Username != e.acct.Email || !e.srv.Valid(auth.Username, auth.Password) {
		t.Fatalf("auth for %s is not a valid login of %s", reg.Host, e.acct.Email)
	}
	if entries, _ := filepath.Glob(filepath.Join(cacheDir, "*.json")); len(entries) != 1 {
		t.Errorf("want one cache entry under --cache-dir, found %v", entries)
	}

	// What the kubelet would hand the container runtime works.
	ref, err := name.ParseReference(reg.Host + "/e2e/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	basic := &authn.Basic{Username: auth.Username, Password: auth.Password}
	if err := remote.Write(ref, img, remote.WithAuth(basic)); err != nil {
		t.Fatalf("push with the kubelet's credentials: %v", err)
	}

	// The same cache, named by the environment instead of the flag.
	withEnvDir := append(e.environWithout("HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", envCacheDir), envCacheDir+"="+cacheDir)
	again := decodeKubeletResponse(t, e.runWith(withEnvDir, kubeletRequest(reg.Host+"/e2e/other:v2"), "kubelet"))
	if again.Auth[reg.Host].Password != auth.Password {
		t.Error("the second request was not served from the cache")
	}
	e.requireRequests("two kubelet requests", 1)

	// Foreign images: an empty auth map, not an error.
	foreign := decodeKubeletResponse(t, e.runWith(noHome, kubeletRequest("ghcr.io/x/y:1"), "kubelet", "--cache-dir", cacheDir))
	if len(foreign.Auth) != 0 || foreign.CacheDuration != "0s" {
		t.Errorf("foreign image: %+v", foreign)
	}

	// A request the helper does not understand: one line on stderr.
	bad := e.runWith(noHome, `{"apiVersion":"credentialprovider.kubelet.k8s.io/v9","kind":"CredentialProviderRequest","image":"x.y/z"}`, "kubelet", "--cache-dir", cacheDir)
	if bad.code != 1 || bad.stdout != "" || strings.Count(bad.stderr, "\n") != 1 || !strings.Contains(bad.stderr, `unsupported apiVersion "credentialprovider.kubelet.k8s.io/v9"`) {
		t.Errorf("unknown apiVersion:\n%s", bad)
	}
}

// TestTokenCommand is the Harbor API recipe: username and token from the
// helper, as HTTP basic auth.
func TestTokenCommand(t *testing.T) {
	t.Parallel()
	e := newHelperEnv(t)
	reg := newFakeRegistry(t, e.srv, e.acct.Email)
	e.vars[envRegistries] = reg.Host

	user := e.runWith(e.environ(), "", "token", "--registry", reg.Host, "--username")
	tok := e.runWith(e.environ(), "", "token", "--registry", reg.Host)
	if user.code != 0 || tok.code != 0 {
		t.Fatalf("token failed:\n%s\n%s", user, tok)
	}
	if user.stdout != e.acct.Email+"\n" {
		t.Errorf("token --username printed %q", user.stdout)
	}
	token := strings.TrimSuffix(tok.stdout, "\n")
	e.secrets.add(token)
	if !e.srv.Valid(e.acct.Email, token) || strings.Contains(token, "\n") {
		t.Fatalf("token printed %q, not one valid token line", tok.stdout)
	}
	// curl -u "$(… token --username):$(… token)" against the registry's API.
	req, err := http.NewRequest(http.MethodGet, reg.URL+"/token", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(strings.TrimSpace(user.stdout), token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("basic auth with the printed username and token: HTTP %d", resp.StatusCode)
	}

	if again := e.runWith(e.environ(), "", "token"); again.stdout != tok.stdout {
		t.Error("the default registry shares the cached token")
	}
	e.requireRequests("three token commands", 1)

	// On a terminal the token is refused; script(1) provides one.
	script, err := exec.LookPath("script")
	if err != nil {
		t.Log("script(1) not found; terminal refusal is covered by the unit tests only")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	cmd := exec.CommandContext(ctx, script, "-q", "-e", "-c", helperBin+" token", "/dev/null")
	cmd.Env = e.environ()
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "refusing to print an access token to a terminal") || strings.Contains(string(out), token) {
		t.Errorf("token on a terminal: %v\n%s", err, out)
	}
}

// TestDoctorCommand checks the report of a working and of a broken setup,
// and that neither shows a secret.
func TestDoctorCommand(t *testing.T) {
	t.Parallel()
	e := newHelperEnv(t)
	token := e.get(defaultRegistry).Secret
	r := e.runWith(e.environ(), "", "doctor")
	if r.code != 0 {
		t.Fatalf("doctor on a working setup:\n%s", r)
	}
	for _, want := range []string{
		"registry.onstackit.cloud  built in",
		"service account key from STACKIT_SERVICE_ACCOUNT_KEY_PATH (" + e.keyPath + ")",
		e.acct.Email, e.acct.Kid,
		"token now       OK: served from the cache",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("doctor output lacks %q:\n%s", want, r.stdout)
		}
	}
	if leaks := e.secrets.leaks(r.stdout); len(leaks) > 0 || strings.Contains(r.stdout, token) {
		t.Errorf("doctor shows %v:\n%s", leaks, r.stdout)
	}

	// The key is deleted and nothing is cached: exit 1, with the fix.
	e.srv.DeleteKey(e.acct)
	e.vars[envCacheDir] = filepath.Join(e.root, "cold-cache")
	r = e.runWith(e.environ(), "", "doctor")
	if r.code != 1 || !strings.Contains(r.stdout, "token now       FAILED") || !strings.Contains(r.stdout, "fix             create a new key for "+e.acct.Email) {
		t.Errorf("doctor with a deleted key:\n%s", r)
	}
	if leaks := e.secrets.leaks(r.stdout); len(leaks) > 0 {
		t.Errorf("doctor shows %v:\n%s", leaks, r.stdout)
	}
}

// TestStackitauthnPushPull drives go-containerregistry with package
// stackitauthn in-process against the token-auth registry.
func TestStackitauthnPushPull(t *testing.T) {
	t.Parallel()
	e := newHelperEnv(t)
	reg := newFakeRegistry(t, e.srv, e.acct.Email)
	e.vars[envRegistries] = reg.Host
	want := pushRandomImage(t, e, reg.Host+"/embed/app:v1")

	ref, err := name.ParseReference(reg.Host + "/embed/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	kc := authn.NewMultiKeychain(e.keychain(t), authn.DefaultKeychain)
	img, err := remote.Image(ref, remote.WithAuthFromKeychain(kc))
	if err != nil {
		t.Fatalf("pull: %v", err)
	}
	if got, err := img.Digest(); err != nil || got != want {
		t.Fatalf("pulled %v (%v), pushed %v", got, err, want)
	}
	if reg.logins.Load() < 2 || reg.rejected.Load() != 0 {
		t.Errorf("registry granted %d logins, refused %d", reg.logins.Load(), reg.rejected.Load())
	}
	e.requireRequests("push and pull in one process", 1)
}

// TestSkopeoThroughContainersAuthFile configures the containers auth file
// with configure-podman and pulls through skopeo, which execs the helper
// from PATH as podman and buildah do.
func TestSkopeoThroughContainersAuthFile(t *testing.T) {
	skopeo, err := exec.LookPath("skopeo")
	if err != nil {
		t.Skip("skopeo is not installed (Debian: apt-get install skopeo)")
	}
	t.Parallel()
	e := newHelperEnv(t)
	reg := newFakeRegistry(t, e.srv, e.acct.Email)
	authFile := filepath.Join(e.root, "containers-auth.json")
	e.vars["REGISTRY_AUTH_FILE"] = authFile

	if r := e.runWith(e.environ(), "", "configure-podman", "--registry", reg.Host); r.code != 0 {
		t.Fatalf("configure-podman:\n%s", r)
	}
	var doc struct {
		CredHelpers map[string]string `json:"credHelpers"`
	}
	data, err := os.ReadFile(authFile)
	if err != nil || json.Unmarshal(data, &doc) != nil || doc.CredHelpers[reg.Host] != "stackit" {
		t.Fatalf("auth file after configure-podman (%v):\n%s", err, data)
	}
	want := pushRandomImage(t, e, reg.Host+"/e2e/app:v1")
	loginsBefore := reg.logins.Load()

	env := append(e.environ(), "PATH="+filepath.Dir(helperBin)+string(os.PathListSeparator)+os.Getenv("PATH"))
	skopeoRun := func(args ...string) (string, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, skopeo, args...)
		cmd.Env = env
		cmd.Dir = e.root
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		e.checkStderr("skopeo "+args[0], stderr.String())
		if err != nil {
			t.Fatalf("skopeo %v: %v\n%s", args, err, stderr.String())
		}
		return stdout.String(), stderr.String()
	}

	out, _ := skopeoRun("inspect", "--tls-verify=false", "docker://"+reg.Host+"/e2e/app:v1")
	var inspected struct{ Digest string }
	if err := json.Unmarshal([]byte(out), &inspected); err != nil || inspected.Digest != want.String() {
		t.Fatalf("skopeo inspect digest %q (%v), pushed %s", inspected.Digest, err, want)
	}
	layout := filepath.Join(e.root, "oci")
	skopeoRun("--insecure-policy", "copy", "--src-tls-verify=false", "docker://"+reg.Host+"/e2e/app:v1", "oci:"+layout+":v1")
	if _, err := os.Stat(filepath.Join(layout, "index.json")); err != nil {
		t.Fatalf("skopeo copy wrote no OCI layout: %v", err)
	}
	if reg.logins.Load() <= loginsBefore || reg.rejected.Load() != 0 {
		t.Errorf("skopeo logged in %d times, %d refused; want logins through the helper", reg.logins.Load()-loginsBefore, reg.rejected.Load())
	}
	e.requireRequests("push in-process, inspect and copy through skopeo", 1)
}

// TestKubeletPerPodIdentity drives the real binary the way a Kubernetes
// 1.33+ kubelet with tokenAttributes does: the pod's service account token
// is exchanged at the STACKIT IdP for the identity its ServiceAccount
// names, and that identity logs in to the registry.
func TestKubeletPerPodIdentity(t *testing.T) {
	t.Parallel()
	e := newHelperEnv(t)
	podFed := e.srv.NewFederation(t, "pod-sa@sa.stackit.cloud")
	reg := newFakeRegistry(t, e.srv, podFed.Email)
	e.vars[envRegistries] = reg.Host
	e.vars[tokensource.EnvIDPTokenEndpoint] = e.srv.IdPURL()
	podToken := podFed.IssueToken(t, 10*time.Minute)
	e.secrets.add(podToken)
	noHome := e.environWithout("HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", envCacheDir)
	cacheDir := filepath.Join(e.root, "kubelet-cache")
	request := func(token string) string {
		data, err := json.Marshal(map[string]any{
			"apiVersion": "credentialprovider.kubelet.k8s.io/v1", "kind": "CredentialProviderRequest",
			"image": reg.Host + "/team/app:v1", "serviceAccountToken": token,
			"serviceAccountAnnotations": map[string]string{"stackit.cloud/service-account-email": podFed.Email},
		})
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}

	resp := decodeKubeletResponse(t, e.runWith(noHome, request(podToken), "kubelet", "--cache-dir", cacheDir))
	auth := resp.Auth[reg.Host]
	e.secrets.add(auth.Password)
	if auth.Username != podFed.Email || !e.srv.Valid(podFed.Email, auth.Password) {
		t.Fatalf("want a valid login of the pod's identity %s, got user %q", podFed.Email, auth.Username)
	}
	if got := e.srv.Assertions(); len(got) != 1 || got[0] != podToken {
		t.Errorf("the IdP should have received exactly the pod's token once, got %d assertions", len(got))
	}
	if keyFlow := e.srv.Requests() - e.srv.IdPRequests(); keyFlow != 0 {
		t.Errorf("per-pod identity must not use the node's service account key: %d key-flow requests", keyFlow)
	}
	if entries, _ := filepath.Glob(filepath.Join(cacheDir, "*.json")); len(entries) != 0 {
		t.Errorf("per-pod tokens must not be cached on disk, found %v", entries)
	}

	// The registry accepts what the kubelet would hand the runtime.
	ref, err := name.ParseReference(reg.Host + "/team/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: auth.Username, Password: auth.Password})); err != nil {
		t.Fatalf("push with the pod's credentials: %v", err)
	}

	// Another pod claiming the same identity with a token the IdP did not
	// issue gets nothing, even right after a successful exchange.
	forged := e.runWith(noHome, request("eyJhbGciOiJSUzI1NiJ9.eyJleHAiOjQxMDI0NDQ4MDB9.forged"), "kubelet", "--cache-dir", cacheDir)
	if forged.code != 1 || forged.stdout != "" || !strings.Contains(forged.stderr, "was not accepted for "+podFed.Email) {
		t.Errorf("a forged pod token must fail with one line on stderr:\n%s", forged)
	}
}
