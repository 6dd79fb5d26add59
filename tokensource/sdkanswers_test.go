package tokensource_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/docker-credential-stackit/docker-credential-stackit/internal/testfs"
	"github.com/docker-credential-stackit/docker-credential-stackit/tokensource"
	"github.com/docker-credential-stackit/docker-credential-stackit/tokensource/tokensourcetest"
)

// homeWithCredentials makes a HOME whose ~/.stackit/credentials.json holds
// content.
func homeWithCredentials(t *testing.T, content string) string {
	t.Helper()
	home := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(home, ".stackit"), 0o700))
	writeFile(t, filepath.Join(home, ".stackit"), "credentials.json", []byte(content))
	return home
}

func mint(t *testing.T, env map[string]string) (*tokensource.Flow, *tokensource.Token, error) {
	t.Helper()
	flow, err := tokensource.Discover(tokensource.Options{Env: envOf(env)}, tokensource.Overrides{})
	if err != nil {
		return flow, nil, err
	}
	tok, err := flow.Token(context.Background())
	return flow, tok, err
}

func TestUnreadablePrivateKeyOverrideFallsBackToTheEmbeddedKeyWithOneWarning(t *testing.T) {
	srv := tokensourcetest.NewServer(t)
	acct := srv.NewAccount(t, "fallback@sa.stackit.cloud")
	dir := t.TempDir()
	keyWithPriv := acct.WriteKeyFile(t, dir, true)
	empty := writeFile(t, dir, "empty.pem", nil)
	missing := filepath.Join(dir, "missing.pem")
	notAKey := writeFile(t, dir, "not-a-key.pem", []byte("not a key"))

	cases := []struct {
		name, warning string
		env           map[string]string
	}{
		{"missing STACKIT_PRIVATE_KEY_PATH", "STACKIT_PRIVATE_KEY_PATH (" + missing + "): file not found; ignored it, as the STACKIT SDK does, and used the private key embedded in the service account key; fix or unset STACKIT_PRIVATE_KEY_PATH",
			map[string]string{tokensource.EnvPrivateKeyPath: missing}},
		{"empty STACKIT_PRIVATE_KEY_PATH", "STACKIT_PRIVATE_KEY_PATH (" + empty + "): is empty; ignored it",
			map[string]string{tokensource.EnvPrivateKeyPath: empty}},
		{"a failed path is not replaced by STACKIT_PRIVATE_KEY", "STACKIT_PRIVATE_KEY_PATH (" + missing + "): file not found",
			map[string]string{tokensource.EnvPrivateKeyPath: missing, tokensource.EnvPrivateKey: "-----BEGIN PRIVATE KEY-----\nnot this one\n-----END PRIVATE KEY-----\n"}},
		{"secret content in STACKIT_PRIVATE_KEY_PATH is not echoed", "STACKIT_PRIVATE_KEY_PATH: holds what looks like secret content, not a file path; ignored it",
			map[string]string{tokensource.EnvPrivateKeyPath: string(acct.PrivateKeyPEM)}},
		{"missing path in the credentials file", "file not found; ignored it, as the STACKIT SDK does",
			map[string]string{"HOME": homeWithCredentials(t, `{"STACKIT_PRIVATE_KEY_PATH": `+testfs.JSONQuote(missing)+`}`)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.env[tokensource.EnvServiceAccountKeyPath] = keyWithPriv
			tc.env[tokensource.EnvTokenBaseURL] = srv.TokenURL()
			flow, tok, err := mint(t, tc.env)
			require.NoError(t, err)
			assert.True(t, srv.Valid(acct.Email, tok.AccessToken), "signed with the embedded key")
			assert.Empty(t, flow.Warnings)
			require.Len(t, tok.Warnings, 1, "one warning line")
			assert.Contains(t, tok.Warnings[0].Message, tc.warning)
			assert.NotContains(t, tok.Warnings[0].Message, "PRIVATE KEY-----", "no key material in warnings")
			assert.NotContains(t, tok.Warnings[0].Message, "\n")
		})
	}

	t.Run("without an embedded key the failed path stays an error", func(t *testing.T) {
		_, _, err := mint(t, map[string]string{tokensource.EnvServiceAccountKeyPath: acct.WriteKeyFile(t, t.TempDir(), false), tokensource.EnvPrivateKeyPath: missing, tokensource.EnvTokenBaseURL: srv.TokenURL()})
		require.Error(t, err)
		assert.Contains(t, err.Error(), "missing.pem (from STACKIT_PRIVATE_KEY_PATH): file not found")
	})
	t.Run("a path that reads but is not a key stays an error", func(t *testing.T) {
		_, _, err := mint(t, map[string]string{tokensource.EnvServiceAccountKeyPath: keyWithPriv, tokensource.EnvPrivateKeyPath: notAKey, tokensource.EnvTokenBaseURL: srv.TokenURL()})
		require.Error(t, err)
		assert.Contains(t, err.Error(), "no PEM private key found")
	})
}

