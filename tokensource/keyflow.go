package tokensource

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/docker-credential-stackit/docker-credential-stackit/internal/platform"

	"github.com/docker-credential-stackit/docker-credential-stackit/internal/problem"

	"github.com/golang-jwt/jwt/v5"
)

// assertionLifetime is what STACKIT documents; the SDK's 1 h is needlessly long
// for a credential that is used once, within seconds.
const assertionLifetime = 10 * time.Minute

const grantTypeJWTBearer = "urn:ietf:params:oauth:grant-type:jwt-bearer"

// KeyFlow exchanges a service account key for access tokens (RFC 7523).
// Discovery reads only the key JSON; the private key is found and parsed
// on the first Token call, so a cache hit never pays for it.
type keyFlow struct {
	Key *ServiceAccountKey
	// KeySource says where the key came from, e.g.
	// "STACKIT_SERVICE_ACCOUNT_KEY_PATH (/home/me/key.json)".
	KeySource      string
	Endpoint       string
	EndpointSource string
	// HTTPClient defaults to NewHTTPClient().
	HTTPClient *http.Client
	// Now defaults to time.Now.
	Now func() time.Time

	// Warnings were found while reading the key, such as a key file
	// others can read.
	Warnings []Warning

	privateKeyOverride setting
	lookup             *lookup
	overrides          Overrides
	// credsWarned: discovery already read the credentials file and put its
	// warnings in Warnings.
	credsWarned bool
	cacheKey    string
	// requestTimeout bounds one request of the default client.
	requestTimeout time.Duration
	// sys judges file modes; zero means the machine we run on.
	sys platform.Platform
}

// newKeyFlow discovers the service account key: the overrides first, then
// STACKIT_SERVICE_ACCOUNT_KEY_PATH, STACKIT_SERVICE_ACCOUNT_KEY and the
// credentials file. It returns ErrNoCredentials if none is configured.
func newKeyFlow(env Env, o Overrides) (*keyFlow, error) { return newKeyFlowWith(env, o, nil) }

// system is the platform the flow judges file modes by.
func (k *keyFlow) system() platform.Platform {
	if k.sys.GOOS == "" {
		return platform.Current()
	}
	return k.sys
}

func newKeyFlowWith(env Env, o Overrides, homeDir func() (string, error)) (*keyFlow, error) {
	in, err := locateKey(env, o, homeDir, platform.Current())
	if err != nil {
		return nil, err
	}
	return in.parse()
}

// keyInput is a located service account key, read but not yet parsed: all
// a cache hit needs.
type keyInput struct {
	sys         platform.Platform
	env         Env
	o           Overrides
	l           *lookup
	setting     setting
	data        []byte
	warnings    []Warning
	credsWarned bool
	// endpointOverride is the endpoint set outside the key, which beats
	// the key's own; empty when the key decides.
	endpointOverride, endpointOverrideSource string
}

// locateKey finds and reads the key the way the SDK does (the overrides,
// STACKIT_SERVICE_ACCOUNT_KEY_PATH, STACKIT_SERVICE_ACCOUNT_KEY, the
// credentials file), without parsing it.
func locateKey(env Env, o Overrides, homeDir func() (string, error), sys platform.Platform) (*keyInput, error) {
	l := &lookup{env: env, homeDir: homeDir, sys: sys}
	keySetting, err := l.first(setting{value: o.ServiceAccountKeyPath, source: o.field("serviceAccountKeyPath"), isPath: true, fromOverride: true},
		EnvServiceAccountKeyPath, EnvServiceAccountKey)
	if err != nil {
		return nil, err
	}
	if keySetting.value == "" {
		return nil, l.noCredentials()
	}
	// Names in the credentials file that are misspelt or in another case
	// are worth a warning once the file was needed.
	warnings := l.fileWarnings()
	credsWarned := l.fileWasRead()
	data, err := keySetting.load("service account key", keySetting.fixHint(o, "serviceAccountKeyPath", "set "+EnvServiceAccountKeyPath+" to the key JSON STACKIT issued"),
		func(w Warning) { warnings = append(warnings, w) }, sys)
	if err != nil {
		return nil, err
	}
	in := &keyInput{sys: sys, env: env, o: o, l: l, setting: keySetting, data: data, warnings: warnings, credsWarned: credsWarned}
	switch {
	case o.TokenEndpoint != "":
		in.endpointOverride, in.endpointOverrideSource = o.TokenEndpoint, o.field("tokenEndpoint")
	case env(EnvTokenBaseURL) != "":
		in.endpointOverride, in.endpointOverrideSource = env(EnvTokenBaseURL), EnvTokenBaseURL
	}
	return in, nil
}

