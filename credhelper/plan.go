package credhelper

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/docker-credential-stackit/docker-credential-stackit/internal/safefile"

	"github.com/docker-credential-stackit/docker-credential-stackit/cache"
	"github.com/docker-credential-stackit/docker-credential-stackit/internal/atomicfile"
	"github.com/docker-credential-stackit/docker-credential-stackit/tokensource"
)

// LoginKind names how a host logs in.
type LoginKind string

// The login kinds a Plan can name.
const (
	LoginStored     LoginKind = "stored login"
	LoginKey        LoginKind = "key flow"
	LoginFederation LoginKind = "workload identity federation"
	LoginRobot      LoginKind = "robot account file"
)

// loginKind maps a discovered flow to its login kind.
func loginKind(k tokensource.Kind) LoginKind {
	switch k {
	case tokensource.KindFederation:
		return LoginFederation
	case tokensource.KindRobot:
		return LoginRobot
	}
	return LoginKey
}

// Fact is one labelled line of a plan; it never holds a secret.
type Fact = tokensource.Fact

// Plan says how a host would be served, without using the network and
// without reading any secret beyond what discovery reads (the key JSON for
// its key id). list, status, doctor and the debug log print from it.
type Plan struct {
	Host string
	// Origin says why the host is served: built in, the environment, the
	// helper config.
	Origin string
	// Kind is the login.
	Kind LoginKind
	// Source says in words where the credentials come from, e.g.
	// "STACKIT_SERVICE_ACCOUNT_KEY_PATH (/k.json)" or "STACKIT CLI profile
	// default (keyring)". Never a secret.
	Source   string
	Username string
	Facts    []Fact
	Warnings []string
	// Cached describes the cached token, if any.
	Cached *CachedToken
	// CacheDisabled is set when there is no cache at all.
	CacheDisabled bool
	// CacheProblem says why the cache directory is not used, if it is not.
	CacheProblem error
	// Err is why no credential can be had (nil when one can, as far as can
	// be told offline).
	Err error

	flow *tokensource.Flow
}

// CachedToken describes a cached token without its secret.
type CachedToken struct {
	IssuedAt, Expiry time.Time
	// Reusable is whether get would hand it out now; ReuseMargin is the
	// remaining life below which it is refreshed instead.
	Reusable    bool
	Expired     bool
	ReuseMargin time.Duration
}

// Check looks deeper than the plan without using the network, for doctor:
// that the private key parses and belongs to the key id, that the robot
// file reads. It returns what it learnt.
func (p *Plan) Check() ([]Fact, error) {
	if p.flow == nil {
		return nil, nil
	}
	return p.flow.Check()
}

// Plans returns the plan of every served host, sorted by host.
func (h *Helper) Plans() ([]*Plan, error) {
	hosts, err := h.allowed()
	if err != nil {
		return nil, err
	}
	out := make([]*Plan, 0, len(hosts))
	for _, host := range sortedKeys(hosts) {
		out = append(out, h.plan(host, hosts[host]))
	}
	return out, nil
}

// Plan returns how serverURL would be served. A host this helper does not
// serve gets an error for which IsNotFound is true.
func (h *Helper) Plan(serverURL string) (*Plan, error) {
	host, entry, ok, err := h.lookupHost(serverURL)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errNotFound
	}
	return h.plan(host, entry), nil
}

