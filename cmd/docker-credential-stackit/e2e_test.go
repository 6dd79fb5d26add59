package main

// End-to-end tests: they build the real binary once and drive it the way
// Docker, go-containerregistry and impatient CI jobs do, against the fake
// STACKIT token endpoint of package tokensourcetest.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker-credential-helpers/client"
	"github.com/docker/docker-credential-helpers/credentials"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/docker-credential-stackit/docker-credential-stackit/cache"
	"github.com/docker-credential-stackit/docker-credential-stackit/tokensource/tokensourcetest"
)

const (
	defaultRegistry = "registry.onstackit.cloud"
	notFoundMessage = "credentials not found in native keychain"

	envKeyPath    = "STACKIT_SERVICE_ACCOUNT_KEY_PATH"
	envKey        = "STACKIT_SERVICE_ACCOUNT_KEY"
	envPrivPath   = "STACKIT_PRIVATE_KEY_PATH"
	envPriv       = "STACKIT_PRIVATE_KEY"
	envCredsPath  = "STACKIT_CREDENTIALS_PATH"
	envTokenURL   = "STACKIT_TOKEN_BASEURL"
	envRegistries = "DOCKER_CREDENTIAL_STACKIT_REGISTRIES"
	envConfig     = "DOCKER_CREDENTIAL_STACKIT_CONFIG"
	envCacheDir   = "DOCKER_CREDENTIAL_STACKIT_CACHE_DIR"
	envDebug      = "DOCKER_CREDENTIAL_STACKIT_DEBUG"
	envTimeout    = "DOCKER_CREDENTIAL_STACKIT_TIMEOUT"
	envRetry      = "DOCKER_CREDENTIAL_STACKIT_RETRY_BUDGET"

	// hangGuard only stops a hung helper from hanging the suite; nothing
	// here measures speed.
	hangGuard = 90 * time.Second
)

// helperBin is the binary TestMain builds.
var helperBin string

func TestMain(m *testing.M) { os.Exit(buildAndRun(m)) }

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "docker-credential-stackit-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: create temp dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	helperBin = filepath.Join(dir, "docker-credential-stackit")
	build := exec.Command("go", "build", "-o", helperBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: go build:", err)
		return 1
	}
	return m.Run()
}

// secretSet holds everything that must never be printed where it does not
// belong: access tokens, static secrets and the lines of private keys.
type secretSet struct {
	mu   sync.Mutex
	list []string
}

func (s *secretSet) add(values ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range values {
		if len(v) >= 8 {
			s.list = append(s.list, v)
		}
	}
}

// addPEM registers the base64 body lines of a PEM block, so that a key
// leaked in any framing (raw, JSON-escaped, reflowed onto one line) is found.
func (s *secretSet) addPEM(pemBytes []byte) {
	for _, line := range strings.Split(string(pemBytes), "\n") {
		line = strings.TrimSpace(line)
		if len(line) >= 16 && !strings.HasPrefix(line, "-----") {
			s.add(line)
		}
	}
}

// leaks lists the problems of out: secrets and JWTs (every JWT, such as the
// RS512 assertion or an access token, starts with "eyJ").
func (s *secretSet) leaks(out string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var found []string
	for _, v := range s.list {
		if strings.Contains(out, v) {
			found = append(found, fmt.Sprintf("secret %.12s…", v))
		}
	}
	if strings.Contains(out, "eyJ") {
		found = append(found, "a JWT (eyJ…)")
	}
	return found
}

// helperEnv is an isolated world for the helper: its own token endpoint,
// service account, home, caches and configs. Nothing touches the real home.
type helperEnv struct {
	t        *testing.T
	srv      *tokensourcetest.Server
	acct     *tokensourcetest.Account
	root     string
	home     string
	keyPath  string
	cacheDir string
	config   string // DOCKER_CREDENTIAL_STACKIT_CONFIG
	docker   string // DOCKER_CONFIG
	// vars override the defaults of varMap.
	vars    map[string]string
	secrets *secretSet
}