// cacheKey identifies the tokens of this key: the digest of the key's
// bytes and the endpoint set outside it. A changed key is another identity
// (a miss, never another account's token), and a cache hit needs no JSON
// parsing of the key and never touches its private key.
func (in *keyInput) cacheKey() string {
	sum := sha256.Sum256(in.data)
	return "key\x00" + hex.EncodeToString(sum[:]) + "\x00" + in.endpointOverride
}

// parse decodes the key and picks the token endpoint.
func (in *keyInput) parse() (*keyFlow, error) {
	o, l, keySetting, data, warnings, credsWarned := in.o, in.l, in.setting, in.data, in.warnings, in.credsWarned
	key, err := ParseServiceAccountKey(data)
	if err != nil {
		where := "service account key from " + keySetting.source
		if keySetting.isPath {
			where = "service account key " + keySetting.value + " (from " + keySetting.source + ")"
		} else if !errors.Is(err, ErrPEMNotJSON) && len(data) > 0 && data[0] != '{' {
			return nil, fmt.Errorf("%s must hold the key JSON itself; to point at a file use %s", keySetting.source, EnvServiceAccountKeyPath)
		}
		return nil, fmt.Errorf("read %s: %w", where, err)
	}

	k := &keyFlow{sys: in.sys, Key: key, KeySource: keySetting.describe(), lookup: l, Warnings: warnings, credsWarned: credsWarned, cacheKey: in.cacheKey()}
	switch {
	case in.endpointOverride != "":
		k.Endpoint, k.EndpointSource = in.endpointOverride, in.endpointOverrideSource
	case key.Credentials.TokenEndpoint != "":
		k.Endpoint, k.EndpointSource = key.Credentials.TokenEndpoint, "credentials.tokenEndpoint in the key"
	default:
		k.Endpoint, k.EndpointSource = DefaultTokenEndpoint, "default"
	}
	if err := CheckEndpoint(k.Endpoint); err != nil {
		return nil, fmt.Errorf("token endpoint from %s: %w", k.EndpointSource, err)
	}
	k.privateKeyOverride = setting{value: o.PrivateKeyPath, source: o.field("privateKeyPath"), isPath: true, fromOverride: true}
	k.overrides = o
	if o.ServiceAccountKeyPath != "" {
		// A registry with its own service account must not pick up the
		// default account's STACKIT_PRIVATE_KEY_PATH: only its own
		// privateKeyPath or the key's embedded private key belong to it.
		k.lookup = nil
	}
	return k, nil
}

// Username is the service account email, which Harbor expects as the login.
func (k *keyFlow) Username() string { return k.Key.Credentials.Iss }

// CacheKey identifies the key and the endpoint set outside it; it never
// includes anything that changes between runs, so the cache keeps hitting.
func (k *keyFlow) CacheKey() string { return k.cacheKey }

