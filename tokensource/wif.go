package tokensource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
	"unicode"

	"github.com/docker-credential-stackit/docker-credential-stackit/internal/redact"
	"github.com/docker-credential-stackit/docker-credential-stackit/internal/safefile"
)

// Workload identity federation: a service account trusts an external OIDC
// issuer (GitHub Actions, GitLab, a Kubernetes cluster), and a token from
// that issuer is exchanged for a STACKIT access token. Nothing secret is
// stored anywhere. The variable names are the STACKIT SDK's.
const (
	EnvServiceAccountEmail = "STACKIT_SERVICE_ACCOUNT_EMAIL"
	EnvFederatedTokenFile  = "STACKIT_FEDERATED_TOKEN_FILE"
	EnvIDPTokenEndpoint    = "STACKIT_IDP_TOKEN_ENDPOINT"
	// EnvIDPEndpoint is what older SDKs read; accepted as an alias.
	EnvIDPEndpoint = "STACKIT_IDP_ENDPOINT"
	EnvUseOIDC     = "STACKIT_USE_OIDC"
	// The GitHub Actions runner sets these when the job has
	// `permissions: id-token: write`.
	EnvActionsIDTokenRequestURL   = "ACTIONS_ID_TOKEN_REQUEST_URL"
	EnvActionsIDTokenRequestToken = "ACTIONS_ID_TOKEN_REQUEST_TOKEN"
)

const (
	// DefaultIDPTokenEndpoint is the STACKIT IdP's token endpoint.
	DefaultIDPTokenEndpoint = "https://accounts.stackit.cloud/oauth/v2/token"
	// DefaultFederatedTokenFile is where STACKIT's Kubernetes integration
	// projects the federated token.
	DefaultFederatedTokenFile = "/var/run/secrets/stackit.cloud/serviceaccount/token"
	// GitHubOIDCAudience is the audience STACKIT expects in GitHub's tokens.
	GitHubOIDCAudience = "sts.accounts.stackit.cloud"
	// ClientAssertionTypeWorkloadJWT is STACKIT's client_assertion_type for
	// federated tokens.
	ClientAssertionTypeWorkloadJWT = "urn:schwarz:params:oauth:client-assertion-type:workload-jwt"
	grantTypeClientCredentials     = "client_credentials"
)

// choice is the outcome of chooseFlow: which flow, why, and for federation
// where the federated token comes from.
type choice struct {
	Flow Kind
	// Reason says in words why this flow was chosen, for the debug log and
	// for hints. It never holds a secret.
	Reason string

	// The federation inputs; set only when Flow is KindFederation.
	Email       string
	EmailSource string
	// TokenFile is the federated token file; empty when GitHubOIDC is set.
	TokenFile       string
	TokenFileSource string
	// GitHubOIDC means the token is requested from the GitHub Actions runner.
	GitHubOIDC bool
}

// FileExists reports whether path names something other than a directory.
// It is discovery's default probe; tests pass their own.
func FileExists(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir()
}