func newHelperEnv(t *testing.T) *helperEnv {
	t.Helper()
	srv := tokensourcetest.NewServer(t)
	acct := srv.NewAccount(t, "e2e-pusher@sa.stackit.cloud")
	root := t.TempDir()
	e := &helperEnv{
		t:        t,
		srv:      srv,
		acct:     acct,
		root:     root,
		home:     filepath.Join(root, "home"),
		cacheDir: filepath.Join(root, "cache"),
		config:   filepath.Join(root, "helper", "config.json"),
		docker:   filepath.Join(root, "docker"),
		vars:     map[string]string{},
		secrets:  &secretSet{},
	}
	for _, d := range []string{e.home, e.docker, filepath.Join(root, "keys"), filepath.Join(root, "run")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	e.keyPath = acct.WriteKeyFile(t, filepath.Join(root, "keys"), true)
	e.secrets.addPEM(acct.PrivateKeyPEM)
	return e
}

// varMap is the complete helper environment. Variables that the real
// environment might set are blanked, which the helper treats as unset.
func (e *helperEnv) varMap() map[string]string {
	m := map[string]string{
		"HOME":            e.home,
		"XDG_CONFIG_HOME": filepath.Join(e.home, ".config"),
		"XDG_CACHE_HOME":  filepath.Join(e.home, ".cache"),
		"XDG_DATA_HOME":   filepath.Join(e.home, ".local", "share"),
		"XDG_STATE_HOME":  filepath.Join(e.home, ".local", "state"),
		"XDG_RUNTIME_DIR": filepath.Join(e.root, "run"),
		envKeyPath:        e.keyPath,
		envKey:            "",
		envPrivPath:       "",
		envPriv:           "",
		envCredsPath:      "",
		envTokenURL:       e.srv.TokenURL(),
		envRegistries:     "",
		envConfig:         e.config,
		envCacheDir:       e.cacheDir,
		envDebug:          "1",
		envTimeout:        "",
		envRetry:          "",
		"DOCKER_CONFIG":   e.docker,
		"HTTP_PROXY":      "",
		"HTTPS_PROXY":     "",
		"ALL_PROXY":       "",
		"http_proxy":      "",
		"https_proxy":     "",
		"all_proxy":       "",
	}
	for k, v := range e.vars {
		m[k] = v
	}
	return m
}

func (e *helperEnv) environ() []string {
	env := []string{"PATH=" + os.Getenv("PATH")}
	m := e.varMap()
	for _, k := range sortedKeys(m) {
		env = append(env, k+"="+m[k])
	}
	return env
}

type result struct {
	args           []string
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("%v: exit %d\nstdout: %q\nstderr:\n%s", r.args, r.code, r.stdout, r.stderr)
}

// proc is a started helper process.
type proc struct {
	cmd            *exec.Cmd
	ctx            context.Context
	cancel         context.CancelFunc
	args           []string
	stdout, stderr bytes.Buffer
}

func (e *helperEnv) start(guard time.Duration, stdin string, args ...string) *proc {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	p := &proc{ctx: ctx, cancel: cancel, args: args}
	p.cmd = exec.CommandContext(ctx, helperBin, args...)
	p.cmd.Env = e.environ()
	p.cmd.Dir = e.root
	p.cmd.Stdin = strings.NewReader(stdin)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	p.cmd.WaitDelay = 5 * time.Second
	if err := p.cmd.Start(); err != nil {
		cancel()
		e.t.Fatalf("start %v: %v", args, err)
	}
	return p
}

// wait returns the result, or an error if the hang guard fired.
func (p *proc) wait() (result, error) {
	defer p.cancel()
	err := p.cmd.Wait()
	r := result{args: p.args, stdout: p.stdout.String(), stderr: p.stderr.String()}
	if p.ctx.Err() != nil {
		return r, fmt.Errorf("%v did not finish within its hang guard; stderr:\n%s", p.args, r.stderr)
	}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		r.code = exitErr.ExitCode()
	default:
		return r, fmt.Errorf("%v: %v", p.args, err)
	}
	return r, nil
}

// run runs the helper to completion and checks the hygiene of its output.
func (e *helperEnv) run(stdin string, args ...string) result {
	e.t.Helper()
	r, err := e.start(hangGuard, stdin, args...).wait()
	if err != nil {
		e.t.Fatal(err)
	}
	e.checkHygiene(r)
	return r
}

