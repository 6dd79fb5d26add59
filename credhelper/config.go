package credhelper

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"

	"github.com/docker-credential-stackit/docker-credential-stackit/tokensource"
)

// Environment variables of this helper (the STACKIT_* ones belong to the SDK
// and are read by package tokensource).
const (
	EnvRegistries = "DOCKER_CREDENTIAL_STACKIT_REGISTRIES"
	EnvConfig     = "DOCKER_CREDENTIAL_STACKIT_CONFIG"
	EnvCacheDir   = "DOCKER_CREDENTIAL_STACKIT_CACHE_DIR"
	EnvDebug      = "DOCKER_CREDENTIAL_STACKIT_DEBUG"
	// EnvTimeout bounds one get (default and maximum 45s).
	EnvTimeout = "DOCKER_CREDENTIAL_STACKIT_TIMEOUT"
	// EnvRetryBudget bounds the time spent retrying transient token
	// endpoint failures (default 15s; 0 disables retries).
	EnvRetryBudget = "DOCKER_CREDENTIAL_STACKIT_RETRY_BUDGET"
)

// Config is the helper's own config file.
type Config struct {
	Registries map[string]RegistryConfig `json:"registries"`
}

// RegistryConfig tells how to log in to one registry. The zero value uses
// the STACKIT SDK's default credential discovery.
type RegistryConfig struct {
	ServiceAccountKeyPath string `json:"serviceAccountKeyPath,omitempty"`
	PrivateKeyPath        string `json:"privateKeyPath,omitempty"`
	TokenEndpoint         string `json:"tokenEndpoint,omitempty"`
	Username              string `json:"username,omitempty"`
}

func (r RegistryConfig) overrides() tokensource.Overrides {
	return tokensource.Overrides{
		ServiceAccountKeyPath: r.ServiceAccountKeyPath,
		PrivateKeyPath:        r.PrivateKeyPath,
		TokenEndpoint:         r.TokenEndpoint,
	}
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
		return nil, fmt.Errorf("invalid JSON (%v); expected {\"registries\": {\"registry.example.com\": {}}}", err)
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
		if entry.Username == "<token>" {
			return nil, fmt.Errorf("registries.%s.username: <token> is reserved by Docker for identity tokens", name)
		}
		if entry.TokenEndpoint != "" {
			if err := tokensource.CheckEndpoint(entry.TokenEndpoint); err != nil {
				return nil, fmt.Errorf("registries.%s.tokenEndpoint: %w", name, err)
			}
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
func allowedHosts(env tokensource.Env, cfg *Config) (map[string]RegistryConfig, error) {
	hosts := map[string]RegistryConfig{DefaultRegistry: {}}
	if list := env(EnvRegistries); list != "" {
		for _, item := range strings.Split(list, ",") {
			if strings.TrimSpace(item) == "" {
				continue
			}
			host, err := NormalizeHost(item)
			if err != nil {
				return nil, fmt.Errorf("%s: %q is not a registry host; use a comma-separated list like registry.example.com,other.example.com:5000", EnvRegistries, strings.TrimSpace(item))
			}
			hosts[host] = RegistryConfig{}
		}
	}
	for host, entry := range cfg.Registries {
		hosts[host] = entry
	}
	return hosts, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// ensureDir creates dir with mode 0700, tightening an existing one.
func ensureDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return os.Chmod(dir, fi.Mode().Perm()&0o700)
	}
	return nil
}

func configDir(configPath string) string { return filepath.Dir(configPath) }

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
