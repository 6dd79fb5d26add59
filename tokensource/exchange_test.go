package tokensource

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func fakeJWT(claims string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"HS256"}`)) + "." + enc([]byte(claims)) + ".sig"
}

func TestParseTokenResponse(t *testing.T) {
	received := time.Unix(1_800_000_000, 0)
	jwtWithExp := fakeJWT(`{"exp": 1800001800, "iat": 1799999990}`)
	cases := []struct {
		name       string
		body       string
		wantErr    string
		wantExpiry time.Time
		wantIssued time.Time
	}{
		{"exp claim wins over expires_in", `{"access_token":"` + jwtWithExp + `","expires_in":60,"token_type":"Bearer"}`, "",
			time.Unix(1_800_001_800, 0), time.Unix(1_799_999_990, 0)},
		{"opaque token falls back to expires_in", `{"access_token":"opaque-token","expires_in":900}`, "",
			received.Add(15 * time.Minute), received},
		{"expires_in as string", `{"access_token":"opaque-token","expires_in":"600"}`, "",
			received.Add(10 * time.Minute), received},
		{"JWT without exp uses expires_in", `{"access_token":"` + fakeJWT(`{"sub":"x"}`) + `","expires_in":120}`, "",
			received.Add(2 * time.Minute), received},
		{"no expiry at all", `{"access_token":"opaque-token"}`, "neither when the token expires", time.Time{}, time.Time{}},
		{"negative expires_in", `{"access_token":"opaque-token","expires_in":-5}`, "neither when the token expires", time.Time{}, time.Time{}},
		{"missing access_token", `{"expires_in":600}`, "no access_token", time.Time{}, time.Time{}},
		{"malformed JSON", `{"access_token":`, "not JSON", time.Time{}, time.Time{}},
		{"HTML error page", `<html>bad gateway</html>`, "not JSON", time.Time{}, time.Time{}},
		{"wrong token type", `{"access_token":"t","expires_in":60,"token_type":"mac"}`, `token_type is "mac"`, time.Time{}, time.Time{}},
		{"token with newline", `{"access_token":"a\nb","expires_in":60}`, "characters a token cannot hold", time.Time{}, time.Time{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := ParseTokenResponse([]byte(tc.body), received)
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.True(t, tc.wantExpiry.Equal(tok.Expiry), "expiry %s, want %s", tok.Expiry, tc.wantExpiry)
			assert.True(t, tc.wantIssued.Equal(tok.IssuedAt), "issued %s, want %s", tok.IssuedAt, tc.wantIssued)
		})
	}
}

func TestCheckEndpoint(t *testing.T) {
	ok := []string{"https://service-account.api.stackit.cloud/token", "http://127.0.0.1:8080/token", "http://localhost/token", "http://[::1]:9/token"}
	bad := map[string]string{
		"http://service-account.api.stackit.cloud/token": "plain http",
		"http://127.0.0.1.evil.com/token":                "plain http",
		"ftp://x/token":                                  "unsupported scheme",
		"service-account.api.stackit.cloud/token":        "not an absolute URL",
		"https://user:pw@host/token":                     "user info",
		"":                                               "not an absolute URL",
	}
	for _, u := range ok {
		assert.NoError(t, CheckEndpoint(u), u)
	}
	for u, want := range bad {
		err := CheckEndpoint(u)
		if assert.Error(t, err, u) {
			assert.Contains(t, err.Error(), want, u)
			assert.NotContains(t, err.Error(), "pw", "no credentials echoed")
		}
	}
}

func TestExchangeErrors(t *testing.T) {
	const assertion = "eyJhbGciOiJSUzUxMiJ9.secret-assertion-payload.signature"
	form := url.Values{"grant_type": {grantTypeJWTBearer}, "assertion": {assertion}}
	cases := []struct {
		name    string
		handler http.HandlerFunc
		want    []string
	}{
		{"401 echoing the assertion", func(w http.ResponseWriter, r *http.Request) {
			_ = r.ParseForm()
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprintf(w, "invalid assertion %s\n\nbye", r.PostForm.Get("assertion"))
		}, []string{"answered HTTP 401: invalid assertion [redacted] bye", "the service account key was rejected"}},
		{"400", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"error":"invalid_grant"}`)
		}, []string{`HTTP 400: {"error":"invalid_grant"}`}},
		{"503", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusServiceUnavailable)
		}, []string{"HTTP 503", "unavailable, try again"}},
		{"huge body", func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, strings.Repeat("x", maxResponseBody+10))
		}, []string{"more than 1 MiB"}},
		{"expired on arrival", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, `{"access_token":"%s"}`, fakeJWT(`{"exp": 1000}`))
		}, []string{"expired at 1970-01-01T00:16:40Z, before it arrived"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.handler)
			defer srv.Close()
			_, err := exchange(context.Background(), NewHTTPClient(), srv.URL, form, time.Now(), time.Now, keyFlowHints)
			require.Error(t, err)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
			assert.NotContains(t, err.Error(), "secret-assertion-payload")
			assert.NotContains(t, err.Error(), "\n")
		})
	}
}

