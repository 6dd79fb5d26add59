package main

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker-credential-stackit/docker-credential-stackit/tokensource/tokensourcetest"
)

// cliStoredFields are the fields `stackit auth activate-service-account`
// stores for a: the key as the SDK marshals it, the PEM, the custom token
// endpoint and a 12 h session.
func cliStoredFields(t *testing.T, a *tokensourcetest.Account, endpoint string, session time.Time) map[string]string {
	t.Helper()
	pubDER, err := x509.MarshalPKIXPublicKey(&a.PrivateKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	key, err := json.Marshal(map[string]any{
		"active": true, "createdAt": "2026-01-01T00:00:00Z", "id": a.Kid,
		"keyAlgorithm": "RSA_2048", "keyOrigin": "USER_PROVIDED", "keyType": "USER_MANAGED",
		"publicKey":   string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})),
		"credentials": map[string]string{"aud": tokensourcetest.Audience, "iss": a.Email, "kid": a.Kid, "sub": a.Sub, "tokenEndpoint": ""},
	})
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{
		"auth_flow_type":          "sa_key",
		"service_account_key":     string(key),
		"private_key":             string(a.PrivateKeyPEM),
		"token_custom_endpoint":   endpoint,
		"service_account_email":   a.Email,
		"access_token":            "cli-own-access-token-" + a.Kid,
		"refresh_token":           "cli-own-refresh-token-" + a.Kid,
		"session_expires_at_unix": strconv.FormatInt(session.Unix(), 10),
	}
}

// writeCLIAuthStorage writes cli-auth-storage.txt as the CLI does when the
// keyring is unavailable: base64 of the JSON object, mode 0600.
func writeCLIAuthStorage(t *testing.T, e *helperEnv, fields map[string]string) string {
	t.Helper()
	dir := filepath.Join(e.home, ".config", "stackit")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(fields)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "cli-auth-storage.txt")
	if err := os.WriteFile(path, []byte(base64.StdEncoding.EncodeToString(raw)), 0o600); err != nil {
		t.Fatal(err)
	}
	e.secrets.add(fields["access_token"], fields["refresh_token"])
	return path
}

// newCLILoginEnv is a helper world with no STACKIT_* variable at all and
// no keyring: on Linux without a D-Bus session the helper never calls the
// keyring library. Elsewhere the real keychain or Credential Manager would
// be read, so the test does not run there.
func newCLILoginEnv(t *testing.T) *helperEnv {
	if runtime.GOOS != "linux" {
		t.Skip("only on Linux can the test keep the helper away from the real OS keyring")
	}
	e := newHelperEnv(t)
	e.vars[envKeyPath] = ""
	e.vars[envTokenURL] = ""
	e.vars["DBUS_SESSION_BUS_ADDRESS"] = ""
	return e
}

func TestGetUsesTheSTACKITCLILoginWhenNothingElseIsSet(t *testing.T) {
	e := newCLILoginEnv(t)
	path := writeCLIAuthStorage(t, e, cliStoredFields(t, e.acct, e.srv.TokenURL(), time.Now().Add(12*time.Hour)))

	r, c := e.getOK(defaultRegistry)
	e.requireValid("get through the CLI login", c)
	e.requireRequests("first get", 1)
	if !strings.Contains(r.stderr, "STACKIT CLI profile default (file "+path+")") {
		t.Errorf("the debug log does not say where the login came from:\n%s", r.stderr)
	}
	if c.Secret == "cli-own-access-token-"+e.acct.Kid {
		t.Error("the CLI's own access token was handed out")
	}

	_, again := e.getOK(defaultRegistry)
	if again.Secret != c.Secret {
		t.Error("the second get did not come from the cache")
	}
	e.requireRequests("warm get", 1)

	st := e.run("", "status")
	if st.code != 0 || !strings.Contains(st.stdout, "from STACKIT CLI profile default (file "+path+")") || !strings.Contains(st.stdout, e.acct.Email) {
		t.Errorf("status does not say the CLI's profile, where it was read, and the account:\n%s", st)
	}
}

func TestGetAnswersAsTheNewAccountRightAfterTheCLISwitches(t *testing.T) {
	e := newCLILoginEnv(t)
	writeCLIAuthStorage(t, e, cliStoredFields(t, e.acct, e.srv.TokenURL(), time.Now().Add(12*time.Hour)))
	e.requireValid("first account", e.get(defaultRegistry))

	next := e.srv.NewAccount(t, "next@sa.stackit.cloud")
	e.secrets.addPEM(next.PrivateKeyPEM)
	writeCLIAuthStorage(t, e, cliStoredFields(t, next, e.srv.TokenURL(), time.Now().Add(12*time.Hour)))
	c := e.get(defaultRegistry)
	if c.Username != next.Email || !e.srv.Valid(next.Email, c.Secret) {
		t.Fatalf("after the switch get answered as %s, want %s", c.Username, next.Email)
	}
}

func TestGetWithAnExpiredCLISessionPullsAnonymouslyAndSaysToActivateAgain(t *testing.T) {
	e := newCLILoginEnv(t)
	writeCLIAuthStorage(t, e, cliStoredFields(t, e.acct, e.srv.TokenURL(), time.Now().Add(-time.Minute)))

	r := e.run(defaultRegistry, "get")
	if r.code != 1 || strings.TrimSpace(r.stdout) != notFoundMessage {
		t.Fatalf("want not found, got:\n%s", r)
	}
	var lines []string
	for _, l := range strings.Split(r.stderr, "\n") {
		if strings.Contains(l, "stackit auth activate-service-account") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 || !strings.Contains(lines[0], "session expired") {
		t.Fatalf("want one line saying the session expired and to activate again, stderr:\n%s", r.stderr)
	}
	e.requireRequests("expired session", 0)
}
