package tokensource

import (
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/zalando/go-keyring"
)

func TestCLIKeyringServiceIsTheCLIsPerProfileName(t *testing.T) {
	assert.Equal(t, "stackit-cli", cliKeyringServiceName("default", "linux"))
	assert.Equal(t, "stackit-cli/dev", cliKeyringServiceName("dev", "linux"))
	assert.Equal(t, "stackit-cli/dev", cliKeyringServiceName("dev", "darwin"))
	assert.Equal(t, `stackit-cli\dev`, cliKeyringServiceName("dev", "windows"))
}

func TestCLIConfigDirFollowsUserConfigDir(t *testing.T) {
	env := func(m map[string]string) Env { return func(k string) string { return m[k] } }
	assert.Equal(t, filepath.Join("/x", "stackit"), cliConfigDir(env(map[string]string{"XDG_CONFIG_HOME": "/x", "HOME": "/h"}), "linux"))
	assert.Equal(t, filepath.Join("/h", ".config", "stackit"), cliConfigDir(env(map[string]string{"HOME": "/h"}), "linux"))
	assert.Equal(t, "", cliConfigDir(env(map[string]string{"XDG_CONFIG_HOME": "rel", "HOME": "/h"}), "linux"), "a relative XDG_CONFIG_HOME is an error for os.UserConfigDir")
	assert.Equal(t, filepath.Join("/h", "Library", "Application Support", "stackit"), cliConfigDir(env(map[string]string{"HOME": "/h", "XDG_CONFIG_HOME": "/x"}), "darwin"))
	assert.Equal(t, "", cliConfigDir(env(nil), "linux"))
}

func TestCLIProfileNamesFollowTheCLIsRule(t *testing.T) {
	for _, ok := range []string{"dev", "prod-2", "0a"} {
		assert.True(t, validCLIProfile(ok), ok)
	}
	for _, bad := range []string{"", "a", "-dev", "Dev", "../x", "a/b", "dev_1"} {
		assert.False(t, validCLIProfile(bad), bad)
	}
}

func TestKeyringThatDoesNotAnswerGivesUpInsteadOfHanging(t *testing.T) {
	release := make(chan struct{})
	var calls atomic.Int32
	k := osKeyring{timeout: time.Millisecond, stuck: new(atomic.Bool), get: func(string, string) (string, error) {
		calls.Add(1)
		<-release
		return "late", nil
	}}
	// The injected get stands in for the library: no bus is dialled.
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus")
	_, err := k.Get("stackit-cli", "auth_flow_type")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "did not answer")
	_, err = k.Get("stackit-cli", "service_account_key")
	require.Error(t, err, "a stuck keyring is not asked again")
	assert.EqualValues(t, 1, calls.Load())
	close(release)
}

func TestKeyringNotFoundIsErrSecretNotFound(t *testing.T) {
	// The injected get stands in for the library: no bus is dialled.
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus")
	k := osKeyring{timeout: time.Minute, stuck: new(atomic.Bool), get: func(string, string) (string, error) { return "", keyring.ErrNotFound }}
	_, err := k.Get("stackit-cli", "auth_flow_type")
	assert.True(t, errors.Is(err, ErrSecretNotFound))
}

func TestWithoutSessionBusTheKeyringIsNotCalled(t *testing.T) {
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", "")
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	if sessionKeyringReachable() == nil {
		t.Skip("this platform needs no session bus")
	}
	k := osKeyring{timeout: time.Minute, stuck: new(atomic.Bool), get: func(string, string) (string, error) {
		t.Fatal("the keyring library was called without a session bus (it would run dbus-launch)")
		return "", nil
	}}
	_, err := k.Get("stackit-cli", "auth_flow_type")
	assert.ErrorIs(t, err, errNoSessionBus)
}

func TestTestBinariesNeverUseTheRealKeyring(t *testing.T) {
	_, err := defaultKeyring().Get("stackit-cli", "auth_flow_type")
	assert.ErrorIs(t, err, errNoKeyringInTests)
}
