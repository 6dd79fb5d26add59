package tokensource

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/docker-credential-stackit/docker-credential-stackit/internal/problem"
	"github.com/docker-credential-stackit/docker-credential-stackit/internal/redact"
	"github.com/docker-credential-stackit/docker-credential-stackit/internal/safefile"
)

// Network timeouts. Together with the lock wait they keep one `get` well
// inside the kubelet's 60 s plugin deadline.
const (
	dialTimeout           = 10 * time.Second
	tlsHandshakeTimeout   = 10 * time.Second
	responseHeaderTimeout = 20 * time.Second
	requestTimeout        = 30 * time.Second
	maxResponseBody       = 1 << 20
)

// NewHTTPClient returns the client used for token requests: system roots
// (SSL_CERT_FILE and SSL_CERT_DIR work, as everywhere in Go), proxies from
// the environment, bounded timeouts, and no redirects, because a token
// endpoint that redirects is misconfigured or hostile.
func NewHTTPClient() *http.Client { return newHTTPClient(0) }

// newHTTPClient is NewHTTPClient with a bound on one request; 0 means the
// default, 30 s.
func newHTTPClient(timeout time.Duration) *http.Client {
	if timeout <= 0 {
		timeout = requestTimeout
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = http.ProxyFromEnvironment
	t.DialContext = (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = tlsHandshakeTimeout
	t.ResponseHeaderTimeout = responseHeaderTimeout
	return &http.Client{
		Transport: t,
		Timeout:   timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			return refuseRedirect(req, via)
		},
	}
}

// preloadSystemRoots starts loading the system certificate pool on another
// core. Go loads it lazily during the first handshake, about 15 ms for
// Debian's 430 roots; started now, it overlaps with parsing the private key,
// signing the assertion and dialing. Only the default client verifies with
// the system pool, so a custom client skips this.
func preloadSystemRoots(client *http.Client) {
	if client == nil {
		go func() { _, _ = x509.SystemCertPool() }()
	}
}

// CheckEndpoint accepts https URLs, and plain http only for loopback hosts
// so that tests can run against httptest servers.
func CheckEndpoint(raw string) error {
	if plainHTTPS(raw) {
		return nil
	}
	return checkEndpointParsed(raw)
}

// plainHTTPS is CheckEndpoint's fast path for the usual https URL with a
// plain authority, so that a warm get does not page in the URL parser. It
// only ever accepts what checkEndpointParsed accepts (fuzzed).
func plainHTTPS(raw string) bool {
	rest, ok := strings.CutPrefix(raw, "https://")
	if !ok {
		return false
	}
	authority, _, _ := strings.Cut(rest, "/")
	return authority != "" && !strings.ContainsFunc(authority, func(c rune) bool {
		return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-')
	}) && !strings.ContainsFunc(rest, func(c rune) bool { return c <= ' ' || c == 0x7f || c == '\\' || c == '%' })
}

func checkEndpointParsed(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%q is not an absolute URL; expected https://host/path", raw)
	}
	if u.User != nil {
		return errors.New("the URL must not contain user info")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if isLoopback(u.Hostname()) {
			return nil
		}
		return fmt.Errorf("%s uses plain http; tokens are only sent over https (http is allowed for loopback hosts only)", u.Redacted())
	default:
		return fmt.Errorf("%s: unsupported scheme %q; use https", u.Redacted(), u.Scheme)
	}
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// flowHints adapt exchange's error messages to the flow that calls it: the
// same HTTP status means a different fix for a key than for a federated token.
type flowHints struct {
	// endpointVar is the variable that overrides the endpoint.
	endpointVar string
	// endpointSource says where the endpoint came from (a variable, a config
	// field); empty or "default" means endpointVar.
	endpointSource string
	// example is a full token endpoint URL, for the error about a bare host.
	example string
	// rejected explains a 401 or 403 in the flow's own terms.
	rejected string
	// rejected400 applies rejected to a 400 as well: OAuth servers answer
	// invalid_grant and invalid_client with 400 (RFC 6749 5.2).
	rejected400 bool
}

var keyFlowHints = flowHints{
	endpointVar: EnvTokenBaseURL,
	example:     DefaultTokenEndpoint,
	rejected:    "the service account key was rejected: check that it is active and not expired",
}

// setting names what the user changes to point at another endpoint.
func (h flowHints) setting() string {
	switch h.endpointSource {
	case "":
		return h.endpointVar
	case "default":
		return h.endpointVar + " (not set, so the built-in endpoint is used)"
	}
	return h.endpointSource
}

// secretFormKeys are the form fields that carry credentials. Everything a
// token endpoint sends back is scrubbed of their values.
var secretFormKeys = [...]string{"assertion", "client_assertion", "client_secret"}

func formSecretValues(form url.Values) []string {
	var secrets []string
	for _, k := range secretFormKeys {
		secrets = append(secrets, form[k]...)
	}
	return secrets
}

// redirectError is a redirect that was not followed. Its text shows the
// target as scheme://host/path only: a hostile endpoint can put the
// request's secrets into the query.
type redirectError struct {
	// target is the resolved target; nil when location does not parse.
	target   *url.URL
	location string
}

func (e *redirectError) Error() string { return "redirected to " + e.describe(nil) }

// describe shows the target, scrubbed of secrets.
func (e *redirectError) describe(secrets *redact.Secrets) string {
	if e.target != nil {
		return secrets.RedirectTarget(e.target)
	}
	return secrets.RedirectLocation(e.location)
}

func refuseRedirect(req *http.Request, _ []*http.Request) error {
	return &redirectError{target: req.URL}
}

// stopRedirects hands a redirect back as an error before http.Client can
// follow it (307 and 308 would resend the assertion to the target) or
// quote an unparseable Location in its own error.
type stopRedirects struct{ next http.RoundTripper }

func (s stopRedirects) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := s.next.RoundTrip(req)
	if err != nil || resp.StatusCode < 300 || resp.StatusCode > 399 {
		return resp, err
	}
	loc := resp.Header.Get("Location")
	if loc == "" {
		return resp, nil
	}
	_ = resp.Body.Close()
	if u, err := req.URL.Parse(loc); err == nil {
		return nil, &redirectError{target: u}
	}
	return nil, &redirectError{location: loc}
}

