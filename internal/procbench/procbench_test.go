//go:build procbench

package procbench

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker-credential-stackit/docker-credential-stackit/tokensource/tokensourcetest"
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

type series []time.Duration

func (s series) median() time.Duration {
	w := slices.Clone(s)
	slices.Sort(w)
	return w[len(w)/2]
}

// peakRSS runs bin n times through the maxrss launcher and returns the
// median of the children's peak RSS in KiB (see testdata/bench/maxrss for
// why the launcher is needed).
func peakRSS(t *testing.T, launcher string, n int, bin string, args, env []string, stdin string) int64 {
	t.Helper()
	var rss []int64
	for range n {
		cmd := exec.Command(launcher, append([]string{bin}, args...)...)
		cmd.Env = env
		cmd.Stdin = strings.NewReader(stdin)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s: %v\n%s", filepath.Base(bin), err, stderr.String())
		}
		lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
		v, err := strconv.ParseInt(strings.TrimPrefix(lines[len(lines)-1], "maxrss "), 10, 64)
		if err != nil {
			t.Fatalf("maxrss output %q: %v", stderr.String(), err)
		}
		rss = append(rss, v)
	}
	slices.Sort(rss)
	return rss[len(rss)/2]
}

func build(t *testing.T, dir, name, pkg string) string {
	t.Helper()
	out := filepath.Join(dir, name)
	// Static and stripped, as releases and make build ship: a cgo build
	// is dynamically linked, and ld.so alone costs ~0.7 ms per run.
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.Dir = repoRoot(t)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", pkg, err, b)
	}
	return out
}

func repoRoot(t *testing.T) string {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(filepath.Dir(wd))
}

func runOnce(t *testing.T, bin string, args []string, env []string, stdin string) time.Duration {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if err != nil {
		t.Fatalf("%s %v: %v\nstdout: %s\nstderr: %s", filepath.Base(bin), args, err, stdout.String(), stderr.String())
	}
	return wall
}

// storm starts n processes at once and returns the wall time until the
// last one exits.
func storm(t *testing.T, n int, bin string, args []string, env []string, stdin string) time.Duration {
	t.Helper()
	cmds := make([]*exec.Cmd, n)
	for i := range cmds {
		cmds[i] = exec.Command(bin, args...)
		cmds[i].Env = env
		cmds[i].Stdin = strings.NewReader(stdin)
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	start := time.Now()
	for i, c := range cmds {
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = c.Wait() }()
	}
	wg.Wait()
	wall := time.Since(start)
	for _, err := range errs {
		if err != nil {
			t.Fatalf("storm process failed: %v", err)
		}
	}
	return wall
}

