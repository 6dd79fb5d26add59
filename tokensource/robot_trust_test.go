package tokensource

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/docker-credential-stackit/docker-credential-stackit/internal/platform"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func writeRobotFile(t *testing.T, dirMode, fileMode os.FileMode) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "robots")
	require.NoError(t, os.Mkdir(dir, 0o700))
	path := filepath.Join(dir, "robot.json")
	require.NoError(t, os.WriteFile(path, []byte(`{"name":"robot$proj+ci","secret":"`+robotSecret+`","expires_at":-1}`), 0o600))
	require.NoError(t, os.Chmod(path, fileMode))
	require.NoError(t, os.Chmod(dir, dirMode))
	return path
}

func robotToken(path string) (*Flow, *Token, error) {
	f := robotFlow(Options{}, Overrides{Origin: "the helper config", RobotAccountPath: path})
	tok, err := f.source.Token(context.Background())
	return f, tok, err
}

func TestRobotFileWritableByGroupOrOthersIsRefusedWithTheChmodFix(t *testing.T) {
	if !currentHasUnixPermissions() {
		t.Skip("no Unix modes here")
	}
	for _, mode := range []os.FileMode{0o620, 0o602, 0o666} {
		path := writeRobotFile(t, 0o700, mode)
		f, _, err := robotToken(path)
		require.Error(t, err, "mode %04o", mode)
		assert.Contains(t, err.Error(), "robot account file "+path+" is writable by group or others")
		assert.Contains(t, err.Error(), "run: chmod go-w "+path)
		assert.NotContains(t, err.Error(), robotSecret)
		assert.Empty(t, f.Username, "an untrusted file does not even name the login")
		_, cerr := f.Check()
		assert.Error(t, cerr, "doctor's check refuses it too")
	}
}

func TestRobotFileInADirectoryOthersCanWriteIsRefused(t *testing.T) {
	if !currentHasUnixPermissions() {
		t.Skip("no Unix modes here")
	}
	path := writeRobotFile(t, 0o777, 0o600)
	_, _, err := robotToken(path)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "its directory "+filepath.Dir(path)+" is writable by group or others (mode 0777)")
	assert.Contains(t, err.Error(), "chmod go-w "+filepath.Dir(path))

	// A sticky world-writable directory such as /tmp is fine.
	require.NoError(t, os.Chmod(filepath.Dir(path), 0o777|os.ModeSticky))
	_, tok, err := robotToken(path)
	require.NoError(t, err)
	assert.Equal(t, robotSecret, tok.AccessToken)
}

func TestRobotFileReadableByOthersWarnsOnceADay(t *testing.T) {
	if !currentHasUnixPermissions() {
		t.Skip("no Unix modes here")
	}
	path := writeRobotFile(t, 0o755, 0o644)
	f, tok, err := robotToken(path)
	require.NoError(t, err, "readable is not writable: the file still serves")
	assert.Equal(t, robotSecret, tok.AccessToken)
	require.Len(t, f.Warnings, 1)
	assert.Equal(t, "robot account file "+path+" is readable by others (mode 0644); run: chmod 600 "+path, f.Warnings[0].Message)
	assert.NotEmpty(t, f.Warnings[0].OnceADay)

	private := writeRobotFile(t, 0o700, 0o600)
	f, _, err = robotToken(private)
	require.NoError(t, err)
	assert.Empty(t, f.Warnings, "0600 is fine")
}

func TestServiceAccountKeyGivenAsRobotFileSaysWhatItIs(t *testing.T) {
	key := `{"id":"k","publicKey":"-----BEGIN PUBLIC KEY-----\nX\n-----END PUBLIC KEY-----","keyType":"USER_MANAGED","credentials":{"kid":"k","iss":"ci@sa.stackit.cloud","sub":"s","aud":"https://aud","privateKey":"-----BEGIN PRIVATE KEY-----\nSECRETSECRET\n-----END PRIVATE KEY-----"}}`
	_, err := ParseRobotAccount([]byte(key))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "this is a STACKIT service account key, not a robot account; use serviceAccountKeyPath")
	assert.NotContains(t, err.Error(), "SECRETSECRET")
}

func TestRoughDurationRoundsToTheNearestUnit(t *testing.T) {
	day := 24 * time.Hour
	for d, want := range map[time.Duration]string{
		3*day - 2*time.Second:        "3 days",
		3*day + 2*time.Second:        "3 days",
		7 * day:                      "7 days",
		2*day - 20*time.Minute:       "2 days",
		47 * time.Hour:               "47 hours",
		5*time.Hour - time.Second:    "5 hours",
		2*time.Hour - 10*time.Minute: "110 minutes",
		80 * time.Minute:             "80 minutes",
		30 * time.Second:             "1 minute",
	} {
		assert.Equal(t, want, roughDuration(d), d.String())
	}
}

func currentHasUnixPermissions() bool { return platform.Current().UnixPermissions() }
