package tokensource

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"

	"github.com/docker-credential-stackit/docker-credential-stackit/internal/safefile"

	"github.com/docker-credential-stackit/docker-credential-stackit/internal/problem"
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
func NewHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = http.ProxyFromEnvironment
	t.DialContext = (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = tlsHandshakeTimeout
	t.ResponseHeaderTimeout = responseHeaderTimeout
	return &http.Client{
		Transport: t,
		Timeout:   requestTimeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			return &redirectError{target: req.URL.Redacted()}
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
	// rejected explains a 401 or 403 in the flow's own terms.
	rejected string
	// rejected400 applies rejected to a 400 as well: OAuth servers answer
	// invalid_grant and invalid_client with 400 (RFC 6749 5.2).
	rejected400 bool
}

var keyFlowHints = flowHints{
	endpointVar: EnvTokenBaseURL,
	rejected:    "the service account key was rejected: check that it is active and not expired",
}

// redirectError is a redirect the client refused to follow.
type redirectError struct{ target string }

func (e *redirectError) Error() string { return "redirected to " + e.target }

// rejectedError is a non-200 answer from a token endpoint.
type rejectedError struct {
	endpoint    string
	status      int
	detail      string
	kidNotFound bool
	hints       flowHints
	retryAfter  time.Duration
}

// unreachableError is a failure to get any HTTP answer; it may be transient.
type unreachableError struct {
	endpoint, reason, endpointVar string
}

func (e *unreachableError) Error() string {
	return fmt.Sprintf("token endpoint %s unreachable: %s; %s", e.endpoint, e.reason, e.HowToFix())
}

func (e *unreachableError) HowToFix() string {
	return "check the network, HTTPS_PROXY and " + e.endpointVar
}

// HowToFix says what the user can do about the answer.
func (e *rejectedError) HowToFix() string {
	switch {
	case e.status == http.StatusUnauthorized || e.status == http.StatusForbidden ||
		(e.status == http.StatusBadRequest && e.hints.rejected400):
		return e.hints.rejected
	case e.status >= 500 || e.status == http.StatusTooManyRequests:
		return "the STACKIT token service is unavailable, try again shortly"
	}
	return ""
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

// exchange posts a token request form and decodes the answer. Values of the
// form are secrets and are scrubbed from anything that ends up in an error.
// Both the key flow and workload identity federation use it, so that both
// get the same limits, expiry rules and error hygiene.
func exchange(ctx context.Context, client *http.Client, endpoint string, form url.Values, sent time.Time, now func() time.Time, hints flowHints) (*Token, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("token endpoint %s: %w", endpoint, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "docker-credential-stackit")
	resp, err := client.Do(req)
	if err != nil {
		var redirect *redirectError
		if errors.As(err, &redirect) {
			// A misconfiguration, not an outage: no retries.
			return nil, problem.New(fmt.Sprintf("token endpoint %s redirected to %s", endpoint, redirect.target), "set "+hints.endpointVar+" to the final URL")
		}
		if ctx.Err() != nil {
			return nil, problem.New(fmt.Sprintf("token endpoint %s did not answer in time", endpoint), "check the network, HTTPS_PROXY and "+hints.endpointVar)
		}
		return nil, &unreachableError{endpoint: endpoint, reason: describeNetError(err), endpointVar: hints.endpointVar}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody+1))
	if err != nil {
		return nil, fmt.Errorf("token endpoint %s: reading the answer failed: %s", endpoint, describeNetError(err))
	}
	if len(body) > maxResponseBody {
		return nil, fmt.Errorf("token endpoint %s sent more than 1 MiB; that is not a token response", endpoint)
	}
	if resp.StatusCode != http.StatusOK {
		detail := scrub(string(body), form)
		return nil, &rejectedError{endpoint: endpoint, status: resp.StatusCode, detail: detail, kidNotFound: mentionsUnknownKid(detail),
			hints: hints, retryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), now())}
	}
	tok, err := ParseTokenResponse(body, sent)
	if err != nil {
		return nil, fmt.Errorf("token endpoint %s: %w", endpoint, err)
	}
	if tok.Expired(now()) {
		return nil, fmt.Errorf("token endpoint %s returned a token that expired at %s, before it arrived; check the system clock", endpoint, tok.Expiry.UTC().Format(time.RFC3339))
	}
	return tok, nil
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

// scrub makes an error body safe and one line: form values (the assertion)
// are removed, whitespace is collapsed and the length is bounded.
func scrub(body string, form url.Values) string {
	for _, values := range form {
		for _, v := range values {
			if len(v) >= 8 {
				body = strings.ReplaceAll(body, v, "[redacted]")
			}
		}
	}
	body = strings.Join(strings.FieldsFunc(body, func(c rune) bool { return unicode.IsSpace(c) || unicode.IsControl(c) }), " ")
	if r := []rune(body); len(r) > 300 {
		body = string(r[:300]) + "…"
	}
	return body
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
