// Package credhelper implements the Docker credential helper protocol for
// STACKIT Container Registry: which hosts are served, where their
// credentials come from, and the store/erase/list bookkeeping.
package credhelper

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker-credential-helpers/credentials"

	"github.com/docker-credential-stackit/docker-credential-stackit/cache"
	"github.com/docker-credential-stackit/docker-credential-stackit/tokensource"
)

// getBudget bounds one `get`, lock wait and retries included. The kubelet
// kills plugins at 60 s; Docker has no limit but users do.
const getBudget = 45 * time.Second

// timeouts reads the optional overrides of the overall budget and the retry
// budget. Both are capped by getBudget.
func timeouts(env tokensource.Env) (total time.Duration, retry tokensource.RetryPolicy, err error) {
	total, retry = getBudget, tokensource.DefaultRetryPolicy
	parse := func(name string) (time.Duration, bool, error) {
		v := env(name)
		if v == "" {
			return 0, false, nil
		}
		if v == "0" {
			return 0, true, nil
		}
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return 0, false, fmt.Errorf("%s=%q is not a duration; use e.g. 20s or 0", name, v)
		}
		return min(d, getBudget), true, nil
	}
	if d, set, err := parse(EnvTimeout); err != nil {
		return 0, retry, err
	} else if set && d > 0 {
		total = d
	}
	if d, set, err := parse(EnvRetryBudget); err != nil {
		return 0, retry, err
	} else if set {
		retry.Budget = d
	}
	return total, retry, nil
}

// Helper implements credentials.Helper.
type Helper struct {
	Env tokensource.Env
	// ConfigPath is the helper's config file; stored logins live next to it.
	ConfigPath string
	// ConfigSource and CacheSource say why those paths were chosen, for
	// doctor; empty when the caller set the paths itself.
	ConfigSource string
	CacheSource  string
	Cache        *cache.Cache
	// Stderr receives warnings and, with Debug, the debug log.
	Stderr io.Writer
	Debug  bool
	// HTTPClient is used for token requests; nil means the default client.
	HTTPClient *http.Client
	// Now defaults to time.Now; tests move it to check robot expiry.
	Now func() time.Time
	// NoCredentialsIsError is for commands where a person named the host
	// (token, doctor): no configured credentials is then an error that says
	// what to set, not the quiet not-found of the Docker protocol.
	NoCredentialsIsError bool

	// mu guards hosts: in-process users (package stackitauthn) may call Get
	// from many goroutines.
	mu    sync.Mutex
	hosts map[string]RegistryConfig
}

var _ credentials.Helper = (*Helper)(nil)

// errNotFound is the one soft error: Docker then continues anonymously.
var errNotFound = credentials.NewErrCredentialsNotFound()

// lookupHost normalises serverURL and returns the config for it, or ok ==
// false if this helper does not serve that host.
func (h *Helper) lookupHost(serverURL string) (host string, entry RegistryConfig, ok bool, err error) {
	host, err = NormalizeHost(serverURL)
	if err != nil {
		h.debugf("%q is not a registry host", serverURL)
		return "", RegistryConfig{}, false, nil
	}
	hosts, err := h.allowed()
	if err != nil {
		return "", RegistryConfig{}, false, err
	}
	entry, ok = hosts[host]
	if !ok && h.Debug {
		h.debugf("%s is not a STACKIT registry served by this helper (served: %s)", host, strings.Join(sortedKeys(hosts), ", "))
	}
	return host, entry, ok, nil
}

func (h *Helper) allowed() (map[string]RegistryConfig, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.hosts != nil {
		return h.hosts, nil
	}
	cfg, err := LoadConfig(h.ConfigPath)
	if err != nil {
		return nil, err
	}
	hosts, err := allowedHosts(h.Env, cfg)
	if err != nil {
		return nil, err
	}
	h.hosts = hosts
	return hosts, nil
}

func (h *Helper) logins() loginStore {
	return loginStore{path: configDir(h.ConfigPath) + "/logins.json"}
}

// Credential is what the helper answers for one registry host.
type Credential struct {
	Host     string
	Username string
	Secret   string
	// Expiry is when Secret stops working; zero for static logins.
	Expiry time.Time
	// Source says in words where the credential came from (no secrets).
	Source string
	// Static marks a secret that is read, not minted (a stored login or a
	// robot account file): it can be rotated or revoked at any time.
	Static bool
}

// Get returns the username and secret for serverURL.
func (h *Helper) Get(serverURL string) (string, string, error) {
	total, _, err := timeouts(h.Env)
	if err != nil {
		// Reported by Credential once the host is known to be ours, so
		// that a typo never breaks pulls from other registries.
		total = getBudget
	}
	ctx, cancel := context.WithTimeout(context.Background(), total)
	defer cancel()
	c, err := h.Credential(ctx, serverURL)
	if err != nil {
		return "", "", err
	}
	return c.Username, c.Secret, nil
}

