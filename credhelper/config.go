package credhelper

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/docker-credential-stackit/docker-credential-stackit/internal/suggest"

	"github.com/docker-credential-stackit/docker-credential-stackit/internal/platform"
	"github.com/docker-credential-stackit/docker-credential-stackit/internal/privdir"

	"github.com/docker-credential-stackit/docker-credential-stackit/internal/atomicfile"
	"github.com/docker-credential-stackit/docker-credential-stackit/internal/problem"
	"github.com/docker-credential-stackit/docker-credential-stackit/internal/safefile"

	"github.com/docker-credential-stackit/docker-credential-stackit/tokensource"
)

// Config is the helper's own config file.
type Config struct {
	Registries map[string]RegistryConfig `json:"registries"`
	// missing is set when the file does not exist (an empty config).
	missing bool
}

// RegistryConfig tells how to log in to one registry. The zero value uses
// the STACKIT SDK's default credential discovery (workload identity
// federation, then the key flow). An entry sets at most one kind of login:
// key flow fields, federation fields, or a robot account file.
type RegistryConfig struct {
	// Key flow.
	ServiceAccountKeyPath string `json:"serviceAccountKeyPath,omitempty"`
	PrivateKeyPath        string `json:"privateKeyPath,omitempty"`
	TokenEndpoint         string `json:"tokenEndpoint,omitempty"`
	// Workload identity federation.
	ServiceAccountEmail string `json:"serviceAccountEmail,omitempty"`
	FederatedTokenFile  string `json:"federatedTokenFile,omitempty"`
	IDPTokenEndpoint    string `json:"idpTokenEndpoint,omitempty"`
	// Username overrides the login name of either service account flow.
	Username string `json:"username,omitempty"`
	// RobotAccountPath is a Harbor or Quay robot account file; the login
	// is the robot's own name and secret, read from the file on every get.
	RobotAccountPath string `json:"robotAccountPath,omitempty"`
	// AllowPublicRegistry lets the helper send STACKIT tokens to a
	// well-known public registry (see IsPublicRegistry), which it
	// otherwise refuses to serve.
	AllowPublicRegistry bool `json:"allowPublicRegistry,omitempty"`
}

// configOrigin is how messages name the place per-registry settings come
// from.
const configOrigin = "the helper config"

func (r RegistryConfig) overrides() tokensource.Overrides {
	return tokensource.Overrides{
		Origin:                configOrigin,
		RobotAccountPath:      r.RobotAccountPath,
		Username:              r.Username,
		ServiceAccountKeyPath: r.ServiceAccountKeyPath,
		PrivateKeyPath:        r.PrivateKeyPath,
		TokenEndpoint:         r.TokenEndpoint,
		ServiceAccountEmail:   r.ServiceAccountEmail,
		FederatedTokenFile:    r.FederatedTokenFile,
		IDPTokenEndpoint:      r.IDPTokenEndpoint,
	}
}

// setFields names the entry's set fields by their JSON names, in the
// struct's order, for error messages.
func (r RegistryConfig) setFields() (key, federation []string, username bool) {
	for _, f := range []struct{ name, value string }{
		{"serviceAccountKeyPath", r.ServiceAccountKeyPath}, {"privateKeyPath", r.PrivateKeyPath}, {"tokenEndpoint", r.TokenEndpoint},
	} {
		if f.value != "" {
			key = append(key, f.name)
		}
	}
	for _, f := range []struct{ name, value string }{
		{"serviceAccountEmail", r.ServiceAccountEmail}, {"federatedTokenFile", r.FederatedTokenFile}, {"idpTokenEndpoint", r.IDPTokenEndpoint},
	} {
		if f.value != "" {
			federation = append(federation, f.name)
		}
	}
	return key, federation, r.Username != ""
}

