package tokensource

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"github.com/docker-credential-stackit/docker-credential-stackit/internal/safefile"
)

// ServiceAccountKey is the JSON key file STACKIT issues for a service account.
type ServiceAccountKey struct {
	ID          string         `json:"id"`
	PublicKey   string         `json:"publicKey"`
	ValidUntil  string         `json:"validUntil"`
	Credentials KeyCredentials `json:"credentials"`
}

// KeyCredentials is the part of the key file that signs the assertion.
type KeyCredentials struct {
	Kid           string `json:"kid"`
	Iss           string `json:"iss"`
	Sub           string `json:"sub"`
	Aud           string `json:"aud"`
	PrivateKey    string `json:"privateKey"`
	TokenEndpoint string `json:"tokenEndpoint"`
}

// ErrPEMNotJSON is returned when a PEM file is given where the JSON service
// account key belongs, the most common mix-up.
var ErrPEMNotJSON = errors.New("this is a PEM private key, not the JSON service account key; point STACKIT_SERVICE_ACCOUNT_KEY_PATH at the .json key and STACKIT_PRIVATE_KEY_PATH at the PEM")

// ParseServiceAccountKey decodes and validates a service account key file.
func ParseServiceAccountKey(data []byte) (*ServiceAccountKey, error) {
	trimmed := bytes.TrimSpace(data)
	switch {
	case len(trimmed) == 0:
		return nil, errors.New("the key is empty; download the service account key JSON again from the STACKIT portal")
	case bytes.HasPrefix(trimmed, []byte("-----BEGIN")):
		return nil, ErrPEMNotJSON
	case trimmed[0] != '{':
		return nil, errors.New("the key is not JSON; expected the service account key file STACKIT issues (it starts with '{')")
	}
	var key ServiceAccountKey
	if err := json.Unmarshal(trimmed, &key); err != nil {
		return nil, fmt.Errorf("the key is not valid JSON (%s); download the service account key JSON again", safefile.DescribeJSONError(trimmed, err))
	}
	c := key.Credentials
	if c == (KeyCredentials{}) && bytes.Contains(trimmed, []byte(`"STACKIT_`)) {
		return nil, errors.New("this is a STACKIT credentials file, not a service account key; set STACKIT_CREDENTIALS_PATH to it instead")
	}
	var missing []string
	for _, f := range []struct{ name, value string }{
		{"credentials.kid", c.Kid}, {"credentials.iss", c.Iss},
		{"credentials.sub", c.Sub}, {"credentials.aud", c.Aud},
	} {
		if strings.TrimSpace(f.value) == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("the key lacks %s; is this a STACKIT service account key? create a new key for the service account", strings.Join(missing, ", "))
	}
	return &key, nil
}

// ParsePrivateKey decodes an RSA private key in PKCS#1 or PKCS#8 PEM form.
func ParsePrivateKey(data []byte) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(bytes.TrimSpace(data))
	if block == nil && bytes.Contains(data, []byte(`\n`)) {
		// Keys pasted into env vars or JSON strings often keep literal "\n".
		block, _ = pem.Decode(bytes.ReplaceAll(bytes.TrimSpace(data), []byte(`\n`), []byte("\n")))
	}
	if block == nil {
		if bytes.HasPrefix(bytes.TrimSpace(data), []byte("{")) {
			return nil, errors.New("this is JSON, not a PEM private key; the private key is the PEM file whose first line names a PRIVATE KEY")
		}
		return nil, errors.New("no PEM private key found; expected a PEM file whose first line names a PRIVATE KEY (PKCS#8) or an RSA PRIVATE KEY (PKCS#1)")
	}
	switch block.Type {
	case "RSA PRIVATE KEY":
		if _, encrypted := block.Headers["Proc-Type"]; encrypted {
			return nil, errors.New("the private key is encrypted; decrypt it first: openssl rsa -in key.pem -out key-decrypted.pem")
		}
		k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, errors.New("the PKCS#1 RSA private key is corrupt; export the key again")
		}
		return k, nil
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, errors.New("the PKCS#8 private key is corrupt; export the key again")
		}
		rsaKey, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("the private key is %T, but STACKIT service account keys are RSA", k)
		}
		return rsaKey, nil
	case "ENCRYPTED PRIVATE KEY":
		return nil, errors.New("the private key is encrypted; decrypt it first: openssl pkcs8 -in key.pem -out key-decrypted.pem")
	case "PUBLIC KEY", "RSA PUBLIC KEY", "CERTIFICATE":
		return nil, fmt.Errorf("this is a %s, not the private key; use the private key that belongs to the service account key", strings.ToLower(block.Type))
	default:
		return nil, fmt.Errorf("unsupported PEM block %q; expected an RSA private key (PKCS#1 or PKCS#8)", block.Type)
	}
}