// Credential resolves the credential for serverURL. Hosts this helper does
// not serve yield the credentials-not-found error without any file or
// network access beyond the helper's own config.
func (h *Helper) Credential(ctx context.Context, serverURL string) (*Credential, error) {
	start := time.Now()
	host, entry, ok, err := h.lookupHost(serverURL)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errNotFound
	}
	if login, found, err := h.logins().get(host); err != nil {
		return nil, err
	} else if found {
		h.debugf("get %s: source=stored login of %s (from docker login; docker logout %s removes it) took=%s", host, login.Username, host, since(start))
		return &Credential{Host: host, Username: login.Username, Secret: login.Secret, Source: "stored login (docker login)", Static: true}, nil
	}

	m, err := h.method(entry)
	if m != nil && m.choice.Reason != "" {
		h.debugf("get %s: chose %s: %s", host, m.choice.Flow, m.choice.Reason)
	}
	if errors.Is(err, tokensource.ErrNoCredentials) {
		why := "not configured"
		if m != nil && m.choice.Reason != "" {
			why = m.choice.Reason
		}
		if h.NoCredentialsIsError {
			return nil, fmt.Errorf("%s: %w; workload identity federation not used either: %s", host, err, why)
		}
		h.warnf("no credentials for %s: %v; workload identity federation not used either: %s; pulling anonymously", host, err, why)
		return nil, errNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", host, err)
	}
	if m.robotPath != "" {
		return h.robotCredential(host, m.robotPath, start)
	}
	username := entry.Username
	if username == "" {
		username = m.flow.Username()
	}
	_, retry, err := timeouts(h.Env)
	if err != nil {
		return nil, err
	}
	src := h.Cache.TokenSource(m.flow.CacheKey(), m.flow.Username()+" via "+m.endpoint, tokensource.WithRetry(m.flow, retry))
	tok, err := src.Token(ctx)
	if k, ok := m.flow.(*tokensource.KeyFlow); ok {
		for _, w := range k.Warnings {
			h.warnf("%s", w)
		}
	}
	if err != nil {
		h.debugf("get %s: source=%s endpoint=%s cache=%s failed after %s", host, m.source, m.endpoint, src.Last, since(start))
		return nil, fmt.Errorf("%s: %w", host, err)
	}
	if h.Debug {
		// Formatting in local time loads the zone database: only when asked.
		h.debugf("get %s: source=%s user=%s %s endpoint=%s (%s) cache=%s expires=%s took=%s",
			host, m.source, username, m.identity, m.endpoint, m.endpointSource, src.Last,
			tok.Expiry.Local().Format(time.RFC3339), since(start))
	}
	return &Credential{Host: host, Username: username, Secret: tok.AccessToken, Expiry: tok.Expiry, Source: m.source}, nil
}

// tokenFlow is a service account flow: the key flow or workload identity
// federation. Both are cached the same way.
type tokenFlow interface {
	tokensource.TokenSource
	Username() string
	CacheKey() string
}

// method is how one registry entry logs in: a robot account file, or a
// service account flow chosen by tokensource.ChooseFlow.
type method struct {
	robotPath string

	choice tokensource.Choice
	flow   tokenFlow
	// source says where the credentials come from, identity which account
	// (key id or email), for the debug log. Neither holds a secret.
	source         string
	identity       string
	endpoint       string
	endpointSource string
}

// method resolves entry to its login method. It reads the key JSON (which
// may embed a private key) for the key id, but parses no private key and
// reads no federated token or robot file: those wait until a credential
// is actually needed, so a cache hit never pays for them.
func (h *Helper) method(entry RegistryConfig) (*method, error) {
	if entry.RobotAccountPath != "" {
		return &method{robotPath: entry.RobotAccountPath, source: "robot account file " + entry.RobotAccountPath}, nil
	}
	o := entry.overrides()
	c, err := tokensource.ChooseFlow(h.Env, o, tokensource.FileExists)
	if err != nil {
		return nil, err
	}
	m := &method{choice: c}
	if c.Flow == tokensource.FlowFederation {
		w, err := tokensource.NewWorkloadIdentity(h.Env, o, c)
		if err != nil {
			return m, err
		}
		w.HTTPClient = h.HTTPClient
		if gh, ok := w.Federated.(*tokensource.GitHubOIDC); ok {
			gh.HTTPClient = h.HTTPClient
		}
		m.flow = w
		m.source = "workload identity federation with the token from " + w.Federated.String()
		m.identity = "email from " + w.EmailSource
		m.endpoint, m.endpointSource = w.Endpoint, w.EndpointSource
		return m, nil
	}
	k, err := tokensource.NewKeyFlow(h.Env, o)
	if err != nil {
		return m, err
	}
	k.HTTPClient = h.HTTPClient
	m.flow = k
	m.source = k.KeySource
	m.identity = "kid=" + k.Key.Credentials.Kid
	m.endpoint, m.endpointSource = k.Endpoint, k.EndpointSource
	return m, nil
}

