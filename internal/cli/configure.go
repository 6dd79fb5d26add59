package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/docker-credential-stackit/docker-credential-stackit/credhelper"
	"github.com/docker-credential-stackit/docker-credential-stackit/internal/atomicfile"
)

type hostList []string

func (l *hostList) String() string { return strings.Join(*l, ",") }
func (l *hostList) Set(v string) error {
	host, err := credhelper.NormalizeHost(v)
	if err != nil {
		return fmt.Errorf("%q is not a registry host", v)
	}
	*l = append(*l, host)
	return nil
}

// credHelpersFile is a JSON file whose credHelpers map names credential
// helpers per registry host: Docker's config.json, or the containers auth
// file that podman, buildah and skopeo read. Both get the same treatment.
type credHelpersFile struct {
	command string
	// locate finds the file from the (injected) environment.
	locate func(env func(string) string) (string, error)
	// shadowed optionally warns about files the tool reads first.
	shadowed func(env func(string) string, hosts []string, stderr io.Writer)
}

var (
	dockerConfigFile = credHelpersFile{command: "configure-docker", locate: dockerConfigPath}
	containersAuth   = credHelpersFile{command: "configure-podman", locate: containersAuthPath, shadowed: warnRuntimeAuthFile}
)

// configure-docker points Docker's credHelpers for the given registries at
// this helper; configure-podman does the same for the containers auth file
// ($REGISTRY_AUTH_FILE, else $XDG_CONFIG_HOME/containers/auth.json), which
// podman, buildah and skopeo consult before Docker's config. Both keep every
// other key and the file's mode, write atomically, and change nothing when
// run again. Registries named with --registry are also added to the
// helper's config so that they are served.
func configureCredHelpers(target credHelpersFile, args []string, env func(string) string, h *credhelper.Helper, stderr io.Writer) error {
	fs := flag.NewFlagSet(target.command, flag.ContinueOnError)
	// The flag package's own error report spans lines; Main prints ours as
	// one. Usage is printed only when asked for.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	var hosts hostList
	fs.Var(&hosts, "registry", "registry `HOST` to configure (repeatable; default: every served registry)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "usage: %s %s [--registry HOST]...\n", Name, target.command)
			fs.SetOutput(stderr)
			fs.PrintDefaults()
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q; use --registry HOST", fs.Arg(0))
	}
	// STACKIT tokens must not go to a public registry by accident.
	if err := h.CheckPublicRegistries(hosts); err != nil {
		return err
	}

	if len(hosts) == 0 {
		served, err := h.ServedHosts()
		if err != nil {
			return err
		}
		hosts = served
	}

	path, err := target.locate(env)
	if err != nil {
		return err
	}
	changed, err := mergeCredHelpers(path, hosts, stderr)
	if err != nil {
		return err
	}
	if changed {
		fmt.Fprintf(stderr, "%s: %s now uses %s for %s\n", Name, path, Name, strings.Join(hosts, ", "))
	} else {
		fmt.Fprintf(stderr, "%s: %s already uses %s for %s; nothing changed\n", Name, path, Name, strings.Join(hosts, ", "))
	}
	if target.shadowed != nil {
		target.shadowed(env, hosts, stderr)
	}

	// Explicitly named registries are made permanent in the helper config.
	// A bare run only configures Docker for what is already served, so
	// hosts that come from DOCKER_CREDENTIAL_STACKIT_REGISTRIES stay tied to
	// that variable.
	if fs.NFlag() == 0 {
		return nil
	}
	path, added, err := h.ServeRegistries(hosts)
	if err != nil {
		return err
	}
	if added {
		fmt.Fprintf(stderr, "%s: added the registries to %s so that the helper serves them\n", Name, path)
	}
	return nil
}

func dockerConfigPath(env func(string) string) (string, error) {
	if dir := env("DOCKER_CONFIG"); dir != "" {
		return filepath.Join(dir, "config.json"), nil
	}
	home := env("HOME")
	if home == "" {
		return "", errors.New("HOME is not set; set DOCKER_CONFIG to the directory of Docker's config.json")
	}
	return filepath.Join(home, ".docker", "config.json"), nil
}

