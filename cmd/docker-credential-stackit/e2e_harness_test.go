package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker-credential-stackit/docker-credential-stackit/cache"
	"github.com/docker-credential-stackit/docker-credential-stackit/credhelper"
	"github.com/docker-credential-stackit/docker-credential-stackit/tokensource"
	"github.com/docker-credential-stackit/docker-credential-stackit/tokensource/tokensourcetest"
	"github.com/docker/docker-credential-helpers/credentials"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
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

	// envE2EBinary names a prebuilt helper for TestMain to use instead of
	// building one with go build.
	envE2EBinary = "DOCKER_CREDENTIAL_STACKIT_E2E_BINARY"
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
	// A prebuilt helper, for platforms that run the test binary without a Go
	// toolchain (Windows under wine): it must be built from this tree for the
	// test binary's GOOS/GOARCH.
	if prebuilt := os.Getenv(envE2EBinary); prebuilt != "" {
		helperBin = prebuilt
		return m.Run()
	}
	helperBin = filepath.Join(dir, "docker-credential-stackit")
	if runtime.GOOS == "windows" {
		helperBin += ".exe"
	}
	// The helper runs where this test binary runs (GOARCH=arm64 under qemu,
	// GOOS=windows under wine), not where the toolchain does.
	build := exec.Command("go", "build", "-o", helperBin, ".")
	build.Env = append(os.Environ(), "GOOS="+runtime.GOOS, "GOARCH="+runtime.GOARCH)
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
	for _, d := range []string{e.home, e.docker, filepath.Join(root, "keys"), filepath.Join(root, "run"), filepath.Dir(e.config)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// The helper config the environment names must exist: a named config
	// that does not is an error. configure-docker adds to it.
	if err := os.WriteFile(e.config, []byte(`{"registries": {}}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
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

// urlValues returns the assertion of an url-encoded token request body.
func urlValues(body string) (string, error) {
	for _, kv := range strings.Split(body, "&") {
		if v, ok := strings.CutPrefix(kv, "assertion="); ok {
			return v, nil
		}
	}
	return "", errors.New("no assertion")
}

// responder answers a token request instead of the fake's own logic; it
// returns false to fall through to the fake, which then issues a token.
type responder func(w http.ResponseWriter, r *http.Request) bool

// tokenRequest is what the fake endpoint saw of one request.
type tokenRequest struct {
	at                   time.Time
	method, path, query  string
	contentType          string
	grantType, kid       string
	assertionInBody      bool
	assertionOutsideBody bool // in the URL or a header
}

// endpointLog records every request the fake token endpoint receives and
// answers the first ones from a script. It is installed once, before any
// helper process starts, and is safe for concurrent requests.
type endpointLog struct {
	mu     sync.Mutex
	reqs   []tokenRequest
	script []responder
}

// watchEndpoint installs the log as e.srv.Respond. The i-th request is
// answered by script[i] if there is one (a nil entry falls through).
func watchEndpoint(e *helperEnv, script ...responder) *endpointLog {
	l := &endpointLog{script: script}
	e.srv.Respond = func(w http.ResponseWriter, r *http.Request) bool {
		req := tokenRequest{at: time.Now(), method: r.Method, path: r.URL.Path, query: r.URL.RawQuery, contentType: r.Header.Get("Content-Type")}
		// ParseForm reads the body once; the fake's own ParseForm then
		// reuses r.PostForm, so falling through still works.
		if err := r.ParseForm(); err == nil {
			assertion := r.PostForm.Get("assertion")
			req.grantType = r.PostForm.Get("grant_type")
			req.assertionInBody = assertion != ""
			e.secrets.add(assertion)
			if assertion != "" {
				if strings.Contains(r.URL.String(), assertion) {
					req.assertionOutsideBody = true
				}
				for _, vs := range r.Header {
					for _, v := range vs {
						if strings.Contains(v, assertion) {
							req.assertionOutsideBody = true
						}
					}
				}
			}
			// The kid header of the assertion, read without verifying, tells
			// which service account asked.
			if tok, _, err := jwt.NewParser().ParseUnverified(assertion, jwt.MapClaims{}); err == nil {
				req.kid, _ = tok.Header["kid"].(string)
			}
		}
		l.mu.Lock()
		n := len(l.reqs)
		l.reqs = append(l.reqs, req)
		var answer responder
		if n < len(l.script) {
			answer = l.script[n]
		}
		l.mu.Unlock()
		return answer != nil && answer(w, r)
	}
	return l
}

func (l *endpointLog) requests() []tokenRequest {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]tokenRequest(nil), l.reqs...)
}

// perKid counts the requests by the assertion's kid header ("" if none).
func (l *endpointLog) perKid() map[string]int {
	out := map[string]int{}
	for _, r := range l.requests() {
		out[r.kid]++
	}
	return out
}

func answerStatus(code int, retryAfter, body string) responder {
	return func(w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("Content-Type", "application/json")
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		w.WriteHeader(code)
		_, _ = w.Write([]byte(body))
		return true
	}
}

func answer200(body string) responder { return answerStatus(http.StatusOK, "", body) }

// answerHang never answers: it returns when the client goes away or done is
// closed.
func answerHang(done <-chan struct{}) responder {
	return func(w http.ResponseWriter, r *http.Request) bool {
		select {
		case <-r.Context().Done():
		case <-done:
		}
		return true
	}
}

// answerAfter blocks until release is closed (or the client goes away), then
// falls through so that the fake issues a real token.
func answerAfter(release <-chan struct{}) responder {
	return func(w http.ResponseWriter, r *http.Request) bool {
		select {
		case <-release:
		case <-r.Context().Done():
		}
		return false
	}
}

// testDone is closed when the test ends, before the fake endpoint closes, so
// that hanging handlers let the server shut down.
func testDone(t *testing.T) <-chan struct{} {
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	return done
}

// identity is the cache identity the helper uses for e's key file with
// STACKIT_TOKEN_BASEURL=endpoint: the digest of the key's bytes and the
// endpoint set outside the key.
func (e *helperEnv) identity(endpoint string) string {
	data, err := os.ReadFile(e.keyPath)
	if err != nil {
		e.t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return "key\x00" + hex.EncodeToString(sum[:]) + "\x00" + endpoint
}

func (e *helperEnv) entryPath(endpoint string) string {
	return filepath.Join(e.cacheDir, cache.FileName(e.identity(endpoint))+".json")
}

// writeEntry writes a cache entry the way the helper would.
func (e *helperEnv) writeEntry(path, token string, issued, expiry time.Time) {
	e.t.Helper()
	data, err := json.Marshal(cache.Entry{Version: 1, AccessToken: token, IssuedAt: issued.UTC(), Expiry: expiry.UTC(), Identity: "written by the test"})
	if err != nil {
		e.t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		e.t.Fatal(err)
	}
}

// readEntry decodes the entry at path, failing the test if it does not.
func (e *helperEnv) readEntry(path string) *cache.Entry {
	e.t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		e.t.Fatalf("read cache entry: %v", err)
	}
	entry, err := cache.DecodeEntry(data)
	if err != nil {
		e.t.Fatalf("cache entry %s does not decode: %v\n%s", filepath.Base(path), err, data)
	}
	return entry
}

// getOK runs get for host, requires success and checks that stdout holds
// nothing but the credentials: without the returned secret, it shows no
// secret, assertion, private key or other JWT.
func (e *helperEnv) getOK(host string) (result, credentials.Credentials) {
	e.t.Helper()
	r := e.run(host, "get")
	if r.code != 0 {
		e.t.Fatalf("get %s failed:\n%s", host, r)
	}
	c := e.parseCreds(r)
	e.checkSuccessStdout(r, c)
	return r, c
}

func (e *helperEnv) checkSuccessStdout(r result, c credentials.Credentials) {
	e.t.Helper()
	if leaks := e.secrets.leaks(strings.ReplaceAll(r.stdout, c.Secret, "")); len(leaks) > 0 {
		e.t.Errorf("stdout of %v shows %s besides the secret: %q", r.args, strings.Join(leaks, ", "), r.stdout)
	}
}

// getErr runs get for host and requires a real error (not not-found); run
// has already checked exit 1, one line on stdout and no leaks.
func (e *helperEnv) getErr(host string) result {
	e.t.Helper()
	r := e.run(host, "get")
	if r.code == 0 {
		e.t.Fatalf("get %s succeeded; want an error\n%s", host, r)
	}
	if strings.TrimSpace(r.stdout) == notFoundMessage {
		e.t.Fatalf("get %s said not found; want a real error\n%s", host, r)
	}
	e.t.Logf("error: %s", strings.TrimSpace(r.stdout))
	return r
}

func requireContains(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%s does not mention %q:\n%s", what, sub, s)
		}
	}
}

var cacheResultRE = regexp.MustCompile(`cache=(\S+)`)

// cacheResult is the cache= field of the get's final debug line.
func cacheResult(r result) string {
	m := cacheResultRE.FindAllStringSubmatch(r.stderr, -1)
	if len(m) == 0 {
		return ""
	}
	return m[len(m)-1][1]
}

func tempLeftovers(t *testing.T, dirs ...string) []string {
	t.Helper()
	var out []string
	for _, dir := range dirs {
		m, err := filepath.Glob(filepath.Join(dir, ".tmp-*"))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m...)
	}
	return out
}

func randomHex(t *testing.T) string {
	t.Helper()
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

// degradedNote is the debug note of a get that fetched without the cache.
var degradedNote = regexp.MustCompile(`debug: cache: .*(fetching without the cache|could not store the token)`)

const (
	wifEmail    = "e2e-wif@sa.stackit.cloud"
	robotName   = "robot$e2e+ci"
	robotSecret = "Rb7xQ2mN9vK4pL8sT3wZ6yH1"
)

// useFederationFile points the helper at a federated token file and the
// fake IdP. The environment still holds a service account key: federation
// must win, as in the SDK.
func (e *helperEnv) useFederationFile(t *testing.T) (*tokensourcetest.Federation, string) {
	t.Helper()
	fed := e.srv.NewFederation(t, wifEmail)
	tokenFile := filepath.Join(e.root, "run", "federated-token")
	e.vars[tokensource.EnvServiceAccountEmail] = wifEmail
	e.vars[tokensource.EnvFederatedTokenFile] = tokenFile
	e.vars[tokensource.EnvIDPTokenEndpoint] = e.srv.IdPURL()
	return fed, tokenFile
}

// pushAndPull pushes a random image to host/repo:tag and pulls it back
// through authn.DefaultKeychain, which runs the helper named in
// DOCKER_CONFIG's credHelpers from PATH. The caller has set the process
// environment.
func pushAndPull(t *testing.T, host, repo string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	opts := []remote.Option{remote.WithAuthFromKeychain(authn.DefaultKeychain), remote.WithContext(ctx)}
	ref, err := name.ParseReference(host + "/" + repo)
	if err != nil {
		return err
	}
	img, err := random.Image(2048, 2)
	if err != nil {
		return err
	}
	want, err := img.Digest()
	if err != nil {
		return err
	}
	if err := remote.Write(ref, img, opts...); err != nil {
		return err
	}
	pulled, err := remote.Image(ref, opts...)
	if err != nil {
		return err
	}
	got, err := pulled.Digest()
	if err != nil {
		return err
	}
	if got != want {
		t.Fatalf("pulled digest %s, pushed %s", got, want)
	}
	return nil
}

// useDockerConfig makes the test process look like a CI job whose Docker
// config sends host to this helper.
func (e *helperEnv) useDockerConfig(t *testing.T, host string) {
	t.Helper()
	writeJSON(t, filepath.Join(e.docker, "config.json"), map[string]any{
		"credHelpers": map[string]string{host: "stackit"},
	}, 0o600)
	for k, v := range e.varMap() {
		t.Setenv(k, v)
	}
	t.Setenv("REGISTRY_AUTH_FILE", "")
	t.Setenv("PATH", filepath.Dir(helperBin)+string(os.PathListSeparator)+os.Getenv("PATH"))
}

func (e *helperEnv) requireAssertions(what string, want ...string) {
	e.t.Helper()
	got := e.srv.Assertions()
	if len(got) != len(want) {
		e.t.Fatalf("%s: the IdP received %d federated tokens, want %d", what, len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			e.t.Fatalf("%s: federated token %d sent to the IdP is not the one expected (the file's current token)", what, i+1)
		}
	}
}

// robotRegistry is a registry with an unlinked robot account: its token
// endpoint accepts only the robot's static name and secret.
type robotRegistry struct {
	*httptest.Server
	Host     string
	logins   atomic.Int64
	rejected atomic.Int64

	mu     sync.Mutex
	tokens map[string]bool
}

func newRobotRegistry(t *testing.T, user, secret string) *robotRegistry {
	t.Helper()
	r := &robotRegistry{tokens: map[string]bool{}}
	backend := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/service/token" {
			u, p, ok := req.BasicAuth()
			if !ok || u != user || p != secret {
				r.rejected.Add(1)
				http.Error(w, `{"errors":[{"code":"UNAUTHORIZED"}]}`, http.StatusUnauthorized)
				return
			}
			var b [16]byte
			_, _ = rand.Read(b[:])
			tok := "robot-regtok-" + hex.EncodeToString(b[:])
			r.mu.Lock()
			r.tokens[tok] = true
			r.mu.Unlock()
			r.logins.Add(1)
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{"token": tok, "expires_in": 300})
			return
		}
		tok, _ := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
		r.mu.Lock()
		ok := r.tokens[tok]
		r.mu.Unlock()
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="`+r.URL+`/service/token",service="harbor-registry"`)
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED"}]}`, http.StatusUnauthorized)
			return
		}
		backend.ServeHTTP(w, req)
	}))
	t.Cleanup(r.Close)
	r.Host = strings.TrimPrefix(r.URL, "http://")
	return r
}

