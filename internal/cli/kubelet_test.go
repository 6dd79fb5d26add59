package cli

import (
	"bytes"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker-credential-helpers/credentials"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/docker-credential-stackit/docker-credential-stackit/credhelper"
	"github.com/docker-credential-stackit/docker-credential-stackit/tokensource"
)

// testPlatform is a non-root user without a passwd home, so that no test
// falls back to a system path.
func testPlatform(t *testing.T) credhelper.Platform {
	dir := t.TempDir()
	goos := "linux"
	if runtime.GOOS == "windows" {
		// The fixtures' paths are this host's: C:\... is not absolute on Linux.
		goos = "windows"
	}
	return credhelper.Platform{
		GOOS:          goos,
		EUID:          1000,
		PasswdHome:    func() string { return "" },
		XDGCacheHome:  filepath.Join(dir, "xdg-cache"),
		XDGConfigHome: filepath.Join(dir, "xdg-config"),
	}
}

// k8sResponse mirrors k8s.io/kubelet/pkg/apis/credentialprovider/v1
// CredentialProviderResponse field for field. Decoding our output into it
// with unknown fields disallowed is what the kubelet's strict decoder does.
type k8sResponse struct {
	APIVersion    string `json:"apiVersion"`
	Kind          string `json:"kind"`
	CacheKeyType  string `json:"cacheKeyType"`
	CacheDuration string `json:"cacheDuration,omitempty"`
	Auth          map[string]struct {
		Username string `json:"username"`
		Password string `json:"password"`
	} `json:"auth,omitempty"`
}

func kubeletRequestJSON(apiVersion, image string) string {
	return `{"apiVersion":"` + apiVersion + `","kind":"CredentialProviderRequest","image":"` + image + `"}`
}

func (f *fixture) kubelet(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = runKubelet(args, func(k string) string { return f.env[k] }, strings.NewReader(stdin), &out, &errOut, testPlatform(t))
	return out.String(), errOut.String(), code
}

func decodeK8sResponse(t *testing.T, out string) k8sResponse {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	var resp k8sResponse
	require.NoError(t, dec.Decode(&resp), "the kubelet's strict decoder would reject: %s", out)
	return resp
}

func TestKubeletAnswersWithHalfTheTokenLife(t *testing.T) {
	f := newFixture(t)
	out, stderr, code := f.kubelet(t, kubeletRequestJSON(kubeletAPIVersionV1, "registry.onstackit.cloud/proj/app:1.0"))
	require.Equal(t, 0, code, stderr)
	assert.Empty(t, stderr)
	assert.True(t, strings.HasSuffix(out, "}\n") && strings.Count(out, "\n") == 1, "one JSON line: %q", out)

	resp := decodeK8sResponse(t, out)
	assert.Equal(t, kubeletAPIVersionV1, resp.APIVersion)
	assert.Equal(t, "CredentialProviderResponse", resp.Kind)
	assert.Equal(t, "Registry", resp.CacheKeyType)
	d, err := time.ParseDuration(resp.CacheDuration)
	require.NoError(t, err)
	// The fake issues 30-minute tokens: half the remaining life is just
	// under 15 minutes. Generous bounds: no timing assumptions.
	assert.LessOrEqual(t, d, 15*time.Minute)
	assert.Greater(t, d, 10*time.Minute)
	assert.Equal(t, d.Truncate(time.Second), d, "whole seconds")
	require.Len(t, resp.Auth, 1)
	auth := resp.Auth["registry.onstackit.cloud"]
	assert.Equal(t, "ci-sa@sa.stackit.cloud", auth.Username)
	assert.True(t, f.srv.Valid(auth.Username, auth.Password))

	// A second pull is served from the helper's own cache.
	out2, _, code := f.kubelet(t, kubeletRequestJSON(kubeletAPIVersionV1, "registry.onstackit.cloud/proj/other@sha256:"+strings.Repeat("a", 64)))
	require.Equal(t, 0, code)
	assert.Equal(t, auth.Password, decodeK8sResponse(t, out2).Auth["registry.onstackit.cloud"].Password)
	assert.Equal(t, 1, f.srv.Requests())
}

func TestKubeletCacheDuration(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	assert.Equal(t, "14m30s", kubeletCacheDuration(now.Add(29*time.Minute), now).String())
	assert.Equal(t, "14m30s", kubeletCacheDuration(now.Add(29*time.Minute+1500*time.Millisecond), now).String(), "truncated to seconds")
	assert.Equal(t, "0s", kubeletCacheDuration(now.Add(-time.Minute), now).String())
}

