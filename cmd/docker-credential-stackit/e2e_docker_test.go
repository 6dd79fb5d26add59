package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker-credential-helpers/client"
	"github.com/docker/docker-credential-helpers/credentials"
	"github.com/golang-jwt/jwt/v5"
)

// TestDockerClientProtocol drives the binary through the client library
// Docker itself uses.
func TestDockerClientProtocol(t *testing.T) {
	e := newHelperEnv(t)
	const other = "other.example.com:5000"
	e.vars[envRegistries] = other
	vars := e.varMap()
	prog := client.NewShellProgramFuncWithEnv(helperBin, &vars)
	stopCapture := captureStderr(t)
	defer func() {
		stderr := stopCapture()
		e.checkStderr("the helper runs through the client", stderr)
		t.Logf("helper stderr through the client:\n%s", stderr)
	}()

	// Foreign hosts: not found, on a cold cache, without a token request.
	for _, host := range foreignHosts {
		c, err := client.Get(prog, host)
		if !credentials.IsErrCredentialsNotFound(err) {
			user := ""
			if c != nil {
				user = c.Username
			}
			t.Errorf("get %q: got user %q, error %v; want credentials not found", host, user, err)
		}
		if r := e.run(host, "get"); r.code != 1 || r.stdout != notFoundMessage+"\n" {
			t.Errorf("get %q: want exit 1 and exactly %q on stdout, got\n%s", host, notFoundMessage, r)
		}
	}
	e.requireRequests("after gets for foreign hosts", 0)

	// The service account's own login, minted and then cached.
	c, err := client.Get(prog, defaultRegistry)
	if err != nil {
		t.Fatalf("get %s: %v", defaultRegistry, err)
	}
	e.secrets.add(c.Secret)
	e.requireValid("first get", *c)
	e.requireRequests("after the first get", 1)
	first := c.Secret

	for _, form := range []string{defaultRegistry, "https://registry.onstackit.cloud/v1/", "REGISTRY.onstackit.cloud/proj/repo", other} {
		c, err := client.Get(prog, form)
		if err != nil {
			t.Fatalf("get %q: %v", form, err)
		}
		if c.Username != e.acct.Email || c.Secret != first {
			t.Fatalf("get %q: got user %q and a different secret; want the cached token of %s", form, c.Username, e.acct.Email)
		}
	}
	e.requireRequests("after gets served from the cache", 1)

	list, err := client.List(prog)
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if want := map[string]string{defaultRegistry: e.acct.Email, other: e.acct.Email}; !equalMaps(list, want) {
		t.Errorf("list = %v, want %v", list, want)
	}

	// docker login with a robot account: static credentials win.
	robot := &credentials.Credentials{ServerURL: defaultRegistry, Username: "robot$proj+ci", Secret: "static-robot-secret-1234"}
	e.secrets.add(robot.Secret)
	if err := client.Store(prog, robot); err != nil {
		t.Fatalf("store robot: %v", err)
	}
	c, err = client.Get(prog, defaultRegistry)
	if err != nil {
		t.Fatalf("get after store: %v", err)
	}
	if c.Username != robot.Username || c.Secret != robot.Secret {
		t.Fatalf("get after store: got %q, want the stored login of %q", c.Username, robot.Username)
	}
	list, err = client.List(prog)
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if want := map[string]string{defaultRegistry: robot.Username, other: e.acct.Email}; !equalMaps(list, want) {
		t.Errorf("list after store = %v, want %v", list, want)
	}
	e.requireRequests("after store and list", 1)

	// docker logout: the stored login and the cached token are gone.
	if err := client.Erase(prog, defaultRegistry); err != nil {
		t.Fatalf("erase: %v", err)
	}
	c, err = client.Get(prog, defaultRegistry)
	if err != nil {
		t.Fatalf("get after erase: %v", err)
	}
	e.secrets.add(c.Secret)
	e.requireValid("get after erase", *c)
	e.requireRequests("after erase and get", 2)
	if c.Secret == first {
		t.Fatal("get after erase returned the token cached before the erase")
	}
	second := c.Secret

	// docker login as the service account itself stores nothing.
	self := &credentials.Credentials{ServerURL: defaultRegistry, Username: e.acct.Email, Secret: "pasted-token-not-stored"}
	e.secrets.add(self.Secret)
	if err := client.Store(prog, self); err != nil {
		t.Fatalf("store as the service account: %v", err)
	}
	c, err = client.Get(prog, defaultRegistry)
	if err != nil {
		t.Fatalf("get after storing the service account: %v", err)
	}
	if c.Username != e.acct.Email || c.Secret != second {
		t.Fatalf("get after storing the service account: got %q with another secret; want the minted, cached token", c.Username)
	}
	if data, err := os.ReadFile(filepath.Join(filepath.Dir(e.config), "logins.json")); err == nil {
		if bytes.Contains(data, []byte(self.Secret)) || bytes.Contains(data, []byte(defaultRegistry)) {
			t.Errorf("logins.json holds the service account login:\n%s", data)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}

	// A robot on the second host shows up in list; the first is minted again.
	if err := client.Store(prog, &credentials.Credentials{ServerURL: other, Username: "robot_other", Secret: "other-robot-secret-5678"}); err != nil {
		t.Fatalf("store robot for %s: %v", other, err)
	}
	list, err = client.List(prog)
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if want := map[string]string{defaultRegistry: e.acct.Email, other: "robot_other"}; !equalMaps(list, want) {
		t.Errorf("final list = %v, want %v", list, want)
	}
	e.requireRequests("at the end", 2)
}

// TestConcurrentGetsOneTokenRequest starts 24 helpers at once on a cold,
// shared cache: one of them fetches, the others wait and reuse its token.
func TestConcurrentGetsOneTokenRequest(t *testing.T) {
	t.Parallel()
	e := newHelperEnv(t)
	e.srv.Delay = 300 * time.Millisecond
	const n = 24
	procs := make([]*proc, n)
	for i := range procs {
		procs[i] = e.start(hangGuard, defaultRegistry, "get")
	}
	results := make([]result, n)
	for i, p := range procs {
		r, err := p.wait()
		if err != nil {
			t.Fatal(err)
		}
		results[i] = r
	}
	how := map[string]int{}
	cacheRE := regexp.MustCompile(`cache=(\S+)`)
	secret := ""
	for i, r := range results {
		e.checkHygiene(r)
		if r.code != 0 {
			t.Errorf("process %d failed:\n%s", i, r)
			continue
		}
		c := e.parseCreds(r)
		e.requireValid(fmt.Sprintf("process %d", i), c)
		if secret == "" {
			secret = c.Secret
		} else if c.Secret != secret {
			t.Errorf("process %d got a different token than process 0", i)
		}
		if m := cacheRE.FindStringSubmatch(r.stderr); m != nil {
			how[m[1]]++
		} else {
			how["?"]++
		}
	}
	t.Logf("%d processes, %d token endpoint requests, %d tokens issued; cache results %v", n, e.srv.Requests(), e.srv.Issued(), how)
	e.requireRequests(fmt.Sprintf("%d concurrent gets on a cold cache", n), 1)
	e.requireCached(secret)
}

// TestKilledHolderReleasesLock kills -9 a helper while it holds the cache
// lock waiting for the token endpoint: the kernel drops its lock, so the
// next get fetches at once instead of waiting out the 25 s lock timeout.
func TestKilledHolderReleasesLock(t *testing.T) {
	t.Parallel()
	e := newHelperEnv(t)
	var hang atomic.Bool
	hang.Store(true)
	release := make(chan struct{})
	e.srv.Respond = func(w http.ResponseWriter, r *http.Request) bool {
		if !hang.Load() {
			return false
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
		return true
	}
	t.Cleanup(func() { close(release) }) // runs before the server closes

	victim := e.start(hangGuard, defaultRegistry, "get")
	exited := make(chan struct{})
	var victimResult result
	var victimErr error
	go func() { victimResult, victimErr = victim.wait(); close(exited) }()
	deadline := time.After(hangGuard)
	for e.srv.Requests() < 1 {
		select {
		case <-exited:
			t.Fatalf("the get exited before its token request reached the endpoint: %v\n%s", victimErr, victimResult)
		case <-deadline:
			t.Fatal("the get never reached the token endpoint")
		case <-time.After(10 * time.Millisecond):
		}
	}
	// The request is in flight, so the process holds the lock.
	if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9: %v", err)
	}
	<-exited
	if victimErr != nil {
		t.Fatal(victimErr)
	}
	if runtime.GOOS == "windows" {
		// Windows has no signals: Signal(SIGKILL) is TerminateProcess with exit code 1.
		if code := victim.cmd.ProcessState.ExitCode(); code != 1 {
			t.Fatalf("the victim was not terminated: %v", victim.cmd.ProcessState)
		}
	} else if ws, ok := victim.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the victim was not killed by SIGKILL: %v", victim.cmd.ProcessState)
	}
	hang.Store(false)

	// 20 s is below the 25 s lock timeout: if the lock had survived its
	// holder, this get would still be waiting for it.
	began := time.Now()
	r, err := e.start(20*time.Second, defaultRegistry, "get").wait()
	if err != nil {
		t.Fatalf("get after kill -9 of the lock holder: %v", err)
	}
	e.checkHygiene(r)
	if r.code != 0 {
		t.Fatalf("get after kill -9 failed:\n%s", r)
	}
	t.Logf("get after kill -9 of the lock holder took %s", time.Since(began).Round(time.Millisecond))
	c := e.parseCreds(r)
	e.requireValid("get after kill -9", c)
	e.requireRequests("the killed get and the new one", 2)
	// Only a get that holds the lock writes the cache.
	e.requireCached(c.Secret)
}

