package tokensource_test

// The differential test against the real STACKIT SDK: for each environment
// below, the SDK (github.com/stackitcloud/stackit-sdk-go/core, a test-only
// dependency) and tokensource.Discover + Token run against one fake token
// service, which records what each side sent: the flow (grant_type and
// client_assertion_type), the endpoint, the key id (the assertion's kid
// header), the private key that signed it (checked against every candidate
// public key), and for federation the client_id and the federated token.
// Any difference must be listed in sdkParityDeliberate with its reason; any
// other difference is drift and fails.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stackitcloud/stackit-sdk-go/core/auth"
	"github.com/stackitcloud/stackit-sdk-go/core/clients"
	"github.com/stackitcloud/stackit-sdk-go/core/config"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/docker-credential-stackit/docker-credential-stackit/tokensource"
)

const (
	parityEmail     = "parity-sa@sa.stackit.cloud"
	parityBaseURL   = "https://token.parity.test/token"
	parityKeyURL    = "https://key-endpoint.parity.test/token"
	parityIdPURL    = "https://idp.parity.test/oauth/v2/token"
	parityAliasURL  = "https://idp-alias.parity.test/oauth/v2/token"
	parityGitHubURL = "https://gh.parity.test/idtoken?api-version=2.0"
	parityPlainURL  = "http://plain.parity.test/token"
)

// parityEnvNames are cleared (unset, not set to "") before every case: the
// SDK tells an empty variable from an unset one in places.
var parityEnvNames = []string{
	"STACKIT_SERVICE_ACCOUNT_KEY_PATH", "STACKIT_SERVICE_ACCOUNT_KEY",
	"STACKIT_PRIVATE_KEY_PATH", "STACKIT_PRIVATE_KEY",
	"STACKIT_CREDENTIALS_PATH", "STACKIT_TOKEN_BASEURL",
	"STACKIT_SERVICE_ACCOUNT_EMAIL", "STACKIT_FEDERATED_TOKEN_FILE",
	"STACKIT_IDP_TOKEN_ENDPOINT", "STACKIT_IDP_ENDPOINT", "STACKIT_IDP_TOKEN_EXPIRATION_SECONDS",
	"STACKIT_SERVICE_ACCOUNT_TOKEN", "STACKIT_USE_OIDC",
	"ACTIONS_ID_TOKEN_REQUEST_URL", "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
	"HOME", "USERPROFILE", "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY",
}

// parityCase is one environment. Values may name fixtures as {name} or, JSON
// quoted for use inside a credentials file, {q:name}.
type parityCase struct {
	name string
	env  map[string]string
	// home is the content of $HOME/.stackit/credentials.json; nil: no file.
	home *string
	// credsPath is the content of a file STACKIT_CREDENTIALS_PATH names.
	credsPath *string
	// ourWarning and ourError must appear in our warnings or error.
	ourWarning, ourError string
}

// parityDifference is a deliberate difference: what each side does, as
// answer.String() renders it, and why we differ.
type parityDifference struct {
	sdk, ours, reason string
}