// rejectedError is a non-200 answer from a token endpoint.
type rejectedError struct {
	endpoint    string
	status      int
	detail      string
	kidNotFound bool
	hints       flowHints
	retryAfter  time.Duration
}

// transportKind sorts failures to get a usable HTTP answer by whether
// trying again can help.
type transportKind int

const (
	// kindNetwork is a connection refused, reset or closed, or a DNS
	// failure other than "no such host": it may pass.
	kindNetwork transportKind = iota
	kindTimeout
	// kindCertificate is a TLS certificate this system does not trust.
	kindCertificate
	// kindNoSuchHost is a host name that does not resolve.
	kindNoSuchHost
	// kindMalformed is an answer that is not HTTP as the client speaks it.
	kindMalformed
)

func (k transportKind) String() string {
	switch k {
	case kindTimeout:
		return "timeout"
	case kindCertificate:
		return "untrusted TLS certificate"
	case kindNoSuchHost:
		return "no such host"
	case kindMalformed:
		return "malformed HTTP answer"
	}
	return "network error"
}

// unreachableError is a failure to get a usable HTTP answer. Only network
// failures and timeouts are transient.
type unreachableError struct {
	endpoint, reason, endpointVar string
	kind                          transportKind
}

func (e *unreachableError) Error() string {
	var what string
	switch e.kind {
	case kindCertificate:
		what = fmt.Sprintf("token endpoint %s presented a TLS certificate this system does not trust: %s", e.endpoint, e.reason)
	case kindNoSuchHost:
		what = fmt.Sprintf("token endpoint %s: the host name does not resolve: %s", e.endpoint, e.reason)
	case kindMalformed:
		what = fmt.Sprintf("token endpoint %s sent a malformed HTTP answer: %s", e.endpoint, e.reason)
	default:
		what = fmt.Sprintf("token endpoint %s unreachable: %s", e.endpoint, e.reason)
	}
	return what + "; " + e.HowToFix()
}

func (e *unreachableError) HowToFix() string {
	switch e.kind {
	case kindCertificate:
		return "if a proxy or a private CA signs it, set SSL_CERT_FILE to a PEM bundle with that CA certificate (or SSL_CERT_DIR to a directory of them); otherwise check " + e.endpointVar
	case kindNoSuchHost:
		return "check the host name in " + e.endpointVar + ", and the DNS settings"
	case kindMalformed:
		return "check that " + e.endpointVar + " points at a STACKIT token endpoint and that no proxy rewrites the answer"
	}
	return "check the network, HTTPS_PROXY and " + e.endpointVar
}

// Transient reports whether trying again may help: only for network
// failures and timeouts.
func (e *unreachableError) Transient() bool { return e.kind == kindNetwork || e.kind == kindTimeout }

// classifyTransport sorts an error of http.Client.Do or of reading a body.
// Anything it does not recognise as a network failure is malformed, so
// that it is not retried.
func classifyTransport(err error) transportKind {
	var (
		unknownAuthority x509.UnknownAuthorityError
		invalid          x509.CertificateInvalidError
		hostname         x509.HostnameError
		noRoots          x509.SystemRootsError
		verification     *tls.CertificateVerificationError
		dnsErr           *net.DNSError
		netErr           net.Error
		opErr            *net.OpError
	)
	switch {
	case errors.As(err, &verification), errors.As(err, &unknownAuthority), errors.As(err, &invalid),
		errors.As(err, &hostname), errors.As(err, &noRoots):
		return kindCertificate
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return kindNoSuchHost
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return kindTimeout
	case errors.As(err, &opErr), errors.As(err, &dnsErr), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return kindNetwork
	}
	return kindMalformed
}

