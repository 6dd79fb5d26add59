package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TestGoContainerRegistryPushPull pushes and pulls through
// authn.DefaultKeychain, which finds the helper through DOCKER_CONFIG's
// credHelpers and PATH, as crane, ko and kaniko do.
func TestGoContainerRegistryPushPull(t *testing.T) {
	e := newHelperEnv(t)
	reg := newFakeRegistry(t, e.srv, e.acct.Email)
	e.vars[envRegistries] = reg.Host
	writeJSON(t, filepath.Join(e.docker, "config.json"), map[string]any{
		"credHelpers": map[string]string{reg.Host: "stackit"},
	}, 0o600)
	for k, v := range e.varMap() {
		t.Setenv(k, v)
	}
	t.Setenv("REGISTRY_AUTH_FILE", "")
	t.Setenv("PATH", filepath.Dir(helperBin)+string(os.PathListSeparator)+os.Getenv("PATH"))
	stopCapture := captureStderr(t)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	opts := []remote.Option{remote.WithAuthFromKeychain(authn.DefaultKeychain), remote.WithContext(ctx)}

	ref, err := name.ParseReference(reg.Host + "/e2e/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(4096, 2)
	if err != nil {
		t.Fatal(err)
	}
	want, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, opts...); err != nil {
		t.Fatalf("push %s: %v\nhelper stderr:\n%s", ref, err, stopCapture())
	}
	pulled, err := remote.Image(ref, opts...)
	if err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	got, err := pulled.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("pulled digest %s, pushed %s", got, want)
	}
	layers, err := pulled.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		rc, err := l.Compressed() // verifies the blob against its digest
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			t.Fatalf("read pulled layer: %v", err)
		}
		_ = rc.Close()
	}
	t.Logf("push+pull: %d registry logins granted, %d refused, %d unauthenticated requests challenged, %d token endpoint requests",
		reg.logins.Load(), reg.rejected.Load(), reg.denied.Load(), e.srv.Requests())
	if reg.logins.Load() < 2 || reg.rejected.Load() != 0 {
		t.Errorf("registry granted %d logins and refused %d; want one per transport (push, pull) and no refusal", reg.logins.Load(), reg.rejected.Load())
	}
	e.requireRequests("push and pull with one helper process each", 1)

	// The key is deleted in the portal and nothing is cached: the push
	// fails, and says which key.
	e.srv.DeleteKey(e.acct)
	t.Setenv(envCacheDir, filepath.Join(e.root, "cache-empty"))
	ref2, err := name.ParseReference(reg.Host + "/e2e/app:v2")
	if err != nil {
		t.Fatal(err)
	}
	img2, err := random.Image(1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	err = remote.Write(ref2, img2, opts...)
	stderr := stopCapture()
	e.checkStderr("helper runs through go-containerregistry", stderr)
	if err == nil {
		t.Fatal("push with a deleted key succeeded")
	}
	t.Logf("push with a deleted key: %v", err)
	if !strings.Contains(err.Error(), e.acct.Kid) {
		t.Errorf("push error does not name the key id %s: %v", e.acct.Kid, err)
	}
	if leaks := e.secrets.leaks(err.Error()); len(leaks) > 0 {
		t.Errorf("push error shows %s: %v", strings.Join(leaks, ", "), err)
	}
	if e.srv.Requests() != 2 {
		t.Errorf("token endpoint saw %d requests, want 2 (one per empty cache)", e.srv.Requests())
	}
}

// TestGoAPIPushPull drives go-containerregistry with package credhelper
// in-process against the token-auth registry.
func TestGoAPIPushPull(t *testing.T) {
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