// sdkParityDeliberate lists every case where we deliberately answer
// differently from the SDK. A case here that starts to match, or differs
// in another way, fails: the list must stay true.
var sdkParityDeliberate = map[string]parityDifference{
	"plain http token endpoint off loopback": {
		sdk: "key flow → http://plain.parity.test/token kid=kid-a signer=A", ours: "error",
		reason: "the request carries a signed assertion and the answer is an API token: plain http only for loopback"},
	"literal \\n in STACKIT_PRIVATE_KEY": {
		sdk: "error", ours: "key flow → https://service-account.api.stackit.cloud/token kid=kid-a signer=A",
		reason: "CI secret stores and .env files flatten PEM keys to one line with \\n escapes"},
	"STACKIT_IDP_ENDPOINT alias": {
		sdk:    "federation → https://accounts.stackit.cloud/oauth/v2/token client_id=\"parity-sa@sa.stackit.cloud\" token=fedOK",
		ours:   "federation → https://idp-alias.parity.test/oauth/v2/token client_id=\"parity-sa@sa.stackit.cloud\" token=fedOK",
		reason: "older SDKs read STACKIT_IDP_ENDPOINT and existing setups still set it"},
	"explicit STACKIT_CREDENTIALS_PATH missing, embedded key in env": {
		sdk: "key flow → https://service-account.api.stackit.cloud/token kid=kid-a signer=A", ours: "error",
		reason: "a typo in a path the user set must be named, not silently skipped"},
	"federated token file is not a JWT": {
		sdk: "key flow → https://service-account.api.stackit.cloud/token kid=kid-a signer=A", ours: "error",
		reason: "a wrong token file is named instead of silently switching to another identity"},
	"federated token file is empty": {
		sdk: "key flow → https://service-account.api.stackit.cloud/token kid=kid-a signer=A", ours: "error",
		reason: "a wrong token file is named instead of silently switching to another identity"},
	"expired federated token": {
		sdk:    "federation → https://idp.parity.test/oauth/v2/token client_id=\"parity-sa@sa.stackit.cloud\" token=fedExpired",
		ours:   "error",
		reason: "the IdP's answer to an expired token is vague; ours says what must refresh it"},
	"email with surrounding whitespace": {
		sdk:    "federation → https://idp.parity.test/oauth/v2/token client_id=\" parity-sa@sa.stackit.cloud\\n\" token=fedOK",
		ours:   "federation → https://idp.parity.test/oauth/v2/token client_id=\"parity-sa@sa.stackit.cloud\" token=fedOK",
		reason: "values written with echo or pasted carry invisible whitespace"},
	"key as a JSON object in the credentials file": {
		sdk: "error", ours: "key flow → https://service-account.api.stackit.cloud/token kid=kid-a signer=A",
		reason: "credentials files in the wild embed the key as an object"},
	"STACKIT_SERVICE_ACCOUNT_TOKEN alone": {
		sdk: "retired token flow (no token request)", ours: "error",
		reason: "STACKIT retired long-lived service account tokens in December 2025"},
	"STACKIT_SERVICE_ACCOUNT_TOKEN alone in the credentials file": {
		sdk: "retired token flow (no token request)", ours: "error",
		reason: "STACKIT retired long-lived service account tokens in December 2025"},
	"STACKIT_USE_OIDC on GitHub Actions": {
		sdk:    "key flow → https://service-account.api.stackit.cloud/token kid=kid-a signer=A",
		ours:   "federation → https://idp.parity.test/oauth/v2/token client_id=\"parity-sa@sa.stackit.cloud\" token=fedGitHub",
		reason: "STACKIT_USE_OIDC is the Terraform provider's switch for GitHub Actions; the core SDK never reads it"},
	"credentials file value of a name we never read is not a string": {
		sdk: "error", ours: "key flow → https://service-account.api.stackit.cloud/token kid=kid-a signer=A",
		reason: "a value the login does not use cannot break it (the SDK rejects the whole file)"},
}

// sdkParityFixed lists the cases that differed from the SDK before the
// change that added this test, and what was changed to match.
var sdkParityFixed = map[string]string{
	"private key path missing, embedded key":                                "a failed STACKIT_PRIVATE_KEY_PATH falls back to the embedded key",
	"private key path empty, embedded key":                                  "a failed STACKIT_PRIVATE_KEY_PATH falls back to the embedded key",
	"private key path is a directory, embedded key":                         "a failed STACKIT_PRIVATE_KEY_PATH falls back to the embedded key",
	"private key path missing beats inline private key, embedded key":       "a failed STACKIT_PRIVATE_KEY_PATH falls back to the embedded key",
	"credentials file private key path missing, embedded key":               "a failed private key path in the credentials file falls back to the embedded key",
	"malformed credentials file, embedded key in env":                       "a credentials file that does not read is no override for the private key",
	"empty credentials file, embedded key in env":                           "a credentials file that does not read is no override for the private key",
	"credentials file names in another case":                                "credentials file names match case-insensitively, as encoding/json does",
	"malformed explicit STACKIT_CREDENTIALS_PATH file, embedded key in env": "a credentials file that does not read is no override for the private key",
}

func str(s string) *string { return &s }