// Token signs a fresh assertion and exchanges it at the token endpoint.
func (k *keyFlow) Token(ctx context.Context) (*Token, error) {
	preloadSystemRoots(k.HTTPClient)
	priv, _, warnings, err := k.privateKey()
	if err != nil {
		return nil, err
	}
	now := k.now()
	assertion, err := SignAssertion(k.Key.Credentials, priv, now)
	if err != nil {
		return nil, err
	}
	form := url.Values{"grant_type": {grantTypeJWTBearer}, "assertion": {assertion}}
	client := k.HTTPClient
	if client == nil {
		client = newHTTPClient(k.requestTimeout)
	}
	hints := keyFlowHints
	hints.endpointSource = k.EndpointSource
	tok, err := exchange(ctx, client, k.Endpoint, form, now, k.now, hints)
	if err != nil {
		var rej *rejectedError
		if !errors.As(err, &rej) {
			return nil, err
		}
		if rej.kidNotFound {
			return nil, problem.New(fmt.Sprintf("token endpoint %s does not know key id %s (HTTP %d): the key was deleted or the endpoint is wrong", k.Endpoint, k.Key.Credentials.Kid, rej.status),
				fmt.Sprintf("create a new key for %s or check %s", k.Username(), hints.setting()))
		}
		if rej.status == http.StatusBadRequest || rej.rejectsCredentials() {
			// invalid_grant says nothing about why; a private key that is
			// not the key id's is the usual cause, and can be shown offline.
			if source, cerr := k.CheckPrivateKey(); cerr != nil && source != "" {
				what, fix := problem.Split(cerr)
				return nil, problem.Wrap(err, fmt.Sprintf("%s; token endpoint %s rejected the assertion signed with it (HTTP %d)", what, k.Endpoint, rej.status), fix)
			}
		}
		return nil, err
	}
	tok.Warnings = warnings
	tok.Username = k.Username()
	return tok, nil
}

func (k *keyFlow) now() time.Time {
	if k.Now != nil {
		return k.Now()
	}
	return time.Now()
}

// privateKey finds and parses the private key, and says where it came
// from and what the user should fix about it. It changes nothing in k, so
// concurrent Token calls are safe.
//
// As in the STACKIT SDK, an override that cannot be read (a private key
// path that is missing, empty or not a file, or a credentials file that
// does not parse) counts as no override when the key embeds its private
// key: the embedded key is used, and one warning names what was ignored.
// An override that reads but does not parse stays an error, as in the SDK.
func (k *keyFlow) privateKey() (*rsa.PrivateKey, setting, []Warning, error) {
	var warnings []Warning
	warn := func(w Warning) { warnings = append(warnings, w) }
	embedded := setting{value: k.Key.Credentials.PrivateKey, source: "credentials.privateKey in the key"}
	s := k.privateKeyOverride
	if s.value == "" {
		l := k.lookup
		if l == nil {
			l = &lookup{env: func(string) string { return "" }, sys: k.system()}
		}
		var err error
		s, err = l.first(setting{}, EnvPrivateKeyPath, EnvPrivateKey)
		if err != nil {
			// An explicitly named credentials file that is missing is an
			// error even here (a deliberate difference from the SDK).
			if embedded.value == "" || l.missingExplicitFile() {
				return nil, s, nil, err
			}
			warn(Warning{
				Message:  problem.OneLine(err) + "; ignored it for the private key, as the STACKIT SDK does, and used the private key embedded in the service account key",
				OnceADay: "privkey-creds\x00" + k.KeySource,
			})
			s = setting{}
		} else if !k.credsWarned {
			warnings = append(warnings, l.fileWarnings()...)
		}
	}
	if s.value == "" {
		if embedded.value == "" {
			return nil, s, nil, fmt.Errorf("the service account key from %s has no embedded private key; set %s to the PEM file you created the key with", k.KeySource, EnvPrivateKeyPath)
		}
		s = embedded
	}
	data, err := s.load("private key", s.fixHint(k.overrides, "privateKeyPath", "set "+EnvPrivateKeyPath+" to the PEM private key"), warn, k.system())
	if s.isPath && embedded.value != "" && (err != nil || len(data) == 0) {
		warn(ignoredPrivateKeyPath(s, err, k.overrides))
		s, data, err = embedded, []byte(embedded.value), nil
	}
	if err != nil {
		return nil, s, nil, err
	}
	priv, err := ParsePrivateKey(data)
	if err != nil {
		if s.isPath {
			return nil, s, nil, fmt.Errorf("read private key %s (from %s): %w", s.value, s.source, err)
		}
		return nil, s, nil, fmt.Errorf("read private key from %s: %w", s.source, err)
	}
	return priv, s, warnings, nil
}

