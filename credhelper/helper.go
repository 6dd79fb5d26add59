// Package credhelper is the core of docker-credential-stackit and its one
// public Go API: given a server URL it decides which host that is, whether
// the helper serves it, which login applies, and the credential.
//
//	h, err := credhelper.New(credhelper.FromEnvironment())
//	user, secret, err := h.Get("registry.onstackit.cloud")
//
// A Helper satisfies docker-credential-helpers' credentials.Helper and
// go-containerregistry's authn.Helper. Front-ends (the Docker protocol,
// the kubelet provider, doctor) are thin consumers of it.
package credhelper

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker-credential-helpers/credentials"

	"github.com/docker-credential-stackit/docker-credential-stackit/cache"
	"github.com/docker-credential-stackit/docker-credential-stackit/internal/problem"
	"github.com/docker-credential-stackit/docker-credential-stackit/tokensource"
)

// Helper answers for the registries it serves. It is safe for concurrent
// use.
type Helper struct {
	env        tokensource.Env
	settings   Settings
	platform   Platform
	httpClient *http.Client
	warnings   io.Writer
	now        func() time.Time
	// reportErrors writes every real Get error to warnings as one line:
	// go-containerregistry turns a Get error into an anonymous request, so
	// without it a broken key would only show as a 401 later.
	reportErrors bool
	cache        *cache.Cache

	// mu guards hosts, which are read from the config once.
	mu    sync.Mutex
	hosts map[string]RegistryConfig
	// config is the helper config hosts came from, read once.
	config *Config
}

var _ credentials.Helper = (*Helper)(nil)

// Option configures a Helper.
type Option func(*options)

type options struct {
	env          tokensource.Env
	platform     *Platform
	settings     *Settings
	configPath   string
	cacheDir     *string
	httpClient   *http.Client
	warnings     io.Writer
	debug        *bool
	now          func() time.Time
	reportErrors bool
}

// FromEnvironment reads the process environment, which is also the default.
func FromEnvironment() Option { return WithEnv(os.Getenv) }

// WithEnv reads variables through env instead of the process environment.
func WithEnv(env func(string) string) Option { return func(o *options) { o.env = env } }

// WithSettings uses settings parsed by the caller, e.g. with a --cache-dir
// flag, instead of parsing them from the environment.
func WithSettings(s Settings) Option { return func(o *options) { o.settings = &s } }

// WithPlatform replaces the platform the defaults depend on (tests).
func WithPlatform(p Platform) Option { return func(o *options) { o.platform = &p } }

// WithConfigPath uses the helper config file at path, an absolute path.
func WithConfigPath(path string) Option { return func(o *options) { o.configPath = path } }

// WithCacheDir keeps tokens in dir, an absolute path; "" disables the cache.
func WithCacheDir(dir string) Option { return func(o *options) { o.cacheDir = &dir } }

// WithHTTPClient sends token requests through c instead of the helper's
// client (system roots, proxies from the environment, no redirects).
func WithHTTPClient(c *http.Client) Option { return func(o *options) { o.httpClient = c } }

// WithWarnings sends warnings, the debug log and reported errors to w
// (default os.Stderr; io.Discard for silence).
func WithWarnings(w io.Writer) Option { return func(o *options) { o.warnings = w } }

// WithDebug turns the debug log on or off, whatever the environment says.
func WithDebug(on bool) Option { return func(o *options) { o.debug = &on } }

// WithClock replaces time.Now (tests).
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithErrorReports controls whether Get also writes its errors to the
// warnings writer (default on; the Docker protocol front-end reports its
// own).
func WithErrorReports(on bool) Option { return func(o *options) { o.reportErrors = on } }

