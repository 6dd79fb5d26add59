//go:build unix

// The fault tests use kill -9, /proc, tmpfs mounts and Unix lock
// inspection, which exist on Unix only.

package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker-credential-stackit/docker-credential-stackit/cache"
	"github.com/docker-credential-stackit/docker-credential-stackit/credhelper"
	"github.com/docker/docker-credential-helpers/credentials"
	"github.com/golang-jwt/jwt/v5"
)

// TestTokenEndpointFaults drives one get per fault of the token endpoint.
// Each fault gets its own endpoint, account and cache.
func TestTokenEndpointFaults(t *testing.T) {
	t.Parallel()

	t.Run("503 twice then success", func(t *testing.T) {
		t.Parallel()
		e := newHelperEnv(t)
		unavailable := answerStatus(http.StatusServiceUnavailable, "0", `{"error":"temporarily unavailable"}`)
		log := watchEndpoint(e, unavailable, unavailable)
		_, c := e.getOK(defaultRegistry)
		e.requireValid("get after two 503s", c)
		if n := len(log.requests()); n != 3 {
			t.Fatalf("token endpoint saw %d requests, want 3 (two 503s and the success)", n)
		}
		e.requireCached(c.Secret)
	})

	t.Run("429 with Retry-After 1 then success", func(t *testing.T) {
		t.Parallel()
		e := newHelperEnv(t)
		log := watchEndpoint(e, answerStatus(http.StatusTooManyRequests, "1", `{"error":"slow down"}`))
		_, c := e.getOK(defaultRegistry)
		e.requireValid("get after a 429", c)
		reqs := log.requests()
		if len(reqs) != 2 {
			t.Fatalf("token endpoint saw %d requests, want 2", len(reqs))
		}
		// A lower bound only: the helper sleeps the server's Retry-After
		// (1 s) instead of its own backoff (at most 250 ms on the first retry).
		if gap := reqs[1].at.Sub(reqs[0].at); gap < 900*time.Millisecond {
			t.Errorf("the retry came %s after the 429; Retry-After: 1 asked for 1 s", gap)
		}
	})

	t.Run("429 with Retry-After beyond the retry budget", func(t *testing.T) {
		t.Parallel()
		e := newHelperEnv(t)
		log := watchEndpoint(e, answerStatus(http.StatusTooManyRequests, "120", `{"error":"slow down"}`))
		r := e.getErr(defaultRegistry)
		requireContains(t, "the error", r.stdout, "HTTP 429", "retry after 2m0s, beyond the retry budget")
		if n := len(log.requests()); n != 1 {
			t.Fatalf("token endpoint saw %d requests, want 1", n)
		}
	})

	for _, tc := range []struct {
		code int
		body string
		want []string
	}{
		{http.StatusBadRequest, `{"error":"invalid_request","error_description":"grant_type is not supported"}`, []string{"HTTP 400", "grant_type is not supported"}},
		{http.StatusUnauthorized, `{"error":"invalid_grant","error_description":"assertion rejected"}`, []string{"HTTP 401", "the service account key was rejected"}},
	} {
		t.Run(fmt.Sprintf("%d is not retried", tc.code), func(t *testing.T) {
			t.Parallel()
			e := newHelperEnv(t)
			// Every request is answered so: a retry would show as a second one.
			script := make([]responder, 10)
			for i := range script {
				script[i] = answerStatus(tc.code, "0", tc.body)
			}
			log := watchEndpoint(e, script...)
			r := e.getErr(defaultRegistry)
			requireContains(t, "the error", r.stdout, append(tc.want, e.srv.TokenURL())...)
			if n := len(log.requests()); n != 1 {
				t.Fatalf("token endpoint saw %d requests for a %d, want exactly 1", n, tc.code)
			}
		})
	}

	t.Run("hanging endpoint bounded by the timeout", func(t *testing.T) {
		t.Parallel()
		e := newHelperEnv(t)
		log := watchEndpoint(e, answerHang(testDone(t)))
		e.vars[envTimeout] = "2s"
		// The timeout is 2 s; 15 s only catches a get that ignores it (the
		// built-in budget is 45 s).
		r, err := e.start(15*time.Second, defaultRegistry, "get").wait()
		if err != nil {
			t.Fatalf("a get with %s=2s against a hanging endpoint did not return within 15 s: %v", envTimeout, err)
		}
		e.checkHygiene(r)
		if r.code != 1 {
			t.Fatalf("want exit 1\n%s", r)
		}
		requireContains(t, "the error", r.stdout, "did not answer in time", e.srv.TokenURL())
		if n := len(log.requests()); n != 1 {
			t.Errorf("token endpoint saw %d requests, want 1", n)
		}
	})

	t.Run("lock wait behind a hanging fetcher bounded by the timeout", func(t *testing.T) {
		t.Parallel()
		e := newHelperEnv(t)
		log := watchEndpoint(e, answerHang(testDone(t)))
		holder := e.start(hangGuard, defaultRegistry, "get") // no timeout: holds the lock
		t.Cleanup(func() { _ = holder.cmd.Process.Kill(); _, _ = holder.wait() })
		deadline := time.Now().Add(hangGuard)
		for len(log.requests()) < 1 {
			if time.Now().After(deadline) {
				t.Fatal("the first get never reached the token endpoint")
			}
			time.Sleep(10 * time.Millisecond)
		}
		// The waiter's 2 s must cap its wait for the lock too, which would
		// otherwise last the 25 s lock timeout.
		e.vars[envTimeout] = "2s"
		r, err := e.start(15*time.Second, defaultRegistry, "get").wait()
		if err != nil {
			t.Fatalf("a get with %s=2s waiting behind a hanging fetcher did not return within 15 s: %v", envTimeout, err)
		}
		e.checkHygiene(r)
		if r.code != 1 {
			t.Fatalf("want exit 1\n%s", r)
		}
		if n := len(log.requests()); n != 1 {
			t.Errorf("token endpoint saw %d requests, want 1 (the waiter's time was up before it could ask)", n)
		}
	})

	t.Run("malformed JSON body", func(t *testing.T) {
		t.Parallel()
		e := newHelperEnv(t)
		log := watchEndpoint(e, answer200(`{"access_token": "opaque-truncated-tok`))
		r := e.getErr(defaultRegistry)
		requireContains(t, "the error", r.stdout, "not JSON")
		if n := len(log.requests()); n != 1 {
			t.Errorf("token endpoint saw %d requests, want 1", n)
		}
		if entries := e.cacheEntries(); len(entries) != 0 {
			t.Errorf("a malformed answer left %d cache entries", len(entries))
		}
	})

	t.Run("200 without access_token", func(t *testing.T) {
		t.Parallel()
		e := newHelperEnv(t)
		log := watchEndpoint(e, answer200(`{"token_type":"Bearer","expires_in":600,"refresh_token":"deprecated-x"}`))
		r := e.getErr(defaultRegistry)
		requireContains(t, "the error", r.stdout, "no access_token")
		if n := len(log.requests()); n != 1 {
			t.Errorf("token endpoint saw %d requests, want 1", n)
		}
	})

	t.Run("access token that is not a JWT", func(t *testing.T) {
		t.Parallel()
		e := newHelperEnv(t)
		opaque := "opaque-" + randomHex(t)
		e.secrets.add(opaque)
		const expiresIn = 600
		log := watchEndpoint(e, answer200(fmt.Sprintf(`{"access_token":%q,"expires_in":%d,"token_type":"Bearer"}`, opaque, expiresIn)))
		before := time.Now()
		_, c := e.getOK(defaultRegistry)
		after := time.Now()
		if c.Secret != opaque || c.Username != e.acct.Email {
			t.Fatalf("get returned user %q and another secret; want %s with the opaque token", c.Username, e.acct.Email)
		}
		entry := e.readEntry(e.entryPath(e.srv.TokenURL()))
		if entry.AccessToken != opaque {
			t.Fatal("the cache entry does not hold the opaque token")
		}
		lo, hi := before.Add(expiresIn*time.Second-2*time.Second), after.Add(expiresIn*time.Second+2*time.Second)
		if entry.Expiry.Before(lo) || entry.Expiry.After(hi) {
			t.Errorf("cache expiry %s, want now+%ds (between %s and %s)", entry.Expiry, expiresIn, lo.UTC(), hi.UTC())
		}
		// With 10 minutes to live it is reused.
		if _, again := e.getOK(defaultRegistry); again.Secret != opaque {
			t.Error("the second get did not reuse the cached opaque token")
		}
		if n := len(log.requests()); n != 1 {
			t.Errorf("token endpoint saw %d requests, want 1", n)
		}
	})

	t.Run("token already expired on arrival", func(t *testing.T) {
		t.Parallel()
		e := newHelperEnv(t)
		expired, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"email": e.acct.Email, "iat": time.Now().Add(-2 * time.Hour).Unix(), "exp": time.Now().Add(-time.Hour).Unix(),
		}).SignedString([]byte("some-other-signing-key"))
		if err != nil {
			t.Fatal(err)
		}
		e.secrets.add(expired)
		log := watchEndpoint(e, answer200(fmt.Sprintf(`{"access_token":%q,"expires_in":600,"token_type":"Bearer"}`, expired)))
		r := e.getErr(defaultRegistry)
		requireContains(t, "the error", r.stdout, "clock")
		if n := len(log.requests()); n != 1 {
			t.Errorf("token endpoint saw %d requests, want 1", n)
		}
		if entries := e.cacheEntries(); len(entries) != 0 {
			t.Errorf("an expired token was cached (%d entries)", len(entries))
		}
	})

	// Port 1 on loopback refuses connections and, unlike a closed
	// httptest port, can never be taken over by another test's server.
	const downEndpoint = "http://127.0.0.1:1/token"
	requireDown := func(t *testing.T) {
		if c, err := net.DialTimeout("tcp", "127.0.0.1:1", time.Second); err == nil {
			_ = c.Close()
			t.Skip("something listens on 127.0.0.1:1; cannot simulate an endpoint that is down")
		}
	}

	t.Run("endpoint down with a stale but unexpired cached token", func(t *testing.T) {
		t.Parallel()
		requireDown(t)
		e := newHelperEnv(t)
		e.vars[envTokenURL] = downEndpoint
		e.vars[envRetry] = "1s" // connection errors are retried; keep it short
		stale := "stale-" + randomHex(t)
		e.secrets.add(stale)
		// Issued two hours ago, a minute left: past the reuse margin
		// (min(half the lifetime, 5 min)), so get tries to refresh first.
		now := time.Now()
		e.writeEntry(e.entryPath(downEndpoint), stale, now.Add(-2*time.Hour), now.Add(time.Minute))
		r, c := e.getOK(defaultRegistry)
		if c.Secret != stale || c.Username != e.acct.Email {
			t.Fatalf("get returned user %q and another secret; want the stale cached token of %s", c.Username, e.acct.Email)
		}
		requireContains(t, "stderr", r.stderr, "warning: could not refresh the token", "using the cached one")
		if got := cacheResult(r); got != "stale" {
			t.Errorf("debug log says cache=%s, want stale", got)
		}
	})

	t.Run("endpoint down with only an expired cached token", func(t *testing.T) {
		t.Parallel()
		requireDown(t)
		e := newHelperEnv(t)
		e.vars[envTokenURL] = downEndpoint
		e.vars[envRetry] = "1s"
		expired := "expired-" + randomHex(t)
		e.secrets.add(expired) // checkHygiene fails the run if it shows up
		now := time.Now()
		e.writeEntry(e.entryPath(downEndpoint), expired, now.Add(-2*time.Hour), now.Add(-time.Minute))
		r := e.getErr(defaultRegistry)
		requireContains(t, "the error", r.stdout, "unreachable", "127.0.0.1:1")
		if strings.Contains(r.stdout+r.stderr, expired) {
			t.Fatal("the expired token was handed out")
		}
	})
}

