package tokensource_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/docker-credential-stackit/docker-credential-stackit/internal/testfs"
	"github.com/docker-credential-stackit/docker-credential-stackit/tokensource"
	"github.com/docker-credential-stackit/docker-credential-stackit/tokensource/tokensourcetest"
)

// envOf is an environment from a map. A test's HOME is also the Windows
// profile directory, so that the same test finds ~ on every platform, as
// os.UserHomeDir (and the STACKIT SDK) do.
func envOf(m map[string]string) tokensource.Env {
	return func(k string) string {
		if v, ok := m[k]; ok || k != "USERPROFILE" {
			return v
		}
		return m["HOME"]
	}
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, data, 0o600))
	return p
}

func TestKeyFlowGetsValidToken(t *testing.T) {
	srv := tokensourcetest.NewServer(t)
	acct := srv.NewAccount(t, "ci-sa@sa.stackit.cloud")
	dir := t.TempDir()
	flow, err := tokensource.NewKeyFlow(envOf(map[string]string{
		tokensource.EnvServiceAccountKeyPath: acct.WriteKeyFile(t, dir, true),
		tokensource.EnvTokenBaseURL:          srv.TokenURL(),
	}), tokensource.Overrides{})
	require.NoError(t, err)
	assert.Equal(t, "ci-sa@sa.stackit.cloud", flow.Username())
	assert.Equal(t, tokensource.EnvTokenBaseURL, flow.EndpointSource)

	before := time.Now().Add(-time.Second)
	tok, err := flow.Token(context.Background())
	require.NoError(t, err)
	assert.True(t, srv.Valid(acct.Email, tok.AccessToken))
	// Expiry comes from the token's exp claim: 30 min by default in the fake.
	assert.WithinDuration(t, before.Add(30*time.Minute), tok.Expiry, 3*time.Second)
	assert.True(t, tok.Reusable(time.Now()))

	// A second call signs a new assertion with a fresh jti; the fake
	// rejects replays, so success proves the jti changed.
	_, err = flow.Token(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 2, srv.Issued())
}

func TestSignAssertionClaims(t *testing.T) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	creds := tokensource.KeyCredentials{Kid: "kid-1", Iss: "sa@sa.stackit.cloud", Sub: "sub-1", Aud: "https://aud.example"}
	now := time.Now().Truncate(time.Second)
	signed, err := tokensource.SignAssertion(creds, priv, now)
	require.NoError(t, err)

	claims := jwt.MapClaims{}
	parsed, err := jwt.ParseWithClaims(signed, claims, func(*jwt.Token) (any, error) { return &priv.PublicKey, nil },
		jwt.WithValidMethods([]string{"RS512"}))
	require.NoError(t, err)
	assert.Equal(t, "kid-1", parsed.Header["kid"])
	assert.Equal(t, "JWT", parsed.Header["typ"])
	assert.Equal(t, "sa@sa.stackit.cloud", claims["iss"])
	assert.Equal(t, "sub-1", claims["sub"])
	assert.Equal(t, "https://aud.example", claims["aud"])
	assert.Regexp(t, `^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`, claims["jti"])
	assert.EqualValues(t, now.Unix(), claims["iat"])
	assert.EqualValues(t, now.Add(10*time.Minute).Unix(), claims["exp"])

	again, err := tokensource.SignAssertion(creds, priv, now)
	require.NoError(t, err)
	assert.NotEqual(t, signed, again, "every assertion needs its own jti")
}