func TestProcessBench(t *testing.T) {
	warmRuns := envInt("BENCH_WARM_RUNS", 300)
	coldRuns := envInt("BENCH_COLD_RUNS", 40)
	storms := envInt("BENCH_STORMS", 10)
	const stormSize = 64

	bin := t.TempDir()
	helper := build(t, bin, "docker-credential-stackit", "./cmd/docker-credential-stackit")
	bare := build(t, bin, "floor-bare", "./testdata/bench/floor-bare")
	linked := build(t, bin, "floor-linked", "./testdata/bench/floor-linked")
	httpsFloor := build(t, bin, "floor-https", "./testdata/bench/floor-https")
	launcher := build(t, bin, "maxrss", "./testdata/bench/maxrss")

	// A loopback HTTPS token endpoint whose test CA is added to the system
	// roots, so both the helper and the floor load ~all Debian roots.
	fake := tokensourcetest.NewServer(t)
	tlsSrv := httptest.NewUnstartedServer(fake.Config.Handler)
	tlsSrv.StartTLS()
	t.Cleanup(tlsSrv.Close)
	work := t.TempDir()
	systemRoots, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt")
	if err != nil {
		t.Skipf("no system CA bundle to benchmark against: %v", err)
	}
	bundle := filepath.Join(work, "roots.pem")
	testCA := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsSrv.Certificate().Raw})
	if err := os.WriteFile(bundle, append(systemRoots, testCA...), 0o600); err != nil {
		t.Fatal(err)
	}
	acct := fake.NewAccount(t, "bench-sa@sa.stackit.cloud")
	keyPath := acct.WriteKeyFile(t, work, true)
	tokenURL := tlsSrv.URL + "/token"

	baseEnv := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + work,
		"SSL_CERT_FILE=" + bundle,
		"STACKIT_SERVICE_ACCOUNT_KEY_PATH=" + keyPath,
		"STACKIT_TOKEN_BASEURL=" + tokenURL,
		"FLOOR_FILE=" + keyPath,
		"FLOOR_URL=" + tokenURL,
	}
	withCache := func(dir string) []string {
		return append(slices.Clone(baseEnv), "DOCKER_CREDENTIAL_STACKIT_CACHE_DIR="+dir)
	}
	const host = "registry.onstackit.cloud"
	get := []string{"get"}

	// Warm: one get fills the cache, then the three programs take turns so
	// that machine noise hits them alike.
	warmEnv := withCache(filepath.Join(work, "warm-cache"))
	runOnce(t, helper, get, warmEnv, host)
	var sBare, sLinked, sWarm series
	for range 20 {
		runOnce(t, bare, nil, warmEnv, host)
		runOnce(t, helper, get, warmEnv, host)
	}
	for range warmRuns {
		sBare = append(sBare, runOnce(t, bare, nil, warmEnv, host))
		sLinked = append(sLinked, runOnce(t, linked, nil, warmEnv, host))
		sWarm = append(sWarm, runOnce(t, helper, get, warmEnv, host))
	}

	// The same warm get through the STACKIT CLI's login in its file (no
	// STACKIT_* variable; no D-Bus session, so no keyring), against the
	// key path: budget 1.3×.
	cliEnv := cliLoginEnv(t, work, acct, tokenURL, bundle, filepath.Join(work, "cli-cache"))
	runOnce(t, helper, get, cliEnv, host)
	var sCLI, sKey series
	for range warmRuns / 2 {
		sKey = append(sKey, runOnce(t, helper, get, warmEnv, host))
		sCLI = append(sCLI, runOnce(t, helper, get, cliEnv, host))
	}

	rssRuns := envInt("BENCH_RSS_RUNS", 31)
	rssLinked := peakRSS(t, launcher, rssRuns, linked, nil, warmEnv, host)
	rssWarm := peakRSS(t, launcher, rssRuns, helper, get, warmEnv, host)

	// Cold: an empty cache every run, against one HTTPS POST.
	var sCold, sHTTPS series
	for i := range coldRuns {
		sHTTPS = append(sHTTPS, runOnce(t, httpsFloor, nil, baseEnv, ""))
		sCold = append(sCold, runOnce(t, helper, get, withCache(filepath.Join(work, "cold", strconv.Itoa(i))), host))
	}

	// Storm: 64 processes at once on a cold cache; exactly one request each time.
	var stormHelper, stormBare []time.Duration
	for i := range storms {
		stormBare = append(stormBare, storm(t, stormSize, bare, nil, warmEnv, host))
		before := fake.Requests()
		stormHelper = append(stormHelper, storm(t, stormSize, helper, get, withCache(filepath.Join(work, "storm", strconv.Itoa(i))), host))
		if got := fake.Requests() - before; got != 1 {
			t.Errorf("storm %d: %d token requests, want exactly 1", i, got)
		}
	}
	slices.Sort(stormHelper)
	slices.Sort(stormBare)

	fi, err := os.Stat(helper)
	if err != nil {
		t.Fatal(err)
	}
	rssBare := peakRSS(t, launcher, rssRuns, bare, nil, warmEnv, host)
	ratio := func(a, b time.Duration) string { return fmt.Sprintf("%.2f×", float64(a)/float64(b)) }
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }
	mid := func(s []time.Duration) time.Duration { return s[len(s)/2] }
	var b strings.Builder
	fmt.Fprintf(&b, "\n%s/%s, %d CPUs, %s, every program built static (CGO_ENABLED=0 -trimpath -s -w); warm n=%d, cold n=%d, storms n=%d×%d\n\n",
		runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version(), warmRuns, coldRuns, storms, stormSize)
	fmt.Fprintf(&b, "Floors: bare (stdin + one JSON file + print) %s, %d KiB; linked (the same, linking net/http and crypto) %s, %d KiB; HTTPS (one POST) %s.\n\n",
		ms(sBare.median()), rssBare, ms(sLinked.median()), rssLinked, ms(sHTTPS.median()))
	fmt.Fprintf(&b, "| measurement | helper | floor | ratio | budget |\n|---|---|---|---|---|\n")
	fmt.Fprintf(&b, "| warm get, median wall | %s | %s (bare floor) | %s | ≤ 1.25× |\n", ms(sWarm.median()), ms(sBare.median()), ratio(sWarm.median(), sBare.median()))
	fmt.Fprintf(&b, "| warm get, median wall | %s | %s (linked floor) | %s | (for reference) |\n", ms(sWarm.median()), ms(sLinked.median()), ratio(sWarm.median(), sLinked.median()))
	fmt.Fprintf(&b, "| warm get via the STACKIT CLI's file login | %s | %s (key path) | %s | ≤ 1.3× |\n", ms(sCLI.median()), ms(sKey.median()), ratio(sCLI.median(), sKey.median()))
	fmt.Fprintf(&b, "| warm get, peak RSS (median of %d) | %d KiB | %d KiB (linked floor) | %.2f× | ≤ 1.2× |\n", rssRuns, rssWarm, rssLinked, float64(rssWarm)/float64(rssLinked))
	fmt.Fprintf(&b, "| cold get, median wall | %s | %s (one HTTPS POST) | %s | ≤ 1.1× |\n", ms(sCold.median()), ms(sHTTPS.median()), ratio(sCold.median(), sHTTPS.median()))
	fmt.Fprintf(&b, "| storm of %d cold gets, median wall | %s | %s (%d bare floors) | %s | ≤ 2.0× |\n", stormSize, ms(mid(stormHelper)), ms(mid(stormBare)), stormSize, ratio(mid(stormHelper), mid(stormBare)))
	fmt.Fprintf(&b, "| token requests per storm | 1 (every storm) | | | exactly 1 |\n")
	fmt.Fprintf(&b, "| binary size (static, -trimpath -s -w) | %.2f MiB | | | ≤ 9 MiB |\n", float64(fi.Size())/(1<<20))
	fmt.Print(b.String())
}