// username is the login `get` would return for entry, without network.
func (h *Helper) username(entry RegistryConfig) (string, error) {
	if entry.Username != "" {
		return entry.Username, nil
	}
	m, err := h.method(entry)
	if err != nil {
		return "", err
	}
	if m.robotPath != "" {
		r, err := readRobotAccount(m.robotPath)
		if err != nil {
			return "", err
		}
		return r.Name, nil
	}
	return m.flow.Username(), nil
}

// robotCredential answers from a robot account file, read fresh: each get
// is a new process, so a replaced file is picked up at once, and the
// secret is never copied into the cache or any config.
func (h *Helper) robotCredential(host, path string, start time.Time) (*Credential, error) {
	r, err := readRobotAccount(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", host, err)
	}
	if err := h.robotExpiry(host, path, r, h.now()); err != nil {
		return nil, fmt.Errorf("%s: %w", host, err)
	}
	expires := "never"
	if !r.ExpiresAt.IsZero() {
		expires = r.ExpiresAt.UTC().Format(time.RFC3339)
	}
	h.debugf("get %s: source=robot account file %s (%s) user=%s expires=%s took=%s", host, path, r.Format, r.Name, expires, since(start))
	return &Credential{Host: host, Username: r.Name, Secret: r.Secret, Expiry: r.ExpiresAt, Static: true,
		Source: "robot account file " + path + " (" + r.Format + ")"}, nil
}

func (h *Helper) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

// Add implements `docker login`. Logging in as the service account itself
// stores nothing, since `get` mints tokens for it; any other username is a
// static robot login kept for that host until `docker logout`.
func (h *Helper) Add(c *credentials.Credentials) error {
	host, entry, ok, err := h.lookupHost(c.ServerURL)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%s is not a STACKIT registry served by this helper; run docker-credential-stackit configure-docker --registry %s to add it, or remove it from credHelpers", strings.TrimSpace(c.ServerURL), strings.TrimSpace(c.ServerURL))
	}
	if c.Username == "<token>" {
		return errors.New("identity-token logins are not supported; log in with the service account email or a robot account name")
	}
	if c.Secret == "" {
		return errors.New("the password is empty; log in with a robot secret, or use the service account email to let the helper mint tokens")
	}
	own, _ := h.username(entry)
	if own != "" && c.Username == own {
		// Storing would copy a secret the helper already has a better
		// source for (a fresh token, or the robot file), so don't.
		h.debugf("store %s: %s is the account this helper logs in as; nothing stored", host, c.Username)
		return h.logins().update(func(m map[string]Login) bool {
			_, had := m[host]
			delete(m, host)
			return had
		})
	}
	h.debugf("store %s: saving static login for %s", host, c.Username)
	return h.logins().update(func(m map[string]Login) bool {
		m[host] = Login{Username: c.Username, Secret: c.Secret}
		return true
	})
}

// Delete implements `docker logout`: it forgets a stored login and the
// cached token that served the host.
func (h *Helper) Delete(serverURL string) error {
	host, entry, ok, err := h.lookupHost(serverURL)
	if err != nil {
		return err
	}
	if !ok {
		return errNotFound
	}
	err = h.logins().update(func(m map[string]Login) bool {
		_, had := m[host]
		delete(m, host)
		return had
	})
	if err != nil {
		return err
	}
	if m, merr := h.method(entry); merr == nil && m.flow != nil {
		ctx, cancel := context.WithTimeout(context.Background(), getBudget)
		defer cancel()
		if derr := h.Cache.Drop(ctx, m.flow.CacheKey()); derr != nil {
			h.debugf("erase %s: could not drop the cached token: %v", host, derr)
		}
	}
	h.debugf("erase %s: done", host)
	return nil
}

// List maps every served host to the username `get` would return, without
// touching the network. Hosts whose credentials cannot be found are left out.
func (h *Helper) List() (map[string]string, error) {
	hosts, err := h.allowed()
	if err != nil {
		return nil, err
	}
	logins, err := h.logins().load()
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(hosts))
	for host, entry := range hosts {
		switch {
		case logins[host].Username != "":
			out[host] = logins[host].Username
		default:
			user, err := h.username(entry)
			if err != nil {
				h.warnf("list: leaving out %s: %v", host, err)
				continue
			}
			out[host] = user
		}
	}
	return out, nil
}

func (h *Helper) debugf(format string, args ...any) {
	if h.Debug && h.Stderr != nil {
		fmt.Fprintf(h.Stderr, "docker-credential-stackit: debug: "+format+"\n", args...)
	}
}

func (h *Helper) warnf(format string, args ...any) {
	if h.Stderr != nil {
		fmt.Fprintf(h.Stderr, "docker-credential-stackit: warning: "+format+"\n", args...)
	}
}

func since(t time.Time) time.Duration { return time.Since(t).Round(10 * time.Microsecond) }