// checkHygiene holds for every run: stderr (the debug log included) never
// shows a secret or a JWT; a failure is exit status 1 with exactly one line
// on stdout that shows neither.
func (e *helperEnv) checkHygiene(r result) {
	e.t.Helper()
	if leaks := e.secrets.leaks(r.stderr); len(leaks) > 0 {
		e.t.Errorf("stderr of %v shows %s:\n%s", r.args, strings.Join(leaks, ", "), r.stderr)
	}
	if r.code == 0 {
		return
	}
	if r.code != 1 {
		e.t.Errorf("%v exited %d, want 0 or 1\n%s", r.args, r.code, r)
	}
	if strings.Count(r.stdout, "\n") != 1 || !strings.HasSuffix(r.stdout, "\n") || strings.TrimSpace(r.stdout) == "" {
		e.t.Errorf("%v failed without exactly one line on stdout: %q", r.args, r.stdout)
	}
	if leaks := e.secrets.leaks(r.stdout); len(leaks) > 0 {
		e.t.Errorf("error of %v on stdout shows %s: %q", r.args, strings.Join(leaks, ", "), r.stdout)
	}
}

// checkStderr applies the stderr rule to output captured elsewhere.
func (e *helperEnv) checkStderr(what, stderr string) {
	e.t.Helper()
	if leaks := e.secrets.leaks(stderr); len(leaks) > 0 {
		e.t.Errorf("stderr of %s shows %s:\n%s", what, strings.Join(leaks, ", "), stderr)
	}
}

// get runs `get` for host, requires success and returns the credentials.
func (e *helperEnv) get(host string) credentials.Credentials {
	e.t.Helper()
	r := e.run(host, "get")
	if r.code != 0 {
		e.t.Fatalf("get %s failed:\n%s", host, r)
	}
	return e.parseCreds(r)
}

func (e *helperEnv) parseCreds(r result) credentials.Credentials {
	e.t.Helper()
	var c credentials.Credentials
	if err := json.Unmarshal([]byte(r.stdout), &c); err != nil {
		e.t.Fatalf("stdout of %v is not credentials JSON (%v): %q", r.args, err, r.stdout)
	}
	if c.Secret == "" {
		e.t.Fatalf("%v returned an empty secret", r.args)
	}
	e.secrets.add(c.Secret)
	return c
}

// requireValid checks that c is the service account's login with a token
// the STACKIT endpoint issued.
func (e *helperEnv) requireValid(what string, c credentials.Credentials) {
	e.t.Helper()
	if c.Username != e.acct.Email {
		e.t.Fatalf("%s: username %q, want the service account email %q", what, c.Username, e.acct.Email)
	}
	if !e.srv.Valid(e.acct.Email, c.Secret) {
		e.t.Fatalf("%s: the secret is not an access token the endpoint issued to %s", what, e.acct.Email)
	}
}

func (e *helperEnv) requireRequests(what string, want int) {
	e.t.Helper()
	if got := e.srv.Requests(); got != want {
		e.t.Fatalf("%s: token endpoint saw %d requests, want %d", what, got, want)
	}
}

// cacheEntries returns the decoded entries in the cache dir, failing on any
// that does not decode.
func (e *helperEnv) cacheEntries() map[string]*cache.Entry {
	e.t.Helper()
	files, err := filepath.Glob(filepath.Join(e.cacheDir, "*.json"))
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]*cache.Entry{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			e.t.Fatal(err)
		}
		entry, err := cache.DecodeEntry(data)
		if err != nil {
			e.t.Fatalf("cache file %s does not decode: %v", filepath.Base(f), err)
		}
		out[filepath.Base(f)] = entry
	}
	return out
}

func (e *helperEnv) requireCached(token string) {
	e.t.Helper()
	entries := e.cacheEntries()
	for _, entry := range entries {
		if entry.AccessToken == token {
			return
		}
	}
	e.t.Fatalf("the cache (%d entries) does not hold the token that get returned", len(entries))
}

// captureStderr redirects os.Stderr, which docker-credential-helpers'
// client hands to the helper, into a buffer until stop is called. Tests
// using it must not be parallel.
func captureStderr(t *testing.T) (stop func() string) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stderr
	os.Stderr = w
	var buf bytes.Buffer
	done := make(chan struct{})
	go func() { _, _ = io.Copy(&buf, r); close(done) }()
	var once sync.Once
	var out string
	stop = func() string {
		once.Do(func() {
			os.Stderr = old
			_ = w.Close()
			<-done
			_ = r.Close()
			out = buf.String()
		})
		return out
	}
	t.Cleanup(func() { stop() })
	return stop
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