// New returns a Helper. Settings come from the environment unless options
// say otherwise; a malformed setting is reported when a served host is
// asked for, so a typo never breaks pulls from other registries.
func New(opts ...Option) (*Helper, error) {
	o := options{env: os.Getenv, warnings: os.Stderr, now: time.Now, reportErrors: true}
	for _, opt := range opts {
		opt(&o)
	}
	p := CurrentPlatform()
	if o.platform != nil {
		p = *o.platform
	}
	var s Settings
	if o.settings != nil {
		s = *o.settings
	} else {
		s = ParseSettings(o.env, p, "")
	}
	if o.configPath != "" {
		if !filepath.IsAbs(o.configPath) {
			return nil, problem.New(fmt.Sprintf("config path %q is not absolute", o.configPath), "pass an absolute path")
		}
		s.Config = PathChoice{o.configPath, "set by the program using the helper"}
	}
	if o.cacheDir != nil {
		if *o.cacheDir != "" && !filepath.IsAbs(*o.cacheDir) {
			return nil, problem.New(fmt.Sprintf("cache dir %q is not absolute", *o.cacheDir), "pass an absolute path, or \"\" to disable the cache")
		}
		s.Cache = PathChoice{*o.cacheDir, "set by the program using the helper"}
	}
	if o.debug != nil {
		s.Debug = *o.debug
	}
	if o.warnings == nil {
		o.warnings = io.Discard
	}
	h := &Helper{env: o.env, settings: s, platform: p, httpClient: o.httpClient, warnings: o.warnings, now: o.now, reportErrors: o.reportErrors}
	h.cache = &cache.Cache{Dir: s.Cache.Path, LockTimeout: s.Budgets.LockWait, Debugf: h.debugf, Warnf: h.warnf, Now: o.now}
	for _, w := range s.Warnings {
		h.warnf("%s", w)
	}
	if s.Cache.Path == "" {
		h.debugf("token cache disabled: %s", s.Cache.Why)
	}
	return h, nil
}

// Settings returns the settings the helper runs with.
func (h *Helper) Settings() Settings { return h.settings }

// errNotFound is the one soft error: Docker then continues anonymously.
var errNotFound = credentials.NewErrCredentialsNotFound()

// IsNotFound reports whether err means "not a registry this helper serves,
// or no credentials configured for it": callers then go on without
// credentials, as Docker does.
func IsNotFound(err error) bool { return credentials.IsErrCredentialsNotFound(err) }

// NoCredentialsError says that a served host has no credentials configured.
// It is a not-found for the Docker protocol, and an explanation for people.
type NoCredentialsError struct {
	Host string
	// Why federation was not used either.
	Why string
	Err error
}

func (e *NoCredentialsError) Error() string {
	what, fix := problem.Split(e.Err)
	msg := fmt.Sprintf("%s (workload identity federation not used either: %s)", what, e.Why)
	if fix != "" {
		msg += "; " + fix
	}
	return msg
}

// HowToFix is the fix of the cause.
func (e *NoCredentialsError) HowToFix() string {
	_, fix := problem.Split(e.Err)
	return fix
}

// noCredentials explains err, which says nothing is configured, with why
// flow (which may be nil) did not use federation either.
func noCredentials(host string, flow *tokensource.Flow, err error) *NoCredentialsError {
	why := "not configured"
	if flow != nil && flow.Reason != "" {
		why = flow.Reason
	}
	return &NoCredentialsError{Host: host, Why: why, Err: err}
}

// Unwrap makes the error both the Docker not-found and the cause.
func (e *NoCredentialsError) Unwrap() []error { return []error{errNotFound, e.Err} }

// Credential is what the helper answers for one registry host.
type Credential struct {
	Host     string
	Username string
	Secret   string
	// Expiry is when Secret stops working; zero for static logins that do
	// not expire.
	Expiry time.Time
	// Source says in words where the credential came from (no secrets).
	Source string
	// Static marks a secret that is read, not minted (a stored login or a
	// robot account file): it can be rotated or revoked at any time.
	Static bool
}