// environWithout is e's environment with the named variables truly absent,
// not merely empty.
func (e *helperEnv) environWithout(names ...string) []string {
	var env []string
	for _, kv := range e.environ() {
		k, _, _ := strings.Cut(kv, "=")
		drop := false
		for _, n := range names {
			drop = drop || k == n
		}
		if !drop {
			env = append(env, kv)
		}
	}
	return env
}

// runWith runs the helper with an explicit environment and no hygiene
// rules of the Docker protocol: these commands report errors on stderr.
func (e *helperEnv) runWith(env []string, stdin string, args ...string) result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	cmd := exec.CommandContext(ctx, helperBin, args...)
	cmd.Env = env
	cmd.Dir = e.root
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{args: args, stdout: stdout.String(), stderr: stderr.String()}
	if ctx.Err() != nil {
		e.t.Fatalf("%v hung; stderr:\n%s", args, r.stderr)
	}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		r.code = exitErr.ExitCode()
	} else if err != nil {
		e.t.Fatal(err)
	}
	e.checkStderr(strings.Join(args, " "), r.stderr)
	return r
}

// kubeletResponse mirrors CredentialProviderResponse of
// k8s.io/kubelet/pkg/apis/credentialprovider/v1 field for field; decoding
// with unknown fields disallowed is what the kubelet does.
type kubeletResponse struct {
	APIVersion    string `json:"apiVersion"`
	Kind          string `json:"kind"`
	CacheKeyType  string `json:"cacheKeyType"`
	CacheDuration string `json:"cacheDuration,omitempty"`
	Auth          map[string]struct {
		Username string `json:"username"`
		Password string `json:"password"`
	} `json:"auth,omitempty"`
}

