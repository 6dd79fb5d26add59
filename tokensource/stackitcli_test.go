package tokensource_test

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/docker-credential-stackit/docker-credential-stackit/cache"
	"github.com/docker-credential-stackit/docker-credential-stackit/tokensource"
	"github.com/docker-credential-stackit/docker-credential-stackit/tokensource/tokensourcetest"
)

// cliKey is the service account key as the STACKIT CLI stores it: the
// SDK's ServiceAccountKeyResponse marshalled by encoding/json, fields in
// the SDK's order.
type cliKey struct {
	Active       bool            `json:"active"`
	CreatedAt    time.Time       `json:"createdAt"`
	Credentials  *cliCredentials `json:"credentials"`
	ID           string          `json:"id"`
	KeyAlgorithm string          `json:"keyAlgorithm"`
	KeyOrigin    string          `json:"keyOrigin"`
	KeyType      string          `json:"keyType"`
	PublicKey    string          `json:"publicKey"`
	ValidUntil   *time.Time      `json:"validUntil,omitempty"`
}

type cliCredentials struct {
	Aud           string  `json:"aud"`
	Iss           string  `json:"iss"`
	Kid           string  `json:"kid"`
	PrivateKey    *string `json:"privateKey,omitempty"`
	Sub           string  `json:"sub"`
	TokenEndpoint string  `json:"tokenEndpoint"`
}

func cliKeyJSON(t testing.TB, a *tokensourcetest.Account, embedded []byte, tokenEndpoint string) string {
	t.Helper()
	pubDER, err := x509.MarshalPKIXPublicKey(&a.PrivateKey.PublicKey)
	require.NoError(t, err)
	c := &cliCredentials{Aud: tokensourcetest.Audience, Iss: a.Email, Kid: a.Kid, Sub: a.Sub, TokenEndpoint: tokenEndpoint}
	if embedded != nil {
		s := string(embedded)
		c.PrivateKey = &s
	}
	out, err := json.Marshal(cliKey{Active: true, CreatedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Credentials: c, ID: a.Kid,
		KeyAlgorithm: "RSA_2048", KeyOrigin: "USER_PROVIDED", KeyType: "USER_MANAGED",
		PublicKey: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}))})
	require.NoError(t, err)
	return string(out)
}

// saKeyFields are the fields `stackit auth activate-service-account`
// writes for a, with the session starting now.
func saKeyFields(t testing.TB, a *tokensourcetest.Account, endpoint string) map[string]string {
	return map[string]string{
		"auth_flow_type":          "sa_key",
		"service_account_key":     cliKeyJSON(t, a, nil, ""),
		"private_key":             string(a.PrivateKeyPEM),
		"token_custom_endpoint":   endpoint,
		"service_account_email":   a.Email,
		"access_token":            "the-cli-access-token-never-used",
		"refresh_token":           "the-cli-refresh-token-never-used",
		"session_expires_at_unix": strconv.FormatInt(time.Now().Add(12*time.Hour).Unix(), 10),
	}
}

// writeCLIStorage writes cli-auth-storage.txt as the CLI does: base64 of
// the JSON object of all fields, mode 0600.
func writeCLIStorage(t testing.TB, dir string, fields map[string]string) string {
	t.Helper()
	require.NoError(t, os.MkdirAll(dir, 0o750))
	raw, err := json.Marshal(fields)
	require.NoError(t, err)
	p := filepath.Join(dir, "cli-auth-storage.txt")
	require.NoError(t, os.WriteFile(p, []byte(base64.StdEncoding.EncodeToString(raw)), 0o600))
	return p
}

// fakeKeyring holds items by service and user, and counts reads.
type fakeKeyring struct {
	mu    sync.Mutex
	items map[string]map[string]string
	reads int
	// answer, when set, replaces an item's value per read (n counts from 1).
	answer func(service, user string, n int, stored string) string
	perKey map[string]int
}