// chooseFlow decides between workload identity federation and the key flow
// the way the STACKIT SDK does (STACKIT_USE_OIDC is the Terraform
// provider's switch; the core SDK does not read it): federation first when its inputs are
// present (a service account email, and either a federated token file that
// exists or STACKIT_USE_OIDC), else the key flow. Per-registry overrides
// from the helper config are explicit, so they decide on their own.
//
// It reads no file content and touches no network; exists probes paths.
func chooseFlow(env Env, o Overrides, exists func(path string) bool) (choice, error) {
	keyFields := o.keyFlowFields()
	fedFields := o.federationFields()
	if len(keyFields) > 0 && len(fedFields) > 0 {
		return choice{}, fmt.Errorf("%s sets %s (key flow) and %s (workload identity federation) for one registry; keep one of them",
			o.origin(), keyFields[0], fedFields[0])
	}
	if len(keyFields) > 0 {
		return choice{Flow: KindKey, Reason: o.origin() + " sets " + strings.Join(keyFields, " and ") + " for this registry"}, nil
	}

	useOIDC, err := parseBoolEnv(env, EnvUseOIDC)
	if err != nil {
		return choice{}, err
	}
	email, emailSource := o.ServiceAccountEmail, o.field("serviceAccountEmail")
	if email == "" {
		email, emailSource = strings.TrimSpace(env(EnvServiceAccountEmail)), EnvServiceAccountEmail
	}
	file, fileSource := o.FederatedTokenFile, o.field("federatedTokenFile")
	if file == "" {
		file, fileSource = env(EnvFederatedTokenFile), EnvFederatedTokenFile
	}
	if file != "" && !LooksLikePath(file) {
		return choice{}, NotAPathError(fileSource, file)
	}
	explicitFile := file != ""
	if !explicitFile {
		file, fileSource = DefaultFederatedTokenFile, "the default path"
	}

	if email == "" {
		if len(fedFields) > 0 {
			return choice{}, fmt.Errorf("%s sets %s for this registry but no service account email; add serviceAccountEmail to the entry or set %s", o.origin(), fedFields[0], EnvServiceAccountEmail)
		}
		reason := EnvServiceAccountEmail + " is not set"
		switch {
		case useOIDC:
			reason += " (" + EnvUseOIDC + " is set, but federation needs the email too)"
		case explicitFile:
			reason += " (" + EnvFederatedTokenFile + " is set, but federation needs the email too)"
		}
		return choice{Flow: KindKey, Reason: reason}, nil
	}

	fed := choice{Flow: KindFederation, Email: email, EmailSource: emailSource}
	githubURL := env(EnvActionsIDTokenRequestURL)
	switch {
	case o.FederatedTokenFile != "":
		// An explicit per-registry file is used even if it is missing now,
		// so that the error names it instead of silently switching flows.
		fed.TokenFile, fed.TokenFileSource = file, fileSource
		fed.Reason = o.origin() + " sets federatedTokenFile " + file + " for this registry"
	case explicitFile && exists(file):
		fed.TokenFile, fed.TokenFileSource = file, fileSource
		fed.Reason = fmt.Sprintf("%s is set and the federated token file %s (from %s) exists", emailSource, file, fileSource)
	case useOIDC && githubURL != "":
		fed.GitHubOIDC = true
		fed.Reason = fmt.Sprintf("%s is set and %s=1 on GitHub Actions (%s is set); %s is the STACKIT Terraform provider's switch, which tools built on the core STACKIT SDK ignore, so they may log in with a key as another account",
			emailSource, EnvUseOIDC, EnvActionsIDTokenRequestURL, EnvUseOIDC)
	case !explicitFile && exists(file):
		fed.TokenFile, fed.TokenFileSource = file, fileSource
		fed.Reason = fmt.Sprintf("%s is set and the federated token file %s (%s) exists", emailSource, file, fileSource)
	case useOIDC:
		// The user asked for federation explicitly; falling back to a key
		// would hide the missing job permission.
		return choice{}, fmt.Errorf("%s is set but there is no federated token: %s is not set (give the GitHub Actions job \"permissions: id-token: write\") and %s (from %s) does not exist; fix one, or unset %s to use a service account key",
			EnvUseOIDC, EnvActionsIDTokenRequestURL, file, fileSource, EnvUseOIDC)
	default:
		return choice{Flow: KindKey, Reason: fmt.Sprintf("%s is set but there is no federated token: %s (from %s) does not exist and %s is not set",
			emailSource, file, fileSource, EnvUseOIDC)}, nil
	}
	return fed, nil
}

// keyFlowFields lists the set overrides that only the key flow uses.
func (o Overrides) keyFlowFields() []string {
	var out []string
	if o.ServiceAccountKeyPath != "" {
		out = append(out, "serviceAccountKeyPath")
	}
	if o.PrivateKeyPath != "" {
		out = append(out, "privateKeyPath")
	}
	if o.TokenEndpoint != "" {
		out = append(out, "tokenEndpoint")
	}
	return out
}

// federationFields lists the set overrides that only federation uses.
func (o Overrides) federationFields() []string {
	var out []string
	if o.ServiceAccountEmail != "" {
		out = append(out, "serviceAccountEmail")
	}
	if o.FederatedTokenFile != "" {
		out = append(out, "federatedTokenFile")
	}
	if o.IDPTokenEndpoint != "" {
		out = append(out, "idpTokenEndpoint")
	}
	return out
}

