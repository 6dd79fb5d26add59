package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestCLIProtocolErrorsAlsoReachStderr: Docker swallows what a helper
// writes to stdout, so a real error is also one prefixed line on stderr,
// while stdout keeps the protocol text and not-found stays quiet.
func TestCLIProtocolErrorsAlsoReachStderr(t *testing.T) {
	t.Parallel()
	e := newHelperEnv(t)
	e.vars[envDebug] = ""
	e.srv.DeleteKey(e.acct)
	r := e.getErr(defaultRegistry)
	line := "docker-credential-stackit: get: " + r.stdout
	if !strings.Contains(r.stderr, line) {
		t.Errorf("stderr does not repeat the error %q:\n%s", line, r.stderr)
	}

	r = e.run("ghcr.io", "get")
	if r.code != 1 || strings.TrimSpace(r.stdout) != notFoundMessage || r.stderr != "" {
		t.Errorf("not-found for a foreign host must stay off stderr:\n%s", r)
	}

	r = e.run(defaultRegistry, "get", "extra")
	want := `unexpected argument "extra"; run docker-credential-stackit get --help`
	if r.code != 1 || r.stdout != want+"\n" || r.stderr != "docker-credential-stackit: get: "+want+"\n" {
		t.Errorf("get with an extra argument:\n%s", r)
	}

	r = e.run("", "erase")
	if r.code != 1 || !strings.Contains(r.stderr, "docker-credential-stackit: erase: no credentials server URL: pass the registry host on stdin") {
		t.Errorf("erase with empty stdin gives no hint:\n%s", r)
	}
}

// TestCLIHelpDoesNotRunTheCommand: list -h and get --help print the usage
// and touch nothing.
func TestCLIHelpDoesNotRunTheCommand(t *testing.T) {
	t.Parallel()
	e := newHelperEnv(t)
	for _, args := range [][]string{{"list", "-h"}, {"get", "--help"}, {"token", "--help"}} {
		r := e.run(defaultRegistry, args...)
		if r.code != 0 || r.stdout != "" || !strings.HasPrefix(r.stderr, "Usage: docker-credential-stackit "+args[0]) {
			t.Errorf("%v:\n%s", args, r)
		}
		if strings.Contains(r.stderr, "\n  -cache-dir") {
			t.Errorf("%v shows a flag with one dash:\n%s", args, r.stderr)
		}
	}
	e.requireRequests("help", 0)
}

// TestCLIKubeletMalformedRegistryGetsNoCredentials: the registry part of
// an image must be a reference domain before it becomes an auth key.
func TestCLIKubeletMalformedRegistryGetsNoCredentials(t *testing.T) {
	t.Parallel()
	e := newHelperEnv(t)
	resp := decodeKubeletResponse(t, e.run(kubeletRequest("registry.onstackit.cloud#.evil.com/p/app:1"), "kubelet"))
	if len(resp.Auth) != 0 || resp.CacheDuration != "0s" {
		t.Errorf("malformed registry got %+v", resp)
	}
	e.requireRequests("malformed registry", 0)
	resp = decodeKubeletResponse(t, e.run(kubeletRequest("registry.onstackit.cloud/p/app:1"), "kubelet"))
	if _, ok := resp.Auth[defaultRegistry]; !ok || len(resp.Auth) != 1 {
		t.Errorf("a valid image got %+v", resp)
	}
}

// TestCLIConfigureDockerRemoveUndoesConfigure: configure-docker, then
// --remove, leaves the rest of config.json as it was.
func TestCLIConfigureDockerRemoveUndoesConfigure(t *testing.T) {
	t.Parallel()
	e := newHelperEnv(t)
	path := filepath.Join(e.docker, "config.json")
	writeJSON(t, path, map[string]any{"auths": map[string]any{}, "credHelpers": map[string]string{"gcr.io": "gcloud"}}, 0o644)
	if r := e.run("", "configure-docker"); r.code != 0 {
		t.Fatalf("configure-docker:\n%s", r)
	}
	r := e.run("", "configure-docker", "--remove")
	if r.code != 0 || r.stderr != "docker-credential-stackit: "+path+" no longer uses docker-credential-stackit for registry.onstackit.cloud\n" {
		t.Fatalf("configure-docker --remove:\n%s", r)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	helpers, _ := doc["credHelpers"].(map[string]any)
	if len(helpers) != 1 || helpers["gcr.io"] != "gcloud" || doc["auths"] == nil {
		t.Errorf("config.json after --remove: %s", data)
	}
	if fi, err := os.Stat(path); err != nil {
		t.Error(err)
	} else if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o644 { // Windows has no modes to keep
		t.Errorf("mode not kept: %v", fi.Mode())
	}
}