// containersAuthPath is the file podman login would use if it persisted
// across reboots: REGISTRY_AUTH_FILE, else $XDG_CONFIG_HOME (default
// ~/.config)/containers/auth.json. The default of podman login itself,
// ${XDG_RUNTIME_DIR}/containers/auth.json, is a tmpfs and is wiped at logout.
func containersAuthPath(env func(string) string) (string, error) {
	if p := env("REGISTRY_AUTH_FILE"); p != "" {
		return p, nil
	}
	if dir := env("XDG_CONFIG_HOME"); dir != "" {
		return filepath.Join(dir, "containers", "auth.json"), nil
	}
	if home := env("HOME"); home != "" {
		return filepath.Join(home, ".config", "containers", "auth.json"), nil
	}
	return "", errors.New("REGISTRY_AUTH_FILE, XDG_CONFIG_HOME and HOME are all unset; set REGISTRY_AUTH_FILE to the containers auth file, e.g. /etc/containers/auth.json")
}

// warnRuntimeAuthFile points out entries for our hosts in the runtime auth
// file of an earlier podman login: containers/image reads that file first,
// so its entries would win over the credHelpers just written.
func warnRuntimeAuthFile(env func(string) string, hosts []string, stderr io.Writer) {
	dir := env("XDG_RUNTIME_DIR")
	if dir == "" || env("REGISTRY_AUTH_FILE") != "" {
		return
	}
	path := filepath.Join(dir, "containers", "auth.json")
	data, err := os.ReadFile(path)
	if err != nil {
		return
	}
	var doc struct {
		Auths       map[string]json.RawMessage `json:"auths"`
		CredHelpers map[string]string          `json:"credHelpers"`
	}
	if json.Unmarshal(data, &doc) != nil {
		return
	}
	for _, h := range hosts {
		_, auth := doc.Auths[h]
		helper, ok := doc.CredHelpers[h]
		if auth || (ok && helper != HelperName) {
			fmt.Fprintf(stderr, "%s: warning: %s has an entry for %s from an earlier podman login, and podman reads that file first; run podman logout %s\n", Name, path, h, h)
		}
	}
}

// mergeCredHelpers sets credHelpers[host] = "stackit" for each host and
// reports whether the file changed.
func mergeCredHelpers(path string, hosts []string, stderr io.Writer) (bool, error) {
	// Write through symlinks (dotfile managers link config.json) instead of
	// replacing the link with a file.
	if resolved, err := filepath.EvalSymlinks(path); err == nil {
		path = resolved
	}
	mode := os.FileMode(0o600)
	doc := map[string]json.RawMessage{}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return false, fmt.Errorf("create %s: %w", filepath.Dir(path), err)
		}
	case err != nil:
		return false, fmt.Errorf("read %s: %w", path, err)
	default:
		if fi, err := os.Stat(path); err == nil {
			mode = fi.Mode().Perm()
		}
		if len(bytes.TrimSpace(data)) > 0 {
			if err := json.Unmarshal(data, &doc); err != nil {
				return false, fmt.Errorf("%s is not a JSON object (%v); fix it by hand, then run this again", path, err)
			}
		}
	}
	helpers := map[string]string{}
	if raw, ok := doc["credHelpers"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &helpers); err != nil {
			return false, fmt.Errorf("%s: credHelpers is not an object of strings", path)
		}
	}
	changed := false
	for _, h := range hosts {
		switch old := helpers[h]; old {
		case HelperName:
			continue
		case "":
		default:
			fmt.Fprintf(stderr, "%s: %s: credHelpers[%q] was %q, now %q\n", Name, path, h, old, HelperName)
		}
		helpers[h] = HelperName
		changed = true
	}
	if !changed {
		return false, nil
	}
	raw, _ := json.Marshal(helpers)
	doc["credHelpers"] = raw
	out, err := json.MarshalIndent(doc, "", "\t")
	if err != nil {
		return false, fmt.Errorf("render %s: %w", path, err)
	}
	if err := atomicfile.Write(path, append(out, '\n'), mode); err != nil {
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	return true, nil
}