func writeJSON(t *testing.T, path string, v any, mode os.FileMode) {
	t.Helper()
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // undo the umask
		t.Fatal(err)
	}
}

// foreignHosts are what callers send for registries that are not ours,
// including tricks that contain our host name.
var foreignHosts = []string{
	"docker.io",
	"https://index.docker.io/v1/",
	"ghcr.io/x/y",
	"registry.onstackit.cloud.evil.com",
	"registry.onstackit.cloud@evil.com",
}

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

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestGoContainerRegistryPushPull pushes and pulls through
// authn.DefaultKeychain, which finds the helper through DOCKER_CONFIG's
// credHelpers and PATH, as crane, ko and kaniko do.
func TestGoContainerRegistryPushPull(t *testing.T) {
	e := newHelperEnv(t)
	reg := newFakeRegistry(t, e.srv, e.acct.Email)
	e.vars[envRegistries] = reg.Host
	writeJSON(t, filepath.Join(e.docker, "config.json"), map[string]any{
		"credHelpers": map[string]string{reg.Host: "stackit"},
	}, 0o600)
	for k, v := range e.varMap() {
		t.Setenv(k, v)
	}
	t.Setenv("REGISTRY_AUTH_FILE", "")
	t.Setenv("PATH", filepath.Dir(helperBin)+string(os.PathListSeparator)+os.Getenv("PATH"))
	stopCapture := captureStderr(t)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	opts := []remote.Option{remote.WithAuthFromKeychain(authn.DefaultKeychain), remote.WithContext(ctx)}

	ref, err := name.ParseReference(reg.Host + "/e2e/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(4096, 2)
	if err != nil {
		t.Fatal(err)
	}
	want, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, opts...); err != nil {
		t.Fatalf("push %s: %v\nhelper stderr:\n%s", ref, err, stopCapture())
	}
	pulled, err := remote.Image(ref, opts...)
	if err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	got, err := pulled.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("pulled digest %s, pushed %s", got, want)
	}
	layers, err := pulled.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		rc, err := l.Compressed() // verifies the blob against its digest
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			t.Fatalf("read pulled layer: %v", err)
		}
		_ = rc.Close()
	}
	t.Logf("push+pull: %d registry logins granted, %d refused, %d unauthenticated requests challenged, %d token endpoint requests",
		reg.logins.Load(), reg.rejected.Load(), reg.denied.Load(), e.srv.Requests())
	if reg.logins.Load() < 2 || reg.rejected.Load() != 0 {
		t.Errorf("registry granted %d logins and refused %d; want one per transport (push, pull) and no refusal", reg.logins.Load(), reg.rejected.Load())
	}
	e.requireRequests("push and pull with one helper process each", 1)

	// The key is deleted in the portal and nothing is cached: the push
	// fails, and says which key.
	e.srv.DeleteKey(e.acct)
	t.Setenv(envCacheDir, filepath.Join(e.root, "cache-empty"))
	ref2, err := name.ParseReference(reg.Host + "/e2e/app:v2")
	if err != nil {
		t.Fatal(err)
	}
	img2, err := random.Image(1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	err = remote.Write(ref2, img2, opts...)
	stderr := stopCapture()
	e.checkStderr("helper runs through go-containerregistry", stderr)
	if err == nil {
		t.Fatal("push with a deleted key succeeded")
	}
	t.Logf("push with a deleted key: %v", err)
	if !strings.Contains(err.Error(), e.acct.Kid) {
		t.Errorf("push error does not name the key id %s: %v", e.acct.Kid, err)
	}
	if leaks := e.secrets.leaks(err.Error()); len(leaks) > 0 {
		t.Errorf("push error shows %s: %v", strings.Join(leaks, ", "), err)
	}
	if e.srv.Requests() != 2 {
		t.Errorf("token endpoint saw %d requests, want 2 (one per empty cache)", e.srv.Requests())
	}
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
	if ws, ok := victim.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
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

// urlValues returns the assertion of an url-encoded token request body.
func urlValues(body string) (string, error) {
	for _, kv := range strings.Split(body, "&") {
		if v, ok := strings.CutPrefix(kv, "assertion="); ok {
			return v, nil
		}
	}
	return "", errors.New("no assertion")
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
	} else if fi.Mode().Perm() != 0o644 {
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
