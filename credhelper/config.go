package credhelper

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"github.com/docker-credential-stackit/docker-credential-stackit/internal/platform"
	"github.com/docker-credential-stackit/docker-credential-stackit/internal/privdir"

	"github.com/docker-credential-stackit/docker-credential-stackit/internal/atomicfile"
	"github.com/docker-credential-stackit/docker-credential-stackit/internal/problem"

	"github.com/docker-credential-stackit/docker-credential-stackit/tokensource"
)

// Config is the helper's own config file.
type Config struct {
	Registries map[string]RegistryConfig `json:"registries"`
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
	if r.FederatedTokenFile != "" && !filepath.IsAbs(r.FederatedTokenFile) {
		return fmt.Errorf("%s.federatedTokenFile: %q is not an absolute path; write the full path", at, r.FederatedTokenFile)
	}
	return nil
}

// LoadConfig reads the config file at path. A missing file is an empty
// config; anything else that is wrong is an error naming the file.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &Config{Registries: map[string]RegistryConfig{}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read helper config %s: %w", path, err)
	}
	cfg, err := ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("helper config %s: %w", path, err)
	}
	return cfg, nil
}

// ParseConfig decodes the config strictly, so a misspelt setting is an
// error instead of being silently ignored, and normalises the hosts.
func ParseConfig(data []byte) (*Config, error) {
	var raw Config
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return nil, problem.New(fmt.Sprintf("invalid JSON (%v)", err), `expected {"registries": {"registry.example.com": {}}}`)
	}
	if err := checkFieldCase(data); err != nil {
		return nil, err
	}
	cfg := &Config{Registries: make(map[string]RegistryConfig, len(raw.Registries))}
	for name, entry := range raw.Registries {
		host, err := NormalizeHost(name)
		if err != nil {
			return nil, fmt.Errorf("registries: %q is not a registry host", name)
		}
		if err := entry.validate(name); err != nil {
			return nil, err
		}
		cfg.Registries[host] = entry
	}
	return cfg, nil
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
func ensureDir(dir string) error { return privdir.Ensure(dir, platform.Current()) }

// checkFieldCase rejects setting names that differ from ours only in case,
// which encoding/json would otherwise accept silently.
func checkFieldCase(data []byte) error {
	var top map[string]json.RawMessage
	if json.Unmarshal(data, &top) != nil {
		return nil // shape errors were reported by the strict decode
	}
	for field := range top {
		if field != "registries" {
			return fmt.Errorf("%q must be spelt \"registries\"", field)
		}
	}
	var doc struct {
		Registries map[string]map[string]json.RawMessage `json:"registries"`
	}
	if json.Unmarshal(data, &doc) != nil {
		return nil
	}
	t := reflect.TypeFor[RegistryConfig]()
	for host, entry := range doc.Registries {
		for field := range entry {
			for i := range t.NumField() {
				name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
				if strings.EqualFold(field, name) && field != name {
					return fmt.Errorf("registries.%s: %q must be spelt %q", host, field, name)
				}
			}
		}
	}
	return nil
}

// ServedHosts lists the hosts this helper serves, sorted.
func (h *Helper) ServedHosts() ([]string, error) {
	hosts, err := h.allowed()
	if err != nil {
		return nil, err
	}
	return sortedKeys(hosts), nil
}

// ServeRegistries makes hosts permanent in the helper config, so that they
// are served without any variable. It reports the config's path and
// whether it changed; the default registry is always served and never
// written.
func (h *Helper) ServeRegistries(hosts []string) (path string, added bool, err error) {
	path = h.settings.Config.Path
	cfg, err := LoadConfig(path)
	if err != nil {
		return path, false, err
	}
	for _, host := range hosts {
		if _, ok := cfg.Registries[host]; !ok && host != DefaultRegistry {
			cfg.Registries[host] = RegistryConfig{}
			added = true
		}
	}
	if !added {
		return path, false, nil
	}
	if err := ensureDir(filepath.Dir(path)); err != nil {
		return path, false, fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	if err := atomicfile.Write(path, cfg.Marshal(), 0o600); err != nil {
		return path, false, fmt.Errorf("write helper config %s: %w", path, err)
	}
	h.mu.Lock()
	h.hosts = nil
	h.mu.Unlock()
	return path, true, nil
}