// Get returns the username and secret for serverURL, bounded by the get
// budget. Hosts this helper does not serve, and served hosts without any
// credentials configured, yield an error for which IsNotFound is true.
func (h *Helper) Get(serverURL string) (string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), h.settings.Budgets.Get)
	defer cancel()
	c, err := h.Credential(ctx, serverURL)
	if err != nil {
		var none *NoCredentialsError
		if errors.As(err, &none) {
			h.warnf("no credentials for %s: %v; pulling anonymously", none.Host, none)
			return "", "", errNotFound
		}
		var public *PublicRegistryError
		if errors.As(err, &public) {
			h.warnf("%v; pulling anonymously", public)
			return "", "", errNotFound
		}
		if h.reportErrors && !IsNotFound(err) {
			fmt.Fprintf(h.warnings, "%s: %s\n", Name, problem.OneLine(err))
		}
		return "", "", err
	}
	return c.Username, c.Secret, nil
}

// Served normalises serverURL and says whether this helper serves it.
func (h *Helper) Served(serverURL string) (host string, ok bool, err error) {
	host, _, ok, err = h.lookupHost(serverURL)
	return host, ok, err
}

// lookupHost normalises serverURL and returns the config for it, or ok ==
// false if this helper does not serve that host.
func (h *Helper) lookupHost(serverURL string) (host string, entry RegistryConfig, ok bool, err error) {
	host, err = NormalizeHost(serverURL)
	if err != nil {
		// At most 100 bytes of what the caller sent, each one printable.
		h.debugf("%q is not a registry host", strings.Map(func(r rune) rune {
			if r < 0x20 || r >= 0x7f {
				return '?'
			}
			return r
		}, serverURL[:min(len(serverURL), 100)]))
		return "", RegistryConfig{}, false, nil
	}
	hosts, err := h.allowed()
	if err != nil {
		return "", RegistryConfig{}, false, err
	}
	entry, ok = hosts[host]
	if !ok && h.settings.Debug {
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
	if h.settings.ConfigErr != nil {
		return nil, h.settings.ConfigErr
	}
	cfg, err := loadConfig(h.settings.Config.Path, h.platform.System())
	if err != nil {
		return nil, err
	}
	if cfg.missing && h.settings.Config.Why == EnvConfig {
		// Named on purpose but absent: a typo here would otherwise serve
		// the defaults silently, as if the file said nothing.
		return nil, &MissingConfigError{Path: h.settings.Config.Path}
	}
	hosts, err := allowedHosts(h.settings.ExtraHosts, cfg)
	if err != nil {
		return nil, err
	}
	h.hosts, h.config = hosts, cfg
	return hosts, nil
}

// MissingConfigError says that DOCKER_CREDENTIAL_STACKIT_CONFIG names a
// file that does not exist. configure-docker, which creates the file, goes
// on; every command that serves credentials stops.
type MissingConfigError struct{ Path string }

func (e *MissingConfigError) Error() string {
	return fmt.Sprintf("%s=%s does not exist; %s", EnvConfig, e.Path, e.HowToFix())
}

// HowToFix says how to resolve it.
func (e *MissingConfigError) HowToFix() string {
	return "create it (docker-credential-stackit configure-docker --registry HOST writes it), fix the path, or unset " + EnvConfig
}

func (h *Helper) logins() loginStore {
	return loginStore{path: filepath.Join(filepath.Dir(h.settings.Config.Path), "logins.json"), sys: h.platform.System(), lockWait: h.settings.Budgets.LockWait}
}

func (h *Helper) discoveryOptions() tokensource.Options {
	return tokensource.Options{Env: h.env, HTTPClient: h.httpClient, Now: h.now, Platform: h.platform.System(),
		RequestTimeout: h.settings.Budgets.Request,
		HomeDir:        func() (string, error) { return tokensource.UserHomeDir(h.env, h.platform.GOOS), nil }}
}

// discover finds how entry logs in.
func (h *Helper) discover(entry RegistryConfig) (*tokensource.Flow, error) {
	return tokensource.Discover(h.discoveryOptions(), entry.overrides())
}

// Credential resolves the credential for serverURL within ctx. Hosts this
// helper does not serve yield the not-found error without any file or
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
	if h.settings.Err != nil {
		return nil, h.settings.Err
	}
	if login, found, err := h.logins().get(host); err != nil {
		return nil, err
	} else if found {
		h.debugf("get %s: source=stored login of %s (from docker login; docker logout %s removes it) took=%s", host, login.Username, host, since(start))
		return &Credential{Host: host, Username: login.Username, Secret: login.Secret, Source: "stored login (docker login)", Static: true}, nil
	}
	if err := h.publicRefusal(host, entry); err != nil {
		return nil, err
	}

	// Lazy: a cache hit answers without parsing the key (see loginName).
	opts := h.discoveryOptions()
	opts.Lazy = true
	flow, err := tokensource.Discover(opts, entry.overrides())
	if flow != nil && flow.Reason != "" {
		h.debugf("get %s: chose %s: %s", host, flow.Kind, flow.Reason)
	}
	if tokensource.IsNoCredentials(err) {
		return nil, fmt.Errorf("%s: %w", host, noCredentials(host, flow, err))
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", host, err)
	}
	h.showWarnings(flow.Warnings)
	return h.mint(ctx, host, flow, start)
}