func sdkParityCases() []parityCase {
	const (
		keyPath  = tokensource.EnvServiceAccountKeyPath
		key      = tokensource.EnvServiceAccountKey
		privPath = tokensource.EnvPrivateKeyPath
		priv     = tokensource.EnvPrivateKey
		credPath = tokensource.EnvCredentialsPath
		baseURL  = tokensource.EnvTokenBaseURL
		email    = tokensource.EnvServiceAccountEmail
		fedFile  = tokensource.EnvFederatedTokenFile
		idp      = tokensource.EnvIDPTokenEndpoint
		legacy   = "STACKIT_SERVICE_ACCOUNT_TOKEN"
	)
	type env = map[string]string
	return []parityCase{
		// The key flow from the environment.
		{name: "nothing configured", env: env{}},
		{name: "key path with embedded private key", env: env{keyPath: "{keyA+}"}},
		{name: "inline key with embedded private key", env: env{key: "{keyA+json}"}},
		{name: "key path beats inline key", env: env{keyPath: "{keyA+}", key: "{keyB+json}"}},
		{name: "key without private key, private key path", env: env{keyPath: "{keyA}", privPath: "{pemA}"}},
		{name: "key without private key, inline private key", env: env{keyPath: "{keyA}", priv: "{pemAtext}"}},
		{name: "private key path beats inline private key", env: env{keyPath: "{keyA}", privPath: "{pemA}", priv: "{pemXtext}"}},
		{name: "mismatched private key path overrides embedded key", env: env{keyPath: "{keyA+}", privPath: "{pemX}"}},
		{name: "mismatched inline private key overrides embedded key", env: env{key: "{keyA+json}", priv: "{pemXtext}"}},
		{name: "no private key anywhere", env: env{keyPath: "{keyA}"}},
		{name: "key path missing", env: env{keyPath: "{missing}"}},
		{name: "key path empty", env: env{keyPath: "{empty}"}},
		{name: "key path missing beats inline key", env: env{keyPath: "{missing}", key: "{keyA+json}"}},
		{name: "private key path missing, embedded key", env: env{keyPath: "{keyA+}", privPath: "{missing}"},
			ourWarning: "STACKIT_PRIVATE_KEY_PATH"},
		{name: "private key path empty, embedded key", env: env{keyPath: "{keyA+}", privPath: "{empty}"},
			ourWarning: "STACKIT_PRIVATE_KEY_PATH"},
		{name: "private key path is a directory, embedded key", env: env{keyPath: "{keyA+}", privPath: "{dir}"},
			ourWarning: "STACKIT_PRIVATE_KEY_PATH"},
		{name: "private key path missing beats inline private key, embedded key", env: env{keyPath: "{keyA+}", privPath: "{missing}", priv: "{pemXtext}"},
			ourWarning: "STACKIT_PRIVATE_KEY_PATH"},
		{name: "private key path missing, no embedded key", env: env{keyPath: "{keyA}", privPath: "{missing}"}},
		{name: "private key path is not a PEM, embedded key", env: env{keyPath: "{keyA+}", privPath: "{garbage}"}},
		{name: "inline private key is not a PEM, embedded key", env: env{keyPath: "{keyA+}", priv: "not a key"}},
		{name: "literal \\n in STACKIT_PRIVATE_KEY", env: env{keyPath: "{keyA}", priv: "{pemAescaped}"}},

		// Token endpoints.
		{name: "STACKIT_TOKEN_BASEURL", env: env{keyPath: "{keyA+}", baseURL: parityBaseURL}},
		{name: "STACKIT_TOKEN_BASEURL beats the key's tokenEndpoint", env: env{keyPath: "{keyA+ep}", baseURL: parityBaseURL}},
		{name: "the key's tokenEndpoint", env: env{keyPath: "{keyA+ep}"}},
		{name: "plain http token endpoint on loopback", env: env{keyPath: "{keyA+}", baseURL: "{loopback}/token"}},
		{name: "plain http token endpoint off loopback", env: env{keyPath: "{keyA+}", baseURL: parityPlainURL}},

		// The retired long-lived token.
		{name: "STACKIT_SERVICE_ACCOUNT_TOKEN alone", env: env{legacy: "legacy-token"}, ourError: "retired"},
		{name: "STACKIT_SERVICE_ACCOUNT_TOKEN with a key", env: env{legacy: "legacy-token", keyPath: "{keyA+}"}},
		{name: "STACKIT_SERVICE_ACCOUNT_TOKEN alone in the credentials file", env: env{},
			home: str(`{"STACKIT_SERVICE_ACCOUNT_TOKEN": "legacy-token"}`), ourError: "retired"},

		// The credentials file.
		{name: "credentials file with key path and private key path", env: env{},
			home: str(`{"STACKIT_SERVICE_ACCOUNT_KEY_PATH": "{keyA}", "STACKIT_PRIVATE_KEY_PATH": "{pemA}"}`)},
		{name: "credentials file with inline key and inline private key", env: env{},
			home: str(`{"STACKIT_SERVICE_ACCOUNT_KEY": {q:keyAjson}, "STACKIT_PRIVATE_KEY": {q:pemAtext}}`)},
		{name: "credentials file key path beats its inline key", env: env{},
			home: str(`{"STACKIT_SERVICE_ACCOUNT_KEY_PATH": "{keyA+}", "STACKIT_SERVICE_ACCOUNT_KEY": {q:keyB+json}}`)},
		{name: "STACKIT_CREDENTIALS_PATH beats HOME", env: env{},
			home:      str(`{"STACKIT_SERVICE_ACCOUNT_KEY_PATH": "{keyA+}"}`),
			credsPath: str(`{"STACKIT_SERVICE_ACCOUNT_KEY_PATH": "{keyB+}"}`)},
		{name: "environment beats the credentials file", env: env{keyPath: "{keyA+}"},
			home: str(`{"STACKIT_SERVICE_ACCOUNT_KEY_PATH": "{keyB+}"}`)},
		{name: "key in env, private key path in the credentials file", env: env{keyPath: "{keyA}"},
			home: str(`{"STACKIT_PRIVATE_KEY_PATH": "{pemA}"}`)},
		{name: "credentials file private key overrides the embedded key", env: env{keyPath: "{keyA+}"},
			home: str(`{"STACKIT_PRIVATE_KEY_PATH": "{pemX}"}`)},
		{name: "credentials file private key path missing, embedded key", env: env{keyPath: "{keyA+}"},
			home: str(`{"STACKIT_PRIVATE_KEY_PATH": "{missing}"}`), ourWarning: "STACKIT_PRIVATE_KEY_PATH in "},
		{name: "credentials file private key path missing, no embedded key", env: env{keyPath: "{keyA}"},
			home: str(`{"STACKIT_PRIVATE_KEY_PATH": "{missing}"}`)},
		{name: "malformed credentials file, embedded key in env", env: env{keyPath: "{keyA+}"},
			home: str(`{"STACKIT_PRIVATE_KEY_PATH": `), ourWarning: "credentials.json"},
		{name: "malformed credentials file, key and private key in env", env: env{keyPath: "{keyA}", privPath: "{pemA}"},
			home: str(`{"STACKIT_PRIVATE_KEY_PATH": `)},
		{name: "malformed credentials file, no embedded key", env: env{keyPath: "{keyA}"},
			home: str(`{"STACKIT_PRIVATE_KEY_PATH": `)},
		{name: "malformed credentials file, nothing in env", env: env{}, home: str(`not json`)},
		{name: "empty credentials file, nothing in env", env: env{}, home: str(``)},
		{name: "empty credentials file, embedded key in env", env: env{keyPath: "{keyA+}"}, home: str(``), ourWarning: "credentials.json"},
		{name: "malformed explicit STACKIT_CREDENTIALS_PATH file, embedded key in env", env: env{keyPath: "{keyA+}"},
			credsPath: str(`[1, 2`), ourWarning: "credentials"},
		{name: "explicit STACKIT_CREDENTIALS_PATH missing, embedded key in env", env: env{keyPath: "{keyA+}", credPath: "{missing}"}},
		{name: "explicit STACKIT_CREDENTIALS_PATH missing, nothing else", env: env{credPath: "{missing}"}},
		{name: "key as a JSON object in the credentials file", env: env{},
			home: str(`{"STACKIT_SERVICE_ACCOUNT_KEY": {keyA+json}}`)},
		{name: "credentials file value of a name we never read is not a string", env: env{},
			home: str(`{"STACKIT_SERVICE_ACCOUNT_KEY_PATH": "{keyA+}", "STACKIT_SERVICE_ACCOUNT_TOKEN": 7}`)},
		{name: "credentials file names in another case", env: env{},
			home: str(`{"stackit_service_account_key_path": "{keyA+}"}`), ourWarning: "STACKIT_SERVICE_ACCOUNT_KEY_PATH"},
		{name: "misspelled key path name in the credentials file", env: env{},
			home: str(`{"STACKIT_SERVICE_ACOUNT_KEY_PATH": "{keyA+}"}`), ourError: "did you mean STACKIT_SERVICE_ACCOUNT_KEY_PATH"},
		{name: "misspelled private key name in the credentials file, embedded key", env: env{keyPath: "{keyA+}"},
			home: str(`{"STACKIT_PRIVATE_KEY_PAHT": "{pemX}"}`), ourWarning: "did you mean STACKIT_PRIVATE_KEY_PATH"},

		// Workload identity federation.
		{name: "federation with a token file", env: env{email: parityEmail, fedFile: "{fedOK}", idp: parityIdPURL}},
		{name: "federation beats a key", env: env{email: parityEmail, fedFile: "{fedOK}", idp: parityIdPURL, keyPath: "{keyA+}"}},
		{name: "federation at the default IdP endpoint", env: env{email: parityEmail, fedFile: "{fedOK}"}},
		{name: "STACKIT_TOKEN_BASEURL does not move the IdP endpoint", env: env{email: parityEmail, fedFile: "{fedOK}", baseURL: parityBaseURL}},
		{name: "email but the token file is missing: key flow", env: env{email: parityEmail, fedFile: "{missing}", keyPath: "{keyA+}"}},
		{name: "token file without email: key flow", env: env{fedFile: "{fedOK}", keyPath: "{keyA+}"}},
		{name: "email only, no token file, no key", env: env{email: parityEmail}},
		{name: "federated token file is not a JWT", env: env{email: parityEmail, fedFile: "{fedGarbage}", keyPath: "{keyA+}"}},
		{name: "federated token file is empty", env: env{email: parityEmail, fedFile: "{empty}", keyPath: "{keyA+}"}},
		{name: "expired federated token", env: env{email: parityEmail, fedFile: "{fedExpired}", idp: parityIdPURL}},
		{name: "email with surrounding whitespace", env: env{email: " " + parityEmail + "\n", fedFile: "{fedOK}", idp: parityIdPURL}},
		{name: "STACKIT_IDP_ENDPOINT alias", env: env{email: parityEmail, fedFile: "{fedOK}", tokensource.EnvIDPEndpoint: parityAliasURL}},
		{name: "STACKIT_IDP_TOKEN_ENDPOINT beats the alias", env: env{email: parityEmail, fedFile: "{fedOK}", idp: parityIdPURL, tokensource.EnvIDPEndpoint: parityAliasURL}},
		{name: "STACKIT_USE_OIDC on GitHub Actions", env: env{email: parityEmail, tokensource.EnvUseOIDC: "1", idp: parityIdPURL,
			tokensource.EnvActionsIDTokenRequestURL: parityGitHubURL, tokensource.EnvActionsIDTokenRequestToken: "runner-request-token", keyPath: "{keyA+}"}},
	}
}