func TestDiscoveryOrder(t *testing.T) {
	srv := tokensourcetest.NewServer(t)
	a := srv.NewAccount(t, "a@sa.stackit.cloud")
	b := srv.NewAccount(t, "b@sa.stackit.cloud")
	c := srv.NewAccount(t, "c@sa.stackit.cloud")
	d := srv.NewAccount(t, "d@sa.stackit.cloud")
	dir := t.TempDir()
	pathA := a.WriteKeyFile(t, dir, true)
	pathC := c.WriteKeyFile(t, dir, true)
	home := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(home, ".stackit"), 0o700))
	writeFile(t, filepath.Join(home, ".stackit"), "credentials.json",
		[]byte(`{"STACKIT_SERVICE_ACCOUNT_KEY_PATH": `+testfs.JSONQuote(pathC)+`, "STACKIT_SERVICE_ACCOUNT_TOKEN": 7}`))
	credsD := writeFile(t, dir, "creds-d.json", []byte(`{"STACKIT_SERVICE_ACCOUNT_KEY": `+string(d.KeyJSON(true))+`}`))

	cases := []struct {
		name      string
		env       map[string]string
		overrides tokensource.Overrides
		want      string
		source    string
	}{
		{"override beats everything", map[string]string{tokensource.EnvServiceAccountKeyPath: pathC, "HOME": home},
			tokensource.Overrides{Origin: "the helper config", ServiceAccountKeyPath: pathA}, a.Email, "serviceAccountKeyPath in the helper config"},
		{"path beats inline", map[string]string{tokensource.EnvServiceAccountKeyPath: pathA, tokensource.EnvServiceAccountKey: string(b.KeyJSON(true)), "HOME": home},
			tokensource.Overrides{}, a.Email, tokensource.EnvServiceAccountKeyPath},
		{"inline beats credentials file", map[string]string{tokensource.EnvServiceAccountKey: string(b.KeyJSON(true)), "HOME": home},
			tokensource.Overrides{}, b.Email, tokensource.EnvServiceAccountKey},
		{"default credentials file", map[string]string{"HOME": home},
			tokensource.Overrides{}, c.Email, tokensource.EnvServiceAccountKeyPath + " in " + filepath.Join(home, ".stackit", "credentials.json")},
		{"STACKIT_CREDENTIALS_PATH beats the default file, inline key as object", map[string]string{"HOME": home, tokensource.EnvCredentialsPath: credsD},
			tokensource.Overrides{}, d.Email, tokensource.EnvServiceAccountKey + " in " + credsD},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.env[tokensource.EnvTokenBaseURL] = srv.TokenURL()
			flow, err := tokensource.NewKeyFlow(envOf(tc.env), tc.overrides)
			require.NoError(t, err)
			assert.Equal(t, tc.want, flow.Username())
			assert.True(t, strings.HasPrefix(flow.KeySource, tc.source), "source %q should start with %q", flow.KeySource, tc.source)
			tok, err := flow.Token(context.Background())
			require.NoError(t, err)
			assert.True(t, srv.Valid(tc.want, tok.AccessToken))
		})
	}
}

func TestNoCredentials(t *testing.T) {
	_, err := tokensource.NewKeyFlow(envOf(map[string]string{"HOME": t.TempDir()}), tokensource.Overrides{})
	assert.ErrorIs(t, err, tokensource.ErrNoCredentials)
	_, err = tokensource.NewKeyFlow(envOf(nil), tokensource.Overrides{})
	assert.ErrorIs(t, err, tokensource.ErrNoCredentials, "HOME unset must not break discovery")
}