func (f *fakeKeyring) Get(service, user string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	v, ok := f.items[service][user]
	if !ok {
		return "", tokensource.ErrSecretNotFound
	}
	if f.answer != nil {
		if f.perKey == nil {
			f.perKey = map[string]int{}
		}
		f.perKey[service+"/"+user]++
		v = f.answer(service, user, f.perKey[service+"/"+user], v)
	}
	return v, nil
}

func (f *fakeKeyring) set(service string, fields map[string]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.items == nil {
		f.items = map[string]map[string]string{}
	}
	f.items[service] = fields
}

// noKeyring is a keyring that is not there, as on headless Linux.
type noKeyring struct{}

func (noKeyring) Get(string, string) (string, error) {
	return "", errors.New("the name org.freedesktop.secrets was not provided by any .service files")
}

type cliWorld struct {
	srv    *tokensourcetest.Server
	config string // XDG_CONFIG_HOME
	env    map[string]string
	ring   tokensource.SecretStore
}

func newCLIWorld(t *testing.T) *cliWorld {
	if runtime.GOOS == "windows" || runtime.GOOS == "darwin" {
		t.Skip("the CLI's config folder is XDG_CONFIG_HOME only on Linux and the BSDs")
	}
	root := t.TempDir()
	w := &cliWorld{srv: tokensourcetest.NewServer(t), config: filepath.Join(root, "config"), ring: noKeyring{}}
	w.env = map[string]string{"HOME": filepath.Join(root, "home"), "XDG_CONFIG_HOME": w.config}
	return w
}

func (w *cliWorld) defaultDir() string { return filepath.Join(w.config, "stackit") }

func (w *cliWorld) profileDir(name string) string {
	return filepath.Join(w.config, "stackit", "profiles", name)
}

func (w *cliWorld) discover() (*tokensource.Flow, error) {
	return tokensource.Discover(tokensource.Options{Env: envOf(w.env), Keyring: w.ring}, tokensource.Overrides{})
}

func TestCLIDefaultProfileFileLogsInAsTheStoredServiceAccount(t *testing.T) {
	w := newCLIWorld(t)
	acct := w.srv.NewAccount(t, "cli-sa@sa.stackit.cloud")
	path := writeCLIStorage(t, w.defaultDir(), saKeyFields(t, acct, w.srv.TokenURL()))

	flow, err := w.discover()
	require.NoError(t, err)
	assert.Equal(t, acct.Email, flow.Username)
	assert.Equal(t, "STACKIT CLI profile default (file "+path+")", flow.Source)
	assert.Equal(t, w.srv.TokenURL(), flow.Endpoint)
	assert.Contains(t, flow.Reason, "STACKIT CLI's active service account")
	assert.Contains(t, flow.Facts, tokensource.Fact{Label: "credentials", Value: flow.Source})

	tok, err := flow.Token(context.Background())
	require.NoError(t, err)
	assert.True(t, w.srv.Valid(acct.Email, tok.AccessToken), "a token minted with the stored key")
	assert.NotEqual(t, "the-cli-access-token-never-used", tok.AccessToken)

	facts, err := flow.Check()
	require.NoError(t, err)
	assert.Contains(t, facts[0].Value, "private_key of STACKIT CLI profile default")
}

func TestCLIDefaultProfileKeyringIsReadWithFourReadsPerDiscovery(t *testing.T) {
	w := newCLIWorld(t)
	acct := w.srv.NewAccount(t, "ring@sa.stackit.cloud")
	ring := &fakeKeyring{}
	ring.set("stackit-cli", saKeyFields(t, acct, w.srv.TokenURL()))
	w.ring = ring

	flow, err := w.discover()
	require.NoError(t, err)
	assert.Equal(t, "STACKIT CLI profile default (keyring)", flow.Source)
	assert.Equal(t, acct.Email, flow.Username)
	// auth_flow_type, session_expires_at_unix, service_account_key,
	// token_custom_endpoint: one item each, as the CLI stores them.
	assert.Equal(t, 4, ring.reads)

	tok, err := flow.Token(context.Background())
	require.NoError(t, err)
	assert.True(t, w.srv.Valid(acct.Email, tok.AccessToken))
	assert.Equal(t, 5, ring.reads, "a cache miss reads private_key too")
}