// TestSlowEndpointThirtyTwoWaiters: while the one fetcher waits a second for
// the endpoint, 31 other processes wait on the cache lock; all get the one
// token.
func TestSlowEndpointThirtyTwoWaiters(t *testing.T) {
	t.Parallel()
	e := newHelperEnv(t)
	log := watchEndpoint(e)
	e.srv.Delay = time.Second
	const n = 32
	procs := make([]*proc, n)
	for i := range procs {
		procs[i] = e.start(hangGuard, defaultRegistry, "get")
	}
	secret, failed := "", 0
	how := map[string]int{}
	for i, p := range procs {
		r, err := p.wait()
		if err != nil {
			t.Fatal(err)
		}
		e.checkHygiene(r)
		if r.code != 0 {
			failed++
			t.Errorf("process %d failed:\n%s", i, r)
			continue
		}
		c := e.parseCreds(r)
		e.checkSuccessStdout(r, c)
		e.requireValid(fmt.Sprintf("process %d", i), c)
		if secret == "" {
			secret = c.Secret
		} else if c.Secret != secret {
			t.Errorf("process %d got a different token", i)
		}
		how[cacheResult(r)]++
	}
	t.Logf("%d processes, %d failed, %d token requests; cache results %v", n, failed, len(log.requests()), how)
	e.requireRequests(fmt.Sprintf("%d gets against a 1 s endpoint", n), 1)
	e.requireCached(secret)
}

