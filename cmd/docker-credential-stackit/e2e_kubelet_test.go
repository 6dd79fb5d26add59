package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker-credential-stackit/docker-credential-stackit/tokensource"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

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