func decodeKubeletResponse(t *testing.T, r result) kubeletResponse {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("kubelet failed:\n%s", r)
	}
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	dec.DisallowUnknownFields()
	var resp kubeletResponse
	if err := dec.Decode(&resp); err != nil {
		t.Fatalf("the kubelet would reject %q: %v", r.stdout, err)
	}
	return resp
}

func kubeletRequest(image string) string {
	return `{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest","image":"` + image + `"}`
}

// pushRandomImage pushes a random image to ref through package credhelper
// with e's environment and returns its digest.
func pushRandomImage(t *testing.T, e *helperEnv, ref string) v1.Hash {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(2048, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img, remote.WithAuthFromKeychain(e.keychain(t))); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	digest, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return digest
}

// keychain is go-containerregistry's view of package credhelper in e.
func (e *helperEnv) keychain(t *testing.T) authn.Keychain {
	vars := e.varMap()
	warnings := &strings.Builder{}
	t.Cleanup(func() { e.checkStderr("credhelper warnings", warnings.String()) })
	h, err := credhelper.New(credhelper.WithEnv(func(k string) string { return vars[k] }), credhelper.WithWarnings(warnings))
	if err != nil {
		t.Fatal(err)
	}
	return authn.NewKeychainFromHelper(h)
}

// fakeRegistry is an in-memory OCI registry on 127.0.0.1 that behaves like
// Harbor with a robot linked to a STACKIT service account: every registry
// request needs a bearer token, and its token endpoint hands one out only
// for HTTP basic auth with the service account email and a STACKIT access
// token that the fake STACKIT endpoint issued to that email.
type fakeRegistry struct {
	*httptest.Server
	// Host is 127.0.0.1:PORT, the name Docker configs use.
	Host string

	email string
	sts   *tokensourcetest.Server

	logins   atomic.Int64 // token requests granted
	rejected atomic.Int64 // token requests refused
	denied   atomic.Int64 // registry requests answered 401

	mu     sync.Mutex
	tokens map[string]bool
}