func TestExchangeUnreachableAndTimeout(t *testing.T) {
	form := url.Values{"grant_type": {grantTypeJWTBearer}}
	_, err := exchange(context.Background(), NewHTTPClient(), "http://127.0.0.1:1/token", form, time.Now(), time.Now, keyFlowHints)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "http://127.0.0.1:1/token unreachable")

	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
	defer srv.Close()
	defer close(block)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err = exchange(ctx, NewHTTPClient(), srv.URL, form, time.Now(), time.Now, keyFlowHints)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "did not answer in time")
}

func TestMentionsUnknownKid(t *testing.T) {
	assert.True(t, mentionsUnknownKid(`{"error":"Key with kid 1234 was not found"}`))
	assert.False(t, mentionsUnknownKid(`{"error":"was not found: key with kid"}`))
	assert.False(t, mentionsUnknownKid(`unauthorized`))
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestTransportFailuresAreSortedByWhetherARetryCanHelp(t *testing.T) {
	post := func(err error) error { return &url.Error{Op: "Post", URL: "https://x/token", Err: err} }
	cert := &x509.Certificate{}
	cases := []struct {
		name      string
		err       error
		kind      transportKind
		transient bool
	}{
		{"connection refused", post(&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}), kindNetwork, true},
		{"connection reset", post(&net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}), kindNetwork, true},
		{"closed without an answer", post(io.EOF), kindNetwork, true},
		{"DNS server unreachable", post(&net.OpError{Op: "dial", Err: &net.DNSError{Err: "server misbehaving", Name: "x", IsTemporary: true}}), kindNetwork, true},
		{"timeout", post(&net.OpError{Op: "read", Err: timeoutErr{}}), kindTimeout, true},
		{"no such host", post(&net.OpError{Op: "dial", Err: &net.DNSError{Err: "no such host", Name: "x", IsNotFound: true}}), kindNoSuchHost, false},
		{"unknown authority", post(&tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{Cert: cert}}), kindCertificate, false},
		{"wrong host name", post(&tls.CertificateVerificationError{Err: x509.HostnameError{Certificate: cert, Host: "x"}}), kindCertificate, false},
		{"expired certificate", post(x509.CertificateInvalidError{Cert: cert, Reason: x509.Expired}), kindCertificate, false},
		{"malformed header", post(errors.New(`net/http: HTTP/1.x transport connection broken: malformed MIME header: missing colon: "x"`)), kindMalformed, false},
		{"HTTP on an https port", post(errors.New("http: server gave HTTP response to HTTPS client")), kindMalformed, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			kind := classifyTransport(tc.err)
			assert.Equal(t, tc.kind, kind, "kind %s", kind)
			u := &unreachableError{endpoint: "https://x/token", reason: "r", endpointVar: EnvTokenBaseURL, kind: kind}
			assert.Equal(t, tc.transient, IsTransient(u))
			_, retried := retryDelay(u, time.Millisecond)
			assert.Equal(t, tc.transient, retried)
		})
	}
}