// PodCredential exchanges a pod's Kubernetes service account token for a
// STACKIT access token of email at the STACKIT IdP, for the kubelet's
// per-pod identities. The result is never cached on disk (see
// tokensource.PodFederation); the kubelet caches it per ServiceAccount.
func (h *Helper) PodCredential(ctx context.Context, serverURL, email, emailSource, serviceAccountToken string) (*Credential, error) {
	start := time.Now()
	host, entry, ok, err := h.lookupHost(serverURL)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errNotFound
	}
	if h.settings.Err != nil {
		return nil, h.settings.Err
	}
	if err := h.publicRefusal(host, entry); err != nil {
		return nil, err
	}
	if entry.RobotAccountPath != "" {
		return nil, problem.New(fmt.Sprintf("the helper config serves %s with robot account file %s, so per-pod identities cannot apply", host, entry.RobotAccountPath),
			"remove the "+emailSource+" from the ServiceAccount")
	}
	flow, err := tokensource.PodFederation(h.discoveryOptions(), entry.overrides(), email, emailSource, serviceAccountToken)
	if err != nil {
		return nil, err
	}
	return h.mint(ctx, host, flow, start)
}

// mint obtains the credential through flow: through the cache when the
// flow may be cached, with retries of transient failures.
func (h *Helper) mint(ctx context.Context, host string, flow *tokensource.Flow, start time.Time) (*Credential, error) {
	src := tokensource.TokenSource(flow)
	if !flow.Static {
		retry := h.settings.Retry
		retry.Debugf = h.debugf
		src = tokensource.WithRetry(flow, retry)
	}
	var (
		tok    *tokensource.Token
		result = "not-cached"
		err    error
	)
	if flow.CacheKey != "" {
		var r cache.Result
		tok, r, err = h.cache.Token(ctx, flow.CacheKey, flow.Source, src)
		result = r.String()
	} else {
		tok, err = src.Token(ctx)
	}
	if err != nil {
		h.debugf("get %s: source=%s endpoint=%s cache=%s failed after %s", host, flow.Source, flow.Endpoint, result, since(start))
		return nil, fmt.Errorf("%s: %w", host, err)
	}
	h.showWarnings(tok.Warnings)
	username, err := loginName(flow, tok)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", host, err)
	}
	if h.settings.Debug {
		// Formatting in local time loads the zone database: only when asked.
		source := flow.Source
		if tok.Detail != "" {
			source += " (" + tok.Detail + ")"
		}
		if flow.Static {
			expires := "never"
			if !tok.Expiry.IsZero() {
				expires = tok.Expiry.UTC().Format(time.RFC3339)
			}
			h.debugf("get %s: source=%s user=%s expires=%s took=%s", host, source, username, expires, since(start))
		} else {
			h.debugf("get %s: source=%s user=%s endpoint=%s cache=%s expires=%s took=%s",
				host, source, username, debugEndpoint(flow), result, tok.Expiry.Local().Format(time.RFC3339), since(start))
		}
	}
	return &Credential{Host: host, Username: username, Secret: tok.AccessToken, Expiry: tok.Expiry, Source: flow.Source, Static: flow.Static}, nil
}