func TestCLIUnavailableKeyringFallsBackToTheFileAndSaysWhy(t *testing.T) {
	w := newCLIWorld(t)
	acct := w.srv.NewAccount(t, "headless@sa.stackit.cloud")
	writeCLIStorage(t, w.defaultDir(), saKeyFields(t, acct, w.srv.TokenURL()))

	flow, err := w.discover()
	require.NoError(t, err)
	assert.Contains(t, flow.Source, "(file ")
	var keyringFact string
	for _, f := range flow.Facts {
		if f.Label == "keyring" {
			keyringFact = f.Value
		}
	}
	assert.Contains(t, keyringFact, "org.freedesktop.secrets")
}

func TestCLINamedProfileFromEnvironment(t *testing.T) {
	w := newCLIWorld(t)
	def := w.srv.NewAccount(t, "default@sa.stackit.cloud")
	dev := w.srv.NewAccount(t, "dev@sa.stackit.cloud")
	writeCLIStorage(t, w.defaultDir(), saKeyFields(t, def, w.srv.TokenURL()))
	path := writeCLIStorage(t, w.profileDir("dev"), saKeyFields(t, dev, w.srv.TokenURL()))
	w.env[tokensource.EnvCLIProfile] = "dev"

	flow, err := w.discover()
	require.NoError(t, err)
	assert.Equal(t, dev.Email, flow.Username)
	assert.Equal(t, "STACKIT CLI profile dev (file "+path+")", flow.Source)
}

func TestCLINamedProfileInKeyringUsesItsOwnService(t *testing.T) {
	w := newCLIWorld(t)
	dev := w.srv.NewAccount(t, "dev@sa.stackit.cloud")
	require.NoError(t, os.MkdirAll(w.profileDir("dev"), 0o750))
	ring := &fakeKeyring{}
	ring.set("stackit-cli/dev", saKeyFields(t, dev, w.srv.TokenURL()))
	w.ring = ring
	w.env[tokensource.EnvCLIProfile] = "dev"

	flow, err := w.discover()
	require.NoError(t, err)
	assert.Equal(t, dev.Email, flow.Username)
	assert.Equal(t, "STACKIT CLI profile dev (keyring)", flow.Source)
}

func TestCLIProfileEnvironmentNamingDefaultBeatsProfileFile(t *testing.T) {
	w := newCLIWorld(t)
	def := w.srv.NewAccount(t, "default@sa.stackit.cloud")
	dev := w.srv.NewAccount(t, "dev@sa.stackit.cloud")
	writeCLIStorage(t, w.defaultDir(), saKeyFields(t, def, w.srv.TokenURL()))
	writeCLIStorage(t, w.profileDir("dev"), saKeyFields(t, dev, w.srv.TokenURL()))
	require.NoError(t, os.WriteFile(filepath.Join(w.defaultDir(), "cli-profile.txt"), []byte("dev"), 0o600))
	w.env[tokensource.EnvCLIProfile] = "default"

	flow, err := w.discover()
	require.NoError(t, err)
	assert.Equal(t, def.Email, flow.Username)
}

func TestCLINamedProfileFromProfileFile(t *testing.T) {
	w := newCLIWorld(t)
	def := w.srv.NewAccount(t, "default@sa.stackit.cloud")
	dev := w.srv.NewAccount(t, "dev@sa.stackit.cloud")
	writeCLIStorage(t, w.defaultDir(), saKeyFields(t, def, w.srv.TokenURL()))
	writeCLIStorage(t, w.profileDir("dev"), saKeyFields(t, dev, w.srv.TokenURL()))
	require.NoError(t, os.WriteFile(filepath.Join(w.defaultDir(), "cli-profile.txt"), []byte("dev"), 0o600))

	flow, err := w.discover()
	require.NoError(t, err)
	assert.Equal(t, dev.Email, flow.Username)
	assert.Contains(t, flow.Facts, tokensource.Fact{Label: "why", Value: "profile dev, named by " + filepath.Join(w.defaultDir(), "cli-profile.txt")})
}

