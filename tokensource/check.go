package tokensource

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strings"

	"github.com/docker-credential-stackit/docker-credential-stackit/internal/problem"
)

// CheckPrivateKey finds and parses the private key the flow would sign
// with, without using it, and reports where it came from. When the key
// file carries its public key, it also checks that the two belong together:
// a mismatched pair otherwise only shows as a 401 from the token endpoint.
func (k *keyFlow) CheckPrivateKey() (source string, err error) {
	priv, s, _, err := k.privateKey()
	if err != nil {
		return "", err
	}
	source = s.describe()
	pub := publicKeyOf(k.Key)
	if pub != nil && (pub.N.Cmp(priv.N) != 0 || pub.E != priv.E) {
		return source, problem.New(fmt.Sprintf("the private key from %s does not belong to key id %s (its public key differs)", source, k.Key.Credentials.Kid),
			"use the private key this service account key was created with, or create a new key")
	}
	return source, nil
}

// publicKeyOf parses the key file's publicKey, or returns nil when it is
// absent or not an RSA public key; the check is then skipped.
func publicKeyOf(key *ServiceAccountKey) *rsa.PublicKey {
	if key == nil || strings.TrimSpace(key.PublicKey) == "" {
		return nil
	}
	block, _ := pem.Decode([]byte(key.PublicKey))
	if block == nil {
		return nil
	}
	if pub, err := x509.ParsePKIXPublicKey(block.Bytes); err == nil {
		rsaPub, _ := pub.(*rsa.PublicKey)
		return rsaPub
	}
	if pub, err := x509.ParsePKCS1PublicKey(block.Bytes); err == nil {
		return pub
	}
	return nil
}