// Add implements `docker login`. Logging in as the account the helper
// itself logs in as stores nothing, since `get` mints tokens for it; any
// other username is a static robot login kept for that host until
// `docker logout`.
func (h *Helper) Add(c *credentials.Credentials) error {
	host, entry, ok, err := h.lookupHost(c.ServerURL)
	if err != nil {
		return err
	}
	if !ok {
		return problem.New(fmt.Sprintf("%s is not a STACKIT registry served by this helper", strings.TrimSpace(c.ServerURL)),
			fmt.Sprintf("run docker-credential-stackit configure-docker --registry %s to add it, or remove it from credHelpers", strings.TrimSpace(c.ServerURL)))
	}
	if c.Username == "<token>" {
		return problem.New("identity-token logins are not supported", "log in with the service account email or a robot account name")
	}
	if c.Secret == "" {
		return problem.New("the password is empty", "log in with a robot secret, or use the service account email to let the helper mint tokens")
	}
	own := entry.Username
	if own == "" {
		if flow, err := h.discover(entry); err == nil {
			own = flow.Username
		}
	}
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
	if flow, ferr := h.discover(entry); ferr == nil && flow.CacheKey != "" {
		ctx, cancel := context.WithTimeout(context.Background(), h.settings.Budgets.Get)
		defer cancel()
		if derr := h.cache.Drop(ctx, flow.CacheKey); derr != nil {
			h.debugf("erase %s: could not drop the cached token: %v", host, derr)
		}
	}
	h.debugf("erase %s: done", host)
	return nil
}

// List maps every served host to the username `get` would return, without
// touching the network. Hosts whose credentials cannot be found are left
// out, with a warning that says why.
func (h *Helper) List() (map[string]string, error) {
	plans, err := h.Plans()
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(plans))
	for _, p := range plans {
		if p.Err != nil {
			h.warnf("list: leaving out %s: %v", p.Host, p.Err)
			continue
		}
		out[p.Host] = p.Username
	}
	return out, nil
}

// showWarnings prints warnings, each once a day at most when it says so.
func (h *Helper) showWarnings(ws []tokensource.Warning) {
	for _, w := range ws {
		if w.OnceADay != "" {
			h.warnOncePerDay(w.OnceADay, w.Message)
			continue
		}
		h.warnf("%s", w.Message)
	}
}

func (h *Helper) debugf(format string, args ...any) {
	if h.settings.Debug && h.warnings != nil {
		fmt.Fprintf(h.warnings, "docker-credential-stackit: debug: "+format+"\n", args...)
	}
}

func (h *Helper) warnf(format string, args ...any) {
	if h.warnings != nil {
		fmt.Fprintf(h.warnings, "docker-credential-stackit: warning: "+format+"\n", args...)
	}
}

func since(t time.Time) time.Duration { return time.Since(t).Round(10 * time.Microsecond) }

// loginName is the username to answer with. A per-registry username wins;
// a robot's name comes with its secret from one read of its file; a key
// flow's email comes with the token, from the cache entry on a hit, so a
// warm get never parses the key. Entries written before they carried the
// email need the key described once.
func loginName(flow *tokensource.Flow, tok *tokensource.Token) (string, error) {
	switch {
	case flow.Static && tok.Username != "":
		return tok.Username, nil
	case flow.Username != "":
		return flow.Username, nil
	case tok.Username != "":
		return tok.Username, nil
	}
	full, err := flow.Describe()
	if err != nil {
		return "", err
	}
	return full.Username, nil
}

// debugEndpoint is where the flow mints tokens, for the debug log: a lazy
// flow knows it only once its key is parsed, which the log may pay for.
func debugEndpoint(flow *tokensource.Flow) string {
	if flow.Endpoint != "" {
		return flow.Endpoint
	}
	if full, err := flow.Describe(); err == nil && full.Endpoint != "" {
		return full.Endpoint
	}
	return "(from the key)"
}