func TestCLIProfileWithoutFolderFallsBackToDefault(t *testing.T) {
	w := newCLIWorld(t)
	def := w.srv.NewAccount(t, "default@sa.stackit.cloud")
	writeCLIStorage(t, w.defaultDir(), saKeyFields(t, def, w.srv.TokenURL()))
	w.env[tokensource.EnvCLIProfile] = "gone"

	flow, err := w.discover()
	require.NoError(t, err)
	assert.Equal(t, def.Email, flow.Username)
	assert.Contains(t, flow.Source, "profile default")
}

func TestCLISwitchingAccountsAnswersAsTheNewAccountAtOnce(t *testing.T) {
	w := newCLIWorld(t)
	a := w.srv.NewAccount(t, "a@sa.stackit.cloud")
	b := w.srv.NewAccount(t, "b@sa.stackit.cloud")
	c := &cache.Cache{Dir: t.TempDir()}
	get := func() (*tokensource.Flow, *tokensource.Token) {
		flow, err := w.discover()
		require.NoError(t, err)
		tok, _, err := c.Token(context.Background(), flow.CacheKey, flow.Username, flow)
		require.NoError(t, err)
		return flow, tok
	}

	writeCLIStorage(t, w.defaultDir(), saKeyFields(t, a, w.srv.TokenURL()))
	flowA, tokA := get()
	_, again := get()
	assert.Equal(t, tokA.AccessToken, again.AccessToken, "the second get is a cache hit")

	writeCLIStorage(t, w.defaultDir(), saKeyFields(t, b, w.srv.TokenURL()))
	flowB, tokB := get()
	assert.NotEqual(t, flowA.CacheKey, flowB.CacheKey)
	assert.Equal(t, b.Email, flowB.Username)
	assert.True(t, w.srv.Valid(b.Email, tokB.AccessToken), "the very next get answers as the new account")
	assert.False(t, w.srv.Valid(a.Email, tokB.AccessToken))
}

func TestCLINewKeyOfTheSameAccountIsANewCacheEntry(t *testing.T) {
	w := newCLIWorld(t)
	a := w.srv.NewAccount(t, "a@sa.stackit.cloud")
	fields := saKeyFields(t, a, w.srv.TokenURL())
	writeCLIStorage(t, w.defaultDir(), fields)
	first, err := w.discover()
	require.NoError(t, err)

	// Same kid, other key material: still another cache entry.
	var k map[string]any
	require.NoError(t, json.Unmarshal([]byte(fields["service_account_key"]), &k))
	k["keyOrigin"] = "GENERATED"
	out, _ := json.Marshal(k)
	fields["service_account_key"] = string(out)
	writeCLIStorage(t, w.defaultDir(), fields)
	second, err := w.discover()
	require.NoError(t, err)
	assert.NotEqual(t, first.CacheKey, second.CacheKey)
}

func requireCLILoginError(t *testing.T, err error, reason tokensource.CLILoginReason) *tokensource.CLILoginError {
	t.Helper()
	require.Error(t, err)
	assert.True(t, tokensource.IsNoCredentials(err), "no credentials: %v", err)
	var e *tokensource.CLILoginError
	require.ErrorAs(t, err, &e)
	assert.Equal(t, reason, e.Reason)
	assert.NotContains(t, err.Error(), "\n")
	return e
}

func TestCLIUserLoginGivesNoCredentialsAndSaysToActivateAServiceAccount(t *testing.T) {
	w := newCLIWorld(t)
	writeCLIStorage(t, w.defaultDir(), map[string]string{
		"auth_flow_type": "user_token", "user_email": "me@example.com", "access_token": "x", "refresh_token": "y",
		"session_expires_at_unix": strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10),
	})
	_, err := w.discover()
	e := requireCLILoginError(t, err, tokensource.CLIUserLogin)
	assert.Contains(t, e.Fix, "stackit auth activate-service-account")
}

func TestCLIServiceAccountTokenLoginIsRetired(t *testing.T) {
	w := newCLIWorld(t)
	writeCLIStorage(t, w.defaultDir(), map[string]string{"auth_flow_type": "sa_token", "access_token": "x",
		"session_expires_at_unix": strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)})
	_, err := w.discover()
	requireCLILoginError(t, err, tokensource.CLITokenLogin)
	assert.Contains(t, err.Error(), "retired")
}

