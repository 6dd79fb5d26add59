//go:build unix

package main

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker-credential-stackit/docker-credential-stackit/cache"
)

// A real second user: the cache dir belongs to uid 65534 (nobody), is
// writable by everyone and holds a planted entry for the victim's exact
// identity. The victim (root here) must fetch its own token and say why
// the cache is not used, never print the planted token.
func TestE2EPlantedTokenInCacheDirOfAnotherUserIsNotServed(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the test makes the cache dir belong to uid 65534 and runs the helper as another user, its victim")
	}
	const attacker = 65534
	const planted = "ATTACKER-PLANTED-TOKEN"
	e := newHelperEnv(t)
	e.secrets.add(planted)
	if err := os.Mkdir(e.cacheDir, 0o700); err != nil {
		t.Fatal(err)
	}
	entry := e.entryPath(e.srv.TokenURL())
	e.writeEntry(entry, planted, time.Now().Add(-time.Minute), time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC))
	for _, path := range []string{entry, e.cacheDir} {
		if err := os.Chown(path, attacker, attacker); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(e.cacheDir, 0o777); err != nil {
		t.Fatal(err)
	}

	for i := range 2 {
		r, c := e.getOK(defaultRegistry)
		if strings.Contains(r.stdout, planted) || c.Secret == planted {
			t.Fatalf("get %d printed the planted token:\n%s", i+1, r)
		}
		e.requireValid("get with an untrusted cache dir", c)
		requireContains(t, "stderr", r.stderr,
			"cache dir "+e.cacheDir+" is owned by uid 65534, not you (uid 0), so it is not used",
			"DOCKER_CREDENTIAL_STACKIT_CACHE_DIR")
		if n := strings.Count(r.stderr, "so it is not used"); n != 1 {
			t.Errorf("get %d warned %d times about the cache dir, want once:\n%s", i+1, n, r.stderr)
		}
	}
	e.requireRequests("two gets without a usable cache", 2)

	if got := e.readEntry(entry).AccessToken; got != planted {
		t.Errorf("the helper wrote into the other user's directory (entry now %.12s…)", got)
	}
	fi, err := os.Lstat(e.cacheDir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o777 || fi.Sys().(*syscall.Stat_t).Uid != attacker {
		t.Errorf("the helper adopted the other user's directory: mode %v, uid %d", fi.Mode().Perm(), fi.Sys().(*syscall.Stat_t).Uid)
	}
}

// The victim runs as a second, unprivileged user (uid 65534) while root,
// as the other user, prepared what it finds: a world-writable cache dir
// holding a planted entry for the victim's own key, and a helper config
// that anyone can write. The victim serves no planted token, uses neither
// file, and says why, each in one line.
func TestE2EVictimRunningAsASecondUserTrustsNeitherCacheNorConfigOfAnother(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the test runs the helper as uid 65534 against files root prepared")
	}
	const victim = 65534
	const planted = "ROOT-PLANTED-TOKEN"
	e := newHelperEnv(t)
	e.secrets.add(planted)

	// A world-readable tree the victim can reach: the binary, its home
	// and key (its own), and the shared dirs root prepared.
	base, err := os.MkdirTemp("", "dcs-second-user-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(base, "docker-credential-stackit")
	data, err := os.ReadFile(helperBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(base, "home")
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}
	keyData, err := os.ReadFile(e.keyPath)
	if err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(home, "key.json")
	if err := os.WriteFile(keyPath, keyData, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{home, keyPath} {
		if err := os.Chown(p, victim, victim); err != nil {
			t.Fatal(err)
		}
	}
	shared := filepath.Join(base, "shared-cache")
	if err := os.Mkdir(shared, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(shared, 0o777); err != nil { // past the umask
		t.Fatal(err)
	}
	sum := sha256.Sum256(keyData)
	entry := filepath.Join(shared, cache.FileName("key\x00"+hex.EncodeToString(sum[:])+"\x00"+e.srv.TokenURL())+".json")
	e.writeEntry(entry, planted, time.Now().Add(-time.Minute), time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC))

	run := func(extra ...string) result {
		t.Helper()
		cmd := exec.Command(bin, "get")
		cmd.Env = append([]string{
			"PATH=/usr/bin:/bin",
			"HOME=" + home,
			"STACKIT_SERVICE_ACCOUNT_KEY_PATH=" + keyPath,
			"STACKIT_TOKEN_BASEURL=" + e.srv.TokenURL(),
			"DOCKER_CREDENTIAL_STACKIT_CACHE_DIR=" + shared,
		}, extra...)
		cmd.Stdin = strings.NewReader(defaultRegistry)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: victim, Gid: victim}}
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		if exit, ok := err.(*exec.ExitError); ok {
			code = exit.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		r := result{stdout: stdout.String(), stderr: stderr.String(), code: code}
		e.checkHygiene(r)
		return r
	}

	r := run()
	if r.code != 0 || strings.Contains(r.stdout, planted) {
		t.Fatalf("the victim did not mint its own token past the planted one:\n%s", r)
	}
	c := e.parseCreds(r)
	e.requireValid("the victim's own token", c)
	requireContains(t, "stderr", r.stderr, "cache dir "+shared+" is owned by uid 0, not you (uid 65534), so it is not used")
	if got := e.readEntry(entry).AccessToken; got != planted {
		t.Error("the victim wrote into root's directory")
	}

	// A helper config anyone can write names the registries that get
	// tokens: refused, with the fix, and no token is printed.
	config := filepath.Join(base, "config.json")
	if err := os.WriteFile(config, []byte(`{"registries": {"evil.example.com": {}}}`), 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(config, 0o666); err != nil {
		t.Fatal(err)
	}
	r = run("DOCKER_CREDENTIAL_STACKIT_CONFIG=" + config)
	if r.code == 0 || strings.Contains(r.stdout, c.Secret) {
		t.Fatalf("the victim used a config others can write:\n%s", r)
	}
	requireContains(t, "stdout", r.stdout, config, "chmod")
	if n := strings.Count(strings.TrimSpace(r.stdout), "\n"); n != 0 {
		t.Errorf("the refusal is %d lines, want one:\n%s", n+1, r.stdout)
	}
}
