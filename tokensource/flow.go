package tokensource

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/docker-credential-stackit/docker-credential-stackit/internal/platform"
)

// Kind names a way of logging in.
type Kind int

// The kinds of login, in the order discovery considers them.
const (
	KindKey Kind = iota
	KindFederation
	KindRobot
)

func (k Kind) String() string {
	switch k {
	case KindFederation:
		return "workload identity federation"
	case KindRobot:
		return "robot account file"
	default:
		return "key flow"
	}
}

// Fact is one labelled line of what discovery found, for doctor, status and
// the debug log. A fact never holds a secret.
type Fact struct {
	Label string
	Value string
}

// Warning is something the user should fix that does not stop the login.
// Warnings with a OnceADay key are shown at most once a day by callers that
// can remember (a warning on every pull is noise that hides real ones).
type Warning struct {
	Message   string
	OnceADay  string
	RepeatsIn time.Duration
}

// Flow is how one registry logs in: everything a caller needs to mint,
// cache, describe and check a credential, so that no caller looks inside.
// A Flow is a TokenSource.
//
// Concurrency: Token may be called from several goroutines at once; each
// call reads its inputs afresh (the federated token, the robot file) and
// shares nothing mutable with other calls. Describing fields are set by
// discovery and never change afterwards.
type Flow struct {
	Kind Kind
	// Username is the registry login: the service account email, the
	// robot's name, or the per-registry override.
	Username string
	// CacheKey identifies the account and endpoint in the token cache. It is
	// empty when the credential must not be cached on disk: robot secrets
	// are read fresh, and a per-pod token belongs to that pod alone.
	CacheKey string
	// Source says in words where the credentials come from, Endpoint where
	// tokens are minted (empty for a robot file), Reason why this flow was
	// chosen. None holds a secret.
	Source   string
	Endpoint string
	Reason   string
	// Facts are the details, in reading order.
	Facts []Fact
	// Warnings were found while discovering, such as a key file others can
	// read. Token may add more in its result.
	Warnings []Warning
	// Static marks a secret that is read, not minted: it can be rotated or
	// revoked at any time, so consumers should not keep it long.
	Static bool

	source TokenSource
	check  func() ([]Fact, error)
	// describe fills in a flow that discovery left undescribed (Lazy).
	describe func() (*Flow, error)
}

// Describe returns the flow with every detail filled in: a flow from a
// Lazy discovery parses its key now. Other flows return themselves.
func (f *Flow) Describe() (*Flow, error) {
	if f.describe == nil {
		return f, nil
	}
	return f.describe()
}

// Token obtains a credential through the flow.
func (f *Flow) Token(ctx context.Context) (*Token, error) { return f.source.Token(ctx) }

// Check looks deeper without using the network: that the private key parses
// and belongs to the key id, that the robot file reads. It returns what it
// learnt, for doctor.
func (f *Flow) Check() ([]Fact, error) {
	if f.check == nil {
		return nil, nil
	}
	return f.check()
}

// Options are what discovery needs from its caller besides the overrides.
type Options struct {
	// Env looks up variables; nil means os.Getenv.
	Env Env
	// RequestTimeout bounds one request of the default client; 0 means
	// 30 s. The caller's context bounds the whole exchange.
	RequestTimeout time.Duration
	// HTTPClient is used for every request; nil means NewHTTPClient().
	HTTPClient *http.Client
	// Now defaults to time.Now.
	Now func() time.Time
	// Exists probes whether a federated token file exists; nil means
	// FileExists.
	Exists func(path string) bool
	// Platform decides the per-OS rules (Unix modes, owners); the zero
	// value means the machine we run on. Tests play other systems with it.
	Platform platform.Platform
	// Lazy leaves a service account key unparsed until a token must be
	// minted: the flow then has its CacheKey and Source but no Username,
	// Facts or Endpoint from the key (Describe fills them in). A warm get
	// answered from the cache never decodes the key JSON.
	Lazy bool
	// HomeDir finds ~ for ~/.stackit/credentials.json; nil means
	// os.UserHomeDir, as the STACKIT SDK does.
	HomeDir func() (string, error)
	// Keyring reads the STACKIT CLI's login; nil means the OS keyring.
	Keyring SecretStore
}

func (o Options) env() Env {
	if o.Env == nil {
		return os.Getenv
	}
	return o.Env
}

func (o Options) sys() platform.Platform {
	if o.Platform.GOOS == "" {
		return platform.Current()
	}
	return o.Platform
}

func (o Options) now() func() time.Time {
	if o.Now == nil {
		return time.Now
	}
	return o.Now
}

// Overrides are one registry's own settings. Set fields beat the
// environment, so that registries can use different accounts. Origin names
// where they were written, e.g. "the helper config", for messages.
type Overrides struct {
	Origin string
	// Key flow.
	ServiceAccountKeyPath string
	PrivateKeyPath        string
	TokenEndpoint         string
	// Workload identity federation.
	ServiceAccountEmail string
	FederatedTokenFile  string
	IDPTokenEndpoint    string
	// RobotAccountPath is a Harbor or Quay robot account file: a complete
	// login on its own.
	RobotAccountPath string
	// Username replaces the login name of either service account flow.
	Username string
}

func (o Overrides) origin() string {
	if o.Origin == "" {
		return "the registry's settings"
	}
	return o.Origin
}

// field names an override field as the user wrote it.
func (o Overrides) field(name string) string { return name + " in " + o.origin() }