func TestCLIEmptyStorageIsNoCredentialsWithoutComment(t *testing.T) {
	w := newCLIWorld(t)
	_, err := w.discover()
	assert.Same(t, tokensource.ErrNoCredentials, err, "no storage at all")

	// Any CLI command creates the file holding "{}".
	writeCLIStorage(t, w.defaultDir(), map[string]string{})
	_, err = w.discover()
	assert.Same(t, tokensource.ErrNoCredentials, err, "empty storage")
}

func TestCLILoggedOutSessionGivesNoCredentials(t *testing.T) {
	w := newCLIWorld(t)
	acct := w.srv.NewAccount(t, "a@sa.stackit.cloud")
	fields := saKeyFields(t, acct, w.srv.TokenURL())
	delete(fields, "session_expires_at_unix")
	writeCLIStorage(t, w.defaultDir(), fields)
	_, err := w.discover()
	e := requireCLILoginError(t, err, tokensource.CLILoggedOut)
	assert.Contains(t, e.Fix, "stackit auth activate-service-account")
}

func TestCLIExpiredSessionGivesNoCredentialsAndSaysToActivateAgain(t *testing.T) {
	w := newCLIWorld(t)
	acct := w.srv.NewAccount(t, "a@sa.stackit.cloud")
	fields := saKeyFields(t, acct, w.srv.TokenURL())
	fields["session_expires_at_unix"] = strconv.FormatInt(time.Now().Add(-time.Minute).Unix(), 10)
	writeCLIStorage(t, w.defaultDir(), fields)
	_, err := w.discover()
	e := requireCLILoginError(t, err, tokensource.CLISessionExpired)
	assert.Contains(t, e.Fix, "activate it again")
	assert.Contains(t, err.Error(), "session expired at")
}

func TestCLITornPrivateKeyIsReadAgainAndThenUsed(t *testing.T) {
	w := newCLIWorld(t)
	acct := w.srv.NewAccount(t, "a@sa.stackit.cloud")
	old := w.srv.NewAccount(t, "old@sa.stackit.cloud")
	fields := saKeyFields(t, acct, w.srv.TokenURL())
	torn := maps.Clone(fields)
	torn["private_key"] = string(old.PrivateKeyPEM) // not yet rewritten
	writeCLIStorage(t, w.defaultDir(), torn)

	flow, err := w.discover()
	require.NoError(t, err)
	writeCLIStorage(t, w.defaultDir(), fields) // the CLI finishes writing
	tok, err := flow.Token(context.Background())
	require.NoError(t, err)
	assert.True(t, w.srv.Valid(acct.Email, tok.AccessToken))
}

func TestCLIPrivateKeyThatStaysForeignIsRefused(t *testing.T) {
	w := newCLIWorld(t)
	acct := w.srv.NewAccount(t, "a@sa.stackit.cloud")
	other := w.srv.NewAccount(t, "other@sa.stackit.cloud")
	fields := saKeyFields(t, acct, w.srv.TokenURL())
	fields["private_key"] = string(other.PrivateKeyPEM)
	writeCLIStorage(t, w.defaultDir(), fields)

	flow, err := w.discover()
	require.NoError(t, err)
	_, err = flow.Token(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "does not belong to key id "+acct.Kid)
	assert.Equal(t, 0, w.srv.Requests(), "nothing signed with a foreign key")
}

func TestCLITornKeyringReadIsReadAgain(t *testing.T) {
	w := newCLIWorld(t)
	acct := w.srv.NewAccount(t, "a@sa.stackit.cloud")
	old := w.srv.NewAccount(t, "old@sa.stackit.cloud")
	ring := &fakeKeyring{answer: func(_, user string, n int, stored string) string {
		if user == "private_key" && n == 1 {
			return string(old.PrivateKeyPEM)
		}
		return stored
	}}
	ring.set("stackit-cli", saKeyFields(t, acct, w.srv.TokenURL()))
	w.ring = ring

	flow, err := w.discover()
	require.NoError(t, err)
	tok, err := flow.Token(context.Background())
	require.NoError(t, err)
	assert.True(t, w.srv.Valid(acct.Email, tok.AccessToken))
}

