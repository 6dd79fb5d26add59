package tokensource_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/docker-credential-stackit/docker-credential-stackit/tokensource"
	"github.com/docker-credential-stackit/docker-credential-stackit/tokensource/tokensourcetest"
)

// hostileEndpoint is the fake token endpoint with a hostile answer: it
// records every assertion it receives and answers with mode.
type hostileEndpoint struct {
	*tokensourcetest.Server
	mu         sync.Mutex
	assertions []string
}

func newHostileEndpoint(t *testing.T, mode func(w http.ResponseWriter, r *http.Request, assertion string)) *hostileEndpoint {
	t.Helper()
	h := &hostileEndpoint{Server: tokensourcetest.NewServer(t)}
	h.Respond = func(w http.ResponseWriter, r *http.Request) bool {
		_ = r.ParseForm()
		a := r.PostForm.Get("assertion")
		h.mu.Lock()
		h.assertions = append(h.assertions, a)
		h.mu.Unlock()
		mode(w, r, a)
		return true
	}
	return h
}

func (h *hostileEndpoint) sent() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.assertions...)
}

// hostileFlow is a key flow against h, retried with a policy that never
// really sleeps and gives up after three retries, and a debug log.
func hostileFlow(t *testing.T, h *hostileEndpoint, endpoint string) (tokensource.TokenSource, *strings.Builder) {
	t.Helper()
	acct := h.NewAccount(t, "hostile@sa.stackit.cloud")
	p := acct.WriteKeyFile(t, t.TempDir(), true)
	flow, err := tokensource.NewKeyFlow(envOf(map[string]string{tokensource.EnvServiceAccountKeyPath: p, tokensource.EnvTokenBaseURL: endpoint}), tokensource.Overrides{})
	require.NoError(t, err)
	return withCountedRetries(flow)
}

func withCountedRetries(src tokensource.TokenSource) (tokensource.TokenSource, *strings.Builder) {
	var debug strings.Builder
	var mu sync.Mutex
	retries := 0
	return tokensource.WithRetry(src, tokensource.RetryPolicy{
		Budget: time.Hour, BaseDelay: time.Millisecond, MaxDelay: time.Millisecond,
		Sleep: func(ctx context.Context, d time.Duration) error {
			retries++
			if retries > 3 {
				return errors.New("three retries are enough for a test")
			}
			return nil
		},
		Debugf: func(format string, args ...any) {
			mu.Lock()
			defer mu.Unlock()
			fmt.Fprintf(&debug, format+"\n", args...)
		},
	}), &debug
}

func sigOf(assertion string) string { return assertion[strings.LastIndexByte(assertion, '.')+1:] }

// every returns s with sep inserted after every n characters.
func every(s string, n int, sep string) string {
	var b strings.Builder
	for i := 0; i < len(s); i += n {
		b.WriteString(s[i:min(i+n, len(s))])
		b.WriteString(sep)
	}
	return b.String()
}