func newFakeRegistry(t *testing.T, sts *tokensourcetest.Server, email string) *fakeRegistry {
	t.Helper()
	r := &fakeRegistry{email: email, sts: sts, tokens: map[string]bool{}}
	backend := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/token" {
			r.serveToken(w, req)
			return
		}
		if !r.authorized(req) {
			r.denied.Add(1)
			w.Header().Set("WWW-Authenticate", `Bearer realm="`+r.URL+`/token",service="test-registry"`)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
			return
		}
		backend.ServeHTTP(w, req)
	}))
	t.Cleanup(r.Close)
	r.Host = strings.TrimPrefix(r.URL, "http://")
	return r
}

func (r *fakeRegistry) authorized(req *http.Request) bool {
	tok, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.tokens[tok]
}

func (r *fakeRegistry) serveToken(w http.ResponseWriter, req *http.Request) {
	user, pass, ok := req.BasicAuth()
	if !ok || user != r.email || !r.sts.Valid(user, pass) {
		r.rejected.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"invalid username or password"}]}`)
		return
	}
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		http.Error(w, "rand", http.StatusInternalServerError)
		return
	}
	tok := "regtok-" + hex.EncodeToString(b[:])
	r.mu.Lock()
	r.tokens[tok] = true
	r.mu.Unlock()
	r.logins.Add(1)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"token": tok, "expires_in": 300})
}