// cliLoginEnv is an environment where the helper's only credentials are
// the STACKIT CLI's login in its file storage, as `stackit auth
// activate-service-account` leaves it without a keyring: base64 of a JSON
// object of the CLI's fields, in $XDG_CONFIG_HOME/stackit.
func cliLoginEnv(t *testing.T, work string, acct *tokensourcetest.Account, tokenURL, sslCertFile, cacheDir string) []string {
	t.Helper()
	home := filepath.Join(work, "cli-home")
	config := filepath.Join(home, ".config")
	dir := filepath.Join(config, "stackit")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(map[string]string{
		"auth_flow_type":          "sa_key",
		"service_account_key":     string(acct.KeyJSON(false)),
		"private_key":             string(acct.PrivateKeyPEM),
		"token_custom_endpoint":   tokenURL,
		"service_account_email":   acct.Email,
		"access_token":            "the-cli-access-token-never-used",
		"session_expires_at_unix": strconv.FormatInt(time.Now().Add(12*time.Hour).Unix(), 10),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cli-auth-storage.txt"), []byte(base64.StdEncoding.EncodeToString(raw)), 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"XDG_CONFIG_HOME=" + config,
		"SSL_CERT_FILE=" + sslCertFile,
		"DOCKER_CREDENTIAL_STACKIT_CACHE_DIR=" + cacheDir,
	}
}
