package credhelper_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/docker-credential-stackit/docker-credential-stackit/credhelper"
	"github.com/docker-credential-stackit/docker-credential-stackit/tokensource/tokensourcetest"
)

// The helper must satisfy go-containerregistry's interface.
var _ authn.Helper = (*credhelper.Helper)(nil)

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
	writeEmptyConfig(t, filepath.Join(dir, "config.json"))
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

func (w *world) helper(t *testing.T) *credhelper.Helper {
	return w.helperWithCache(t, filepath.Join(filepath.Dir(w.env["DOCKER_CREDENTIAL_STACKIT_CONFIG"]), "cache"))
}

func (w *world) helperWithCache(t *testing.T, dir string) *credhelper.Helper {
	h, err := credhelper.New(
		credhelper.WithEnv(func(k string) string { return w.env[k] }),
		credhelper.WithWarnings(w.warnings),
		credhelper.WithCacheDir(dir),
	)
	require.NoError(t, err)
	return h
}

func TestGoAPIGetServesOursAndNotFoundForOthers(t *testing.T) {
	w := newWorld(t)
	h := w.helper(t)
	user, secret, err := h.Get("registry.onstackit.cloud")
	require.NoError(t, err)
	assert.Equal(t, w.acct.Email, user)
	assert.True(t, w.srv.Valid(user, secret))

	// go-containerregistry first sends host/repo; the cache answers.
	c2, err := w.helper(t).Credential(context.Background(), "127.0.0.1:5000/team/app")
	require.NoError(t, err)
	assert.Equal(t, user, c2.Username)
	assert.Equal(t, secret, c2.Secret)
	assert.Equal(t, 1, w.srv.Requests())

	_, _, err = h.Get("ghcr.io")
	assert.True(t, credhelper.IsNotFound(err))
	assert.Empty(t, w.warnings.String(), "not-found is not worth a warning")
}

func TestGoAPIKeychainFromHelperReportsSwallowedErrors(t *testing.T) {
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
	// A cold cache, so the deleted key is asked for.
	auth, err = authn.NewKeychainFromHelper(w.helperWithCache(t, t.TempDir())).Resolve(fresh)
	require.NoError(t, err)
	assert.Equal(t, authn.Anonymous, auth)
	assert.Contains(t, w.warnings.String(), "docker-credential-stackit: fresh.example.com: token endpoint", "the host is named once")
	assert.Contains(t, w.warnings.String(), "does not know key id "+w.acct.Kid)
}

func TestGoAPIConcurrentGetsShareOneToken(t *testing.T) {
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

func TestGoAPIRefusesRelativePaths(t *testing.T) {
	_, err := credhelper.New(credhelper.WithCacheDir("relative/cache"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not absolute")
	_, err = credhelper.New(credhelper.WithConfigPath("config.json"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not absolute")
}

// writeEmptyConfig creates a private, empty helper config at path: a named
// config that does not exist is an error.
func writeEmptyConfig(t *testing.T, path string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o700))
	require.NoError(t, os.WriteFile(path, []byte(`{"registries": {}}`+"\n"), 0o600))
}
