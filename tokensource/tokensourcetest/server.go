// Package tokensourcetest provides a fake STACKIT token endpoint that
// validates requests the way the real one does, for tests of this module.
package tokensourcetest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Audience is the aud claim the fake expects, as in real STACKIT keys.
const Audience = "https://stackit-service-account-prod.apps.01.cf.eu01.stackit.cloud"

// Server is a fake STACKIT service-account token endpoint. It accepts only
// well-formed RS512 assertions signed by a registered key, rejects replayed
// jti values, and counts every request it receives.
type Server struct {
	*httptest.Server

	// TokenLifetime is how long issued access tokens live. Default 30 min.
	TokenLifetime time.Duration
	// Delay is slept before answering, to widen race windows in tests.
	Delay time.Duration
	// Respond, when set, answers instead of the normal logic. It is called
	// after the request has been counted; return false to fall through.
	Respond func(w http.ResponseWriter, r *http.Request) bool

	requests atomic.Int64
	issued   atomic.Int64

	mu       sync.Mutex
	accounts map[string]*Account // by kid
	seenJTI  map[string]bool
	tokens   map[string]string // access token -> email
	signing  []byte

	idp idpState
}

// Account is a service account with one key registered at a Server.
type Account struct {
	Email         string
	Sub           string
	Kid           string
	PrivateKey    *rsa.PrivateKey
	PrivateKeyPEM []byte // PKCS#8
	server        *Server
}

// NewServer starts a fake token endpoint on loopback. It is closed when the
// test ends.
func NewServer(tb testing.TB) *Server {
	tb.Helper()
	s := &Server{
		TokenLifetime: 30 * time.Minute,
		accounts:      map[string]*Account{},
		seenJTI:       map[string]bool{},
		tokens:        map[string]string{},
		signing:       randomBytes(tb, 32),
	}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	tb.Cleanup(s.Close)
	return s
}

// TokenURL is the full token endpoint URL, for STACKIT_TOKEN_BASEURL.
func (s *Server) TokenURL() string { return s.URL + "/token" }

// Requests counts every request, valid or not.
func (s *Server) Requests() int { return int(s.requests.Load()) }

// Issued counts access tokens handed out.
func (s *Server) Issued() int { return int(s.issued.Load()) }

// NewAccount registers a fresh 2048-bit key for email.
func (s *Server) NewAccount(tb testing.TB, email string) *Account {
	tb.Helper()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatalf("generate RSA key: %v", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		tb.Fatalf("marshal key: %v", err)
	}
	a := &Account{
		Email:         email,
		Sub:           uuid(tb),
		Kid:           uuid(tb),
		PrivateKey:    priv,
		PrivateKeyPEM: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		server:        s,
	}
	s.mu.Lock()
	s.accounts[a.Kid] = a
	s.mu.Unlock()
	return a
}

// DeleteKey makes the server forget the account's key, like deleting it in
// the portal.
func (s *Server) DeleteKey(a *Account) {
	s.mu.Lock()
	delete(s.accounts, a.Kid)
	s.mu.Unlock()
}

// Valid reports whether token is an unexpired access token issued to email.
// Registries under test use it to authenticate logins.
func (s *Server) Valid(email, token string) bool {
	s.mu.Lock()
	owner, ok := s.tokens[token]
	s.mu.Unlock()
	if !ok || owner != email {
		return false
	}
	parsed, err := jwt.Parse(token, func(*jwt.Token) (any, error) { return s.signing, nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired())
	return err == nil && parsed.Valid
}

// KeyJSON renders the account's service account key file. With
// embedPrivateKey the PEM is inside, as for STACKIT-generated keys.
func (a *Account) KeyJSON(embedPrivateKey bool) []byte {
	pubDER, _ := x509.MarshalPKIXPublicKey(&a.PrivateKey.PublicKey)
	creds := map[string]string{"kid": a.Kid, "iss": a.Email, "sub": a.Sub, "aud": Audience}
	if embedPrivateKey {
		creds["privateKey"] = string(a.PrivateKeyPEM)
	}
	key := map[string]any{
		"id":           a.Kid,
		"publicKey":    string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})),
		"createdAt":    "2026-01-01T00:00:00Z",
		"validUntil":   nil,
		"keyType":      "USER_MANAGED",
		"keyOrigin":    "GENERATED",
		"keyAlgorithm": "RSA_2048",
		"active":       true,
		"credentials":  creds,
	}
	out, _ := json.MarshalIndent(key, "", "  ")
	return out
}