// validate checks one entry; name is the key as written in the file.
func (r RegistryConfig) validate(name string) error {
	at := "registries." + name
	key, federation, username := r.setFields()
	if r.RobotAccountPath != "" {
		others := append(append([]string(nil), key...), federation...)
		if username {
			others = append(others, "username")
		}
		if len(others) > 0 {
			return fmt.Errorf("%s: robotAccountPath cannot be combined with %s; a robot account file is a complete login (its name and secret), so remove one of them", at, strings.Join(others, ", "))
		}
		if !filepath.IsAbs(r.RobotAccountPath) {
			return fmt.Errorf("%s.robotAccountPath: %q is not an absolute path; write the full path, e.g. /etc/docker-credential-stackit/robot.json", at, r.RobotAccountPath)
		}
	}
	if len(key) > 0 && len(federation) > 0 {
		return fmt.Errorf("%s: %s (key flow) and %s (workload identity federation) are two different logins; keep the fields of one", at, key[0], federation[0])
	}
	if r.Username == "<token>" {
		return fmt.Errorf("%s.username: <token> is reserved by Docker for identity tokens", at)
	}
	if r.TokenEndpoint != "" {
		if err := tokensource.CheckEndpoint(r.TokenEndpoint); err != nil {
			return fmt.Errorf("%s.tokenEndpoint: %w", at, err)
		}
	}
	if r.IDPTokenEndpoint != "" {
		if err := tokensource.CheckEndpoint(r.IDPTokenEndpoint); err != nil {
			return fmt.Errorf("%s.idpTokenEndpoint: %w", at, err)
		}
	}
	if r.ServiceAccountEmail != "" {
		if err := tokensource.CheckServiceAccountEmail(r.ServiceAccountEmail); err != nil {
			return fmt.Errorf("%s.serviceAccountEmail: %w", at, err)
		}
	}
	for _, f := range []struct{ name, value string }{
		{"serviceAccountKeyPath", r.ServiceAccountKeyPath}, {"privateKeyPath", r.PrivateKeyPath},
	} {
		if f.value == "" || filepath.IsAbs(f.value) {
			continue
		}
		if !tokensource.LooksLikePath(f.value) {
			return tokensource.NotAPathError(at+"."+f.name, f.value)
		}
		return problem.New(fmt.Sprintf("%s.%s: %q is not an absolute path; it must be absolute, since the helper runs from whatever directory docker or the kubelet is in", at, f.name, f.value),
			"write the full path, e.g. /etc/docker-credential-stackit/key.json")
	}
	if r.FederatedTokenFile != "" && !filepath.IsAbs(r.FederatedTokenFile) {
		return fmt.Errorf("%s.federatedTokenFile: %q is not an absolute path; write the full path", at, r.FederatedTokenFile)
	}
	return nil
}

// LoadConfig reads the config file at path. A missing file is an empty
// config; anything else that is wrong is an error naming the file.
func LoadConfig(path string) (*Config, error) { return loadConfig(path, platform.Current()) }

// loadConfig reads the config the one hardened way (no blocking on a FIFO,
// at most 1 MiB, regular files only) and, like ssh with its own files,
// refuses one that another user could have written: the config decides
// which hosts get STACKIT tokens.
func loadConfig(path string, p platform.Platform) (*Config, error) {
	data, _, err := safefile.ReadFile(path, p)
	if errors.Is(err, fs.ErrNotExist) {
		return &Config{Registries: map[string]RegistryConfig{}, missing: true}, nil
	}
	if err != nil {
		return nil, problem.Wrap(err, fmt.Sprintf("read helper config %s: %s", path, safefile.DescribeFileError(err)), fixOf(err, "point "+EnvConfig+" at a regular JSON file of yours, or unset it"))
	}
	if err := safefile.CheckTrusted(path, p); err != nil {
		return nil, untrustedFile("helper config", path, err, "another user could choose which registries get your STACKIT tokens")
	}
	cfg, err := ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("helper config %s: %w", path, err)
	}
	return cfg, nil
}

// fixOf returns the fix a safefile error carries, if any.
func fixOf(err error, fallback string) string {
	var e *safefile.Error
	if errors.As(err, &e) && e.Fix != "" {
		return e.Fix
	}
	return fallback
}