func (h *Helper) plan(host string, entry RegistryConfig) *Plan {
	p := &Plan{Host: host, Origin: h.hostOrigin(host, entry)}
	if h.settings.Err != nil {
		p.Err = h.settings.Err
		return p
	}
	logins := h.logins()
	login, found, err := logins.get(host)
	if err != nil {
		p.Err = err
		return p
	}
	if found {
		p.Kind, p.Username, p.Source = LoginStored, login.Username, "docker login, in "+logins.path
		p.Facts = []Fact{
			{Label: "credentials", Value: fmt.Sprintf("static login %s, stored by docker login in %s", login.Username, logins.path)},
			{Label: "why", Value: fmt.Sprintf("a stored login for this host comes before the service account; docker logout %s removes it", host)},
		}
		return p
	}
	if err := h.publicRefusal(host, entry); err != nil {
		p.Err = err
		return p
	}
	flow, err := h.discover(entry)
	if flow != nil {
		p.flow = flow
		p.Kind, p.Username, p.Source = loginKind(flow.Kind), flow.Username, flow.Source
		p.Facts = flow.Facts
		if len(p.Facts) == 0 && flow.Reason != "" {
			p.Facts = []Fact{{Label: "flow", Value: flow.Kind.String() + ": " + flow.Reason}}
		}
		for _, w := range flow.Warnings {
			p.Warnings = append(p.Warnings, w.Message)
		}
	}
	if err != nil {
		if tokensource.IsNoCredentials(err) {
			err = noCredentials(host, flow, err)
		}
		p.Err = err
		return p
	}
	if flow.Kind == tokensource.KindRobot && flow.Username == "" {
		// The robot file could not be read; Check says why.
		if _, cerr := flow.Check(); cerr != nil {
			p.Err = cerr
		}
	}
	if flow.CacheKey != "" {
		p.Cached, p.CacheDisabled, p.CacheProblem = h.cachedToken(flow.CacheKey)
	}
	return p
}

// cachedToken describes the cached token for key, or why there is none
// to look at: no cache at all, or a cache directory that is not trusted.
func (h *Helper) cachedToken(key string) (*CachedToken, bool, error) {
	if h.cache.Dir == "" {
		return nil, true, nil
	}
	if err := h.cache.Problem(); err != nil {
		return nil, false, err
	}
	e := h.cache.Peek(key)
	if e == nil {
		return nil, false, nil
	}
	tok := &tokensource.Token{AccessToken: e.AccessToken, IssuedAt: e.IssuedAt, Expiry: e.Expiry}
	now := h.now()
	return &CachedToken{IssuedAt: e.IssuedAt, Expiry: e.Expiry, Reusable: tok.Reusable(now), Expired: tok.Expired(now), ReuseMargin: tok.ReuseMargin()}, false, nil
}

// hostOrigin says why a host is served.
func (h *Helper) hostOrigin(host string, entry RegistryConfig) string {
	var from []string
	if host == DefaultRegistry {
		from = append(from, "built in")
	}
	for _, item := range h.settings.ExtraHosts {
		if n, err := NormalizeHost(item); err == nil && n == host {
			from = append(from, EnvRegistries)
			break
		}
	}
	// Plans come from allowed(), which read the config once.
	if cfg := h.config; cfg != nil {
		if _, ok := cfg.Registries[host]; ok {
			s := "the helper config"
			if entry != (RegistryConfig{}) {
				s += " (with its own settings for this registry)"
			}
			from = append(from, s)
		}
	}
	return strings.Join(from, ", ")
}

// warnEvery is how often a once-a-day warning may repeat.
const warnEvery = 24 * time.Hour

// warnOncePerDay prints a warning unless its marker file in the cache dir
// says it was printed less than a day ago. If the cache dir is unusable it
// warns every time: a repeated warning beats a missed one or a failed get.
func (h *Helper) warnOncePerDay(key, message string) {
	dir := h.cache.Dir
	if dir == "" || h.cache.Problem() != nil {
		// No place of our own to remember it in (the cache says why).
		h.warnf("%s", message)
		return
	}
	now := h.now()
	path := filepath.Join(dir, "warned-"+cache.FileName(key))
	if data, _, err := safefile.ReadFileNoFollow(path, h.platform.System()); err == nil {
		last, perr := time.Parse(time.RFC3339, strings.TrimSpace(string(data)))
		// A marker from the future (clock moved back) does not silence us.
		if perr == nil && !now.Before(last) && now.Sub(last) < warnEvery {
			h.debugf("warning already shown at %s (marker %s)", last.UTC().Format(time.RFC3339), path)
			return
		}
	}
	h.warnf("%s", message)
	if err := ensureDir(dir, h.platform.System()); err != nil {
		h.debugf("cannot keep the warning marker in %s (%v); the warning will repeat", dir, err)
		return
	}
	if err := atomicfile.Write(path, []byte(now.UTC().Format(time.RFC3339)+"\n"), 0o600); err != nil {
		h.debugf("cannot write the warning marker %s (%v); the warning will repeat", path, err)
	}
}