func TestKubeletEchoesOlderAPIVersions(t *testing.T) {
	f := newFixture(t)
	for _, v := range []string{"credentialprovider.kubelet.k8s.io/v1beta1", "credentialprovider.kubelet.k8s.io/v1alpha1"} {
		out, stderr, code := f.kubelet(t, kubeletRequestJSON(v, "registry.onstackit.cloud/p/a:1"))
		require.Equal(t, 0, code, stderr)
		assert.Equal(t, v, decodeK8sResponse(t, out).APIVersion)
	}
}

func TestKubeletForeignImagesGetEmptyAuth(t *testing.T) {
	f := newFixture(t)
	// A broken key proves nothing is read for foreign hosts.
	f.env[tokensource.EnvServiceAccountKeyPath] = filepath.Join(f.dir, "missing.json")
	for _, image := range []string{"nginx", "nginx:1.27", "library/nginx:1", "docker.io/library/nginx", "ghcr.io/x/y:1", "registry.onstackit.cloud.evil.com/x:1", "localhost/x", "localhost:5000/x"} {
		out, stderr, code := f.kubelet(t, kubeletRequestJSON(kubeletAPIVersionV1, image))
		require.Equal(t, 0, code, "%s: %s", image, stderr)
		assert.Equal(t, `{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderResponse","cacheKeyType":"Registry","cacheDuration":"0s","auth":{}}`+"\n", out, image)
		decodeK8sResponse(t, out)
	}
	assert.Equal(t, 0, f.srv.Requests())
}

func TestKubeletAuthKeyIsTheImagesRegistry(t *testing.T) {
	f := newFixture(t)
	f.env[credhelper.EnvRegistries] = "127.0.0.1:5000,team.example.com"
	out, stderr, code := f.kubelet(t, kubeletRequestJSON(kubeletAPIVersionV1, "127.0.0.1:5000/a/b@sha256:"+strings.Repeat("0", 64)))
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, decodeK8sResponse(t, out).Auth, "127.0.0.1:5000")

	// The kubelet matches auth keys against the image as written.
	out, stderr, code = f.kubelet(t, kubeletRequestJSON(kubeletAPIVersionV1, "Team.Example.com/a:1"))
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, decodeK8sResponse(t, out).Auth, "Team.Example.com")

	out, _, code = f.kubelet(t, kubeletRequestJSON(kubeletAPIVersionV1, "127.0.0.1:5001/a:1"))
	require.Equal(t, 0, code)
	assert.Empty(t, decodeK8sResponse(t, out).Auth, "another port is another host")
}

func TestKubeletUnparseableRegistryIsForeign(t *testing.T) {
	f := newFixture(t)
	out, stderr, code := f.kubelet(t, kubeletRequestJSON(kubeletAPIVersionV1, "a@b.c/x"))
	require.Equal(t, 0, code, stderr)
	resp := decodeK8sResponse(t, out)
	assert.Empty(t, resp.Auth)
	assert.Equal(t, "0s", resp.CacheDuration)
	assert.Equal(t, 0, f.srv.Requests())
}

func TestKubeletKeysAuthOnlyByAValidRegistryHost(t *testing.T) {
	f := newFixture(t)
	for _, image := range []string{
		"registry.onstackit.cloud#.evil.com/p/app:1",
		"registry.onstackit.cloud?.evil.com/p/app:1",
		"registry.onstackit.cloud:443#x/p/app:1",
		"registry.onstackit.cloud:/p/app:1",
		"registry.onstackit.cloud:https/p/app:1",
		"registry.onstackit.cloud%2f.evil.com/p/app:1",
		"registry.onstackit.cloud./p/app:1",
		"-registry.onstackit.cloud/p/app:1",
		"[::1/p/app:1",
	} {
		out, stderr, code := f.kubelet(t, kubeletRequestJSON(kubeletAPIVersionV1, image))
		require.Equal(t, 0, code, "%s: %s", image, stderr)
		resp := decodeK8sResponse(t, out)
		assert.Empty(t, resp.Auth, image)
		assert.Equal(t, "0s", resp.CacheDuration, image)
	}
	assert.Equal(t, 0, f.srv.Requests(), "no token for a malformed registry")

	out, stderr, code := f.kubelet(t, kubeletRequestJSON(kubeletAPIVersionV1, "registry.onstackit.cloud/p/app:1"))
	require.Equal(t, 0, code, stderr)
	assert.Equal(t, []string{"registry.onstackit.cloud"}, slices.Collect(maps.Keys(decodeK8sResponse(t, out).Auth)))
}

