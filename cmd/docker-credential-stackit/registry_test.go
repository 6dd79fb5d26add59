package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/docker-credential-stackit/docker-credential-stackit/tokensource/tokensourcetest"
)

// fakeRegistry is an in-memory OCI registry on 127.0.0.1 that behaves like
// Harbor with a robot linked to a STACKIT service account: every registry
// request needs a bearer token, and its token endpoint hands one out only
// for HTTP basic auth with the service account email and a STACKIT access
// token that the fake STACKIT endpoint issued to that email.
type fakeRegistry struct {
	*httptest.Server
	// Host is 127.0.0.1:PORT, the name Docker configs use.
	Host string

	email string
	sts   *tokensourcetest.Server

	logins   atomic.Int64 // token requests granted
	rejected atomic.Int64 // token requests refused
	denied   atomic.Int64 // registry requests answered 401

	mu     sync.Mutex
	tokens map[string]bool
}

func newFakeRegistry(t *testing.T, sts *tokensourcetest.Server, email string) *fakeRegistry {
	t.Helper()
	r := &fakeRegistry{email: email, sts: sts, tokens: map[string]bool{}}
	backend := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/token" {
			r.serveToken(w, req)
			return
		}
		if !r.authorized(req) {
			r.denied.Add(1)
			w.Header().Set("WWW-Authenticate", `Bearer realm="`+r.URL+`/token",service="test-registry"`)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
			return
		}
		backend.ServeHTTP(w, req)
	}))
	t.Cleanup(r.Close)
	r.Host = strings.TrimPrefix(r.URL, "http://")
	return r
}

func (r *fakeRegistry) authorized(req *http.Request) bool {
	tok, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.tokens[tok]
}

func (r *fakeRegistry) serveToken(w http.ResponseWriter, req *http.Request) {
	user, pass, ok := req.BasicAuth()
	if !ok || user != r.email || !r.sts.Valid(user, pass) {
		r.rejected.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"invalid username or password"}]}`)
		return
	}
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		http.Error(w, "rand", http.StatusInternalServerError)
		return
	}
	tok := "regtok-" + hex.EncodeToString(b[:])
	r.mu.Lock()
	r.tokens[tok] = true
	r.mu.Unlock()
	r.logins.Add(1)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"token": tok, "expires_in": 300})
}