// jsonEscaped writes every fifth character of s as a \u escape and dots
// as \u002e, the way some JSON encoders do.
func jsonEscaped(s string) string {
	var b strings.Builder
	for i, c := range []byte(s) {
		if c == '.' || i%5 == 0 {
			fmt.Fprintf(&b, `\u%04x`, c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

func percentEncoded(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

func hostileAnswer(status int, body string) func(http.ResponseWriter, *http.Request, string) {
	return func(w http.ResponseWriter, r *http.Request, a string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, strings.ReplaceAll(body, "ASSERTION", a))
	}
}

// rawReply answers with bytes that are not valid HTTP, bypassing net/http.
func rawReply(reply func(assertion string) string) func(http.ResponseWriter, *http.Request, string) {
	return func(w http.ResponseWriter, r *http.Request, a string) {
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			panic(err)
		}
		defer conn.Close()
		_, _ = buf.WriteString(reply(a))
		_ = buf.Flush()
	}
}

func TestHostileTokenEndpointNeverGetsTheAssertionIntoAnError(t *testing.T) {
	cases := []struct {
		name     string
		mode     func(w http.ResponseWriter, r *http.Request, assertion string)
		requests int // 1 unless the failure is transient
		want     []string
	}{
		{"200 with token_type set to the assertion", func(w http.ResponseWriter, r *http.Request, a string) {
			hostileAnswer(http.StatusOK, fmt.Sprintf(`{"access_token":"opaque-token-1234","expires_in":600,"token_type":%q}`, a))(w, r, a)
		}, 1, []string{"token_type is not Bearer"}},
		{"200 with the assertion as the access token", hostileAnswer(http.StatusOK, `{"access_token":"ASSERTION","expires_in":600,"token_type":"Bearer"}`),
			1, []string{"answered with the request's own assertion as the access token"}},
		{"200 that is not JSON and starts with the assertion", hostileAnswer(http.StatusOK, `ASSERTION {`), 1, []string{"not JSON"}},
		{"302 whose Location carries the assertion in path, query and fragment", func(w http.ResponseWriter, r *http.Request, a string) {
			w.Header().Set("Location", "https://evil.example/steal/"+sigOf(a)+"?assertion="+a+"#"+a)
			w.WriteHeader(http.StatusFound)
		}, 1, []string{"redirected to https://evil.example/steal/[redacted]; set STACKIT_TOKEN_BASEURL to the final URL"}},
		{"307 back to itself with the assertion in the query", func(w http.ResponseWriter, r *http.Request, a string) {
			w.Header().Set("Location", "/again?assertion="+a)
			w.WriteHeader(http.StatusTemporaryRedirect)
		}, 1, []string{"/again; set STACKIT_TOKEN_BASEURL"}},
		{"302 with a Location that does not parse", func(w http.ResponseWriter, r *http.Request, a string) {
			w.Header().Set("Location", "https://evil example/%zz"+sigOf(a)+"?a="+a)
			w.WriteHeader(http.StatusFound)
		}, 1, []string{"redirected to https://evil example/%zz[redacted]"}},
		{"malformed header line echoing the assertion", rawReply(func(a string) string {
			return "HTTP/1.1 200 OK\r\n" + a + "\r\n\r\n"
		}), 1, []string{"sent a malformed HTTP answer", "malformed MIME header"}},
		{"malformed status line echoing the signature", rawReply(func(a string) string {
			return "HTTP/1.1 2" + sigOf(a) + " OK\r\n\r\n"
		}), 1, []string{"sent a malformed HTTP answer"}},
		{"400 body starting with the bare signature", func(w http.ResponseWriter, r *http.Request, a string) {
			hostileAnswer(http.StatusBadRequest, sigOf(a)+" is not a valid signature")(w, r, a)
		}, 1, []string{"answered HTTP 400: [redacted] is not a valid signature"}},
		{"401 echoing the assertion", hostileAnswer(http.StatusUnauthorized, `{"error":"invalid_grant","assertion":"ASSERTION"}`),
			1, []string{"answered HTTP 401", "invalid_grant", "[redacted]", "the service account key was rejected"}},
		{"401 echoing the assertion cut by newlines", func(w http.ResponseWriter, r *http.Request, a string) {
			hostileAnswer(http.StatusUnauthorized, "bad: "+every(a, 50, "\r\n"))(w, r, a)
		}, 1, []string{"answered HTTP 401: bad: [redacted]"}},
		{"401 echoing the assertion JSON-escaped", func(w http.ResponseWriter, r *http.Request, a string) {
			hostileAnswer(http.StatusUnauthorized, `{"error":"`+jsonEscaped(a)+`"}`)(w, r, a)
		}, 1, []string{"answered HTTP 401", "[redacted]"}},
		{"401 echoing the assertion percent-encoded", func(w http.ResponseWriter, r *http.Request, a string) {
			hostileAnswer(http.StatusUnauthorized, "assertion="+percentEncoded(a))(w, r, a)
		}, 1, []string{"answered HTTP 401: assertion=[redacted]"}},
		{"503 echoing the assertion, retried", hostileAnswer(http.StatusServiceUnavailable, "down, your ASSERTION"),
			4, []string{"answered HTTP 503", "[redacted]", "gave up after 4 attempts: three retries are enough"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHostileEndpoint(t, tc.mode)
			src, debug := hostileFlow(t, h, h.TokenURL())
			_, err := src.Token(context.Background())
			require.Error(t, err)
			msg := err.Error()
			t.Logf("error: %s", msg)
			for _, w := range tc.want {
				assert.Contains(t, msg, w)
			}
			assert.NotContains(t, msg, "\n")
			tokensourcetest.RequireNoAssertion(t, "the error", msg, h.sent())
			tokensourcetest.RequireNoAssertion(t, "the debug log", debug.String(), h.sent())
			assert.Equal(t, tc.requests, h.Requests(), "requests to the token endpoint")
			assert.Len(t, h.sent(), tc.requests, "fresh assertions sent")
		})
	}
}

func TestRetriesAreLoggedWithTheirClassAndWait(t *testing.T) {
	h := newHostileEndpoint(t, hostileAnswer(http.StatusServiceUnavailable, "down"))
	src, debug := hostileFlow(t, h, h.TokenURL())
	_, err := src.Token(context.Background())
	require.Error(t, err)
	log := debug.String()
	assert.Contains(t, log, "token request attempt 1 failed (HTTP 503); retrying in ")
	assert.Contains(t, log, "token request attempt 3 failed (HTTP 503); retrying in ")

	h = newHostileEndpoint(t, rawReply(func(a string) string { return "HTTP/1.1 200 OK\r\n" + a + "\r\n\r\n" }))
	src, debug = hostileFlow(t, h, h.TokenURL())
	_, err = src.Token(context.Background())
	require.Error(t, err)
	assert.Equal(t, "token request attempt 1 failed (malformed HTTP answer); not retried\n", debug.String())
}

func TestUntrustedCertificateFailsOnceAndNamesSSLCertFile(t *testing.T) {
	srv := tokensourcetest.NewServer(t)
	acct := srv.NewAccount(t, "tls@sa.stackit.cloud")
	var handshakes atomic.Int64
	tlsSrv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("the request went through despite the untrusted certificate")
	}))
	tlsSrv.TLS = &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
		handshakes.Add(1)
		return nil, nil
	}}
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0)
	tlsSrv.StartTLS()
	t.Cleanup(tlsSrv.Close)

	p := acct.WriteKeyFile(t, t.TempDir(), true)
	flow, err := tokensource.NewKeyFlow(envOf(map[string]string{tokensource.EnvServiceAccountKeyPath: p, tokensource.EnvTokenBaseURL: tlsSrv.URL + "/token"}), tokensource.Overrides{})
	require.NoError(t, err)
	src, debug := withCountedRetries(flow) // the default client: system roots, which lack the test CA
	_, err = src.Token(context.Background())
	require.Error(t, err)
	t.Logf("error: %s", err)
	assert.Contains(t, err.Error(), "presented a TLS certificate this system does not trust")
	assert.Contains(t, err.Error(), "SSL_CERT_FILE")
	assert.Contains(t, err.Error(), "SSL_CERT_DIR")
	assert.False(t, tokensource.IsTransient(err))
	assert.Equal(t, int64(1), handshakes.Load(), "TLS handshakes")
	assert.Contains(t, debug.String(), "(untrusted TLS certificate); not retried")
}