func TestValidReferenceDomain(t *testing.T) {
	for _, s := range []string{"registry.onstackit.cloud", "Team.Example.com", "localhost", "localhost:5000", "127.0.0.1:5000", "a", "a-b.c1", "[::1]", "[::1]:5000", "[fe80::1]"} {
		assert.True(t, validReferenceDomain(s), s)
	}
	for _, s := range []string{"", ".", "a.", ".a", "a..b", "-a.b", "a-.b", "a_b.c", "a.b:", "a.b:x", "a.b:1:2", "a.b#c", "a.b?c", "a@b.c", "a b", "a.b%2f", "[]", "[::1", "[::1]x", "[::1]:", "[g::1]", "ä.example.com", `a.b\x`} {
		assert.False(t, validReferenceDomain(s), s)
	}
}

func TestKubeletStaticSecretsAreCachedBriefly(t *testing.T) {
	f := newFixture(t)
	require.NoError(t, f.helper().Add(robotLogin()))
	out, stderr, code := f.kubelet(t, kubeletRequestJSON(kubeletAPIVersionV1, "registry.onstackit.cloud/p/a:1"))
	require.Equal(t, 0, code, stderr)
	resp := decodeK8sResponse(t, out)
	assert.Equal(t, "5m0s", resp.CacheDuration, "a stored login can be changed any time")
	assert.Equal(t, "robot$proj+ci", resp.Auth["registry.onstackit.cloud"].Username)

	// A Harbor robot valid for a year is not cached for half a year: a
	// rotated or revoked secret takes effect within minutes.
	f.robotEntry(t, "harbor.example.com", harborJSON(robotName, robotSecret, time.Now().Add(365*24*time.Hour).Unix()))
	out, stderr, code = f.kubelet(t, kubeletRequestJSON(kubeletAPIVersionV1, "harbor.example.com/p/a:1"))
	require.Equal(t, 0, code, stderr)
	assert.Equal(t, "5m0s", decodeK8sResponse(t, out).CacheDuration)
}

func TestKubeletRejectsBadRequests(t *testing.T) {
	f := newFixture(t)
	const secretToken = "eyJhbGciOiJSUzI1NiJ9.pod-token-secret.sig"
	cases := map[string]struct{ stdin, want string }{
		"empty":            {"", "stdin is not a CredentialProviderRequest: it is empty"},
		"not json":         {"registry.onstackit.cloud", "invalid JSON at line 1, column 1"},
		"truncated":        {`{"apiVersion":"credentialprovider.kubelet.k8s.io/v1",`, "ends in the middle"},
		"unknown field":    {`{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest","image":"a.b/c","serviceAccountToken":"` + secretToken + `","extra":1}`, `unknown field "extra"`},
		"trailing data":    {kubeletRequestJSON(kubeletAPIVersionV1, "a.b/c") + `{}`, "more than one JSON value"},
		"unknown version":  {kubeletRequestJSON("credentialprovider.kubelet.k8s.io/v2", "a.b/c"), `unsupported apiVersion "credentialprovider.kubelet.k8s.io/v2"; set apiVersion: credentialprovider.kubelet.k8s.io/v1`},
		"no version":       {`{"kind":"CredentialProviderRequest","image":"a.b/c"}`, "the request has no apiVersion"},
		"other group":      {kubeletRequestJSON("client.authentication.k8s.io/v1", "a.b/c"), "unsupported apiVersion"},
		"wrong kind":       {`{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"ExecCredential","image":"a.b/c"}`, `unsupported kind "ExecCredential"`},
		"no image":         {`{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest"}`, "the request has no image"},
		"wrong type":       {`{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest","image":7}`, `field "image" must be a string, not a number`},
		"field case":       {`{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest","image":"a.b/c","ServiceAccountToken":"` + secretToken + `"}`, `the request field "ServiceAccountToken" must be spelt "serviceAccountToken"`},
		"token type wrong": {`{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest","image":"a.b/c","serviceAccountToken":["` + secretToken + `"]}`, "must be a string, not an array"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			out, stderr, code := f.kubelet(t, c.stdin)
			assert.Equal(t, 1, code)
			assert.Empty(t, out, "stdout is protocol only")
			assert.Contains(t, stderr, c.want)
			assert.True(t, strings.HasPrefix(stderr, "docker-credential-stackit: kubelet: "))
			assert.Equal(t, 1, strings.Count(stderr, "\n"), "one line: %q", stderr)
			assert.NotContains(t, stderr, "pod-token-secret")
		})
	}
	assert.Equal(t, 0, f.srv.Requests())
}