// TestConcurrentAccountsAndErases runs 64 gets for two registries with
// different service accounts, interleaved with 16 erases of a third
// registry (its own account, with a stored robot login).
func TestConcurrentAccountsAndErases(t *testing.T) {
	t.Parallel()
	e := newHelperEnv(t)
	log := watchEndpoint(e)
	const (
		hostA = "team-a.registry.test"      // DOCKER_CREDENTIAL_STACKIT_REGISTRIES, default key
		hostB = "team-b.registry.test:5000" // config entry with its own key
		hostC = "team-c.registry.test"      // config entry with its own key, robot login stored
	)
	acctA := e.acct
	acctB := e.srv.NewAccount(t, "team-b@sa.stackit.cloud")
	acctC := e.srv.NewAccount(t, "team-c@sa.stackit.cloud")
	e.secrets.addPEM(acctB.PrivateKeyPEM)
	e.secrets.addPEM(acctC.PrivateKeyPEM)
	keys := filepath.Join(e.root, "keys")
	if err := os.MkdirAll(filepath.Dir(e.config), 0o700); err != nil {
		t.Fatal(err)
	}
	writeJSON(t, e.config, map[string]any{"registries": map[string]any{
		hostB: map[string]string{"serviceAccountKeyPath": acctB.WriteKeyFile(t, keys, true)},
		hostC: map[string]string{"serviceAccountKeyPath": acctC.WriteKeyFile(t, keys, true)},
	}}, 0o600)
	e.vars[envRegistries] = hostA

	robot := credentials.Credentials{ServerURL: hostC, Username: "robot$team-c+ci", Secret: "robot-c-secret-" + randomHex(t)}
	e.secrets.add(robot.Secret)
	robotJSON, _ := json.Marshal(robot)
	if r := e.run(string(robotJSON), "store"); r.code != 0 {
		t.Fatalf("store robot for %s:\n%s", hostC, r)
	}
	if _, c := e.getOK(hostC); c.Username != robot.Username || c.Secret != robot.Secret {
		t.Fatalf("get %s before the erases returned %q, want the stored robot", hostC, c.Username)
	}
	if len(log.requests()) != 0 {
		t.Fatal("the stored robot login caused a token request")
	}

	const gets, erases = 64, 16
	type started struct {
		p    *proc
		host string
	}
	var all []started
	for i := range gets {
		host := hostA
		if i%2 == 1 {
			host = hostB
		}
		all = append(all, started{e.start(hangGuard, host, "get"), host})
		if i%4 == 3 {
			all = append(all, started{e.start(hangGuard, hostC, "erase"), hostC})
		}
	}
	want := map[string]string{hostA: acctA.Email, hostB: acctB.Email}
	tokens := map[string]map[string]int{hostA: {}, hostB: {}}
	failed := 0
	for i, s := range all {
		r, err := s.p.wait()
		if err != nil {
			t.Fatal(err)
		}
		e.checkHygiene(r)
		if r.code != 0 {
			failed++
			t.Errorf("process %d (%v %s) failed:\n%s", i, r.args, s.host, r)
			continue
		}
		if r.args[0] == "erase" {
			if r.stdout != "" {
				t.Errorf("erase printed %q", r.stdout)
			}
			continue
		}
		c := e.parseCreds(r)
		e.checkSuccessStdout(r, c)
		if c.Username != want[s.host] {
			t.Errorf("get %s returned user %q, want %q", s.host, c.Username, want[s.host])
		}
		if !e.srv.Valid(want[s.host], c.Secret) {
			t.Errorf("get %s returned a secret the endpoint did not issue to %s", s.host, want[s.host])
		}
		tokens[s.host][c.Secret]++
	}
	perKid := log.perKid()
	t.Logf("%d gets and %d erases, %d failed; token requests: %s=%d %s=%d %s=%d, other=%d",
		gets, erases, failed, acctA.Email, perKid[acctA.Kid], acctB.Email, perKid[acctB.Kid], acctC.Email, perKid[acctC.Kid],
		len(log.requests())-perKid[acctA.Kid]-perKid[acctB.Kid]-perKid[acctC.Kid])
	if perKid[acctA.Kid] != 1 || perKid[acctB.Kid] != 1 || perKid[acctC.Kid] != 0 || len(log.requests()) != 2 {
		t.Errorf("token requests per kid %v; want exactly one for %s (%s), one for %s (%s) and none else", perKid, acctA.Email, acctA.Kid, acctB.Email, acctB.Kid)
	}
	for host, m := range tokens {
		if len(m) != 1 {
			t.Errorf("the gets for %s saw %d different tokens, want 1", host, len(m))
		}
	}

	// No cache file is corrupt, none is left half-written, and the modes hold.
	entries := e.cacheEntries()
	if len(entries) != 2 {
		t.Errorf("the cache holds %d entries, want 2 (one per account)", len(entries))
	}
	for _, m := range tokens {
		for tok := range m {
			e.requireCached(tok)
		}
	}
	if left := tempLeftovers(t, e.cacheDir, filepath.Dir(e.config)); len(left) != 0 {
		t.Errorf("temp files left behind: %v", left)
	}
	requireMode := func(path string, want os.FileMode) {
		t.Helper()
		if fi, err := os.Stat(path); err != nil {
			t.Error(err)
		} else if fi.Mode().Perm() != want {
			t.Errorf("%s has mode %04o, want %04o", path, fi.Mode().Perm(), want)
		}
	}
	requireMode(e.cacheDir, 0o700)
	files, _ := filepath.Glob(filepath.Join(e.cacheDir, "*"))
	for _, f := range files {
		requireMode(f, 0o600)
	}

	// The erases took the robot login away: hostC now mints its own token.
	if _, c := e.getOK(hostC); c.Username != acctC.Email || !e.srv.Valid(acctC.Email, c.Secret) {
		t.Errorf("get %s after the erases returned %q, want a token minted for %s", hostC, c.Username, acctC.Email)
	}
	if got := log.perKid()[acctC.Kid]; got != 1 {
		t.Errorf("token requests for %s after the erases: %d, want 1", acctC.Email, got)
	}
}