// countingSource counts the attempts WithRetry makes.
type countingSource struct {
	src   tokensource.TokenSource
	calls atomic.Int64
}

func (c *countingSource) Token(ctx context.Context) (*tokensource.Token, error) {
	c.calls.Add(1)
	return c.src.Token(ctx)
}

func TestUnresolvableHostFailsOnce(t *testing.T) {
	srv := tokensourcetest.NewServer(t)
	acct := srv.NewAccount(t, "dns@sa.stackit.cloud")
	p := acct.WriteKeyFile(t, t.TempDir(), true)
	flow, err := tokensource.NewKeyFlow(envOf(map[string]string{tokensource.EnvServiceAccountKeyPath: p, tokensource.EnvTokenBaseURL: "https://does-not-exist.invalid/token"}), tokensource.Overrides{})
	require.NoError(t, err)
	counted := &countingSource{src: flow}
	src, _ := withCountedRetries(counted)
	_, err = src.Token(context.Background())
	require.Error(t, err)
	t.Logf("error: %s", err)
	if !strings.Contains(err.Error(), "no such host") {
		t.Skipf("this machine's resolver does not answer NXDOMAIN for .invalid: %v", err)
	}
	assert.Contains(t, err.Error(), "the host name does not resolve")
	assert.Contains(t, err.Error(), "check the host name in STACKIT_TOKEN_BASEURL")
	assert.Equal(t, int64(1), counted.calls.Load(), "attempts")
}

func TestBareHostEndpointSaysTheFullTokenURLIsNeeded(t *testing.T) {
	srv := tokensourcetest.NewServer(t)
	acct := srv.NewAccount(t, "bare@sa.stackit.cloud")
	p := acct.WriteKeyFile(t, t.TempDir(), true)
	for _, endpoint := range []string{srv.URL, srv.URL + "/"} {
		flow, err := tokensource.NewKeyFlow(envOf(map[string]string{tokensource.EnvServiceAccountKeyPath: p, tokensource.EnvTokenBaseURL: endpoint}), tokensource.Overrides{})
		require.NoError(t, err)
		_, err = flow.Token(context.Background())
		require.Error(t, err)
		assert.Contains(t, err.Error(), "answered HTTP 404: STACKIT_TOKEN_BASEURL must be the full token endpoint URL", endpoint)
		assert.Contains(t, err.Error(), "e.g. https://service-account.api.stackit.cloud/token", endpoint)
		assert.False(t, tokensource.IsTransient(err))
	}

	// A wrong path is not a bare host: the plain 404 stays.
	flow, err := tokensource.NewKeyFlow(envOf(map[string]string{tokensource.EnvServiceAccountKeyPath: p, tokensource.EnvTokenBaseURL: srv.URL + "/v1/tokens"}), tokensource.Overrides{})
	require.NoError(t, err)
	_, err = flow.Token(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "answered HTTP 404")
	assert.NotContains(t, err.Error(), "full token endpoint URL")
}