// TestCorruptCacheIsReplaced overwrites every cache file with garbage:
// the next get fetches a fresh token and leaves a sound entry behind.
func TestCorruptCacheIsReplaced(t *testing.T) {
	t.Parallel()
	e := newHelperEnv(t)
	first := e.get(defaultRegistry)
	e.requireValid("first get", first)
	files, err := filepath.Glob(filepath.Join(e.cacheDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no *.json cache file in %s after a successful get", e.cacheDir)
	}
	for _, f := range files {
		if err := os.WriteFile(f, []byte("\x00garbage{\"version\":1,\"access_token\":"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	second := e.get(defaultRegistry)
	e.requireValid("get on a corrupt cache", second)
	e.requireRequests("two gets around a corrupted cache", 2)
	if second.Secret == first.Secret {
		t.Fatal("the get on a corrupt cache returned the old token")
	}
	e.requireCached(second.Secret)
	// And the repaired entry is used again.
	if third := e.get(defaultRegistry); third.Secret != second.Secret {
		t.Fatal("the repaired cache entry was not reused")
	}
	e.requireRequests("after a get on the repaired cache", 2)
}

// TestErrorHygiene runs failing gets with the debug log on: each fails with
// exit 1 and one line on stdout, and no output shows an access token, a
// private key or a JWT.
func TestErrorHygiene(t *testing.T) {
	t.Parallel()

	// newCase gives every case its own endpoint and account, with a token
	// already minted and cached, so that a leak of cached tokens shows too.
	newCase := func(t *testing.T) *helperEnv {
		e := newHelperEnv(t)
		e.requireValid("setup get", e.get(defaultRegistry))
		return e
	}
	// expectError runs get and returns its error line.
	expectError := func(e *helperEnv) string {
		e.t.Helper()
		r := e.run(defaultRegistry, "get") // checks exit 1, one line, no leaks
		if r.code == 0 {
			e.t.Fatalf("get succeeded; want an error\n%s", r)
		}
		if strings.TrimSpace(r.stdout) == notFoundMessage {
			e.t.Fatalf("get said not found; want a real error\n%s", r)
		}
		e.t.Logf("error: %s", strings.TrimSpace(r.stdout))
		return r.stdout
	}

	t.Run("deleted key", func(t *testing.T) {
		e := newCase(t)
		e.cacheDir = filepath.Join(e.root, "cache2")
		e.srv.DeleteKey(e.acct)
		if msg := expectError(e); !strings.Contains(msg, e.acct.Kid) {
			t.Errorf("the error does not name the key id %s", e.acct.Kid)
		}
	})

	t.Run("wrong private key", func(t *testing.T) {
		e := newCase(t)
		other := e.srv.NewAccount(t, "someone-else@sa.stackit.cloud")
		e.secrets.addPEM(other.PrivateKeyPEM)
		pemPath := filepath.Join(e.root, "keys", "wrong.pem")
		if err := os.WriteFile(pemPath, other.PrivateKeyPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		// The account's key JSON without its private key, and someone
		// else's PEM: the signature does not verify.
		e.vars[envKeyPath] = e.acct.WriteKeyFile(t, t.TempDir(), false)
		e.vars[envPrivPath] = pemPath
		e.cacheDir = filepath.Join(e.root, "cache2")
		expectError(e)
	})

	t.Run("401 echoing the request", func(t *testing.T) {
		e := newCase(t)
		e.srv.Respond = func(w http.ResponseWriter, r *http.Request) bool {
			body, _ := io.ReadAll(r.Body)
			form, _ := urlValues(string(body))
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_ = json.NewEncoder(w).Encode(map[string]string{
				"error":     "invalid_grant",
				"request":   string(body),
				"assertion": form,
				"message":   "bad assertion " + form,
			})
			// And a multi-line tail with the assertion once more, as a
			// proxy's HTML error page might.
			_, _ = io.WriteString(w, "<pre>\n"+string(body)+"\n</pre>\n")
			return true
		}
		e.cacheDir = filepath.Join(e.root, "cache2")
		expectError(e)
	})

	t.Run("unreachable endpoint", func(t *testing.T) {
		e := newCase(t)
		e.vars[envTokenURL] = "http://127.0.0.1:1/token"
		e.vars[envRetry] = "1s" // retried, but briefly: the default is 15 s
		expectError(e)
	})

	t.Run("expired access token", func(t *testing.T) {
		e := newCase(t)
		expired, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"email": e.acct.Email, "iat": time.Now().Add(-2 * time.Hour).Unix(), "exp": time.Now().Add(-time.Hour).Unix(),
		}).SignedString([]byte("not-the-server-key-but-who-cares"))
		if err != nil {
			t.Fatal(err)
		}
		e.secrets.add(expired)
		e.srv.Respond = func(w http.ResponseWriter, r *http.Request) bool {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{"access_token": expired, "expires_in": 600, "token_type": "Bearer"})
			return true
		}
		e.cacheDir = filepath.Join(e.root, "cache2")
		expectError(e)
	})

	t.Run("PEM file as the key path", func(t *testing.T) {
		e := newHelperEnv(t)
		pemPath := filepath.Join(e.root, "keys", "key.pem")
		if err := os.WriteFile(pemPath, e.acct.PrivateKeyPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		e.vars[envKeyPath] = pemPath
		expectError(e)
		e.requireRequests("a PEM where the key JSON belongs", 0)
	})

	t.Run("PEM inline as the key", func(t *testing.T) {
		e := newHelperEnv(t)
		e.vars[envKeyPath] = ""
		e.vars[envKey] = string(e.acct.PrivateKeyPEM)
		expectError(e)
		e.requireRequests("a PEM where the key JSON belongs", 0)
	})
}

// TestConfigureDocker runs configure-docker on a Docker config that has
// other settings: they survive, the mode is kept, a second run changes
// nothing, and the host is served afterwards.
func TestConfigureDocker(t *testing.T) {
	t.Parallel()
	e := newHelperEnv(t)
	const host = "127.0.0.1:5000"
	dockerConfig := filepath.Join(e.docker, "config.json")
	writeJSON(t, dockerConfig, map[string]any{
		"auths":       map[string]any{"x": map[string]any{}},
		"credsStore":  "desktop",
		"credHelpers": map[string]string{"gcr.io": "gcloud"},
	}, 0o644)

	r := e.run("", "configure-docker", "--registry", host)
	if r.code != 0 {
		t.Fatalf("configure-docker failed:\n%s", r)
	}
	first, err := os.ReadFile(dockerConfig)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Auths       map[string]json.RawMessage `json:"auths"`
		CredsStore  string                     `json:"credsStore"`
		CredHelpers map[string]string          `json:"credHelpers"`
	}
	if err := json.Unmarshal(first, &doc); err != nil {
		t.Fatalf("config.json after configure-docker: %v\n%s", err, first)
	}
	if _, ok := doc.Auths["x"]; !ok || len(doc.Auths) != 1 {
		t.Errorf("auths not kept: %s", first)
	}
	if doc.CredsStore != "desktop" {
		t.Errorf("credsStore not kept: %s", first)
	}
	if want := map[string]string{"gcr.io": "gcloud", host: "stackit"}; !equalMaps(doc.CredHelpers, want) {
		t.Errorf("credHelpers = %v, want %v", doc.CredHelpers, want)
	}
	if fi, err := os.Stat(dockerConfig); err != nil {
		t.Fatal(err)
	} else if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o644 { // Windows has no modes to keep
		t.Errorf("config.json mode %v, want 0644", fi.Mode().Perm())
	}
	helperCfg, err := os.ReadFile(e.config)
	if err != nil {
		t.Fatalf("the helper config was not written: %v", err)
	}
	var hc struct {
		Registries map[string]json.RawMessage `json:"registries"`
	}
	if err := json.Unmarshal(helperCfg, &hc); err != nil {
		t.Fatalf("helper config: %v\n%s", err, helperCfg)
	}
	if _, ok := hc.Registries[host]; !ok {
		t.Errorf("the helper config does not list %s:\n%s", host, helperCfg)
	}

	if r := e.run("", "configure-docker", "--registry", host); r.code != 0 {
		t.Fatalf("second configure-docker failed:\n%s", r)
	}
	again, err := os.ReadFile(dockerConfig)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, again) {
		t.Errorf("the second run changed config.json:\nbefore:\n%s\nafter:\n%s", first, again)
	}
	if helperAgain, err := os.ReadFile(e.config); err != nil || !bytes.Equal(helperCfg, helperAgain) {
		t.Errorf("the second run changed the helper config (%v):\n%s", err, helperAgain)
	}

	// The configured host is served without DOCKER_CREDENTIAL_STACKIT_REGISTRIES.
	e.requireValid("get for the configured host", e.get(host))
}
