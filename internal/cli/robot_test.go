package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker-credential-stackit/docker-credential-stackit/credhelper"
	"github.com/docker-credential-stackit/docker-credential-stackit/internal/testfs"
	"github.com/docker/docker-credential-helpers/credentials"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	robotName   = "robot$proj+ci"
	robotSecret = "Xk9TqLm2Vb7RsWz4NpQe1HyJ"
)

func (f *fixture) robotEntry(t *testing.T, host, content string) string {
	t.Helper()
	path := filepath.Join(f.dir, "robots", host+".json")
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o700))
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
	f.writeConfig(t, map[string]credhelper.RegistryConfig{host: {RobotAccountPath: path}})
	return path
}

func (f *fixture) writeConfig(t *testing.T, registries map[string]credhelper.RegistryConfig) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(f.env[credhelper.EnvConfig]), 0o700))
	require.NoError(t, os.WriteFile(f.env[credhelper.EnvConfig], (&credhelper.Config{Registries: registries}).Marshal(), 0o600))
}

func harborJSON(name, secret string, expiresAt int64) string {
	out, _ := json.Marshal(map[string]any{"creation_time": "2021-08-04T13:58:45.934Z", "id": 7, "name": name, "secret": secret, "expires_at": expiresAt})
	return string(out)
}

func TestRobotFileGetKeepsDollarNamesAndReadsFresh(t *testing.T) {
	f := newFixture(t)
	path := f.robotEntry(t, "harbor.example.com", harborJSON(robotName, robotSecret, -1))

	out, code := f.run(t, "harbor.example.com", "get")
	require.Equal(t, 0, code, out)
	assert.Equal(t, `{"ServerURL":"harbor.example.com","Username":"robot$proj+ci","Secret":"`+robotSecret+`"}`+"\n", out,
		"the $ reaches the caller byte for byte")
	var decoded credentials.Credentials
	require.NoError(t, json.Unmarshal([]byte(out), &decoded))
	assert.Equal(t, robotName, decoded.Username)

	// Names with characters JSON encoders like to escape stay literal too.
	odd := "robot$proj+ci&<b>"
	require.NoError(t, os.WriteFile(path, []byte(harborJSON(odd, robotSecret, -1)), 0o600))
	out, code = f.run(t, "harbor.example.com", "get")
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, `"Username":"robot$proj+ci&<b>"`)

	// A replaced file (refreshed secret) is used by the very next get.
	require.NoError(t, os.WriteFile(path, []byte(`{"name":"org+ci","token":"new-quay-token-1"}`), 0o600))
	user, secret, err := f.helper().Get("harbor.example.com/proj/app")
	require.NoError(t, err)
	assert.Equal(t, "org+ci", user)
	assert.Equal(t, "new-quay-token-1", secret)

	assert.Equal(t, 0, f.srv.Requests(), "a robot needs no token endpoint")
	assert.NotContains(t, f.stderr.String(), robotSecret)
	assert.NotContains(t, f.stderr.String(), "new-quay-token-1")
	assert.Contains(t, f.stderr.String(), "source=robot account file "+path+" (Quay) user=org+ci expires=never")
	assertNoFileContains(t, f.dir, robotSecret, path)
	assertNoFileContains(t, f.dir, "new-quay-token-1", path)
}

// assertNoFileContains fails if any file under dir other than except holds s.
func assertNoFileContains(t *testing.T, dir, s, except string) {
	t.Helper()
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || p == except {
			return nil
		}
		data, _ := os.ReadFile(p)
		assert.NotContains(t, string(data), s, "secret copied into %s", p)
		return nil
	})
}

func TestRobotStoreListErase(t *testing.T) {
	f := newFixture(t)
	path := f.robotEntry(t, "harbor.example.com", harborJSON(robotName, robotSecret, -1))

	// docker login with the robot itself stores nothing: the file is the source.
	require.NoError(t, f.helper().Add(&credentials.Credentials{ServerURL: "harbor.example.com", Username: robotName, Secret: robotSecret}))
	assertNoFileContains(t, f.dir, robotSecret, path)

	list, err := f.helper().List()
	require.NoError(t, err)
	assert.Equal(t, robotName, list["harbor.example.com"])

	require.NoError(t, f.helper().Delete("harbor.example.com"))
	user, _, err := f.helper().Get("harbor.example.com")
	require.NoError(t, err)
	assert.Equal(t, robotName, user, "erase leaves the robot file alone")
	assert.Equal(t, 0, f.srv.Requests())
}