func TestKubeletServiceAccountToken(t *testing.T) {
	f := newFixture(t)
	f.env[tokensource.EnvIDPTokenEndpoint] = f.srv.IdPURL()
	podFed := f.srv.NewFederation(t, "pod-sa@sa.stackit.cloud")
	podToken := podFed.IssueToken(t, 10*time.Minute)
	req := func(image, token string, annotations map[string]string) string {
		data, err := json.Marshal(kubeletRequest{APIVersion: kubeletAPIVersionV1, Kind: kubeletRequestKind, Image: image, ServiceAccountToken: token, ServiceAccountAnnotations: annotations})
		require.NoError(t, err)
		return string(data)
	}
	podAnnotation := map[string]string{AnnotationServiceAccountEmail: "pod-sa@sa.stackit.cloud"}

	// Without the annotation the pod pulls with the node's identity.
	out, stderr, code := f.kubelet(t, req("registry.onstackit.cloud/p/a:1", podToken, map[string]string{"other.example/x": "y"}))
	require.Equal(t, 0, code, stderr)
	assert.Equal(t, "ci-sa@sa.stackit.cloud", decodeK8sResponse(t, out).Auth["registry.onstackit.cloud"].Username)

	// With it, the pod's token is exchanged for the pod's own identity.
	out, stderr, code = f.kubelet(t, req("registry.onstackit.cloud/p/a:1", podToken, podAnnotation))
	require.Equal(t, 0, code, stderr)
	resp := decodeK8sResponse(t, out)
	auth := resp.Auth["registry.onstackit.cloud"]
	assert.Equal(t, "pod-sa@sa.stackit.cloud", auth.Username)
	assert.True(t, f.srv.Valid("pod-sa@sa.stackit.cloud", auth.Password), "a STACKIT token of the pod's identity")
	assert.Equal(t, []string{podToken}, f.srv.Assertions(), "the pod's own token was the federated token")
	assert.NotEmpty(t, resp.CacheDuration)
	assert.NotContains(t, stderr, podToken)
	assert.NotContains(t, stderr, auth.Password)

	// Per-pod tokens never come from the disk cache: each answer costs an
	// exchange that checks that pod's token, so another pod naming the same
	// email with a token the IdP does not accept gets nothing.
	_, stderr, code = f.kubelet(t, req("registry.onstackit.cloud/p/a:1", "eyJhbGciOiJSUzI1NiJ9.eyJleHAiOjQxMDI0NDQ4MDB9.forged", podAnnotation))
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "was not accepted for pod-sa@sa.stackit.cloud")
	assert.Equal(t, 2, f.srv.IdPRequests())

	// Foreign hosts stay empty whatever the pod's identity.
	out, stderr, code = f.kubelet(t, req("ghcr.io/x/y", podToken, podAnnotation))
	require.Equal(t, 0, code, stderr)
	assert.Empty(t, decodeK8sResponse(t, out).Auth)

	_, stderr, code = f.kubelet(t, req("registry.onstackit.cloud/p/a:1", podToken, map[string]string{AnnotationServiceAccountEmail: "not-an-email"}))
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "is not a service account email")

	noToken := `{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest","image":"registry.onstackit.cloud/p/a:1","serviceAccountAnnotations":{"` + AnnotationServiceAccountEmail + `":"pod-sa@sa.stackit.cloud"}}`
	_, stderr, code = f.kubelet(t, noToken)
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "sent no serviceAccountToken; add tokenAttributes")
	assert.Equal(t, 1, f.srv.Requests()-f.srv.IdPRequests(), "only the node identity's key-flow token was fetched")
	assert.Equal(t, 2, f.srv.IdPRequests())
}

func TestKubeletWithoutHome(t *testing.T) {
	f := newFixture(t)
	delete(f.env, "HOME")
	delete(f.env, credhelper.EnvCacheDir)
	dir := filepath.Join(f.dir, "var-lib")
	out, stderr, code := f.kubelet(t, kubeletRequestJSON(kubeletAPIVersionV1, "registry.onstackit.cloud/p/a:1"), "--cache-dir", dir)
	require.Equal(t, 0, code, stderr)
	assert.NotEmpty(t, decodeK8sResponse(t, out).Auth)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.NotEmpty(t, entries, "the token was cached under --cache-dir")

	_, stderr, code = f.kubelet(t, "", "--cache-dir", "relative/dir")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, `--cache-dir "relative/dir" is not an absolute path`)

	_, stderr, code = f.kubelet(t, "", "--frobnicate")
	assert.Equal(t, 1, code)
	assert.Equal(t, "docker-credential-stackit: kubelet: unknown flag --frobnicate; run docker-credential-stackit kubelet --help\n", stderr)

	out, stderr, code = f.kubelet(t, "", "--help")
	assert.Equal(t, 0, code)
	assert.Empty(t, out, "help is not a response")
	assert.Contains(t, stderr, "Usage: docker-credential-stackit kubelet [--cache-dir DIR]")
	assert.Contains(t, stderr, "\n  --cache-dir DIR\n", "flags are spelt as the usage text spells them")
}

func robotLogin() *credentials.Credentials {
	return &credentials.Credentials{ServerURL: credhelper.DefaultRegistry, Username: "robot$proj+ci", Secret: "robot-secret-value"}
}
