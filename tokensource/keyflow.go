package tokensource

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// assertionLifetime is what STACKIT documents; the SDK's 1 h is needlessly long
// for a credential that is used once, within seconds.
const assertionLifetime = 10 * time.Minute

const grantTypeJWTBearer = "urn:ietf:params:oauth:grant-type:jwt-bearer"

// KeyFlow exchanges a service account key for access tokens (RFC 7523).
// Discovery reads only the key JSON; the private key is found and parsed
// on the first Token call, so a cache hit never pays for it.
type KeyFlow struct {
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

	// Warnings are things the user should fix, such as a key file others
	// can read; the caller shows them.
	Warnings []string

	privateKeyOverride setting
	lookup             *lookup
}

func (k *KeyFlow) warn(msg string) { k.Warnings = append(k.Warnings, msg) }

// NewKeyFlow discovers the service account key: the overrides first, then
// STACKIT_SERVICE_ACCOUNT_KEY_PATH, STACKIT_SERVICE_ACCOUNT_KEY and the
// credentials file. It returns ErrNoCredentials if none is configured.
func NewKeyFlow(env Env, o Overrides) (*KeyFlow, error) {
	l := &lookup{env: env}
	keySetting, err := l.first(setting{value: o.ServiceAccountKeyPath, source: "serviceAccountKeyPath in the helper config", isPath: true},
		EnvServiceAccountKeyPath, EnvServiceAccountKey)
	if err != nil {
		return nil, err
	}
	if keySetting.value == "" {
		return nil, ErrNoCredentials
	}
	var warnings []string
	data, err := keySetting.load("service account key", fixHint(keySetting.source, "serviceAccountKeyPath", "set "+EnvServiceAccountKeyPath+" to the key JSON STACKIT issued"),
		func(w string) { warnings = append(warnings, w) })
	if err != nil {
		return nil, err
	}
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

	k := &KeyFlow{Key: key, KeySource: keySetting.describe(), lookup: l, Warnings: warnings}
	switch {
	case o.TokenEndpoint != "":
		k.Endpoint, k.EndpointSource = o.TokenEndpoint, "tokenEndpoint in the helper config"
	case env(EnvTokenBaseURL) != "":
		k.Endpoint, k.EndpointSource = env(EnvTokenBaseURL), EnvTokenBaseURL
	case key.Credentials.TokenEndpoint != "":
		k.Endpoint, k.EndpointSource = key.Credentials.TokenEndpoint, "credentials.tokenEndpoint in the key"
	default:
		k.Endpoint, k.EndpointSource = DefaultTokenEndpoint, "default"
	}
	if err := CheckEndpoint(k.Endpoint); err != nil {
		return nil, fmt.Errorf("token endpoint from %s: %w", k.EndpointSource, err)
	}
	k.privateKeyOverride = setting{value: o.PrivateKeyPath, source: "privateKeyPath in the helper config", isPath: true}
	if o.ServiceAccountKeyPath != "" {
		// A registry with its own service account must not pick up the
		// default account's STACKIT_PRIVATE_KEY_PATH: only its own
		// privateKeyPath or the key's embedded private key belong to it.
		k.lookup = nil
	}
	return k, nil
}

// Username is the service account email, which Harbor expects as the login.
func (k *KeyFlow) Username() string { return k.Key.Credentials.Iss }

// CacheKey identifies the account and endpoint; it never includes anything
// that changes between runs, so the cache keeps hitting.
func (k *KeyFlow) CacheKey() string {
	return "keyflow\x00" + k.Endpoint + "\x00" + k.Key.Credentials.Kid
}

// Token signs a fresh assertion and exchanges it at the token endpoint.
func (k *KeyFlow) Token(ctx context.Context) (*Token, error) {
	preloadSystemRoots(k.HTTPClient)
	priv, err := k.loadPrivateKey()
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
		client = NewHTTPClient()
	}
	tok, err := exchange(ctx, client, k.Endpoint, form, now, k.now, keyFlowHints)
	if err != nil {
		var rej *rejectedError
		if errors.As(err, &rej) && rej.kidNotFound {
			return nil, fmt.Errorf("token endpoint %s does not know key id %s (HTTP %d): the key was deleted or the endpoint is wrong; create a new key for %s or check %s",
				k.Endpoint, k.Key.Credentials.Kid, rej.status, k.Username(), EnvTokenBaseURL)
		}
		return nil, err
	}
	return tok, nil
}

func (k *KeyFlow) now() time.Time {
	if k.Now != nil {
		return k.Now()
	}
	return time.Now()
}

func (k *KeyFlow) loadPrivateKey() (*rsa.PrivateKey, error) {
	priv, _, err := k.privateKey()
	return priv, err
}

// privateKey finds and parses the private key, and says where it came from.
func (k *KeyFlow) privateKey() (*rsa.PrivateKey, setting, error) {
	s := k.privateKeyOverride
	if s.value == "" {
		l := k.lookup
		if l == nil {
			l = &lookup{env: func(string) string { return "" }}
		}
		var err error
		s, err = l.first(setting{}, EnvPrivateKeyPath, EnvPrivateKey)
		if err != nil {
			return nil, s, err
		}
	}
	if s.value == "" {
		if k.Key.Credentials.PrivateKey == "" {
			return nil, s, fmt.Errorf("the service account key from %s has no embedded private key; set %s to the PEM file you created the key with", k.KeySource, EnvPrivateKeyPath)
		}
		s = setting{value: k.Key.Credentials.PrivateKey, source: "credentials.privateKey in the key"}
	}
	data, err := s.load("private key", fixHint(s.source, "privateKeyPath", "set "+EnvPrivateKeyPath+" to the PEM private key"), k.warn)
	if err != nil {
		return nil, s, err
	}
	priv, err := ParsePrivateKey(data)
	if err != nil {
		if s.isPath {
			return nil, s, fmt.Errorf("read private key %s (from %s): %w", s.value, s.source, err)
		}
		return nil, s, fmt.Errorf("read private key from %s: %w", s.source, err)
	}
	return priv, s, nil
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