func TestBrokenCredentialsFileDoesNotBreakAKeySetInTheEnvironment(t *testing.T) {
	srv := tokensourcetest.NewServer(t)
	acct := srv.NewAccount(t, "env@sa.stackit.cloud")
	dir := t.TempDir()
	malformed := homeWithCredentials(t, `{"STACKIT_PRIVATE_KEY_PATH": `)
	pemPath := writeFile(t, dir, "key.pem", acct.PrivateKeyPEM)

	t.Run("key and private key from the environment: the file is not read", func(t *testing.T) {
		flow, tok, err := mint(t, map[string]string{"HOME": malformed, tokensource.EnvServiceAccountKeyPath: acct.WriteKeyFile(t, dir, false),
			tokensource.EnvPrivateKeyPath: pemPath, tokensource.EnvTokenBaseURL: srv.TokenURL()})
		require.NoError(t, err)
		assert.Empty(t, flow.Warnings)
		assert.Empty(t, tok.Warnings, "nothing was read from the file, so nothing to say about it")
	})
	t.Run("embedded private key: the file is ignored with one warning", func(t *testing.T) {
		_, tok, err := mint(t, map[string]string{"HOME": malformed, tokensource.EnvServiceAccountKey: string(acct.KeyJSON(true)), tokensource.EnvTokenBaseURL: srv.TokenURL()})
		require.NoError(t, err)
		require.Len(t, tok.Warnings, 1)
		assert.Contains(t, tok.Warnings[0].Message, filepath.Join(malformed, ".stackit", "credentials.json"))
		assert.Contains(t, tok.Warnings[0].Message, "ignored it for the private key, as the STACKIT SDK does")
	})
	t.Run("no private key anywhere else: the file's error is the answer", func(t *testing.T) {
		_, _, err := mint(t, map[string]string{"HOME": malformed, tokensource.EnvServiceAccountKey: string(acct.KeyJSON(false)), tokensource.EnvTokenBaseURL: srv.TokenURL()})
		require.Error(t, err)
		assert.Contains(t, err.Error(), "read STACKIT credentials file")
	})
	t.Run("an explicitly named credentials file that is missing stays an error", func(t *testing.T) {
		_, _, err := mint(t, map[string]string{tokensource.EnvCredentialsPath: filepath.Join(dir, "none.json"), tokensource.EnvServiceAccountKey: string(acct.KeyJSON(true)), tokensource.EnvTokenBaseURL: srv.TokenURL()})
		require.Error(t, err)
		assert.Contains(t, err.Error(), "none.json: file not found (fix or unset STACKIT_CREDENTIALS_PATH)")
	})
}

func TestConcurrentTokenCallsReadTheCredentialsFileSafely(t *testing.T) {
	srv := tokensourcetest.NewServer(t)
	acct := srv.NewAccount(t, "conc@sa.stackit.cloud")
	dir := t.TempDir()
	home := homeWithCredentials(t, `{"STACKIT_PRIVATE_KEY_PATH": `+testfs.JSONQuote(writeFile(t, dir, "key.pem", acct.PrivateKeyPEM))+`}`)
	flow, err := tokensource.Discover(tokensource.Options{Env: envOf(map[string]string{"HOME": home,
		tokensource.EnvServiceAccountKeyPath: acct.WriteKeyFile(t, dir, false), tokensource.EnvTokenBaseURL: srv.TokenURL()})}, tokensource.Overrides{})
	require.NoError(t, err)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { _, errs[i] = flow.Token(context.Background()) })
	}
	wg.Wait()
	for _, err := range errs {
		assert.NoError(t, err)
	}
}