func TestPrivateKeyOrder(t *testing.T) {
	srv := tokensourcetest.NewServer(t)
	acct := srv.NewAccount(t, "p@sa.stackit.cloud")
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	otherPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(other)})
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(acct.PrivateKey)})
	dir := t.TempDir()
	keyNoPriv := acct.WriteKeyFile(t, dir, false)
	keyWithPriv := writeFile(t, dir, "with-priv.json", acct.KeyJSON(true))
	goodPEM := writeFile(t, dir, "good.pem", pkcs1)
	wrongPEM := writeFile(t, dir, "wrong.pem", otherPEM)

	cases := []struct {
		name    string
		env     map[string]string
		wantErr string
	}{
		{"PKCS#1 from STACKIT_PRIVATE_KEY_PATH", map[string]string{tokensource.EnvServiceAccountKeyPath: keyNoPriv, tokensource.EnvPrivateKeyPath: goodPEM}, ""},
		{"inline PEM with literal \\n", map[string]string{tokensource.EnvServiceAccountKeyPath: keyNoPriv, tokensource.EnvPrivateKey: strings.ReplaceAll(string(acct.PrivateKeyPEM), "\n", `\n`)}, ""},
		{"path beats inline", map[string]string{tokensource.EnvServiceAccountKeyPath: keyNoPriv, tokensource.EnvPrivateKeyPath: goodPEM, tokensource.EnvPrivateKey: string(otherPEM)}, ""},
		{"explicit key overrides the embedded one", map[string]string{tokensource.EnvServiceAccountKeyPath: keyWithPriv, tokensource.EnvPrivateKeyPath: wrongPEM}, "HTTP 401"},
		{"embedded key", map[string]string{tokensource.EnvServiceAccountKeyPath: keyWithPriv}, ""},
		{"no private key anywhere", map[string]string{tokensource.EnvServiceAccountKeyPath: keyNoPriv}, "has no embedded private key; set STACKIT_PRIVATE_KEY_PATH"},
		{"private key path missing", map[string]string{tokensource.EnvServiceAccountKeyPath: keyNoPriv, tokensource.EnvPrivateKeyPath: filepath.Join(dir, "nope.pem")}, "nope.pem (from STACKIT_PRIVATE_KEY_PATH): file not found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.env[tokensource.EnvTokenBaseURL] = srv.TokenURL()
			tc.env["HOME"] = t.TempDir()
			flow, err := tokensource.NewKeyFlow(envOf(tc.env), tokensource.Overrides{})
			require.NoError(t, err)
			_, err = flow.Token(context.Background())
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.wantErr)
		})
	}
}