func TestBareHostIdPEndpointSaysTheFullTokenURLIsNeeded(t *testing.T) {
	f := newWIFFixture(t)
	f.fed.WriteTokenFile(t, f.tokenFile)
	f.env[tokensource.EnvIDPTokenEndpoint] = f.srv.URL
	w := rebuild(t, f, f.flow(t))
	_, err := w.Token(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "answered HTTP 404: STACKIT_IDP_TOKEN_ENDPOINT must be the full token endpoint URL")
	assert.Contains(t, err.Error(), "e.g. "+tokensource.DefaultIDPTokenEndpoint)
}

func TestWrongPrivateKeySaysItDoesNotBelongToTheKeyID(t *testing.T) {
	for _, answer := range []struct {
		name    string
		respond func(w http.ResponseWriter, r *http.Request) bool
	}{
		{"401 from the fake's signature check", nil},
		{"400 invalid_grant", func(w http.ResponseWriter, r *http.Request) bool {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"error":"invalid_grant","error_description":"assertion invalid"}`)
			return true
		}},
	} {
		t.Run(answer.name, func(t *testing.T) {
			srv := tokensourcetest.NewServer(t)
			acct := srv.NewAccount(t, "mixed@sa.stackit.cloud")
			other := srv.NewAccount(t, "other@sa.stackit.cloud")
			srv.Respond = answer.respond
			dir := t.TempDir()
			keyPath := acct.WriteKeyFile(t, dir, false)
			pemPath := writeFile(t, dir, "other.pem", other.PrivateKeyPEM)
			flow, err := tokensource.NewKeyFlow(envOf(map[string]string{tokensource.EnvServiceAccountKeyPath: keyPath, tokensource.EnvPrivateKeyPath: pemPath, tokensource.EnvTokenBaseURL: srv.TokenURL()}), tokensource.Overrides{})
			require.NoError(t, err)
			_, err = flow.Token(context.Background())
			require.Error(t, err)
			t.Logf("error: %s", err)
			assert.Contains(t, err.Error(), "the private key from "+tokensource.EnvPrivateKeyPath+" ("+pemPath+") does not belong to key id "+acct.Kid)
			assert.Contains(t, err.Error(), "rejected the assertion signed with it")
			assert.Contains(t, err.Error(), "use the private key this service account key was created with")
			assert.False(t, tokensource.IsTransient(err))
		})
	}

	// The right private key and a 400: the endpoint's own words stay.
	srv := tokensourcetest.NewServer(t)
	acct := srv.NewAccount(t, "right@sa.stackit.cloud")
	srv.Respond = func(w http.ResponseWriter, r *http.Request) bool {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"error":"invalid_grant"}`)
		return true
	}
	flow, err := tokensource.NewKeyFlow(envOf(map[string]string{tokensource.EnvServiceAccountKeyPath: acct.WriteKeyFile(t, t.TempDir(), true), tokensource.EnvTokenBaseURL: srv.TokenURL()}), tokensource.Overrides{})
	require.NoError(t, err)
	_, err = flow.Token(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), `answered HTTP 400: {"error":"invalid_grant"}`)
	assert.NotContains(t, err.Error(), "does not belong")
}

func TestGitHubRunnerCannotGetItsRequestTokenIntoAnError(t *testing.T) {
	const requestToken = "runner-request-token-0123456789-abcdefghij-klmnopqrstuvwxyz"
	for name, h := range map[string]http.HandlerFunc{
		"redirect carrying the request token": func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/x/"+requestToken+"?t="+requestToken, http.StatusFound)
		},
		"500 echoing the request token cut by newlines": func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = io.WriteString(w, every(r.Header.Get("Authorization"), 20, "\n"))
		},
	} {
		t.Run(name, func(t *testing.T) {
			srv := newLoopbackServer(t, h)
			g := &tokensource.GitHubOIDC{RequestURL: srv + "/idtoken?api-version=2.0", RequestToken: requestToken, Audience: tokensource.GitHubOIDCAudience}
			_, err := g.FederatedToken(context.Background())
			require.Error(t, err)
			t.Logf("error: %s", err)
			for _, view := range []string{err.Error(), strings.Join(strings.Fields(err.Error()), "")} {
				assert.NotContains(t, view, requestToken[:40])
			}
			assert.NotContains(t, err.Error(), "?t=")
		})
	}
}