// answer is what one side did, as the fake token service saw it.
type answer struct {
	err      error
	flow     string
	endpoint string
	kid      string
	signer   string
	clientID string
	token    string
	requests int
	warnings []string
}

func (a answer) String() string {
	switch {
	case a.err != nil:
		return "error"
	case a.flow == "retired token":
		return "retired token flow (no token request)"
	case a.requests != 1:
		return fmt.Sprintf("%d token requests", a.requests)
	case a.flow == "key flow":
		return fmt.Sprintf("key flow → %s kid=%s signer=%s", a.endpoint, a.kid, a.signer)
	default:
		return fmt.Sprintf("%s → %s client_id=%q token=%s", a.flow, a.endpoint, a.clientID, a.token)
	}
}

// parityWorld is the fixtures and the fake token service both sides use.
type parityWorld struct {
	t        *testing.T
	dir      string
	fixtures map[string]string
	signers  map[string]*rsa.PublicKey
	fedNames map[string]string
	client   *http.Client
	loopback string

	mu   sync.Mutex
	seen []answer
}

func newParityWorld(t *testing.T) *parityWorld {
	w := &parityWorld{t: t, dir: t.TempDir(), fixtures: map[string]string{}, signers: map[string]*rsa.PublicKey{}, fedNames: map[string]string{}}
	keys := map[string]*rsa.PrivateKey{}
	for _, name := range []string{"A", "B", "X"} {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		require.NoError(t, err)
		keys[name], w.signers[name] = k, &k.PublicKey
	}
	pkcs1 := func(k *rsa.PrivateKey) string {
		return string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}))
	}
	pkcs8 := func(k *rsa.PrivateKey) string {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		require.NoError(t, err)
		return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	}
	keyJSON := func(name, kid, sub string, embed bool, endpoint string) string {
		pubDER, err := x509.MarshalPKIXPublicKey(&keys[name].PublicKey)
		require.NoError(t, err)
		creds := map[string]string{"kid": kid, "iss": parityEmail, "sub": sub, "aud": "https://stackit-service-account-prod.apps.01.cf.eu01.stackit.cloud"}
		if embed {
			creds["privateKey"] = pkcs8(keys[name])
		}
		if endpoint != "" {
			creds["tokenEndpoint"] = endpoint
		}
		data, err := json.Marshal(map[string]any{
			"id": "8f4e7b2a-1c3d-4e5f-8a9b-0c1d2e3f4a5b", "publicKey": string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})),
			"createdAt": "2025-01-02T03:04:05Z", "validUntil": nil, "keyType": "USER_MANAGED", "keyOrigin": "GENERATED",
			"keyAlgorithm": "RSA_2048", "active": true, "credentials": creds,
		})
		require.NoError(t, err)
		return string(data)
	}
	const subA, subB = "0b7a2d55-6a5c-4c8e-9a63-2f3f7a1c9d10", "1c8b3e66-7b6d-4d9f-8b74-3a4a8b2d0e21"
	inline := map[string]string{
		"keyA+json":   keyJSON("A", "kid-a", subA, true, ""),
		"keyAjson":    keyJSON("A", "kid-a", subA, false, ""),
		"keyB+json":   keyJSON("B", "kid-b", subB, true, ""),
		"keyA+epjson": keyJSON("A", "kid-a", subA, true, parityKeyURL),
		"pemAtext":    pkcs1(keys["A"]),
		"pemXtext":    pkcs8(keys["X"]),
		"pemAescaped": strings.ReplaceAll(pkcs1(keys["A"]), "\n", `\n`),
	}
	now := time.Now()
	fed := map[string]string{
		"fedOK":      fakeJWT(t, "system:serviceaccount:ci:builder", now.Add(time.Hour)),
		"fedExpired": fakeJWT(t, "system:serviceaccount:ci:builder", now.Add(-time.Hour)),
		"fedGitHub":  fakeJWT(t, "repo:example/app:ref:refs/heads/main", now.Add(time.Hour)),
	}
	files := map[string]string{
		"keyA+": inline["keyA+json"], "keyA": inline["keyAjson"], "keyB+": inline["keyB+json"], "keyA+ep": inline["keyA+epjson"],
		"pemA": inline["pemAtext"], "pemX": inline["pemXtext"], "garbage": "not a PEM key\n", "empty": "",
		"fedOK": fed["fedOK"], "fedExpired": fed["fedExpired"], "fedGarbage": "not-a-jwt",
	}
	for name, content := range files {
		p := filepath.Join(w.dir, name+".file")
		require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
		w.fixtures[name] = p
	}
	for name, v := range inline {
		w.fixtures[name] = v
	}
	for name, tok := range fed {
		w.fedNames[tok] = name
	}
	w.fixtures["missing"] = filepath.Join(w.dir, "does-not-exist")
	w.fixtures["dir"] = w.dir
	w.startServers(fed["fedGitHub"])
	return w
}