// untrustedFile words a failed trust check (safefile.CheckTrusted) of
// what at path, saying why it matters and how to fix it, as ssh does.
func untrustedFile(what, path string, err error, risk string) error {
	var e *safefile.Error
	if !errors.As(err, &e) {
		return fmt.Errorf("%s %s: %w", what, path, err)
	}
	msg := fmt.Sprintf("%s %s %s", what, path, e.Problem)
	if e.Path != path {
		msg = fmt.Sprintf("%s %s: its directory %s %s", what, path, e.Path, e.Problem)
	}
	if errors.Is(err, safefile.ErrUntrusted) {
		msg += ", so " + risk + "; refusing to use it"
	}
	return problem.Wrap(err, msg, e.Fix)
}

// ParseConfig decodes the config strictly, so a misspelt setting is an
// error instead of being silently ignored, and normalises the hosts.
// Errors never echo the file beyond its field names and hosts.
func ParseConfig(data []byte) (*Config, error) {
	const expected = `expected {"registries": {"registry.example.com": {}}}`
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, problem.New(describeConfigJSON(data, err), expected)
	}
	if err := checkFieldNames(data); err != nil {
		return nil, err
	}
	var raw Config
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return nil, problem.New(describeConfigJSON(data, err), expected)
	}
	cfg := &Config{Registries: make(map[string]RegistryConfig, len(raw.Registries))}
	for name, entry := range raw.Registries {
		host, err := NormalizeHost(name)
		if err != nil {
			return nil, fmt.Errorf("registries: %s is not a registry host", quoteName(name))
		}
		if err := entry.validate(name); err != nil {
			return nil, err
		}
		cfg.Registries[host] = entry
	}
	return cfg, nil
}

// describeConfigJSON words a decode error on one line, a syntax error by
// line and column.
func describeConfigJSON(data []byte, err error) string {
	d := strings.Join(strings.Fields(safefile.DescribeJSONError(data, err)), " ")
	if strings.HasPrefix(d, "invalid JSON") {
		return d
	}
	return "invalid JSON: " + d
}

// quoteName quotes a name from the file for a one-line message, short.
func quoteName(s string) string {
	if len(s) > 100 {
		s = s[:100] + "…"
	}
	return strconv.Quote(s)
}

// Marshal renders the config for writing.
func (c *Config) Marshal() []byte {
	out, _ := json.MarshalIndent(c, "", "  ")
	return append(out, '\n')
}

// allowedHosts merges the default registry, the environment and the config
// into the set of hosts this helper answers for.
func allowedHosts(extra []string, cfg *Config) (map[string]RegistryConfig, error) {
	hosts := map[string]RegistryConfig{DefaultRegistry: {}}
	for _, item := range extra {
		host, err := NormalizeHost(item)
		if err != nil {
			return nil, problem.New(fmt.Sprintf("%s: %q is not a registry host", EnvRegistries, item),
				"use a comma-separated list like registry.example.com,other.example.com:5000")
		}
		hosts[host] = RegistryConfig{}
	}
	for host, entry := range cfg.Registries {
		hosts[host] = entry
	}
	return hosts, nil
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// ensureDir makes dir a private directory of ours (see privdir).
func ensureDir(dir string, p platform.Platform) error { return privdir.Ensure(dir, p) }

// checkFieldNames rejects setting names that are not ours: a name that
// differs only in case (which encoding/json would accept silently) and an
// unknown name, suggesting the field meant.
func checkFieldNames(data []byte) error {
	var top map[string]json.RawMessage
	if json.Unmarshal(data, &top) != nil {
		return nil // shape errors are reported by the strict decode
	}
	for _, field := range sortedKeys(top) {
		if field == "registries" {
			continue
		}
		if strings.EqualFold(field, "registries") {
			return fmt.Errorf("%s must be spelt \"registries\"", quoteName(field))
		}
		return unknownField(field, "at the top level", []string{"registries"})
	}
	var doc struct {
		Registries map[string]map[string]json.RawMessage `json:"registries"`
	}
	if json.Unmarshal(data, &doc) != nil {
		return nil
	}
	var known []string
	t := reflect.TypeFor[RegistryConfig]()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		known = append(known, name)
	}
	for _, host := range sortedKeys(doc.Registries) {
		for _, field := range sortedKeys(doc.Registries[host]) {
			if slices.Contains(known, field) {
				continue
			}
			for _, name := range known {
				if strings.EqualFold(field, name) {
					return fmt.Errorf("registries.%s: %s must be spelt %q", oneLine(host), quoteName(field), name)
				}
			}
			return unknownField(field, "in registries["+oneLine(host)+"]", known)
		}
	}
	return nil
}