// Discover finds how a registry logs in, the way the STACKIT SDK does:
// a robot account file if the registry names one, else workload identity
// federation when its inputs are present, else the service account key
// (overrides, STACKIT_SERVICE_ACCOUNT_KEY_PATH, STACKIT_SERVICE_ACCOUNT_KEY,
// the credentials file), else the STACKIT CLI's active service account.
//
// It reads the key JSON for the key id, but no private key, federated token
// or robot file: those wait for Token, so a cache hit never pays for them.
// On error the returned Flow, when not nil, still says which flow was
// chosen and why. ErrNoCredentials means nothing is configured at all.
func Discover(opts Options, o Overrides) (*Flow, error) {
	if o.RobotAccountPath != "" {
		return robotFlow(opts, o), nil
	}
	env := opts.env()
	exists := opts.Exists
	if exists == nil {
		exists = FileExists
	}
	c, err := chooseFlow(env, o, exists)
	if err != nil {
		return nil, err
	}
	if c.Flow == KindFederation {
		w, err := newWorkloadIdentity(env, o, c)
		if err != nil {
			return &Flow{Kind: KindFederation, Reason: c.Reason}, err
		}
		w.HTTPClient, w.Now, w.requestTimeout = opts.HTTPClient, opts.Now, opts.RequestTimeout
		if gh, ok := w.Federated.(*gitHubOIDC); ok {
			gh.HTTPClient = opts.HTTPClient
		}
		return w.flow(c.Reason, o), nil
	}
	in, err := locateKey(env, o, opts.HomeDir, opts.sys())
	var k *keyFlow
	if err == nil && opts.Lazy {
		return lazyKeyFlow(in, opts, c.Reason), nil
	}
	if err == nil {
		k, err = in.parse()
	}
	if errors.Is(err, ErrNoCredentials) && o.noneSet() {
		// Last, after every SDK source: the STACKIT CLI's login. When the
		// CLI has none either, the SDK's own explanation stands.
		f, cliErr := stackitCLIFlow(opts, c.Reason)
		if cliErr == ErrNoCredentials {
			return f, err
		}
		return f, cliErr
	}
	if err != nil {
		return &Flow{Kind: KindKey, Reason: c.Reason}, err
	}
	k.HTTPClient, k.Now, k.requestTimeout = opts.HTTPClient, opts.Now, opts.RequestTimeout
	return k.flow(c.Reason, o, env), nil
}

// PodFederation is workload identity federation for one Kubernetes pod: the
// pod's own service account token, sent by the kubelet, is exchanged for a
// token of email. Only the IdP endpoint of the overrides applies; the key
// flow's fields belong to the node's own identity.
//
// The flow has no CacheKey on purpose: any pod can put any email on its
// ServiceAccount, and a token cached by email alone would be handed to a
// pod whose own token the IdP never checked.
func PodFederation(opts Options, o Overrides, email, emailSource, serviceAccountToken string) (*Flow, error) {
	c := choice{Flow: KindFederation, Email: email, EmailSource: emailSource,
		Reason: "the kubelet sent the pod's service account token and its ServiceAccount names a STACKIT identity"}
	w, err := newWorkloadIdentity(opts.env(), Overrides{Origin: o.Origin, IDPTokenEndpoint: o.IDPTokenEndpoint}, c)
	if err != nil {
		return nil, err
	}
	w.Federated = podToken(serviceAccountToken)
	w.HTTPClient, w.Now, w.requestTimeout = opts.HTTPClient, opts.Now, opts.RequestTimeout
	f := w.flow(c.Reason, Overrides{})
	f.CacheKey = ""
	return f, nil
}

// podToken hands the pod's Kubernetes service account token, which the
// kubelet sent in the request, to workload identity federation.
type podToken string

func (p podToken) FederatedToken(context.Context) (string, error) { return string(p), nil }
func (p podToken) String() string {
	return "the pod's Kubernetes service account token (kubelet tokenAttributes)"
}

// withUsername applies the per-registry username override to a service
// account flow and says so.
func withUsername(f *Flow, o Overrides, minted string) *Flow {
	if o.Username == "" {
		f.Facts = append(f.Facts, Fact{"account", minted})
		return f
	}
	f.Username = o.Username
	f.Facts = append(f.Facts, Fact{"account", fmt.Sprintf("%s (username set in %s; tokens are minted for %s)", o.Username, o.origin(), minted)})
	return f
}

// IsNoCredentials reports whether err means nothing is configured at all.
func IsNoCredentials(err error) bool { return errors.Is(err, ErrNoCredentials) }

// lazyKeyFlow is the key flow before its key is parsed: enough to look in
// the cache. Everything else waits for Token or Describe.
func lazyKeyFlow(in *keyInput, opts Options, reason string) *Flow {
	l := &lazyKey{in: in, opts: opts, reason: reason}
	return &Flow{
		Kind: KindKey, Username: in.o.Username, CacheKey: in.cacheKey(),
		Source: in.setting.describe(), Endpoint: in.endpointOverride, Reason: reason,
		Warnings: in.warnings, source: l, describe: l.resolve,
	}
}

// lazyKey parses the key once, on first need, for any number of
// concurrent callers.
type lazyKey struct {
	in     *keyInput
	opts   Options
	reason string

	once sync.Once
	full *Flow
	err  error
}

func (l *lazyKey) resolve() (*Flow, error) {
	l.once.Do(func() {
		k, err := l.in.parse()
		if err != nil {
			l.err = err
			return
		}
		k.HTTPClient, k.Now, k.requestTimeout = l.opts.HTTPClient, l.opts.Now, l.opts.RequestTimeout
		l.full = k.flow(l.reason, l.in.o, l.in.env)
	})
	return l.full, l.err
}

func (l *lazyKey) Token(ctx context.Context) (*Token, error) {
	f, err := l.resolve()
	if err != nil {
		return nil, err
	}
	return f.Token(ctx)
}