func TestRobotFileErrors(t *testing.T) {
	f := newFixture(t)
	path := f.robotEntry(t, "harbor.example.com", harborJSON(robotName, robotSecret, time.Date(2021, 8, 14, 13, 58, 45, 0, time.UTC).Unix()))

	out, code := f.run(t, "harbor.example.com", "get")
	assert.Equal(t, 1, code)
	assert.Equal(t, "harbor.example.com: robot account robot$proj+ci ("+path+") expired on 2021-08-14T13:58:45Z; refresh its secret in Harbor (Robot Accounts, Refresh Secret), export it to "+path+" again, or remove robotAccountPath for this registry from the helper config\n", out)

	require.NoError(t, os.Remove(path))
	out, code = f.run(t, "harbor.example.com", "get")
	assert.Equal(t, 1, code)
	assert.Contains(t, out, "harbor.example.com: read robot account file "+path+": file not found; fix robotAccountPath in the helper config")

	require.NoError(t, os.WriteFile(path, []byte(`{"name":"robot$proj+ci","secret":"`+robotSecret+`","expires_at":"soon"}`), 0o600))
	out, code = f.run(t, "harbor.example.com", "get")
	assert.Equal(t, 1, code)
	assert.Contains(t, out, "harbor.example.com: robot account file "+path+`: robot robot$proj+ci: "expires_at" is not a number`)
	assert.Equal(t, 1, strings.Count(out, "\n"))

	require.NoError(t, os.WriteFile(path, []byte(strings.Repeat(" ", 1<<20+1)), 0o600))
	out, _ = f.run(t, "harbor.example.com", "get")
	assert.Contains(t, out, "larger than 1 MiB")

	assert.NotContains(t, out+f.stderr.String(), robotSecret)
}

func TestRobotNearExpiryWarnsAtMostOncePerDay(t *testing.T) {
	f := newFixture(t)
	expires := time.Date(2030, 3, 10, 12, 0, 0, 0, time.UTC)
	path := f.robotEntry(t, "harbor.example.com", harborJSON(robotName, robotSecret, expires.Unix()))
	now := expires.Add(-3 * 24 * time.Hour)
	get := func() string {
		t.Helper()
		f.stderr.Reset()
		h := f.helper(credhelper.WithClock(func() time.Time { return now }))
		user, secret, err := h.Get("harbor.example.com")
		require.NoError(t, err)
		assert.Equal(t, robotName, user)
		assert.Equal(t, robotSecret, secret)
		return f.stderr.String()
	}
	const warning = "warning: robot account robot$proj+ci ("

	assert.Equal(t, 0, strings.Count(func() string { now = expires.Add(-8 * 24 * time.Hour); return get() }(), warning), "8 days left: quiet")

	now = expires.Add(-3 * 24 * time.Hour)
	stderr := get()
	assert.Equal(t, 1, strings.Count(stderr, warning))
	assert.Contains(t, stderr, "expires on 2030-03-10T12:00:00Z, in 3 days; refresh its secret in Harbor and export it to "+path+" again")

	now = now.Add(time.Hour)
	assert.NotContains(t, get(), warning, "an hour later: quiet")
	now = now.Add(22 * time.Hour)
	assert.NotContains(t, get(), warning, "23 hours later: still quiet")
	now = now.Add(2 * time.Hour)
	assert.Contains(t, get(), warning, "a day later: warned again")

	markers, err := filepath.Glob(filepath.Join(f.env[credhelper.EnvCacheDir], "warned-*"))
	require.NoError(t, err)
	require.Len(t, markers, 1)
	fi, err := os.Stat(markers[0])
	require.NoError(t, err)
	testfs.AssertPerm(t, 0o600, fi)
	data, err := os.ReadFile(markers[0])
	require.NoError(t, err)
	assert.NotContains(t, string(data), robotSecret)

	// A marker from the future (the clock went back) does not silence it.
	now = now.Add(-48 * time.Hour)
	assert.Contains(t, get(), warning)

	now = expires.Add(-90 * time.Minute)
	assert.Contains(t, get(), "in 90 minutes")
	now = expires
	f.stderr.Reset()
	h := f.helper(credhelper.WithClock(func() time.Time { return now }))
	_, _, err = h.Get("harbor.example.com")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "expired on 2030-03-10T12:00:00Z")
}