func TestKeyFileErrors(t *testing.T) {
	srv := tokensourcetest.NewServer(t)
	acct := srv.NewAccount(t, "e@sa.stackit.cloud")
	dir := t.TempDir()
	cases := []struct {
		name    string
		content []byte
		path    string
		want    string
	}{
		{"missing file", nil, filepath.Join(dir, "absent.json"), "absent.json (from STACKIT_SERVICE_ACCOUNT_KEY_PATH): file not found; set STACKIT_SERVICE_ACCOUNT_KEY_PATH"},
		{"directory", nil, dir, "is a directory"},
		{"empty", []byte("  \n"), "", "the key is empty"},
		{"PEM instead of JSON", acct.PrivateKeyPEM, "", "this is a PEM private key, not the JSON service account key"},
		{"truncated JSON", acct.KeyJSON(true)[:40], "", "not valid JSON (it ends in the middle of the JSON (line"},
		{"not JSON", []byte("hello"), "", "the key is not JSON"},
		{"wrong shape", []byte(`{"credentials": {"kid": "x"}}`), "", "lacks credentials.iss, credentials.sub, credentials.aud"},
		{"credentials file given as key", []byte(`{"STACKIT_SERVICE_ACCOUNT_KEY_PATH": "/x"}`), "", "this is a STACKIT credentials file"},
		{"wrong type", []byte(`{"credentials": {"kid": 5}}`), "", `field "credentials.kid" must be a string, not a number`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.path
			if p == "" {
				p = writeFile(t, t.TempDir(), "key.json", tc.content)
			}
			_, err := tokensource.NewKeyFlow(envOf(map[string]string{tokensource.EnvServiceAccountKeyPath: p}), tokensource.Overrides{})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Contains(t, err.Error(), p, "the error names the file")
			assert.NotContains(t, err.Error(), "PRIVATE KEY-----\nMII", "no key material in errors")
			assert.NotContains(t, err.Error(), "\n")
		})
	}

	_, err := tokensource.NewKeyFlow(envOf(map[string]string{tokensource.EnvServiceAccountKey: "/home/me/key.json"}), tokensource.Overrides{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "must hold the key JSON itself; to point at a file use STACKIT_SERVICE_ACCOUNT_KEY_PATH")

	_, err = tokensource.NewKeyFlow(envOf(map[string]string{tokensource.EnvCredentialsPath: filepath.Join(dir, "none.json")}), tokensource.Overrides{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "none.json: file not found (fix or unset STACKIT_CREDENTIALS_PATH)")
}

func TestPrivateKeyFormatErrors(t *testing.T) {
	ecKeyDER := []byte{0x30, 0x00}
	cases := []struct {
		name, pem, want string
	}{
		{"public key", "-----BEGIN PUBLIC KEY-----\nMAA=\n-----END PUBLIC KEY-----\n", "this is a public key, not the private key"},
		{"encrypted", "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMAA=\n-----END ENCRYPTED PRIVATE KEY-----\n", "encrypted"},
		{"garbage", "not a key", "no PEM private key found"},
		{"json", `{"id": 1}`, "this is JSON, not a PEM private key"},
		{"corrupt pkcs8", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecKeyDER})), "PKCS#8 private key is corrupt"},
		{"corrupt pkcs1", string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: ecKeyDER})), "PKCS#1 RSA private key is corrupt"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tokensource.ParsePrivateKey([]byte(tc.pem))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestEndpointSelection(t *testing.T) {
	srv := tokensourcetest.NewServer(t)
	acct := srv.NewAccount(t, "x@sa.stackit.cloud")
	keyJSON := strings.Replace(string(acct.KeyJSON(true)), `"kid":`, `"tokenEndpoint": "https://from-key.example/token", "kid":`, 1)
	keyPath := writeFile(t, t.TempDir(), "key.json", []byte(keyJSON))
	plain := acct.WriteKeyFile(t, t.TempDir(), true)

	flow, err := tokensource.NewKeyFlow(envOf(map[string]string{tokensource.EnvServiceAccountKeyPath: keyPath}), tokensource.Overrides{})
	require.NoError(t, err)
	assert.Equal(t, "https://from-key.example/token", flow.Endpoint)

	flow, err = tokensource.NewKeyFlow(envOf(map[string]string{tokensource.EnvServiceAccountKeyPath: keyPath, tokensource.EnvTokenBaseURL: "https://env.example/token"}), tokensource.Overrides{})
	require.NoError(t, err)
	assert.Equal(t, "https://env.example/token", flow.Endpoint)

	flow, err = tokensource.NewKeyFlow(envOf(map[string]string{tokensource.EnvServiceAccountKeyPath: keyPath, tokensource.EnvTokenBaseURL: "https://env.example/token"}),
		tokensource.Overrides{TokenEndpoint: "https://override.example/token"})
	require.NoError(t, err)
	assert.Equal(t, "https://override.example/token", flow.Endpoint)

	flow, err = tokensource.NewKeyFlow(envOf(map[string]string{tokensource.EnvServiceAccountKeyPath: plain}), tokensource.Overrides{})
	require.NoError(t, err)
	assert.Equal(t, tokensource.DefaultTokenEndpoint, flow.Endpoint)

	_, err = tokensource.NewKeyFlow(envOf(map[string]string{tokensource.EnvServiceAccountKeyPath: plain, tokensource.EnvTokenBaseURL: "http://evil.example/token"}), tokensource.Overrides{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "uses plain http")
}

func TestCacheKeyIsStable(t *testing.T) {
	srv := tokensourcetest.NewServer(t)
	acct := srv.NewAccount(t, "x@sa.stackit.cloud")
	p := acct.WriteKeyFile(t, t.TempDir(), true)
	env := envOf(map[string]string{tokensource.EnvServiceAccountKeyPath: p, tokensource.EnvTokenBaseURL: srv.TokenURL()})
	f1, err := tokensource.NewKeyFlow(env, tokensource.Overrides{})
	require.NoError(t, err)
	f2, err := tokensource.NewKeyFlow(env, tokensource.Overrides{})
	require.NoError(t, err)
	assert.Equal(t, f1.CacheKey(), f2.CacheKey())
	f3, err := tokensource.NewKeyFlow(env, tokensource.Overrides{TokenEndpoint: "https://other.example/token"})
	require.NoError(t, err)
	assert.NotEqual(t, f1.CacheKey(), f3.CacheKey(), "another endpoint is another identity")
}

func TestUnknownKidError(t *testing.T) {
	srv := tokensourcetest.NewServer(t)
	acct := srv.NewAccount(t, "gone@sa.stackit.cloud")
	p := acct.WriteKeyFile(t, t.TempDir(), true)
	srv.DeleteKey(acct)
	flow, err := tokensource.NewKeyFlow(envOf(map[string]string{tokensource.EnvServiceAccountKeyPath: p, tokensource.EnvTokenBaseURL: srv.TokenURL()}), tokensource.Overrides{})
	require.NoError(t, err)
	_, err = flow.Token(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "does not know key id "+acct.Kid+" (HTTP 401): the key was deleted or the endpoint is wrong")
}

func TestHTTPClientRefusesRedirects(t *testing.T) {
	srv := tokensourcetest.NewServer(t)
	acct := srv.NewAccount(t, "r@sa.stackit.cloud")
	srv.Respond = func(w http.ResponseWriter, r *http.Request) bool {
		http.Redirect(w, r, "http://127.0.0.1:1/elsewhere", http.StatusTemporaryRedirect)
		return true
	}
	p := acct.WriteKeyFile(t, t.TempDir(), true)
	flow, err := tokensource.NewKeyFlow(envOf(map[string]string{tokensource.EnvServiceAccountKeyPath: p, tokensource.EnvTokenBaseURL: srv.TokenURL()}), tokensource.Overrides{})
	require.NoError(t, err)
	_, err = flow.Token(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "redirected to http://127.0.0.1:1/elsewhere; set STACKIT_TOKEN_BASEURL to the final URL")
	assert.False(t, tokensource.IsTransient(err), "a redirect is a misconfiguration, never retried")
	assert.Equal(t, 1, srv.Requests(), "the redirect target was not contacted")
}

func TestLooseKeyFilePermissionsWarn(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Unix modes mean nothing on Windows, so there is nothing to warn about (see TestNoModeWarningsOnWindows)")
	}
	srv := tokensourcetest.NewServer(t)
	acct := srv.NewAccount(t, "w@sa.stackit.cloud")
	dir := t.TempDir()
	keyPath := acct.WriteKeyFile(t, dir, false)
	pemPath := writeFile(t, dir, "key.pem", acct.PrivateKeyPEM)
	env := envOf(map[string]string{tokensource.EnvServiceAccountKeyPath: keyPath, tokensource.EnvPrivateKeyPath: pemPath, tokensource.EnvTokenBaseURL: srv.TokenURL()})

	flow, err := tokensource.NewKeyFlow(env, tokensource.Overrides{})
	require.NoError(t, err)
	tok, err := flow.Token(context.Background())
	require.NoError(t, err)
	assert.Empty(t, flow.Warnings, "0600 files are fine")
	assert.Empty(t, tok.Warnings, "0600 files are fine")

	require.NoError(t, os.Chmod(keyPath, 0o644))
	require.NoError(t, os.Chmod(pemPath, 0o640))
	flow, err = tokensource.NewKeyFlow(env, tokensource.Overrides{})
	require.NoError(t, err)
	tok, err = flow.Token(context.Background())
	require.NoError(t, err)
	require.Len(t, flow.Warnings, 1, "the key file is read by discovery")
	assert.Equal(t, "service account key "+keyPath+" is readable by others (mode 0644); run: chmod 600 "+keyPath, flow.Warnings[0].Message)
	require.Len(t, tok.Warnings, 1, "the private key is read when a token is minted, and its warning comes with the result")
	assert.Contains(t, tok.Warnings[0].Message, "private key "+pemPath+" is readable by others (mode 0640)")
	assert.NotEmpty(t, tok.Warnings[0].OnceADay, "mode warnings are shown at most once a day")
}