// fakeJWT is a federated token: a JWT with an exp, signed by nobody we check.
func fakeJWT(t *testing.T, sub string, exp time.Time) string {
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": "https://issuer.parity.test", "sub": sub, "aud": "sts.accounts.stackit.cloud",
		"exp": exp.Unix(), "iat": time.Now().Add(-2 * time.Hour).Unix(),
	}).SignedString([]byte("federated-issuer-secret"))
	require.NoError(t, err)
	return s
}

// startServers starts the fake token service twice: over TLS, for every
// https name on port 443 (the certificate covers the STACKIT defaults and
// *.parity.test), and in plain http for port 80 and loopback. Both sides get
// one client whose dialer routes by port, so no request leaves the machine.
func (w *parityWorld) startServers(gitHubToken string) {
	t := w.t
	handler := http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Path == "/idtoken" {
			_ = json.NewEncoder(rw).Encode(map[string]string{"value": gitHubToken})
			return
		}
		if err := r.ParseForm(); err != nil {
			http.Error(rw, "bad form", http.StatusBadRequest)
			return
		}
		w.record(r)
		access, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"email": parityEmail, "iat": time.Now().Unix(), "exp": time.Now().Add(30 * time.Minute).Unix(),
		}).SignedString([]byte("access-token-secret"))
		if err != nil {
			http.Error(rw, err.Error(), http.StatusInternalServerError)
			return
		}
		rw.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(rw).Encode(map[string]any{"access_token": access, "expires_in": 1800, "token_type": "Bearer"})
	})
	plain := httptest.NewServer(handler)
	t.Cleanup(plain.Close)
	secure := httptest.NewUnstartedServer(handler)
	cert, pool := parityCertificate(t)
	secure.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	secure.StartTLS()
	t.Cleanup(secure.Close)
	w.loopback = plain.URL
	w.fixtures["loopback"] = plain.URL

	dialer := &net.Dialer{Timeout: 5 * time.Second}
	transport := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			_, port, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			switch port {
			case "443":
				addr = secure.Listener.Addr().String()
			case "80":
				addr = plain.Listener.Addr().String()
			}
			return dialer.DialContext(ctx, network, addr)
		},
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
	}
	t.Cleanup(transport.CloseIdleConnections)
	w.client = &http.Client{Transport: transport, Timeout: 20 * time.Second}
}

