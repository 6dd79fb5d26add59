//go:build unix

package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// A config path that is a device or a FIFO fails at once with one line,
// for our registry and for a foreign one alike: the config is read for
// every get. The hang guard is what would catch a blocking read.
func TestE2EConfigThatIsADeviceOrFIFOFailsInOneLine(t *testing.T) {
	e := newHelperEnv(t)
	fifo := filepath.Join(e.root, "config.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{"/dev/zero": "is a device", fifo: "is a named pipe (FIFO)"} {
		e.vars[envConfig] = path
		for _, host := range []string{defaultRegistry, "cr.example.org"} {
			r := e.getErr(host)
			requireContains(t, "get "+host, r.stdout, "read helper config "+path+": "+want)
		}
	}
}

func TestE2EConfigOthersCanWriteIsRefusedWithTheFix(t *testing.T) {
	e := newHelperEnv(t)
	if err := os.MkdirAll(filepath.Dir(e.config), 0o700); err != nil {
		t.Fatal(err)
	}
	writeJSON(t, e.config, map[string]any{"registries": map[string]any{"cr.example.org": map[string]any{}}}, 0o666)
	r := e.getErr(defaultRegistry)
	requireContains(t, "get", r.stdout, "helper config "+e.config+" is writable by group or others (mode 0666)", "run: chmod go-w "+e.config)

	d := e.runWith(e.environ(), "", "doctor")
	requireContains(t, "doctor", d.stdout, "writable by group or others", "chmod go-w "+e.config)

	if err := os.Chmod(e.config, 0o644); err != nil {
		t.Fatal(err)
	}
	e.requireValid("get with a config others can only read", e.get(defaultRegistry))
}

func TestE2ELoginsOthersCanWriteAreRefusedAndDoctorSaysSo(t *testing.T) {
	e := newHelperEnv(t)
	if r := e.run(`{"ServerURL":"`+defaultRegistry+`","Username":"robot$proj+ci","Secret":"stored-robot-secret"}`, "store"); r.code != 0 {
		t.Fatalf("store:\n%s", r)
	}
	e.secrets.add("stored-robot-secret")
	logins := filepath.Join(filepath.Dir(e.config), "logins.json")
	if err := os.Chmod(logins, 0o620); err != nil {
		t.Fatal(err)
	}
	r := e.getErr(defaultRegistry)
	requireContains(t, "get", r.stdout, "stored logins "+logins+" is writable by group or others (mode 0620)", "chmod go-w "+logins)
	d := e.runWith(e.environ(), "", "doctor")
	requireContains(t, "doctor", d.stdout, "stored logins "+logins+" is writable by group or others", "chmod go-w "+logins)
	e.checkStderr("doctor", d.stdout+d.stderr)
}

func TestE2EPublicRegistryIsRefusedUnlessAllowed(t *testing.T) {
	e := newHelperEnv(t)
	e.vars[envRegistries] = "ghcr.io"
	log := watchEndpoint(e)
	r := e.run("ghcr.io", "get")
	if r.code != 1 || strings.TrimSpace(r.stdout) != notFoundMessage {
		t.Fatalf("get ghcr.io: want not found\n%s", r)
	}
	if n := strings.Count(r.stderr, "is a public registry"); n != 1 {
		t.Errorf("want one warning about the public registry, got %d:\n%s", n, r.stderr)
	}
	requireContains(t, "stderr", r.stderr, `"allowPublicRegistry": true in registries[ghcr.io] of `+e.config)
	if got := len(log.requests()); got != 0 {
		t.Errorf("%d token requests for a refused host", got)
	}

	delete(e.vars, envRegistries)
	c := e.runWith(e.environ(), "", "configure-docker", "--registry", "ghcr.io")
	if c.code != 1 || strings.Count(c.stderr, "\n") != 1 {
		t.Fatalf("configure-docker --registry ghcr.io: want a one-line refusal\n%s", c)
	}
	requireContains(t, "configure-docker", c.stderr, "public registry", "STACKIT tokens would go to it", `"allowPublicRegistry": true`)
	if _, err := os.Stat(filepath.Join(e.docker, "config.json")); err == nil {
		t.Error("configure-docker wrote Docker's config for a refused registry")
	}
	if data, err := os.ReadFile(e.config); err != nil || strings.Contains(string(data), "ghcr.io") {
		t.Errorf("configure-docker wrote the helper config for a refused registry: %s %v", data, err)
	}

	// The override lets configure-docker through.
	if err := os.MkdirAll(filepath.Dir(e.config), 0o700); err != nil {
		t.Fatal(err)
	}
	writeJSON(t, e.config, map[string]any{"registries": map[string]any{"ghcr.io": map[string]any{"allowPublicRegistry": true}}}, 0o600)
	if c := e.runWith(e.environ(), "", "configure-docker", "--registry", "ghcr.io"); c.code != 0 {
		t.Fatalf("configure-docker with allowPublicRegistry:\n%s", c)
	}
}