func TestRetiredServiceAccountTokenSaysWhatToUseInstead(t *testing.T) {
	for name, env := range map[string]map[string]string{
		"in the environment":      {tokensource.EnvServiceAccountToken: "legacy-long-lived-token", "HOME": t.TempDir()},
		"in the credentials file": {"HOME": homeWithCredentials(t, `{"STACKIT_SERVICE_ACCOUNT_TOKEN": "legacy-long-lived-token"}`)},
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := mint(t, env)
			require.Error(t, err)
			assert.ErrorIs(t, err, tokensource.ErrNoCredentials)
			msg := err.Error()
			for _, want := range []string{"STACKIT_SERVICE_ACCOUNT_TOKEN is set", "retired", "service account key", "STACKIT_SERVICE_ACCOUNT_KEY_PATH", "workload identity federation"} {
				assert.Contains(t, msg, want)
			}
			assert.NotContains(t, msg, "legacy-long-lived-token", "the token is never echoed")
		})
	}
	_, _, err := mint(t, map[string]string{"HOME": t.TempDir()})
	assert.Equal(t, tokensource.ErrNoCredentials, err, "nothing set at all: the plain error")
}

func TestCredentialsFileNamesTheSDKDoesNotReadAreWarnedAbout(t *testing.T) {
	srv := tokensourcetest.NewServer(t)
	acct := srv.NewAccount(t, "names@sa.stackit.cloud")
	dir := t.TempDir()
	keyPath := acct.WriteKeyFile(t, dir, true)

	cases := []struct {
		name, file string
		warnings   []string
		err        string
	}{
		{name: "near miss of the private key path", file: `{"STACKIT_SERVICE_ACCOUNT_KEY_PATH": ` + testfs.JSONQuote(keyPath) + `, "STACKIT_PRIVATE_KEY_PAHT": "/x.pem"}`,
			warnings: []string{`unknown name "STACKIT_PRIVATE_KEY_PAHT" is ignored; did you mean STACKIT_PRIVATE_KEY_PATH?`}},
		{name: "two edits away", file: `{"STACKIT_SERVICE_ACCOUNT_KEY_PATH": ` + testfs.JSONQuote(keyPath) + `, "STACKIT_PRIVAT_KEY": "x"}`,
			warnings: []string{`did you mean STACKIT_PRIVATE_KEY?`}},
		{name: "unrelated name", file: `{"STACKIT_SERVICE_ACCOUNT_KEY_PATH": ` + testfs.JSONQuote(keyPath) + `, "comment": "ci account"}`,
			warnings: []string{`unknown name "comment" is ignored; the names it may hold are STACKIT_SERVICE_ACCOUNT_KEY_PATH, STACKIT_SERVICE_ACCOUNT_KEY, STACKIT_PRIVATE_KEY_PATH, STACKIT_PRIVATE_KEY`}},
		{name: "another case is read, as by the SDK, with a warning", file: `{"Stackit_Service_Account_Key_Path": ` + testfs.JSONQuote(keyPath) + `}`,
			warnings: []string{`"Stackit_Service_Account_Key_Path" is read as STACKIT_SERVICE_ACCOUNT_KEY_PATH`}},
		{name: "the SDK's own names are no surprise", file: `{"STACKIT_SERVICE_ACCOUNT_KEY_PATH": ` + testfs.JSONQuote(keyPath) + `, "STACKIT_SERVICE_ACCOUNT_EMAIL": "x@sa.stackit.cloud"}`},
		{name: "a misspelt key name explains the missing key", file: `{"STACKIT_SERVICE_ACOUNT_KEY_PATH": ` + testfs.JSONQuote(keyPath) + `}`,
			err: `has "STACKIT_SERVICE_ACOUNT_KEY_PATH", a name the STACKIT SDK does not read: did you mean STACKIT_SERVICE_ACCOUNT_KEY_PATH?; rename it to STACKIT_SERVICE_ACCOUNT_KEY_PATH`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			home := homeWithCredentials(t, tc.file)
			flow, tok, err := mint(t, map[string]string{"HOME": home, tokensource.EnvTokenBaseURL: srv.TokenURL()})
			if tc.err != "" {
				require.Error(t, err)
				assert.ErrorIs(t, err, tokensource.ErrNoCredentials)
				assert.Contains(t, err.Error(), tc.err)
				return
			}
			require.NoError(t, err)
			assert.Empty(t, tok.Warnings, "the file was read by discovery; its warnings are not repeated")
			var got []string
			for _, w := range flow.Warnings {
				got = append(got, w.Message)
				assert.NotEmpty(t, w.OnceADay)
				assert.True(t, strings.HasPrefix(w.Message, "STACKIT credentials file "+filepath.Join(home, ".stackit", "credentials.json")+": "), w.Message)
			}
			require.Len(t, got, len(tc.warnings), "%q", got)
			for i, want := range tc.warnings {
				assert.Contains(t, got[i], want)
			}
		})
	}
}