func parityCertificate(t *testing.T) (tls.Certificate, *x509.CertPool) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "parity test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    []string{"service-account.api.stackit.cloud", "accounts.stackit.cloud", "*.parity.test"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	leaf, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// record notes what a token request carried.
func (w *parityWorld) record(r *http.Request) {
	a := answer{requests: 1}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	a.endpoint = scheme + "://" + r.Host + r.URL.Path
	if u := strings.TrimPrefix(w.loopback, "http://"); r.TLS == nil && r.Host == u {
		a.endpoint = "http://loopback" + r.URL.Path
	}
	switch {
	case r.PostForm.Get("grant_type") == "urn:ietf:params:oauth:grant-type:jwt-bearer":
		a.flow = "key flow"
		assertion := r.PostForm.Get("assertion")
		if tok, _, err := jwt.NewParser().ParseUnverified(assertion, jwt.MapClaims{}); err == nil {
			a.kid, _ = tok.Header["kid"].(string)
		}
		a.signer = "none of the candidates"
		names := make([]string, 0, len(w.signers))
		for name := range w.signers {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			pub := w.signers[name]
			_, err := jwt.Parse(assertion, func(*jwt.Token) (any, error) { return pub, nil }, jwt.WithValidMethods([]string{"RS512"}))
			if err == nil {
				a.signer = name
				break
			}
		}
	case r.PostForm.Get("grant_type") == "client_credentials" &&
		r.PostForm.Get("client_assertion_type") == tokensource.ClientAssertionTypeWorkloadJWT:
		a.flow = "federation"
		a.clientID = r.PostForm.Get("client_id")
		a.token = w.fedNames[r.PostForm.Get("client_assertion")]
		if a.token == "" {
			a.token = "unknown"
		}
	default:
		a.flow = "grant_type=" + r.PostForm.Get("grant_type")
	}
	w.mu.Lock()
	w.seen = append(w.seen, a)
	w.mu.Unlock()
}

