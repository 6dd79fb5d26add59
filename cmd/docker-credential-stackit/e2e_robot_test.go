package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker-credential-helpers/client"
)

// TestRobotAccountFileThroughTheBinary: a Harbor robot export named in the
// helper config logs in byte for byte, with its $, and its secret stays in
// its file.
func TestRobotAccountFileThroughTheBinary(t *testing.T) {
	e := newHelperEnv(t)
	e.secrets.add(robotSecret)
	reg := newRobotRegistry(t, robotName, robotSecret)
	robotFile := filepath.Join(e.root, "keys", "robot.json")
	writeRobot := func(expiresAt int64) {
		writeJSON(t, robotFile, map[string]any{
			"creation_time": "2021-08-04T13:58:45.934Z", "id": 1, "name": robotName, "secret": robotSecret, "expires_at": expiresAt,
		}, 0o600)
	}
	writeRobot(-1)
	if err := os.MkdirAll(filepath.Dir(e.config), 0o700); err != nil {
		t.Fatal(err)
	}
	writeJSON(t, e.config, map[string]any{"registries": map[string]any{reg.Host: map[string]string{"robotAccountPath": robotFile}}}, 0o600)

	// The raw protocol output holds the name literally.
	r := e.run(reg.Host, "get")
	want := `{"ServerURL":"` + reg.Host + `","Username":"robot$e2e+ci","Secret":"` + robotSecret + `"}` + "\n"
	if r.code != 0 || r.stdout != want {
		t.Fatalf("get for the robot host: want exactly %q, got\n%s", want, r)
	}

	vars := e.varMap()
	prog := client.NewShellProgramFuncWithEnv(helperBin, &vars)
	stop := captureStderr(t)
	c, err := client.Get(prog, reg.Host)
	if err != nil {
		t.Fatalf("get through the client: %v", err)
	}
	if c.Username != robotName || c.Secret != robotSecret {
		t.Fatalf("get through the client: user %q; want %q and the file's secret", c.Username, robotName)
	}
	list, err := client.List(prog)
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if list[reg.Host] != robotName {
		t.Errorf("list[%s] = %q, want %q", reg.Host, list[reg.Host], robotName)
	}
	e.checkStderr("the helper through the client", stop())

	e.useDockerConfig(t, reg.Host)
	stop = captureStderr(t)
	err = pushAndPull(t, reg.Host, "legacy/app:v1")
	stderr := stop()
	e.checkStderr("the helper under go-containerregistry", stderr)
	if err != nil {
		t.Fatalf("push and pull with the robot file: %v\nhelper stderr:\n%s", err, stderr)
	}
	if reg.logins.Load() < 2 || reg.rejected.Load() != 0 {
		t.Errorf("registry granted %d robot logins and refused %d; want one per transport and no refusal", reg.logins.Load(), reg.rejected.Load())
	}
	e.requireRequests("robot logins need no STACKIT token", 0)

	// Close to expiry: a warning, at most once a day.
	writeRobot(time.Now().Add(3 * 24 * time.Hour).Unix())
	r = e.run(reg.Host, "get")
	if r.code != 0 || !strings.Contains(r.stderr, "warning: robot account robot$e2e+ci ("+robotFile+") expires on ") {
		t.Fatalf("get of a robot expiring in 3 days: want success and a warning, got\n%s", r)
	}
	if r = e.run(reg.Host, "get"); r.code != 0 || strings.Contains(r.stderr, "warning: robot account") {
		t.Fatalf("second get the same day: want success without a warning, got\n%s", r)
	}

	// Expired: one line naming the robot and the date.
	writeRobot(time.Date(2024, 2, 29, 12, 0, 0, 0, time.UTC).Unix())
	r = e.run(reg.Host, "get")
	if r.code != 1 || !strings.Contains(r.stdout, "robot account robot$e2e+ci ("+robotFile+") expired on 2024-02-29T12:00:00Z; refresh its secret in Harbor") {
		t.Fatalf("get of an expired robot: want exit 1 naming robot and date, got\n%s", r)
	}

	// The secret lives only in the robot file.
	for _, dir := range []string{e.cacheDir, filepath.Dir(e.config), e.docker, e.home} {
		_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return nil
			}
			if data, err := os.ReadFile(p); err == nil && strings.Contains(string(data), robotSecret) {
				t.Errorf("the robot secret was copied into %s", p)
			}
			return nil
		})
	}
}
