package stackitauthn_test

import (
	"bytes"
	"context"
	"path/filepath"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/docker-credential-stackit/docker-credential-stackit/stackitauthn"
	"github.com/docker-credential-stackit/docker-credential-stackit/tokensource/tokensourcetest"
)

// The helper must satisfy go-containerregistry's interface.
var _ authn.Helper = (*stackitauthn.Helper)(nil)

type world struct {
	srv      *tokensourcetest.Server
	acct     *tokensourcetest.Account
	env      map[string]string
	warnings *syncBuffer
}

// syncBuffer is a bytes.Buffer for concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newWorld(t *testing.T) *world {
	srv := tokensourcetest.NewServer(t)
	acct := srv.NewAccount(t, "embed-sa@sa.stackit.cloud")
	dir := t.TempDir()
	return &world{
		srv:  srv,
		acct: acct,
		env: map[string]string{
			"HOME":                                 dir,
			"STACKIT_SERVICE_ACCOUNT_KEY_PATH":     acct.WriteKeyFile(t, dir, true),
			"STACKIT_TOKEN_BASEURL":                srv.TokenURL(),
			"DOCKER_CREDENTIAL_STACKIT_CONFIG":     filepath.Join(dir, "config.json"),
			"DOCKER_CREDENTIAL_STACKIT_REGISTRIES": "127.0.0.1:5000",
		},
		warnings: &syncBuffer{},
	}
}

func (w *world) helper(t *testing.T) *stackitauthn.Helper {
	return stackitauthn.NewWithOptions(stackitauthn.Options{
		Env:      func(k string) string { return w.env[k] },
		Warnings: w.warnings,
		CacheDir: filepath.Join(filepath.Dir(w.env["DOCKER_CREDENTIAL_STACKIT_CONFIG"]), "cache"),
	})
}

func TestGet(t *testing.T) {
	w := newWorld(t)
	h := w.helper(t)
	user, secret, err := h.Get("registry.onstackit.cloud")
	require.NoError(t, err)
	assert.Equal(t, w.acct.Email, user)
	assert.True(t, w.srv.Valid(user, secret))

	// go-containerregistry first sends host/repo; the cache answers.
	u2, s2, err := w.helper(t).GetContext(context.Background(), "127.0.0.1:5000/team/app")
	require.NoError(t, err)
	assert.Equal(t, user, u2)
	assert.Equal(t, secret, s2)
	assert.Equal(t, 1, w.srv.Requests())

	_, _, err = h.Get("ghcr.io")
	assert.True(t, stackitauthn.IsNotFound(err))
	assert.Empty(t, w.warnings.String(), "not-found is not worth a warning")
}

func TestKeychainFromHelper(t *testing.T) {
	w := newWorld(t)
	kc := authn.NewKeychainFromHelper(w.helper(t))

	repo, err := name.NewRepository("registry.onstackit.cloud/proj/app")
	require.NoError(t, err)
	auth, err := kc.Resolve(repo)
	require.NoError(t, err)
	cfg, err := auth.Authorization()
	require.NoError(t, err)
	assert.Equal(t, w.acct.Email, cfg.Username)
	assert.True(t, w.srv.Valid(cfg.Username, cfg.Password))

	foreign, err := name.NewRepository("ghcr.io/x/y")
	require.NoError(t, err)
	auth, err = kc.Resolve(foreign)
	require.NoError(t, err)
	assert.Equal(t, authn.Anonymous, auth, "a foreign registry never sees a STACKIT token")

	// go-containerregistry swallows Get errors; the helper still says what
	// went wrong.
	w.srv.DeleteKey(w.acct)
	w.env["DOCKER_CREDENTIAL_STACKIT_REGISTRIES"] = "fresh.example.com"
	fresh, err := name.NewRepository("fresh.example.com/x")
	require.NoError(t, err)
	auth, err = authn.NewKeychainFromHelper(stackitauthn.NewWithOptions(stackitauthn.Options{
		Env:      func(k string) string { return w.env[k] },
		Warnings: w.warnings,
		CacheDir: t.TempDir(), // cold, so the deleted key is asked for
	})).Resolve(fresh)
	require.NoError(t, err)
	assert.Equal(t, authn.Anonymous, auth)
	assert.Contains(t, w.warnings.String(), "docker-credential-stackit: fresh.example.com: fresh.example.com: token endpoint")
	assert.Contains(t, w.warnings.String(), "does not know key id "+w.acct.Kid)
}

func TestConcurrentGetsShareOneToken(t *testing.T) {
	w := newWorld(t)
	h := w.helper(t)
	var wg sync.WaitGroup
	secrets := make([]string, 16)
	errs := make([]error, 16)
	for i := range secrets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, secrets[i], errs[i] = h.Get("registry.onstackit.cloud")
		}()
	}
	wg.Wait()
	for i := range secrets {
		require.NoError(t, errs[i])
		assert.Equal(t, secrets[0], secrets[i])
	}
	assert.Equal(t, 1, w.srv.Requests(), "the cache's lock holds within one process too")
}