// take returns what the fake saw since the last call, as one answer.
func (w *parityWorld) take() answer {
	w.mu.Lock()
	defer w.mu.Unlock()
	seen := w.seen
	w.seen = nil
	if len(seen) == 0 {
		return answer{}
	}
	a := seen[len(seen)-1]
	a.requests = len(seen)
	return a
}

func (w *parityWorld) expand(s string) string {
	pairs := make([]string, 0, 4*len(w.fixtures))
	for name, v := range w.fixtures {
		q, _ := json.Marshal(v)
		pairs = append(pairs, "{"+name+"}", v, "{q:"+name+"}", string(q))
	}
	return strings.NewReplacer(pairs...).Replace(s)
}

// setup puts the case's environment in place of the process environment.
func (w *parityWorld) setup(t *testing.T, c parityCase) {
	for _, name := range parityEnvNames {
		t.Setenv(name, "")
		require.NoError(t, os.Unsetenv(name))
	}
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("USERPROFILE", home) // os.UserHomeDir's answer on Windows
	if c.home != nil {
		require.NoError(t, os.MkdirAll(filepath.Join(home, ".stackit"), 0o700))
		require.NoError(t, os.WriteFile(filepath.Join(home, ".stackit", "credentials.json"), []byte(w.expand(*c.home)), 0o600))
	}
	if c.credsPath != nil {
		p := filepath.Join(t.TempDir(), "credentials.json")
		require.NoError(t, os.WriteFile(p, []byte(w.expand(*c.credsPath)), 0o600))
		t.Setenv(tokensource.EnvCredentialsPath, p)
	}
	for k, v := range c.env {
		t.Setenv(k, w.expand(v))
	}
}