// parseBoolEnv reads an on/off switch. An unreadable value is an error
// rather than "off": a typo must not silently change the login.
func parseBoolEnv(env Env, name string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(env(name))) {
	case "", "0", "false", "no", "off":
		return false, nil
	case "1", "true", "yes", "on":
		return true, nil
	default:
		return false, fmt.Errorf("%s=%q is not a switch; set it to 1 to use GitHub Actions OIDC tokens, or unset it", name, env(name))
	}
}

// CheckServiceAccountEmail rejects values that cannot be a service account
// email, so that a pasted key or token never becomes a client_id.
func CheckServiceAccountEmail(email string) error {
	at := strings.LastIndexByte(email, '@')
	switch {
	case email == "":
		return errors.New("the service account email is empty")
	case len(email) > 254 || at <= 0 || at == len(email)-1 ||
		strings.ContainsFunc(email, func(c rune) bool { return unicode.IsSpace(c) || unicode.IsControl(c) }):
		return errors.New("this is not an email address; use the service account's email, e.g. my-sa-abc123@sa.stackit.cloud")
	}
	return nil
}

// FederatedTokenSource supplies the external OIDC token that is exchanged.
// It is called on every exchange, never cached, because these tokens rotate.
type federatedTokenSource interface {
	FederatedToken(ctx context.Context) (string, error)
	// String says where tokens come from, for logs and errors.
	String() string
}

// WorkloadIdentity exchanges federated tokens for STACKIT access tokens at
// the STACKIT IdP.
type workloadIdentity struct {
	// requestTimeout bounds one request of the default client.
	requestTimeout time.Duration
	Email          string
	EmailSource    string
	Endpoint       string
	EndpointSource string
	Federated      federatedTokenSource
	// HTTPClient defaults to NewHTTPClient().
	HTTPClient *http.Client
	// Now defaults to time.Now.
	Now func() time.Time
}

// newWorkloadIdentity builds the federation flow from a choice made by
// chooseFlow. It validates the inputs but reads no token yet, so a cache
// hit costs no file read and no request to the CI runner.
func newWorkloadIdentity(env Env, o Overrides, c choice) (*workloadIdentity, error) {
	if c.Flow != KindFederation {
		return nil, errors.New("workload identity federation was not chosen for this registry")
	}
	if err := CheckServiceAccountEmail(c.Email); err != nil {
		return nil, fmt.Errorf("%s: %w", c.EmailSource, err)
	}
	w := &workloadIdentity{Email: c.Email, EmailSource: c.EmailSource}
	switch {
	case o.IDPTokenEndpoint != "":
		w.Endpoint, w.EndpointSource = o.IDPTokenEndpoint, o.field("idpTokenEndpoint")
	case env(EnvIDPTokenEndpoint) != "":
		w.Endpoint, w.EndpointSource = env(EnvIDPTokenEndpoint), EnvIDPTokenEndpoint
	case env(EnvIDPEndpoint) != "":
		w.Endpoint, w.EndpointSource = env(EnvIDPEndpoint), EnvIDPEndpoint
	default:
		w.Endpoint, w.EndpointSource = DefaultIDPTokenEndpoint, "default"
	}
	if err := CheckEndpoint(w.Endpoint); err != nil {
		return nil, fmt.Errorf("IdP token endpoint from %s: %w", w.EndpointSource, err)
	}
	if c.GitHubOIDC {
		gh, err := newGitHubOIDC(env)
		if err != nil {
			return nil, err
		}
		w.Federated = gh
	} else {
		w.Federated = &tokenFile{Path: c.TokenFile, Source: c.TokenFileSource, fromOverride: c.TokenFileSource == o.field("federatedTokenFile"), origin: o.origin()}
	}
	return w, nil
}

// Username is the service account email, which Harbor expects as the login.
func (w *workloadIdentity) Username() string { return w.Email }

// CacheKey identifies the account at one IdP. The federated token is not
// part of it: it rotates, and the access token it buys is the same identity.
func (w *workloadIdentity) CacheKey() string {
	return "wif\x00" + w.Endpoint + "\x00" + w.Email
}