// Kill -9 while holding the lock mid-fetch is TestKilledHolderReleasesLock
// in e2e_test.go. The two tests below cover the other stages.

// TestKilledMidWriteLeftovers reproduces what a writer killed between
// creating its temp file and renaming it leaves behind: the lock file, a
// partial .tmp- file with truncated JSON, and the old entry. The next get
// succeeds at once; leftovers go once they are older than a minute (a
// younger one may belong to a live writer).
func TestKilledMidWriteLeftovers(t *testing.T) {
	t.Parallel()
	e := newHelperEnv(t)
	log := watchEndpoint(e)
	entry := e.entryPath(e.srv.TokenURL())
	name := filepath.Base(entry)
	now := time.Now()
	old := "old-" + randomHex(t)
	e.secrets.add(old)
	e.writeEntry(entry, old, now.Add(-2*time.Hour), now.Add(-time.Hour))
	if err := os.WriteFile(strings.TrimSuffix(entry, ".json")+".lock", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	partial := []byte(`{"version":1,"access_token":"partial-` + randomHex(t) + `","issued_at":"2026-0`)
	fresh := filepath.Join(e.cacheDir, ".tmp-"+name+"-123")
	aged := filepath.Join(e.cacheDir, ".tmp-"+name+"-456")
	for _, p := range []string{fresh, aged} {
		if err := os.WriteFile(p, partial, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	age := func(p string) {
		if err := os.Chtimes(p, now.Add(-2*time.Minute), now.Add(-2*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	age(aged)

	// 20 s is below the 25 s lock timeout, so a lock left held would show.
	getNow := func(what string) credentials.Credentials {
		t.Helper()
		r, err := e.start(20*time.Second, defaultRegistry, "get").wait()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		e.checkHygiene(r)
		if r.code != 0 {
			t.Fatalf("%s failed:\n%s", what, r)
		}
		c := e.parseCreds(r)
		e.checkSuccessStdout(r, c)
		e.requireValid(what, c)
		if got := e.readEntry(entry).AccessToken; got != c.Secret {
			t.Fatalf("%s: the cache entry does not hold the returned token", what)
		}
		return c
	}
	exists := func(p string) bool { _, err := os.Stat(p); return err == nil }

	getNow("get after a killed writer")
	if n := len(log.requests()); n != 1 {
		t.Fatalf("token endpoint saw %d requests, want 1", n)
	}
	if exists(aged) {
		t.Error("a temp file older than a minute survived a fetch")
	}
	if !exists(fresh) {
		t.Error("a temp file younger than a minute was removed; it may belong to a live writer")
	}

	// Later the young leftover has aged too, and the token needs a refresh.
	age(fresh)
	e.writeEntry(entry, old, now.Add(-2*time.Hour), now.Add(-time.Hour))
	getNow("refresh after the leftover aged")
	if n := len(log.requests()); n != 2 {
		t.Fatalf("token endpoint saw %d requests, want 2", n)
	}
	if left := tempLeftovers(t, e.cacheDir); len(left) != 0 {
		t.Errorf("temp files left: %v", left)
	}
}

// lockWaiters returns the pids that /proc/locks shows blocked waiting for a
// lock of the given mode (READ or WRITE) on the file with inode ino.
func lockWaiters(t *testing.T, ino uint64, mode string) map[int]bool {
	t.Helper()
	f, err := os.Open("/proc/locks")
	if err != nil {
		t.Fatalf("cannot see lock waiters: %v", err)
	}
	defer f.Close()
	out := map[int]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "12: -> FLOCK  ADVISORY  READ 4242 fe:00:1234 0 EOF"
		fields := strings.Fields(sc.Text())
		if len(fields) < 7 || fields[1] != "->" || fields[2] != "FLOCK" || fields[4] != mode {
			continue
		}
		if !strings.HasSuffix(fields[6], ":"+strconv.FormatUint(ino, 10)) {
			continue
		}
		if pid, err := strconv.Atoi(fields[5]); err == nil {
			out[pid] = true
		}
	}
	return out
}

// TestKilledWaiter kills -9 a process blocked in the shared-lock wait
// behind a fetcher. The fetcher still completes, a second waiter still gets
// its token, and a fresh get is served from the cache.
func TestKilledWaiter(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/proc/locks"); err != nil {
		t.Skipf("cannot see lock waiters without /proc/locks: %v", err)
	}
	e := newHelperEnv(t)
	release := make(chan struct{})
	var releaseOnce sync.Once
	releaseAll := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(releaseAll)
	log := watchEndpoint(e, answerAfter(release))

	holder := e.start(hangGuard, defaultRegistry, "get")
	deadline := time.Now().Add(hangGuard)
	for len(log.requests()) < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the first get never reached the token endpoint")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Its request is in flight: it holds the lock.
	fi, err := os.Stat(strings.TrimSuffix(e.entryPath(e.srv.TokenURL()), ".json") + ".lock")
	if err != nil {
		t.Fatal(err)
	}
	ino := fi.Sys().(*syscall.Stat_t).Ino

	victim := e.start(hangGuard, defaultRegistry, "get")
	survivor := e.start(hangGuard, defaultRegistry, "get")
	for {
		w := lockWaiters(t, ino, "READ")
		if w[victim.cmd.Process.Pid] && w[survivor.cmd.Process.Pid] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the waiters never blocked on the shared lock (waiters %v)", w)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9: %v", err)
	}
	if _, err := victim.wait(); err != nil {
		t.Fatal(err)
	}
	if ws, ok := victim.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the waiter was not killed by SIGKILL: %v", victim.cmd.ProcessState)
	}
	if lockWaiters(t, ino, "READ")[victim.cmd.Process.Pid] {
		t.Fatal("the killed waiter is still queued on the lock")
	}
	releaseAll()

	var secret string
	for _, p := range []*proc{holder, survivor} {
		r, err := p.wait()
		if err != nil {
			t.Fatal(err)
		}
		e.checkHygiene(r)
		if r.code != 0 {
			t.Fatalf("get failed after a waiter was killed:\n%s", r)
		}
		c := e.parseCreds(r)
		e.checkSuccessStdout(r, c)
		e.requireValid("get next to a killed waiter", c)
		if secret == "" {
			secret = c.Secret
			if got := cacheResult(r); got != "miss" {
				t.Errorf("the holder's debug log says cache=%s, want miss", got)
			}
		} else {
			if c.Secret != secret {
				t.Error("the surviving waiter got another token than the holder")
			}
			if got := cacheResult(r); got != "hit-after-wait" {
				t.Errorf("the surviving waiter's debug log says cache=%s, want hit-after-wait", got)
			}
		}
	}
	r, c := e.getOK(defaultRegistry)
	if c.Secret != secret || cacheResult(r) != "hit" {
		t.Errorf("a fresh get was not a cache hit of the holder's token (cache=%s)", cacheResult(r))
	}
	if n := len(log.requests()); n != 1 {
		t.Errorf("token endpoint saw %d requests, want 1", n)
	}
}

// mountTmpfs mounts a tmpfs on dir (unmounted at cleanup) or skips the test
// if that is not possible here.
func mountTmpfs(t *testing.T, dir, opts string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", opts, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs (needs root and CAP_SYS_ADMIN): %v: %s", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
			_ = exec.Command("umount", "-l", dir).Run()
		}
	})
}