// sdkAnswer runs the STACKIT SDK's own discovery and gets one token.
func (w *parityWorld) sdkAnswer() (a answer) {
	defer func() {
		if r := recover(); r != nil {
			a = answer{err: fmt.Errorf("the SDK panicked: %v", r)}
		}
	}()
	w.take()
	rt, err := auth.SetupAuth(&config.Configuration{HTTPClient: w.client})
	if err != nil {
		return answer{err: err}
	}
	switch f := rt.(type) {
	case *clients.TokenFlow:
		return answer{flow: "retired token"}
	case clients.AuthFlow:
		_, err = f.GetAccessToken()
	default:
		return answer{err: fmt.Errorf("the SDK chose %T", rt)}
	}
	a = w.take()
	a.err = err
	return a
}

// ourAnswer runs Discover and Token with the same environment.
func (w *parityWorld) ourAnswer() answer {
	w.take()
	flow, err := tokensource.Discover(tokensource.Options{Env: os.Getenv, HTTPClient: w.client}, tokensource.Overrides{})
	if err != nil {
		return answer{err: err}
	}
	tok, err := flow.Token(context.Background())
	a := w.take()
	a.err = err
	for _, warning := range flow.Warnings {
		a.warnings = append(a.warnings, warning.Message)
	}
	if tok != nil {
		for _, warning := range tok.Warnings {
			a.warnings = append(a.warnings, warning.Message)
		}
	}
	return a
}

func TestSameAnswersAsTheSTACKITSDK(t *testing.T) {
	// No t.Parallel: the SDK reads the process environment.
	w := newParityWorld(t)
	probe, err := auth.SetupAuth(&config.Configuration{NoAuth: true})
	if err != nil || probe == nil {
		t.Skipf("the STACKIT SDK (github.com/stackitcloud/stackit-sdk-go/core) could not be set up here: %v", err)
	}

	cases := sdkParityCases()
	require.GreaterOrEqual(t, len(cases), 40)
	names := map[string]bool{}
	for _, c := range cases {
		require.False(t, names[c.name], "duplicate case %q", c.name)
		names[c.name] = true
	}
	for name := range sdkParityDeliberate {
		require.True(t, names[name], "deliberate difference %q names no case", name)
		require.NotContains(t, sdkParityFixed, name)
	}
	for name := range sdkParityFixed {
		require.True(t, names[name], "fixed case %q names no case", name)
	}

	var matched, fixed, deliberate int
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w.setup(t, c)
			sdk := w.sdkAnswer()
			ours := w.ourAnswer()
			t.Logf("SDK:  %s (%v)", sdk, sdk.err)
			t.Logf("ours: %s (%v) warnings=%q", ours, ours.err, ours.warnings)
			if d, ok := sdkParityDeliberate[c.name]; ok {
				assert.Equal(t, d.sdk, sdk.String(), "the SDK's side of a deliberate difference changed")
				assert.Equal(t, d.ours, ours.String(), "our side of a deliberate difference changed (%s)", d.reason)
				if !t.Failed() {
					deliberate++
				}
			} else if assert.Equal(t, sdk.String(), ours.String(), "drift from the STACKIT SDK") {
				if _, ok := sdkParityFixed[c.name]; ok {
					fixed++
				} else {
					matched++
				}
			}
			if c.ourWarning != "" {
				assert.Len(t, ours.warnings, 1, "one warning line")
				assert.Contains(t, strings.Join(ours.warnings, "\n"), c.ourWarning)
			}
			if c.ourError != "" {
				require.Error(t, ours.err)
				assert.Contains(t, ours.err.Error(), c.ourError)
			}
		})
	}
	t.Logf("SDK parity over %d environments: %d matched, %d fixed to match, %d deliberate differences", len(cases), matched, fixed, deliberate)
}