// HowToFix says what the user can do about the answer.
func (e *rejectedError) HowToFix() string {
	switch {
	case e.rejectsCredentials():
		return e.hints.rejected
	case e.status >= 500 || e.status == http.StatusTooManyRequests:
		return "the STACKIT token service is unavailable, try again shortly"
	}
	return ""
}

// rejectsCredentials reports whether the endpoint turned down what was sent.
func (e *rejectedError) rejectsCredentials() bool {
	return e.status == http.StatusUnauthorized || e.status == http.StatusForbidden ||
		(e.status == http.StatusBadRequest && e.hints.rejected400)
}

func (e *rejectedError) Error() string {
	msg := fmt.Sprintf("token endpoint %s answered HTTP %d", e.endpoint, e.status)
	if e.detail != "" {
		msg += ": " + e.detail
	}
	if fix := e.HowToFix(); fix != "" {
		msg += "; " + fix
	}
	return msg
}

// mentionsUnknownKid matches STACKIT's "Key with kid X was not found"
// without a package-level regexp, which would cost every start.
func mentionsUnknownKid(body string) bool {
	lower := strings.ToLower(body)
	i := strings.Index(lower, "key with kid ")
	return i >= 0 && strings.Contains(lower[i:], " was not found")
}

// exchange posts a token request form and decodes the answer. Both the key
// flow and workload identity federation use it, so that both get the same
// limits, expiry rules and error hygiene.
//
// The endpoint is not trusted: every string it supplies (body, headers,
// redirect target, the transport's error about a malformed answer) passes
// through one redact.Secrets built from the form's secret values before it
// reaches an error, and only network failures, 5xx and 429 are worth a
// retry (see retryDelay).
func exchange(ctx context.Context, client *http.Client, endpoint string, form url.Values, sent time.Time, now func() time.Time, hints flowHints) (*Token, error) {
	secretValues := formSecretValues(form)
	secrets := redact.New(secretValues...)
	clean := func(s string) string { return secrets.Clean(s, redact.DefaultLimit) }
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("token endpoint %s: %w", endpoint, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "docker-credential-stackit")
	// Whatever client the caller passed, a redirect is never followed.
	noRedirects := *client
	transport := noRedirects.Transport
	if transport == nil {
		transport = http.DefaultTransport
	}
	noRedirects.Transport = stopRedirects{next: transport}
	noRedirects.CheckRedirect = refuseRedirect
	resp, err := noRedirects.Do(req)
	if err != nil {
		var redirect *redirectError
		switch {
		case errors.As(err, &redirect):
			return nil, redirected(endpoint, redirect.describe(secrets), hints)
		case ctx.Err() != nil:
			return nil, problem.New(fmt.Sprintf("token endpoint %s did not answer in time", endpoint), "check the network, HTTPS_PROXY and "+hints.setting())
		}
		return nil, &unreachableError{endpoint: endpoint, reason: clean(describeNetError(err)), endpointVar: hints.setting(), kind: classifyTransport(err)}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody+1))
	if err != nil {
		if ctx.Err() != nil {
			return nil, problem.New(fmt.Sprintf("token endpoint %s did not send its whole answer in time", endpoint), "check the network, HTTPS_PROXY and "+hints.setting())
		}
		return nil, &unreachableError{endpoint: endpoint, reason: "reading the answer: " + clean(describeNetError(err)), endpointVar: hints.setting(), kind: classifyTransport(err)}
	}
	if len(body) > maxResponseBody {
		return nil, fmt.Errorf("token endpoint %s sent more than 1 MiB; that is not a token response", endpoint)
	}
	if resp.StatusCode != http.StatusOK {
		detail := clean(string(body))
		rej := &rejectedError{endpoint: endpoint, status: resp.StatusCode, detail: detail, kidNotFound: mentionsUnknownKid(detail),
			hints: hints, retryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), now())}
		if resp.StatusCode == http.StatusNotFound && isBareOrigin(endpoint) {
			return nil, problem.Wrap(rej, fmt.Sprintf("token endpoint %s answered HTTP 404: %s must be the full token endpoint URL, not only the host", endpoint, hints.setting()),
				fmt.Sprintf("set %s to the full token endpoint URL, e.g. %s", hints.setting(), hints.example))
		}
		return nil, rej
	}
	notAnEndpoint := "check that " + hints.setting() + " points at a STACKIT token endpoint"
	tok, err := ParseTokenResponse(body, sent)
	if err != nil {
		return nil, problem.New(fmt.Sprintf("token endpoint %s: %s", endpoint, clean(err.Error())), notAnEndpoint)
	}
	if slices.ContainsFunc(secretValues, func(v string) bool { return v != "" && strings.Contains(tok.AccessToken, v) }) {
		return nil, problem.New(fmt.Sprintf("token endpoint %s answered with the request's own assertion as the access token", endpoint), notAnEndpoint)
	}
	if tok.Expired(now()) {
		return nil, fmt.Errorf("token endpoint %s returned a token that expired at %s, before it arrived; check the system clock", endpoint, tok.Expiry.UTC().Format(time.RFC3339))
	}
	return tok, nil
}