// Token fetches a fresh federated token and exchanges it.
func (w *workloadIdentity) Token(ctx context.Context) (*Token, error) {
	if w.Federated == nil {
		return nil, errors.New("workload identity federation has no federated token source")
	}
	assertion, err := w.Federated.FederatedToken(ctx)
	if err != nil {
		return nil, err
	}
	now := w.now()
	if err := CheckFederatedToken(assertion, now); err != nil {
		return nil, fmt.Errorf("federated token from %s: %w", w.Federated, err)
	}
	form := url.Values{
		"grant_type":            {grantTypeClientCredentials},
		"client_assertion_type": {ClientAssertionTypeWorkloadJWT},
		"client_assertion":      {assertion},
		"client_id":             {w.Email},
	}
	client := w.HTTPClient
	if client == nil {
		client = newHTTPClient(w.requestTimeout)
	}
	return exchange(ctx, client, w.Endpoint, form, now, w.now, flowHints{
		endpointVar:    EnvIDPTokenEndpoint,
		endpointSource: w.EndpointSource,
		example:        DefaultIDPTokenEndpoint,
		rejected: fmt.Sprintf("the federated token from %s was not accepted for %s: check the service account's federated identity provider (issuer, audience and subject conditions) and %s",
			w.Federated, w.Email, w.EmailSource),
		rejected400: true,
	})
}

func (w *workloadIdentity) now() time.Time {
	if w.Now != nil {
		return w.Now()
	}
	return time.Now()
}

// CheckFederatedToken checks that tok looks like a JWT that has not expired,
// so that a stale projected token or a wrong file gets a clear error before
// the IdP answers with a vague one. It never echoes the token.
func CheckFederatedToken(tok string, now time.Time) error {
	if tok == "" {
		return errors.New("it is empty")
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" ||
		strings.ContainsFunc(tok, func(c rune) bool { return !isBase64URLOrDot(c) }) {
		return errors.New("it is not a JWT (expected three base64url parts separated by dots)")
	}
	if exp, _, ok := jwtTimes(tok); ok && !now.Before(exp) {
		return fmt.Errorf("it expired at %s; whatever writes it (the CI job, the kubelet's projected volume) must refresh it", exp.UTC().Format(time.RFC3339))
	}
	return nil
}

func isBase64URLOrDot(c rune) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '='
}

// TokenFile reads the federated token from a file on every call, because
// the kubelet and CI jobs rotate it in place.
type tokenFile struct {
	Path string
	// Source says where Path came from, e.g. STACKIT_FEDERATED_TOKEN_FILE.
	Source string

	fromOverride bool
	origin       string
}

// FederatedToken implements FederatedTokenSource.
func (f *tokenFile) FederatedToken(context.Context) (string, error) {
	data, _, err := readSmallFile(f.Path)
	if err != nil {
		return "", fmt.Errorf("read federated token %s (from %s): %s; write the CI job's OIDC token there, or %s",
			f.Path, f.Source, describeFileError(err), setting{fromOverride: f.fromOverride}.fixHint(Overrides{Origin: f.origin}, "federatedTokenFile", "point "+EnvFederatedTokenFile+" at it"))
	}
	// Files written with echo end in a newline; the token itself never
	// contains whitespace.
	return strings.TrimSpace(string(data)), nil
}

func (f *tokenFile) String() string { return "file " + f.Path + " (" + f.Source + ")" }

// GitHubOIDC requests the federated token from the GitHub Actions runner.
type gitHubOIDC struct {
	// RequestURL is ACTIONS_ID_TOKEN_REQUEST_URL; it already has a query.
	RequestURL string
	// RequestToken is ACTIONS_ID_TOKEN_REQUEST_TOKEN, a secret.
	RequestToken string
	Audience     string
	// HTTPClient defaults to NewHTTPClient().
	HTTPClient *http.Client
}

