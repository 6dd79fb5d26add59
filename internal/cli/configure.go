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
	"slices"
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
	// goos is the platform's GOOS, which says where the home directory is.
	goos string
	// locate finds the file from the (injected) environment.
	locate func(env func(string) string, goos string) (string, error)
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
	remove := fs.Bool("remove", false, "remove this helper's credHelpers entries instead (those of --registry, default: all of them); other entries stay")
	if err := parseCommandFlags(fs, args, target.command+" [--remove] [--registry HOST]...", stderr); err != nil {
		if errors.Is(err, errHelp) {
			return nil
		}
		return err
	}
	if *remove {
		return removeCredHelpers(target, hosts, env, stderr)
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

	path, err := target.locate(env, target.goos)
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
	explicit := hosts
	if fs.NFlag() == 0 {
		explicit = nil
	}
	path, added, err := h.ServeRegistries(explicit)
	if err != nil {
		return err
	}
	if added {
		fmt.Fprintf(stderr, "%s: added the registries to %s so that the helper serves them\n", Name, path)
	}
	return nil
}

// dockerConfigPath finds Docker's config.json as Docker does:
// $DOCKER_CONFIG/config.json, else .docker/config.json in the home
// directory (os.UserHomeDir's answer: HOME, or USERPROFILE on Windows, read
// from the injected environment so that tests can play either platform).
func dockerConfigPath(env func(string) string, goos string) (string, error) {
	if dir := env("DOCKER_CONFIG"); dir != "" {
		return filepath.Join(dir, "config.json"), nil
	}
	home := env(homeVar(goos))
	if home == "" {
		return "", fmt.Errorf("%s is not set; set DOCKER_CONFIG to the directory of Docker's config.json", homeVar(goos))
	}
	return filepath.Join(home, ".docker", "config.json"), nil
}

// homeVar is the variable that names the home directory, as os.UserHomeDir
// reads it.
func homeVar(goos string) string {
	switch goos {
	case "windows":
		return "USERPROFILE"
	case "plan9":
		return "home"
	}
	return "HOME"
}

// containersAuthPath is the file podman login would use if it persisted
// across reboots: REGISTRY_AUTH_FILE, else $XDG_CONFIG_HOME (default
// ~/.config, with the home directory as Docker finds it)/containers/auth.json.
// The default of podman login itself on Linux,
// ${XDG_RUNTIME_DIR}/containers/auth.json, is a tmpfs and is wiped at logout.
func containersAuthPath(env func(string) string, goos string) (string, error) {
	if p := env("REGISTRY_AUTH_FILE"); p != "" {
		return p, nil
	}
	if dir := env("XDG_CONFIG_HOME"); dir != "" {
		return filepath.Join(dir, "containers", "auth.json"), nil
	}
	if home := env(homeVar(goos)); home != "" {
		return filepath.Join(home, ".config", "containers", "auth.json"), nil
	}
	return "", fmt.Errorf("REGISTRY_AUTH_FILE, XDG_CONFIG_HOME and %s are all unset; set REGISTRY_AUTH_FILE to the containers auth file, e.g. /etc/containers/auth.json", homeVar(goos))
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

// credHelpersDoc is a parsed Docker config or containers auth file: every
// top-level key as it was, the credHelpers map and the file's mode.
type credHelpersDoc struct {
	path    string // symlinks resolved
	exists  bool
	mode    os.FileMode
	doc     map[string]json.RawMessage
	helpers map[string]string
}

// readCredHelpers reads path; a missing file is an empty document.
func readCredHelpers(path string) (*credHelpersDoc, error) {
	// Write through symlinks (dotfile managers link config.json) instead of
	// replacing the link with a file.
	if resolved, err := filepath.EvalSymlinks(path); err == nil {
		path = resolved
	}
	d := &credHelpersDoc{path: path, mode: 0o600, doc: map[string]json.RawMessage{}, helpers: map[string]string{}}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return d, nil
	case err != nil:
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	d.exists = true
	if fi, err := os.Stat(path); err == nil {
		d.mode = fi.Mode().Perm()
	}
	if len(bytes.TrimSpace(data)) > 0 {
		if err := json.Unmarshal(data, &d.doc); err != nil {
			return nil, fmt.Errorf("%s is not a JSON object (%v); fix it by hand, then run this again", path, err)
		}
	}
	if raw, ok := d.doc["credHelpers"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &d.helpers); err != nil {
			return nil, fmt.Errorf("%s: credHelpers is not an object of strings", path)
		}
	}
	return d, nil
}

// write replaces the file atomically with the document, keeping its mode.
func (d *credHelpersDoc) write() error {
	if !d.exists {
		if err := os.MkdirAll(filepath.Dir(d.path), 0o700); err != nil {
			return fmt.Errorf("create %s: %w", filepath.Dir(d.path), err)
		}
	}
	if len(d.helpers) == 0 {
		// Our entries were the only ones: leave no empty map behind.
		delete(d.doc, "credHelpers")
	} else {
		raw, _ := json.Marshal(d.helpers)
		d.doc["credHelpers"] = raw
	}
	out, err := json.MarshalIndent(d.doc, "", "\t")
	if err != nil {
		return fmt.Errorf("render %s: %w", d.path, err)
	}
	if err := atomicfile.Write(d.path, append(out, '\n'), d.mode); err != nil {
		return fmt.Errorf("write %s: %w", d.path, err)
	}
	return nil
}

// mergeCredHelpers sets credHelpers[host] = "stackit" for each host and
// reports whether the file changed.
func mergeCredHelpers(path string, hosts []string, stderr io.Writer) (bool, error) {
	d, err := readCredHelpers(path)
	if err != nil {
		return false, err
	}
	changed := false
	for _, h := range hosts {
		switch old := d.helpers[h]; old {
		case HelperName:
			continue
		case "":
		default:
			fmt.Fprintf(stderr, "%s: %s: credHelpers[%q] was %q, now %q\n", Name, d.path, h, old, HelperName)
		}
		d.helpers[h] = HelperName
		changed = true
	}
	if !changed {
		return false, nil
	}
	return true, d.write()
}

// removeCredHelpers implements --remove: it deletes the credHelpers
// entries that point at this helper, for the named hosts or, without
// --registry, all of them. Entries for other helpers, every other key and
// the file's mode stay; a missing file stays missing. It says in one line
// what changed.
func removeCredHelpers(target credHelpersFile, hosts []string, env func(string) string, stderr io.Writer) error {
	path, err := target.locate(env, target.goos)
	if err != nil {
		return err
	}
	d, err := readCredHelpers(path)
	if err != nil {
		return err
	}
	var removed []string
	if len(hosts) == 0 {
		for h, helper := range d.helpers {
			if helper == HelperName {
				removed = append(removed, h)
			}
		}
		slices.Sort(removed)
	} else {
		for _, h := range hosts {
			if d.helpers[h] == HelperName && !slices.Contains(removed, h) {
				removed = append(removed, h)
			}
		}
	}
	if len(removed) == 0 {
		what := "any registry"
		if len(hosts) > 0 {
			what = strings.Join(hosts, ", ")
		}
		fmt.Fprintf(stderr, "%s: %s does not use %s for %s; nothing changed\n", Name, path, Name, what)
		return nil
	}
	for _, h := range removed {
		delete(d.helpers, h)
	}
	if err := d.write(); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "%s: %s no longer uses %s for %s\n", Name, path, Name, strings.Join(removed, ", "))
	return nil
}
