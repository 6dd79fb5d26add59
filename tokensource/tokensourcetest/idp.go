package tokensourcetest

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// IdPPath is where the fake serves the STACKIT IdP token endpoint that
// exchanges federated tokens (workload identity federation).
const IdPPath = "/oauth/v2/token"

// FederationAudience is the audience a federation trusts by default; it
// is what STACKIT expects from GitHub Actions.
const FederationAudience = "sts.accounts.stackit.cloud"

// idpState is the fake IdP's side of a Server: an external OIDC issuer
// whose tokens the registered federations trust.
type idpState struct {
	requests atomic.Int64

	keyOnce sync.Once
	key     *rsa.PrivateKey
	keyErr  error

	mu          sync.Mutex
	federations map[string]*Federation // by SA email
	issued      map[string]*Federation // federated token -> its federation
	assertions  []string               // client_assertion values received, in order
}

// Federation is a service account that trusts the fake's OIDC issuer for
// one subject and audience, like a federated identity provider configured
// on a STACKIT service account.
type Federation struct {
	Email    string
	Subject  string
	Audience string
	server   *Server
}

// IdPURL is the fake IdP token endpoint, for STACKIT_IDP_TOKEN_ENDPOINT.
func (s *Server) IdPURL() string { return s.URL + IdPPath }

// IssuerURL is the iss claim of the federated tokens the fake issues.
func (s *Server) IssuerURL() string { return s.URL + "/oidc" }

// IdPRequests counts requests to the IdP endpoint, valid or not.
func (s *Server) IdPRequests() int { return int(s.idp.requests.Load()) }

// Assertions returns the client_assertion values the IdP received, in
// order, so tests can see which federated token was sent.
func (s *Server) Assertions() []string {
	s.idp.mu.Lock()
	defer s.idp.mu.Unlock()
	return append([]string(nil), s.idp.assertions...)
}

// NewFederation registers a service account email that trusts the fake
// issuer for subject "repo:example/app:ref:refs/heads/main".
func (s *Server) NewFederation(tb testing.TB, email string) *Federation {
	tb.Helper()
	f := &Federation{Email: email, Subject: "repo:example/app:ref:refs/heads/main", Audience: FederationAudience, server: s}
	s.idp.mu.Lock()
	if s.idp.federations == nil {
		s.idp.federations = map[string]*Federation{}
		s.idp.issued = map[string]*Federation{}
	}
	s.idp.federations[email] = f
	s.idp.mu.Unlock()
	return f
}

func (s *Server) issuerKey() (*rsa.PrivateKey, error) {
	s.idp.keyOnce.Do(func() { s.idp.key, s.idp.keyErr = rsa.GenerateKey(rand.Reader, 2048) })
	return s.idp.key, s.idp.keyErr
}

// IssueToken mints a federated token (RS256, like GitHub's and GitLab's)
// that the IdP accepts for this federation until lifetime has passed.
func (f *Federation) IssueToken(tb testing.TB, lifetime time.Duration) string {
	tb.Helper()
	key, err := f.server.issuerKey()
	if err != nil {
		tb.Fatalf("generate issuer key: %v", err)
	}
	now := time.Now()
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
		"iss": f.server.IssuerURL(),
		"sub": f.Subject,
		"aud": f.Audience,
		"iat": now.Unix(),
		"nbf": now.Add(-time.Minute).Unix(),
		"exp": now.Add(lifetime).Unix(),
		"jti": uuid(tb),
	})
	t.Header["kid"] = "fake-issuer"
	signed, err := t.SignedString(key)
	if err != nil {
		tb.Fatalf("sign federated token: %v", err)
	}
	f.server.idp.mu.Lock()
	f.server.idp.issued[signed] = f
	f.server.idp.mu.Unlock()
	return signed
}

// WriteTokenFile issues a token valid for 10 minutes and writes it to
// path, newline-terminated as `echo "$TOKEN" > file` would, with mode 0600.
// It returns the token.
func (f *Federation) WriteTokenFile(tb testing.TB, path string) string {
	tb.Helper()
	tok := f.IssueToken(tb, 10*time.Minute)
	if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	return tok
}