// NewGitHubOIDC reads the runner's variables and checks them.
func newGitHubOIDC(env Env) (*gitHubOIDC, error) {
	g := &gitHubOIDC{
		RequestURL:   env(EnvActionsIDTokenRequestURL),
		RequestToken: env(EnvActionsIDTokenRequestToken),
		Audience:     GitHubOIDCAudience,
	}
	const perm = "give the GitHub Actions job \"permissions: id-token: write\""
	if g.RequestURL == "" {
		return nil, fmt.Errorf("%s=1 but %s is not set; %s, or unset %s outside GitHub Actions", EnvUseOIDC, EnvActionsIDTokenRequestURL, perm, EnvUseOIDC)
	}
	if g.RequestToken == "" {
		return nil, fmt.Errorf("%s=1 but %s is empty; %s", EnvUseOIDC, EnvActionsIDTokenRequestToken, perm)
	}
	if err := CheckEndpoint(g.RequestURL); err != nil {
		return nil, fmt.Errorf("%s: %w", EnvActionsIDTokenRequestURL, err)
	}
	return g, nil
}

func (g *gitHubOIDC) String() string { return "GitHub Actions OIDC (" + EnvUseOIDC + ")" }

// FederatedToken implements FederatedTokenSource.
func (g *gitHubOIDC) FederatedToken(ctx context.Context) (string, error) {
	where := redactedBase(g.RequestURL)
	// The runner's answer is scrubbed of the request token, which a broken
	// or hostile service might echo.
	secrets := redact.New(g.RequestToken)
	clean := func(s string) string { return secrets.Clean(s, redact.DefaultLimit) }
	sep := "&"
	if !strings.Contains(g.RequestURL, "?") {
		sep = "?"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.RequestURL+sep+"audience="+url.QueryEscape(g.Audience), nil)
	if err != nil {
		return "", fmt.Errorf("GitHub Actions OIDC token request %s: %s; check %s", where, clean(describeNetError(err)), EnvActionsIDTokenRequestURL)
	}
	req.Header.Set("Authorization", "Bearer "+g.RequestToken)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "docker-credential-stackit")
	client := g.HTTPClient
	if client == nil {
		client = newHTTPClient(0)
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("GitHub Actions OIDC token request to %s failed: %s; the runner's token service is unreachable", where, clean(describeNetError(err)))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody+1))
	if err != nil {
		return "", fmt.Errorf("GitHub Actions OIDC token request to %s: reading the answer failed: %s", where, clean(describeNetError(err)))
	}
	if len(body) > maxResponseBody {
		return "", fmt.Errorf("GitHub Actions OIDC token request to %s: the answer is larger than 1 MiB, so it is not a token", where)
	}
	if resp.StatusCode != http.StatusOK {
		msg := fmt.Sprintf("GitHub Actions OIDC token request to %s answered HTTP %d", where, resp.StatusCode)
		if detail := clean(string(body)); detail != "" {
			msg += ": " + detail
		}
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			msg += "; give the job \"permissions: id-token: write\" (and for pull requests from forks, GitHub issues no token)"
		}
		return "", errors.New(msg)
	}
	var answer struct {
		Value string `json:"value"`
	}
	if err := json.Unmarshal(body, &answer); err != nil {
		return "", fmt.Errorf("GitHub Actions OIDC token request to %s: the answer is not JSON (%s)", where, safefile.DescribeJSONError(body, err))
	}
	if answer.Value == "" {
		return "", fmt.Errorf("GitHub Actions OIDC token request to %s: the answer has no \"value\"", where)
	}
	return answer.Value, nil
}

// redactedBase shows scheme, host and path only: the runner's URL carries
// run identifiers in its query that are nobody's business in a log.
func redactedBase(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(" + EnvActionsIDTokenRequestURL + ")"
	}
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
}

// flow describes federation for callers.
func (w *workloadIdentity) flow(reason string, o Overrides) *Flow {
	source := "workload identity federation with the token from " + w.Federated.String()
	f := &Flow{
		Kind: KindFederation, Username: w.Email, CacheKey: w.CacheKey(),
		Source: source, Endpoint: w.Endpoint, Reason: reason, source: w,
		Facts: []Fact{
			{"credentials", source},
			{"why", reason},
		},
	}
	withUsername(f, o, w.Email+" (from "+w.EmailSource+")")
	f.Facts = append(f.Facts, Fact{"IdP endpoint", w.Endpoint + " (" + w.EndpointSource + ")"})
	return f
}