func TestRobotExpiryWarningWithUnusableCacheDirWarnsEveryTime(t *testing.T) {
	f := newFixture(t)
	expires := time.Now().Add(2 * 24 * time.Hour)
	f.robotEntry(t, "harbor.example.com", harborJSON(robotName, robotSecret, expires.Unix()))
	blocker := filepath.Join(f.dir, "not-a-dir")
	require.NoError(t, os.WriteFile(blocker, nil, 0o600))
	for _, dir := range []string{filepath.Join(blocker, "cache"), ""} {
		for i := 0; i < 2; i++ {
			f.stderr.Reset()
			h := f.helper(credhelper.WithCacheDir(dir))
			user, _, err := h.Get("harbor.example.com")
			require.NoError(t, err, "an unusable cache dir never fails a get")
			assert.Equal(t, robotName, user)
			assert.Contains(t, f.stderr.String(), "warning: robot account robot$proj+ci", "cache dir %q, run %d", dir, i)
		}
	}
	h := f.helper(credhelper.WithCacheDir(""))
	_, _, err := h.Get("harbor.example.com")
	require.NoError(t, err)

	// Through the binary's own entry point: a real cache dir, so the second
	// run is quiet.
	f.stderr.Reset()
	_, code := f.run(t, "harbor.example.com", "get")
	require.Equal(t, 0, code)
	assert.Contains(t, f.stderr.String(), "warning: robot account robot$proj+ci")
	f.stderr.Reset()
	_, code = f.run(t, "harbor.example.com", "get")
	require.Equal(t, 0, code)
	assert.NotContains(t, f.stderr.String(), "warning: robot account")
}

func TestConfigEntryKinds(t *testing.T) {
	ok := []string{
		`{"serviceAccountKeyPath": "/k.json", "privateKeyPath": "/p.pem", "tokenEndpoint": "https://t.example/token", "username": "u"}`,
		`{"serviceAccountEmail": "ci@sa.stackit.cloud", "federatedTokenFile": "/run/token", "idpTokenEndpoint": "https://idp.example/token", "username": "u"}`,
		`{"federatedTokenFile": "/run/token"}`,
		`{"robotAccountPath": "/etc/robots/ci.json"}`,
	}
	for _, entry := range ok {
		_, err := credhelper.ParseConfig([]byte(testfs.HostAbs(`{"registries": {"x.example.com": ` + entry + `}}`)))
		assert.NoError(t, err, entry)
	}
	bad := map[string]string{
		`{"robotAccountPath": "/r.json", "serviceAccountKeyPath": "/k.json"}`:                             "registries.x.example.com: robotAccountPath cannot be combined with serviceAccountKeyPath; a robot account file is a complete login",
		`{"robotAccountPath": "/r.json", "serviceAccountEmail": "a@b.c", "tokenEndpoint": "https://t/x"}`: "robotAccountPath cannot be combined with tokenEndpoint, serviceAccountEmail",
		`{"robotAccountPath": "/r.json", "username": "robot$x"}`:                                          "robotAccountPath cannot be combined with username",
		`{"robotAccountPath": "robot.json"}`:                                                              `robotAccountPath: "robot.json" is not an absolute path`,
		`{"serviceAccountKeyPath": "/k.json", "serviceAccountEmail": "a@b.c"}`:                            "serviceAccountKeyPath (key flow) and serviceAccountEmail (workload identity federation) are two different logins",
		`{"privateKeyPath": "/p.pem", "federatedTokenFile": "/t"}`:                                        "privateKeyPath (key flow) and federatedTokenFile (workload identity federation)",
		`{"idpTokenEndpoint": "http://idp.example/token"}`:                                                "registries.x.example.com.idpTokenEndpoint: http://idp.example/token uses plain http",
		`{"serviceAccountEmail": "not an email"}`:                                                         "registries.x.example.com.serviceAccountEmail: this is not an email address",
		`{"federatedTokenFile": "token"}`:                                                                 `federatedTokenFile: "token" is not an absolute path`,
		`{"robotAccountFile": "/r.json"}`:                                                                 `unknown field "robotAccountFile"`,
	}
	for entry, want := range bad {
		_, err := credhelper.ParseConfig([]byte(testfs.HostAbs(`{"registries": {"x.example.com": ` + entry + `}}`)))
		if assert.Error(t, err, entry) {
			assert.Contains(t, err.Error(), want, entry)
			assert.NotContains(t, err.Error(), "\n")
		}
	}
}
