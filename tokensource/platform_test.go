package tokensource_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/docker-credential-stackit/docker-credential-stackit/internal/platform"
	"github.com/docker-credential-stackit/docker-credential-stackit/internal/problem"
	"github.com/docker-credential-stackit/docker-credential-stackit/internal/testfs"
	"github.com/docker-credential-stackit/docker-credential-stackit/tokensource"
	"github.com/docker-credential-stackit/docker-credential-stackit/tokensource/tokensourcetest"
)

// On Windows Unix modes mean nothing, and a warning Docker shows on every
// pull would be noise: the injected platform lets Linux CI prove it.
func TestNoModeWarningsOnWindows(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("needs Unix modes on the real files to show the difference")
	}
	srv := tokensourcetest.NewServer(t)
	acct := srv.NewAccount(t, "w@sa.stackit.cloud")
	dir := t.TempDir()
	keyPath := acct.WriteKeyFile(t, dir, true)
	require.NoError(t, os.Chmod(keyPath, 0o644))
	env := envOf(map[string]string{tokensource.EnvServiceAccountKeyPath: keyPath, tokensource.EnvTokenBaseURL: srv.TokenURL(), "HOME": dir})

	linux, err := tokensource.Discover(tokensource.Options{Env: env, Platform: platform.Platform{GOOS: "linux"}}, tokensource.Overrides{})
	require.NoError(t, err)
	require.Len(t, linux.Warnings, 1, "on Unix a key others can read is worth a warning")

	windows, err := tokensource.Discover(tokensource.Options{Env: env, Platform: platform.Platform{GOOS: "windows"}}, tokensource.Overrides{})
	require.NoError(t, err)
	assert.Empty(t, windows.Warnings, "on Windows the mode bits are not the file's access rules")
	tok, err := windows.Token(context.Background())
	require.NoError(t, err)
	assert.Empty(t, tok.Warnings)
}

// The credentials file is found in the Windows profile directory, not
// through HOME, as os.UserHomeDir and the STACKIT SDK do.
func TestCredentialsFileIsFoundInTheWindowsProfile(t *testing.T) {
	srv := tokensourcetest.NewServer(t)
	acct := srv.NewAccount(t, "p@sa.stackit.cloud")
	profile := t.TempDir()
	keyPath := acct.WriteKeyFile(t, profile, true)
	require.NoError(t, os.MkdirAll(filepath.Join(profile, ".stackit"), 0o700))
	writeFile(t, filepath.Join(profile, ".stackit"), "credentials.json", []byte(`{"STACKIT_SERVICE_ACCOUNT_KEY_PATH": `+testfs.JSONQuote(keyPath)+`}`))
	env := func(k string) string {
		return map[string]string{"USERPROFILE": profile, "HOME": filepath.Join(profile, "not-here")}[k]
	}
	flow, err := tokensource.Discover(tokensource.Options{Env: env, Platform: platform.Platform{GOOS: "windows"}}, tokensource.Overrides{})
	require.NoError(t, err)
	assert.Equal(t, acct.Email, flow.Username)
}

// The fix names the setting that chose the endpoint: here the key's own
// tokenEndpoint, not a variable nobody set.
func TestUnreachableEndpointFixNamesWhereTheEndpointCameFrom(t *testing.T) {
	srv := tokensourcetest.NewServer(t)
	acct := srv.NewAccount(t, "u@sa.stackit.cloud")
	dir := t.TempDir()
	keyJSON := strings.Replace(string(acct.KeyJSON(true)), `"kid":`, `"tokenEndpoint": "http://127.0.0.1:1/token", "kid":`, 1)
	keyPath := writeFile(t, dir, "key.json", []byte(keyJSON))
	flow, err := tokensource.Discover(tokensource.Options{Env: envOf(map[string]string{tokensource.EnvServiceAccountKeyPath: keyPath, "HOME": dir})}, tokensource.Overrides{})
	require.NoError(t, err)
	_, err = flow.Token(context.Background())
	require.Error(t, err)
	_, fix := problem.Split(err)
	assert.Contains(t, fix, "credentials.tokenEndpoint in the key")
	assert.NotContains(t, fix, tokensource.EnvTokenBaseURL)
}

// RequestTimeout reaches the default client: a hanging endpoint is given
// up on after it, not after the 30 s default.
func TestRequestTimeoutBoundsOneRequest(t *testing.T) {
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	defer hang.Close()
	defer close(release)
	srv := tokensourcetest.NewServer(t)
	acct := srv.NewAccount(t, "t@sa.stackit.cloud")
	dir := t.TempDir()
	env := envOf(map[string]string{tokensource.EnvServiceAccountKeyPath: acct.WriteKeyFile(t, dir, true), tokensource.EnvTokenBaseURL: hang.URL + "/token", "HOME": dir})
	flow, err := tokensource.Discover(tokensource.Options{Env: env, RequestTimeout: 50 * time.Millisecond}, tokensource.Overrides{})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err = flow.Token(ctx)
	require.Error(t, err)
	assert.NoError(t, ctx.Err(), "the request gave up on its own bound, long before the caller's")
}