// serveIdP validates a federated token exchange the way STACKIT's IdP
// does: the form, the client_id of a federation, and a client_assertion
// that this fake issued for that federation, correctly signed, unexpired
// and with the trusted audience and subject.
func (s *Server) serveIdP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		fail(w, http.StatusMethodNotAllowed, "POST only")
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
		fail(w, http.StatusBadRequest, "unsupported content type "+ct)
		return
	}
	if err := r.ParseForm(); err != nil {
		fail(w, http.StatusBadRequest, "bad form")
		return
	}
	form := r.PostForm
	if gt := form.Get("grant_type"); gt != "client_credentials" {
		fail(w, http.StatusBadRequest, "unsupported_grant_type "+gt)
		return
	}
	if at := form.Get("client_assertion_type"); at != "urn:schwarz:params:oauth:client-assertion-type:workload-jwt" {
		fail(w, http.StatusBadRequest, "invalid_request: unsupported client_assertion_type "+at)
		return
	}
	assertion := form.Get("client_assertion")
	s.idp.mu.Lock()
	s.idp.assertions = append(s.idp.assertions, assertion)
	fed := s.idp.federations[form.Get("client_id")]
	issuedFor := s.idp.issued[assertion]
	s.idp.mu.Unlock()
	if fed == nil {
		fail(w, http.StatusUnauthorized, "invalid_client: no federation for client_id")
		return
	}
	if issuedFor == nil {
		fail(w, http.StatusBadRequest, "invalid_grant: client_assertion was not issued by a trusted issuer")
		return
	}
	if issuedFor != fed {
		fail(w, http.StatusBadRequest, "invalid_grant: client_assertion belongs to another service account")
		return
	}
	key, err := s.issuerKey()
	if err != nil {
		fail(w, http.StatusInternalServerError, "issuer key")
		return
	}
	var claims jwt.RegisteredClaims
	_, err = jwt.ParseWithClaims(assertion, &claims, func(*jwt.Token) (any, error) { return &key.PublicKey, nil },
		jwt.WithValidMethods([]string{"RS256"}), jwt.WithExpirationRequired(), jwt.WithIssuer(s.IssuerURL()),
		jwt.WithAudience(fed.Audience), jwt.WithSubject(fed.Subject))
	if err != nil {
		fail(w, http.StatusBadRequest, "invalid_grant: "+err.Error())
		return
	}
	s.issueAccessToken(w, fed.Email, fed.Subject)
}

// GitHubOIDC is a fake GitHub Actions ID-token service: it answers only
// requests with the runner's bearer token and STACKIT's audience, with a
// federated token for its federation.
type GitHubOIDC struct {
	*httptest.Server
	// RequestToken is ACTIONS_ID_TOKEN_REQUEST_TOKEN.
	RequestToken string
	status       atomic.Int32
	federation   *Federation
	requests     atomic.Int64

	mu     sync.Mutex
	issued []string
}

// NewGitHubOIDC starts a fake runner token service for f on loopback.
func NewGitHubOIDC(tb testing.TB, f *Federation) *GitHubOIDC {
	tb.Helper()
	g := &GitHubOIDC{RequestToken: "ghs-request-" + uuid(tb), federation: f}
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.requests.Add(1)
		switch {
		case r.Method != http.MethodGet || r.URL.Path != "/idtoken":
			fail(w, http.StatusNotFound, "not found")
		case r.Header.Get("Authorization") != "Bearer "+g.RequestToken:
			fail(w, http.StatusUnauthorized, "bad runner token")
		case r.URL.Query().Get("api-version") != "2.0":
			fail(w, http.StatusBadRequest, "the runner URL's own query was lost")
		case r.URL.Query().Get("audience") != f.Audience:
			fail(w, http.StatusBadRequest, "unexpected audience "+r.URL.Query().Get("audience"))
		case g.status.Load() != 0:
			fail(w, int(g.status.Load()), "refused")
		default:
			tok := f.IssueToken(tb, 5*time.Minute)
			g.mu.Lock()
			g.issued = append(g.issued, tok)
			g.mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{"count": len(tok), "value": tok})
		}
	}))
	tb.Cleanup(g.Close)
	return g
}

// SetStatus makes the service refuse with status (0: answer normally).
func (g *GitHubOIDC) SetStatus(status int) { g.status.Store(int32(status)) }

// RequestURL is ACTIONS_ID_TOKEN_REQUEST_URL; like the real one it
// already carries a query, so the audience is appended with &.
func (g *GitHubOIDC) RequestURL() string { return g.URL + "/idtoken?api-version=2.0" }

// Requests counts requests, valid or not.
func (g *GitHubOIDC) Requests() int { return int(g.requests.Load()) }

// Issued returns the federated tokens handed out, in order.
func (g *GitHubOIDC) Issued() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.issued...)
}
