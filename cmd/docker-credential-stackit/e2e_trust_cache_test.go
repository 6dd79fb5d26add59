//go:build unix

package main

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
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