// WriteKeyFile writes KeyJSON(embedPrivateKey) to dir with mode 0600 and
// returns its path.
func (a *Account) WriteKeyFile(tb testing.TB, dir string, embedPrivateKey bool) string {
	tb.Helper()
	path := filepath.Join(dir, "sa-key-"+a.Kid[:8]+".json")
	if err := os.WriteFile(path, a.KeyJSON(embedPrivateKey), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

// serve counts every request and routes it: /token is the service-account
// key flow endpoint, IdPPath the STACKIT IdP used for federation.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	if r.URL.Path == IdPPath {
		s.idp.requests.Add(1)
	}
	if s.Delay > 0 {
		time.Sleep(s.Delay)
	}
	if s.Respond != nil && s.Respond(w, r) {
		return
	}
	if r.URL.Path == IdPPath {
		s.serveIdP(w, r)
		return
	}
	s.serveToken(w, r)
}

func fail(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	fail := func(status int, msg string) { fail(w, status, msg) }
	if r.URL.Path != "/token" || r.Method != http.MethodPost {
		fail(http.StatusNotFound, "not found")
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
		fail(http.StatusBadRequest, "unsupported content type "+ct)
		return
	}
	if err := r.ParseForm(); err != nil {
		fail(http.StatusBadRequest, "bad form")
		return
	}
	if gt := r.PostForm.Get("grant_type"); gt != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		fail(http.StatusBadRequest, "unsupported grant_type "+gt)
		return
	}
	var claims jwt.RegisteredClaims
	var account *Account
	_, err := jwt.ParseWithClaims(r.PostForm.Get("assertion"), &claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		s.mu.Lock()
		account = s.accounts[kid]
		s.mu.Unlock()
		if account == nil {
			//lint:ignore ST1005 this is the real STACKIT message, verbatim
			return nil, fmt.Errorf("Key with kid %s was not found", kid)
		}
		return &account.PrivateKey.PublicKey, nil
	}, jwt.WithValidMethods([]string{"RS512"}), jwt.WithExpirationRequired(), jwt.WithIssuedAt(), jwt.WithAudience(Audience))
	if err != nil {
		fail(http.StatusUnauthorized, err.Error())
		return
	}
	switch {
	case claims.Issuer != account.Email:
		fail(http.StatusUnauthorized, "iss does not match the key")
		return
	case claims.Subject != account.Sub:
		fail(http.StatusUnauthorized, "sub does not match the key")
		return
	case claims.ID == "":
		fail(http.StatusUnauthorized, "jti missing")
		return
	case claims.ExpiresAt.Sub(claims.IssuedAt.Time) > 10*time.Minute:
		fail(http.StatusUnauthorized, "assertion lifetime exceeds 10 minutes")
		return
	}
	s.mu.Lock()
	replay := s.seenJTI[claims.ID]
	s.seenJTI[claims.ID] = true
	s.mu.Unlock()
	if replay {
		fail(http.StatusUnauthorized, "jti already used")
		return
	}

	s.issueAccessToken(w, account.Email, account.Sub)
}

// issueAccessToken answers with a fresh access token for email, which
// Valid then accepts.
func (s *Server) issueAccessToken(w http.ResponseWriter, email, sub string) {
	now := time.Now()
	access := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"email": email,
		"sub":   sub,
		"iat":   now.Unix(),
		"exp":   now.Add(s.TokenLifetime).Unix(),
		"jti":   uuid(nil),
	})
	signed, err := access.SignedString(s.signing)
	if err != nil {
		fail(w, http.StatusInternalServerError, "sign")
		return
	}
	s.mu.Lock()
	s.tokens[signed] = email
	s.mu.Unlock()
	s.issued.Add(1)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"access_token":  signed,
		"expires_in":    int(s.TokenLifetime.Seconds()),
		"token_type":    "Bearer",
		"scope":         "",
		"refresh_token": "deprecated-" + uuid(nil),
	})
}

func randomBytes(tb testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil && tb != nil {
		tb.Fatal(err)
	}
	return b
}

func uuid(tb testing.TB) string {
	b := randomBytes(tb, 16)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