// unknownField says that field is not a setting, suggesting the closest
// known one when it looks like a typo of it.
func unknownField(field, where string, known []string) error {
	what := fmt.Sprintf("unknown field %s %s", quoteName(field), where)
	if best, ok := suggest.Closest(field, known, 3); ok {
		return problem.New(what, "did you mean "+best+"?")
	}
	return problem.New(what, "the fields are "+strings.Join(known, ", "))
}

// oneLine keeps a host from the file on one line and short.
func oneLine(s string) string {
	q := quoteName(s)
	if q[1:len(q)-1] == s {
		return s
	}
	return q
}

// ServedHosts lists the hosts this helper serves, sorted. Public
// registries it refuses (see IsPublicRegistry) are left out.
func (h *Helper) ServedHosts() ([]string, error) {
	hosts, err := h.allowed()
	var missing *MissingConfigError
	if errors.As(err, &missing) {
		// configure-docker creates the file: serve what the rest says.
		hosts, err = allowedHosts(h.settings.ExtraHosts, &Config{Registries: map[string]RegistryConfig{}})
	}
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(hosts))
	for _, host := range sortedKeys(hosts) {
		if h.publicRefusal(host, hosts[host]) == nil {
			out = append(out, host)
		}
	}
	return out, nil
}

// ServeRegistries makes hosts permanent in the helper config, so that they
// are served without any variable. A config that DOCKER_CREDENTIAL_STACKIT_CONFIG
// names but that does not exist yet is created, even with no hosts, since
// get refuses a named config that is missing. It reports the config's path and
// whether it changed; the default registry is always served and never
// written. A public registry the config does not already allow is refused
// with a *PublicRegistryError, and nothing is written.
func (h *Helper) ServeRegistries(hosts []string) (path string, added bool, err error) {
	path = h.settings.Config.Path
	sys := h.platform.System()
	cfg, err := loadConfig(path, sys)
	if err != nil {
		return path, false, err
	}
	for _, host := range hosts {
		if err := h.publicRefusal(host, cfg.Registries[host]); err != nil {
			return path, false, err
		}
	}
	for _, host := range hosts {
		if _, ok := cfg.Registries[host]; !ok && host != DefaultRegistry {
			cfg.Registries[host] = RegistryConfig{}
			added = true
		}
	}
	if h.settings.ConfigErr != nil {
		return path, false, h.settings.ConfigErr
	}
	if !added && !(cfg.missing && h.settings.Config.Why == EnvConfig) {
		return path, false, nil
	}
	if err := ensureDir(filepath.Dir(path), sys); err != nil {
		return path, false, fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	if err := atomicfile.Write(path, cfg.Marshal(), 0o600); err != nil {
		return path, false, fmt.Errorf("write helper config %s: %w", path, err)
	}
	h.mu.Lock()
	h.hosts, h.config = nil, nil
	h.mu.Unlock()
	return path, true, nil
}

// ConfigState says in words whether the helper config can be used, the
// way get finds it (for doctor).
func (h *Helper) ConfigState() string {
	_, err := h.allowed()
	var missing *MissingConfigError
	switch {
	case errors.As(err, &missing):
		return "does not exist, which is an error because " + EnvConfig + " names it"
	case err != nil:
		what, _ := problem.Split(err)
		return "cannot be used: " + what
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.config.missing {
		return "does not exist, so only the built-in and environment settings apply"
	}
	return "exists"
}