// ignoredPrivateKeyPath is the one warning for a private key path that
// could not be read and was skipped for the embedded key. It names the
// path unless the value is secret content pasted into it.
func ignoredPrivateKeyPath(s setting, err error, o Overrides) Warning {
	name, why := s.source, "is empty"
	if LooksLikePath(s.value) {
		name += " (" + s.value + ")"
	}
	var p *problem.Error
	switch {
	case err == nil:
	case errors.As(err, &p) && p.Err != nil:
		why = describeFileError(p.Err)
	default:
		why = "holds what looks like secret content, not a file path"
	}
	fix := "fix or unset " + s.source
	if s.fromOverride {
		fix = "fix privateKeyPath for this registry in " + o.origin()
	}
	return Warning{
		Message:  fmt.Sprintf("%s: %s; ignored it, as the STACKIT SDK does, and used the private key embedded in the service account key; %s", name, why, fix),
		OnceADay: "privkey-path\x00" + s.source + "\x00" + name,
	}
}

// SignAssertion builds the RS512 JWT the token endpoint expects.
func SignAssertion(c KeyCredentials, priv *rsa.PrivateKey, now time.Time) (string, error) {
	jti, err := newUUIDv4()
	if err != nil {
		return "", err
	}
	t := jwt.NewWithClaims(jwt.SigningMethodRS512, jwt.MapClaims{
		"iss": c.Iss,
		"sub": c.Sub,
		"aud": c.Aud,
		"jti": jti,
		"iat": now.Unix(),
		"exp": now.Add(assertionLifetime).Unix(),
	})
	t.Header["kid"] = c.Kid
	signed, err := t.SignedString(priv)
	if err != nil {
		return "", fmt.Errorf("sign assertion with the private key: %w", err)
	}
	return signed, nil
}

func newUUIDv4() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate jti: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]), nil
}

// flow describes the key flow for callers.
func (k *keyFlow) flow(reason string, o Overrides, env Env) *Flow {
	why, ignored := keyWhy(env, o)
	f := &Flow{
		Kind: KindKey, Username: k.Username(), CacheKey: k.CacheKey(),
		Source: k.KeySource, Endpoint: k.Endpoint, Reason: reason,
		Warnings: k.Warnings, source: k,
		Facts: []Fact{
			{"flow", "key flow; workload identity federation is not used: " + reason},
			{"credentials", "service account key from " + k.KeySource},
			{"why", why},
		},
	}
	for _, ig := range ignored {
		f.Facts = append(f.Facts, Fact{"ignored", ig})
	}
	withUsername(f, o, k.Username())
	f.Facts = append(f.Facts, Fact{"key id", k.Key.Credentials.Kid}, Fact{"token endpoint", k.Endpoint + " (" + k.EndpointSource + ")"})
	f.check = func() ([]Fact, error) {
		source, err := k.CheckPrivateKey()
		if source == "" {
			return nil, err
		}
		return []Fact{{"private key", source}}, err
	}
	return f
}

// keyWhy explains, in the SDK's discovery order, why this key was chosen
// and which other configured sources lose to it.
func keyWhy(env Env, o Overrides) (why string, ignored []string) {
	pathSet := env(EnvServiceAccountKeyPath) != ""
	inlineSet := env(EnvServiceAccountKey) != ""
	order := "the order is: the registry's " + o.field("serviceAccountKeyPath") + ", " + EnvServiceAccountKeyPath + ", " + EnvServiceAccountKey + ", the credentials file"
	switch {
	case o.ServiceAccountKeyPath != "":
		why = o.origin() + " sets serviceAccountKeyPath for this registry, which comes first; " + order
		if pathSet {
			ignored = append(ignored, EnvServiceAccountKeyPath+" is set too, but "+o.origin()+" wins for this registry")
		}
		if inlineSet {
			ignored = append(ignored, EnvServiceAccountKey+" is set too, but "+o.origin()+" wins for this registry")
		}
	case pathSet:
		why = EnvServiceAccountKeyPath + " is set; " + order
		if inlineSet {
			ignored = append(ignored, EnvServiceAccountKey+" is set too, but "+EnvServiceAccountKeyPath+" comes first")
		}
	case inlineSet:
		why = EnvServiceAccountKey + " is set and " + EnvServiceAccountKeyPath + " is not; " + order
	default:
		why = "neither " + EnvServiceAccountKeyPath + " nor " + EnvServiceAccountKey + " is set, so the STACKIT credentials file decides"
	}
	return why, ignored
}
