package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestTokenCommand is the Harbor API recipe: username and token from the
// helper, as HTTP basic auth.
func TestTokenCommand(t *testing.T) {
	t.Parallel()
	e := newHelperEnv(t)
	reg := newFakeRegistry(t, e.srv, e.acct.Email)
	e.vars[envRegistries] = reg.Host

	user := e.runWith(e.environ(), "", "token", "--registry", reg.Host, "--username")
	tok := e.runWith(e.environ(), "", "token", "--registry", reg.Host)
	if user.code != 0 || tok.code != 0 {
		t.Fatalf("token failed:\n%s\n%s", user, tok)
	}
	if user.stdout != e.acct.Email+"\n" {
		t.Errorf("token --username printed %q", user.stdout)
	}
	token := strings.TrimSuffix(tok.stdout, "\n")
	e.secrets.add(token)
	if !e.srv.Valid(e.acct.Email, token) || strings.Contains(token, "\n") {
		t.Fatalf("token printed %q, not one valid token line", tok.stdout)
	}
	// curl -u "$(… token --username):$(… token)" against the registry's API.
	req, err := http.NewRequest(http.MethodGet, reg.URL+"/token", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(strings.TrimSpace(user.stdout), token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("basic auth with the printed username and token: HTTP %d", resp.StatusCode)
	}

	if again := e.runWith(e.environ(), "", "token"); again.stdout != tok.stdout {
		t.Error("the default registry shares the cached token")
	}
	e.requireRequests("three token commands", 1)

	// On a terminal the token is refused; script(1) provides one.
	script, err := exec.LookPath("script")
	if err != nil {
		t.Log("script(1) not found; terminal refusal is covered by the unit tests only")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	var cmd *exec.Cmd
	exitKnown := true
	switch runtime.GOOS {
	case "linux":
		// util-linux: -c takes a shell command line, -e returns its exit status.
		cmd = exec.CommandContext(ctx, script, "-q", "-e", "-c", helperBin+" token", "/dev/null")
	case "darwin", "freebsd", "netbsd", "openbsd", "dragonfly":
		// BSD script(1) has neither -c nor -e: the command follows the file,
		// and whether the command's exit status is passed on differs by release.
		cmd = exec.CommandContext(ctx, script, "-q", "/dev/null", helperBin, "token")
		exitKnown = false
	default:
		t.Logf("script(1) on %s: its syntax is not known here; terminal refusal is covered by the unit tests only", runtime.GOOS)
		return
	}
	cmd.Env = e.environ()
	out, err := cmd.CombinedOutput()
	if (exitKnown && err == nil) || !strings.Contains(string(out), "refusing to print an access token to a terminal") || strings.Contains(string(out), token) {
		t.Errorf("token on a terminal: %v\n%s", err, out)
	}
}

// TestDoctorCommand checks the report of a working and of a broken setup,
// and that neither shows a secret.
func TestDoctorCommand(t *testing.T) {
	t.Parallel()
	e := newHelperEnv(t)
	token := e.get(defaultRegistry).Secret
	r := e.runWith(e.environ(), "", "doctor")
	if r.code != 0 {
		t.Fatalf("doctor on a working setup:\n%s", r)
	}
	for _, want := range []string{
		"registry.onstackit.cloud  built in",
		"service account key from STACKIT_SERVICE_ACCOUNT_KEY_PATH (" + e.keyPath + ")",
		e.acct.Email, e.acct.Kid,
		"token now       OK: served from the cache",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("doctor output lacks %q:\n%s", want, r.stdout)
		}
	}
	if leaks := e.secrets.leaks(r.stdout); len(leaks) > 0 || strings.Contains(r.stdout, token) {
		t.Errorf("doctor shows %v:\n%s", leaks, r.stdout)
	}

	// The key is deleted and nothing is cached: exit 1, with the fix.
	e.srv.DeleteKey(e.acct)
	e.vars[envCacheDir] = filepath.Join(e.root, "cold-cache")
	r = e.runWith(e.environ(), "", "doctor")
	if r.code != 1 || !strings.Contains(r.stdout, "token now       FAILED") || !strings.Contains(r.stdout, "fix             create a new key for "+e.acct.Email) {
		t.Errorf("doctor with a deleted key:\n%s", r)
	}
	if leaks := e.secrets.leaks(r.stdout); len(leaks) > 0 {
		t.Errorf("doctor shows %v:\n%s", leaks, r.stdout)
	}
}

// TestSkopeoThroughContainersAuthFile configures the containers auth file
// with configure-podman and pulls through skopeo, which execs the helper
// from PATH as podman and buildah do.
func TestSkopeoThroughContainersAuthFile(t *testing.T) {
	skopeo, err := exec.LookPath("skopeo")
	if err != nil {
		t.Skip("skopeo is not installed (Debian: apt-get install skopeo)")
	}
	t.Parallel()
	e := newHelperEnv(t)
	reg := newFakeRegistry(t, e.srv, e.acct.Email)
	authFile := filepath.Join(e.root, "containers-auth.json")
	e.vars["REGISTRY_AUTH_FILE"] = authFile

	if r := e.runWith(e.environ(), "", "configure-podman", "--registry", reg.Host); r.code != 0 {
		t.Fatalf("configure-podman:\n%s", r)
	}
	var doc struct {
		CredHelpers map[string]string `json:"credHelpers"`
	}
	data, err := os.ReadFile(authFile)
	if err != nil || json.Unmarshal(data, &doc) != nil || doc.CredHelpers[reg.Host] != "stackit" {
		t.Fatalf("auth file after configure-podman (%v):\n%s", err, data)
	}
	want := pushRandomImage(t, e, reg.Host+"/e2e/app:v1")
	loginsBefore := reg.logins.Load()

	env := append(e.environ(), "PATH="+filepath.Dir(helperBin)+string(os.PathListSeparator)+os.Getenv("PATH"))
	skopeoRun := func(args ...string) (string, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, skopeo, args...)
		cmd.Env = env
		cmd.Dir = e.root
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		e.checkStderr("skopeo "+args[0], stderr.String())
		if err != nil {
			t.Fatalf("skopeo %v: %v\n%s", args, err, stderr.String())
		}
		return stdout.String(), stderr.String()
	}

	out, _ := skopeoRun("inspect", "--tls-verify=false", "docker://"+reg.Host+"/e2e/app:v1")
	var inspected struct{ Digest string }
	if err := json.Unmarshal([]byte(out), &inspected); err != nil || inspected.Digest != want.String() {
		t.Fatalf("skopeo inspect digest %q (%v), pushed %s", inspected.Digest, err, want)
	}
	layout := filepath.Join(e.root, "oci")
	skopeoRun("--insecure-policy", "copy", "--src-tls-verify=false", "docker://"+reg.Host+"/e2e/app:v1", "oci:"+layout+":v1")
	if _, err := os.Stat(filepath.Join(layout, "index.json")); err != nil {
		t.Fatalf("skopeo copy wrote no OCI layout: %v", err)
	}
	if reg.logins.Load() <= loginsBefore || reg.rejected.Load() != 0 {
		t.Errorf("skopeo logged in %d times, %d refused; want logins through the helper", reg.logins.Load()-loginsBefore, reg.rejected.Load())
	}
	e.requireRequests("push in-process, inspect and copy through skopeo", 1)
}