func TestCLITruncatedFileIsReadAgain(t *testing.T) {
	w := newCLIWorld(t)
	acct := w.srv.NewAccount(t, "a@sa.stackit.cloud")
	path := writeCLIStorage(t, w.defaultDir(), saKeyFields(t, acct, w.srv.TokenURL()))
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, data[:len(data)/2], 0o600))

	_, err = w.discover()
	requireCLILoginError(t, err, tokensource.CLIUnreadable)
	assert.NotContains(t, err.Error(), string(data[:20]), "no file content in the message")
}

func TestCLIStoredPrivateKeyBeatsTheEmbeddedOneAndCustomEndpointBeatsTheKeys(t *testing.T) {
	w := newCLIWorld(t)
	acct := w.srv.NewAccount(t, "a@sa.stackit.cloud")
	other := w.srv.NewAccount(t, "other@sa.stackit.cloud")
	fields := saKeyFields(t, acct, w.srv.TokenURL())
	fields["service_account_key"] = cliKeyJSON(t, acct, other.PrivateKeyPEM, "https://token.example.invalid/token")
	writeCLIStorage(t, w.defaultDir(), fields)

	flow, err := w.discover()
	require.NoError(t, err)
	assert.Equal(t, w.srv.TokenURL(), flow.Endpoint)
	tok, err := flow.Token(context.Background())
	require.NoError(t, err)
	assert.True(t, w.srv.Valid(acct.Email, tok.AccessToken))
}

func TestCLIEmbeddedPrivateKeyAndKeyEndpointApplyWhenNothingElseIsStored(t *testing.T) {
	w := newCLIWorld(t)
	acct := w.srv.NewAccount(t, "a@sa.stackit.cloud")
	fields := saKeyFields(t, acct, "")
	fields["service_account_key"] = cliKeyJSON(t, acct, acct.PrivateKeyPEM, w.srv.TokenURL())
	fields["private_key"] = ""
	writeCLIStorage(t, w.defaultDir(), fields)

	flow, err := w.discover()
	require.NoError(t, err)
	assert.Equal(t, w.srv.TokenURL(), flow.Endpoint)
	_, err = flow.Token(context.Background())
	require.NoError(t, err)
}

func TestSDKSourcesBeatTheCLILogin(t *testing.T) {
	w := newCLIWorld(t)
	cli := w.srv.NewAccount(t, "cli@sa.stackit.cloud")
	sdk := w.srv.NewAccount(t, "sdk@sa.stackit.cloud")
	writeCLIStorage(t, w.defaultDir(), saKeyFields(t, cli, w.srv.TokenURL()))
	w.env[tokensource.EnvServiceAccountKeyPath] = sdk.WriteKeyFile(t, t.TempDir(), true)

	flow, err := w.discover()
	require.NoError(t, err)
	assert.Equal(t, sdk.Email, flow.Username)

	// A registry with settings of its own never falls back to the CLI.
	delete(w.env, tokensource.EnvServiceAccountKeyPath)
	_, err = tokensource.Discover(tokensource.Options{Env: envOf(w.env), Keyring: w.ring},
		tokensource.Overrides{Origin: "the helper config", Username: "robot"})
	assert.Same(t, tokensource.ErrNoCredentials, err)
}

func TestCLIStorageWritableByOthersIsRefused(t *testing.T) {
	w := newCLIWorld(t)
	acct := w.srv.NewAccount(t, "a@sa.stackit.cloud")
	path := writeCLIStorage(t, w.defaultDir(), saKeyFields(t, acct, w.srv.TokenURL()))
	require.NoError(t, os.Chmod(path, 0o666))

	_, err := w.discover()
	require.Error(t, err)
	assert.False(t, tokensource.IsNoCredentials(err), "a security problem is an error, not silence")
	assert.Contains(t, err.Error(), "writable by group or others")
}