// requireDegraded runs a get that must fetch without the cache: exit 0, a
// valid token from one token request, and a debug note about the cache.
func (e *helperEnv) requireDegraded() result {
	e.t.Helper()
	before := e.srv.Requests()
	r, c := e.getOK(defaultRegistry)
	e.requireValid("get with a broken cache", c)
	if !degradedNote.MatchString(r.stderr) {
		e.t.Errorf("no debug note about the cache on stderr:\n%s", r.stderr)
	}
	if got := cacheResult(r); got != "bypassed" {
		e.t.Errorf("debug log says cache=%s, want bypassed", got)
	}
	if n := e.srv.Requests() - before; n != 1 {
		e.t.Errorf("the get made %d token requests, want 1", n)
	}
	for _, l := range strings.Split(r.stderr, "\n") {
		if degradedNote.MatchString(l) {
			e.t.Logf("note: %s", l)
		}
	}
	return r
}

// TestMachineFaults: a cache that cannot be used degrades to fetching
// without it, never to an error.
func TestMachineFaults(t *testing.T) {
	t.Parallel()

	t.Run("read-only filesystem", func(t *testing.T) {
		t.Parallel()
		e := newHelperEnv(t)
		mnt := filepath.Join(e.root, "ro")
		mountTmpfs(t, mnt, "size=1m,mode=0700")
		if out, err := exec.Command("mount", "-o", "remount,ro", mnt).CombinedOutput(); err != nil {
			t.Skipf("cannot remount read-only: %v: %s", err, out)
		}
		// The cache dir exists (a lock file cannot be created) ...
		e.cacheDir = mnt
		r := e.requireDegraded()
		requireContains(t, "stderr", r.stderr, "read-only file system")
		// ... or must be created.
		e.cacheDir = filepath.Join(mnt, "docker-credential-stackit")
		r = e.requireDegraded()
		requireContains(t, "stderr", r.stderr, "read-only file system")
	})

	t.Run("full disk", func(t *testing.T) {
		t.Parallel()
		e := newHelperEnv(t)
		mnt := filepath.Join(e.root, "full")
		mountTmpfs(t, mnt, "size=16k,mode=0700")
		e.cacheDir = filepath.Join(mnt, "cache")
		if err := os.Mkdir(e.cacheDir, 0o700); err != nil {
			t.Fatal(err)
		}
		f, err := os.Create(filepath.Join(mnt, "filler"))
		if err != nil {
			t.Fatal(err)
		}
		chunk := make([]byte, 4096)
		for {
			if _, err = f.Write(chunk); err != nil {
				break
			}
		}
		_ = f.Close()
		if !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("filling the tmpfs ended with %v, want ENOSPC", err)
		}
		r := e.requireDegraded()
		requireContains(t, "stderr", r.stderr, "no space left on device")
		if left := tempLeftovers(t, e.cacheDir); len(left) != 0 {
			t.Errorf("a failed write left temp files: %v", left)
		}
	})

	t.Run("cache dir under a regular file", func(t *testing.T) {
		t.Parallel()
		e := newHelperEnv(t)
		file := filepath.Join(e.root, "plain-file")
		if err := os.WriteFile(file, []byte("not a dir"), 0o600); err != nil {
			t.Fatal(err)
		}
		e.cacheDir = filepath.Join(file, "cache")
		r := e.requireDegraded()
		requireContains(t, "stderr", r.stderr, "not a directory")
	})

	t.Run("entry cannot be replaced", func(t *testing.T) {
		// No mount needed: a directory where the entry belongs makes the
		// final rename fail, like any write error after the temp file.
		t.Parallel()
		e := newHelperEnv(t)
		entry := e.entryPath(e.srv.TokenURL())
		if err := os.MkdirAll(filepath.Join(entry, "blocker"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(e.cacheDir, 0o700); err != nil {
			t.Fatal(err)
		}
		r := e.requireDegraded()
		requireContains(t, "stderr", r.stderr, "could not store the token")
		if left := tempLeftovers(t, e.cacheDir); len(left) != 0 {
			t.Errorf("a failed write left temp files: %v", left)
		}
	})

	t.Run("XDG_CACHE_HOME is a file", func(t *testing.T) {
		t.Parallel()
		e := newHelperEnv(t)
		file := filepath.Join(e.root, "xdg-cache-file")
		if err := os.WriteFile(file, []byte("not a dir"), 0o600); err != nil {
			t.Fatal(err)
		}
		e.vars[envCacheDir] = ""
		e.vars["XDG_CACHE_HOME"] = file
		r := e.requireDegraded()
		requireContains(t, "stderr", r.stderr, file, "not a directory")
	})

	t.Run("HOME unset", func(t *testing.T) {
		// HOME and the XDG variables truly absent, the cache dir not
		// named: the helper picks a fallback by itself (see
		// credhelper/dirs.go). Only success is required; whatever the
		// fallback, the test removes its own entry from it afterwards.
		t.Parallel()
		e := newHelperEnv(t)
		env := e.environWithout("HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_RUNTIME_DIR", envCacheDir)
		fallbacks := []string{credhelper.SystemCacheDir, filepath.Join("/", ".cache", credhelper.Name)}
		if u, err := user.Current(); err == nil && u.HomeDir != "" {
			fallbacks = append(fallbacks, filepath.Join(u.HomeDir, ".cache", credhelper.Name))
		}
		existed := map[string]bool{}
		for _, d := range fallbacks {
			for _, dd := range []string{d, filepath.Dir(d)} {
				_, err := os.Stat(dd)
				existed[dd] = err == nil
			}
		}
		name := cache.FileName(e.identity(e.srv.TokenURL()))
		t.Cleanup(func() {
			for _, d := range fallbacks {
				_ = os.Remove(filepath.Join(d, name+".json"))
				_ = os.Remove(filepath.Join(d, name+".lock"))
				for _, dd := range []string{d, filepath.Dir(d)} {
					if !existed[dd] {
						_ = os.Remove(dd) // only if empty
					}
				}
			}
		})
		r := e.runWith(env, defaultRegistry, "get")
		e.checkHygiene(r)
		if r.code != 0 {
			t.Fatalf("get without HOME failed:\n%s", r)
		}
		c := e.parseCreds(r)
		e.checkSuccessStdout(r, c)
		e.requireValid("get without HOME", c)
		where := "no fallback dir checked"
		for _, d := range fallbacks {
			if _, err := os.Stat(filepath.Join(d, name+".json")); err == nil {
				where = d
			}
		}
		t.Logf("without HOME: cache=%s, entry in %s", cacheResult(r), where)
	})

	for _, tc := range []struct {
		name string
		data func(e *helperEnv, tok string) []byte
		note string
	}{
		{"entry from a future version", func(e *helperEnv, tok string) []byte {
			now := time.Now()
			return []byte(fmt.Sprintf(`{"version":99,"access_token":%q,"issued_at":%q,"expiry":%q,"refresh":{"kind":"new"}}`,
				tok, now.UTC().Format(time.RFC3339), now.Add(time.Hour).UTC().Format(time.RFC3339)))
		}, "format version 99"},
		{"truncated entry", func(e *helperEnv, tok string) []byte {
			now := time.Now()
			full := fmt.Sprintf(`{"version":1,"access_token":%q,"issued_at":%q,"expiry":%q}`,
				tok, now.UTC().Format(time.RFC3339), now.Add(time.Hour).UTC().Format(time.RFC3339))
			return []byte(full[:len(full)-20])
		}, "corrupt entry"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newHelperEnv(t)
			entry := e.entryPath(e.srv.TokenURL())
			foreign := "foreign-" + randomHex(t)
			e.secrets.add(foreign)
			if err := os.MkdirAll(e.cacheDir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(entry, tc.data(e, foreign), 0o600); err != nil {
				t.Fatal(err)
			}
			r, c := e.getOK(defaultRegistry)
			e.requireValid("get over "+tc.name, c)
			if c.Secret == foreign {
				t.Fatal("the get returned the token of an entry it cannot read")
			}
			requireContains(t, "stderr", r.stderr, "ignoring unreadable entry", tc.note)
			e.requireRequests("get over "+tc.name, 1)
			if got := e.readEntry(entry); got.AccessToken != c.Secret {
				t.Error("the entry was not replaced by the fetched token")
			}
		})
	}
}

// TestHostileHostsTouchNothing: hosts that are not ours, including names
// that merely contain ours, get not-found without a token request and
// without opening the key. The key path does not exist, so any attempt to
// read the key would turn not-found into an error (the control proves it).
func TestHostileHostsTouchNothing(t *testing.T) {
	t.Parallel()
	e := newHelperEnv(t)
	missingKey := filepath.Join(e.root, "keys", "no-such-key.json")
	e.vars[envKeyPath] = missingKey
	hosts := append(append([]string(nil), foreignHosts...),
		// Not in foreignHosts of e2e_test.go:
		"evil.com/registry.onstackit.cloud",
		"https://registry.onstackit.cloud@evil.com/v2/",
		"registry.onstackit.cloud:443@evil.com",
		"REGISTRY.ONSTACKIT.CLOUD.evil.com",
	)
	for _, host := range hosts {
		r := e.run(host, "get")
		if r.code != 1 || r.stdout != notFoundMessage+"\n" {
			t.Errorf("get %q: want exit 1 and exactly %q on stdout, got\n%s", host, notFoundMessage, r)
		}
		if strings.Contains(r.stderr, missingKey) {
			t.Errorf("get %q looked for the key:\n%s", host, r.stderr)
		}
	}
	e.requireRequests(fmt.Sprintf("%d gets for foreign hosts", len(hosts)), 0)
	if _, err := os.Stat(e.cacheDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("gets for foreign hosts touched the cache dir (%v)", err)
	}

	// Control: for our own host the missing key is an error, so the
	// not-found answers above never read it.
	r := e.getErr(defaultRegistry)
	requireContains(t, "the error", r.stdout, missingKey, "file not found")
	e.requireRequests("a get with a missing key", 0)
}

// TestAssertionNeverInURL: every token request, retried ones included, is a
// POST to the token path with the form in the body and an empty query; the
// assertion appears in neither the URL nor a header.
func TestAssertionNeverInURL(t *testing.T) {
	t.Parallel()
	e := newHelperEnv(t)
	log := watchEndpoint(e, answerStatus(http.StatusBadGateway, "0", `{"error":"bad gateway"}`))
	_, c := e.getOK(defaultRegistry)
	e.requireValid("get", c)
	reqs := log.requests()
	if len(reqs) != 2 {
		t.Fatalf("token endpoint saw %d requests, want 2 (a 502 and its retry)", len(reqs))
	}
	for i, r := range reqs {
		if r.method != http.MethodPost || r.path != "/token" {
			t.Errorf("request %d: %s %s, want POST /token", i, r.method, r.path)
		}
		if r.query != "" {
			t.Errorf("request %d has a query string (%d bytes); the assertion belongs in the body", i, len(r.query))
		}
		if r.contentType != "application/x-www-form-urlencoded" {
			t.Errorf("request %d: Content-Type %q", i, r.contentType)
		}
		if !r.assertionInBody || r.grantType != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
			t.Errorf("request %d: the POST body lacks the assertion or the jwt-bearer grant_type", i)
		}
		if r.assertionOutsideBody {
			t.Errorf("request %d carries the assertion in its URL or a header", i)
		}
		if r.kid != e.acct.Kid {
			t.Errorf("request %d: assertion kid %q, want %q", i, r.kid, e.acct.Kid)
		}
	}
}
