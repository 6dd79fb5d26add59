package tokensource

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"testing"
	"time"
)

func benchKey(b *testing.B) (*rsa.PrivateKey, []byte) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		b.Fatal(err)
	}
	return priv, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func BenchmarkParseServiceAccountKey(b *testing.B) {
	data := []byte(`{"id":"0b5b1a0e-5d0e-4a45-9f0c-2f5d7c1b8a11","publicKey":"-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n-----END PUBLIC KEY-----","createdAt":"2026-01-01T00:00:00Z","validUntil":null,"keyType":"USER_MANAGED","keyOrigin":"GENERATED","keyAlgorithm":"RSA_2048","active":true,"credentials":{"kid":"0b5b1a0e-5d0e-4a45-9f0c-2f5d7c1b8a11","iss":"ci-sa@sa.stackit.cloud","sub":"4b8e2c3d-1f2a-4b5c-8d9e-0a1b2c3d4e5f","aud":"https://stackit-service-account-prod.apps.01.cf.eu01.stackit.cloud"}}`)
	for b.Loop() {
		if _, err := ParseServiceAccountKey(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParsePrivateKey(b *testing.B) {
	_, pemData := benchKey(b)
	for b.Loop() {
		if _, err := ParsePrivateKey(pemData); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSignAssertion(b *testing.B) {
	priv, _ := benchKey(b)
	c := KeyCredentials{Kid: "kid", Iss: "ci-sa@sa.stackit.cloud", Sub: "sub", Aud: "https://aud"}
	now := time.Now()
	for b.Loop() {
		if _, err := SignAssertion(c, priv, now); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReusable(b *testing.B) {
	now := time.Now()
	tok := &Token{AccessToken: "x", IssuedAt: now, Expiry: now.Add(time.Hour)}
	for b.Loop() {
		if !tok.Reusable(now) {
			b.Fatal("not reusable")
		}
	}
}