// redirected is the error for a token endpoint that redirects; target is
// already reduced to scheme://host/path and scrubbed. A misconfiguration,
// not an outage: it is not retried.
func redirected(endpoint, target string, hints flowHints) error {
	return problem.New(fmt.Sprintf("token endpoint %s redirected to %s", endpoint, target), "set "+hints.setting()+" to the final URL")
}

// isBareOrigin reports whether endpoint names a host without a path, the
// usual mistake when a variable is taken for a base URL.
func isBareOrigin(endpoint string) bool {
	u, err := url.Parse(endpoint)
	return err == nil && (u.Path == "" || u.Path == "/")
}

// tokenResponse is the JSON body of a successful token request.
type tokenResponse struct {
	AccessToken string          `json:"access_token"`
	ExpiresIn   json.RawMessage `json:"expires_in"`
	TokenType   string          `json:"token_type"`
}

// ParseTokenResponse decodes a token endpoint answer. The expiry comes from
// the access token's own exp claim, which is authoritative; expires_in,
// counted from received, is the fallback.
func ParseTokenResponse(body []byte, received time.Time) (*Token, error) {
	var r tokenResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("the answer is not JSON (%s)", safefile.DescribeJSONError(body, err))
	}
	if r.AccessToken == "" {
		return nil, errors.New("the answer has no access_token")
	}
	if strings.ContainsFunc(r.AccessToken, func(c rune) bool { return c > unicode.MaxASCII || unicode.IsSpace(c) || unicode.IsControl(c) }) {
		return nil, errors.New("the access_token contains characters a token cannot hold")
	}
	if r.TokenType != "" && !strings.EqualFold(r.TokenType, "bearer") {
		if len(r.TokenType) > 20 {
			return nil, fmt.Errorf("token_type is not Bearer but a value of %d bytes", len(r.TokenType))
		}
		return nil, fmt.Errorf("token_type is %q, expected Bearer", r.TokenType)
	}
	tok := &Token{AccessToken: r.AccessToken, IssuedAt: received}
	if exp, iat, ok := jwtTimes(r.AccessToken); ok {
		tok.Expiry = exp
		if !iat.IsZero() && !iat.After(exp) {
			tok.IssuedAt = iat
		}
		return tok, nil
	}
	seconds, ok := parseExpiresIn(r.ExpiresIn)
	if !ok {
		return nil, errors.New("the answer says neither when the token expires (no JWT exp) nor expires_in")
	}
	tok.Expiry = received.Add(time.Duration(seconds) * time.Second)
	return tok, nil
}

// parseExpiresIn accepts a number or a numeric string, as servers send both.
func parseExpiresIn(raw json.RawMessage) (int64, bool) {
	if len(raw) == 0 {
		return 0, false
	}
	var n json.Number
	if raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return 0, false
		}
		n = json.Number(s)
	} else if json.Unmarshal(raw, &n) != nil {
		return 0, false
	}
	f, err := n.Float64()
	if err != nil || f <= 0 || f > 366*24*3600 {
		return 0, false
	}
	return int64(f), true
}

// jwtTimes reads exp and iat from a JWT without verifying it: we only need
// to know how long the issuer says its token lives.
func jwtTimes(token string) (exp, iat time.Time, ok bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return time.Time{}, time.Time{}, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return time.Time{}, time.Time{}, false
	}
	var claims struct {
		Exp *json.Number `json:"exp"`
		Iat *json.Number `json:"iat"`
	}
	if json.Unmarshal(payload, &claims) != nil || claims.Exp == nil {
		return time.Time{}, time.Time{}, false
	}
	expSec, err := claims.Exp.Float64()
	if err != nil || expSec <= 0 || expSec > 1e11 {
		return time.Time{}, time.Time{}, false
	}
	exp = time.Unix(int64(expSec), 0)
	if claims.Iat != nil {
		if iatSec, err := claims.Iat.Float64(); err == nil && iatSec > 0 && iatSec <= 1e11 {
			iat = time.Unix(int64(iatSec), 0)
		}
	}
	return exp, iat, true
}

func describeNetError(err error) string {
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		err = urlErr.Err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timed out"
	}
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return "timed out"
	}
	return err.Error()
}
