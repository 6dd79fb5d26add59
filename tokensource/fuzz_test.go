package tokensource

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// Fuzz targets: run one with e.g.
//   go test -run '^$' -fuzz FuzzParseServiceAccountKey -fuzztime 3m ./tokensource
// Crashers land in testdata/fuzz/<Target>/ and then run with every `make test`.

func FuzzParseServiceAccountKey(f *testing.F) {
	f.Add([]byte(`{"id":"k","credentials":{"kid":"k","iss":"a@sa.stackit.cloud","sub":"s","aud":"https://aud","privateKey":"-----BEGIN PRIVATE KEY-----\nSECRETSECRET\n-----END PRIVATE KEY-----"}}`))
	f.Add([]byte("-----BEGIN RSA PRIVATE KEY-----\nMII\n-----END RSA PRIVATE KEY-----\n"))
	f.Add([]byte(`{"STACKIT_SERVICE_ACCOUNT_KEY_PATH":"/x"}`))
	f.Add([]byte(`{"credentials":{"kid":5}}`))
	f.Add([]byte(`{"credentials":null}`))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, data []byte) {
		key, err := ParseServiceAccountKey(data)
		if err != nil {
			msg := err.Error()
			if strings.ContainsAny(msg, "\n\r") {
				t.Fatalf("multi-line error: %q", msg)
			}
			if strings.Contains(msg, "SECRETSECRET") {
				t.Fatalf("error leaks key material: %q", msg)
			}
			return
		}
		c := key.Credentials
		for _, v := range []string{c.Kid, c.Iss, c.Sub, c.Aud} {
			if strings.TrimSpace(v) == "" {
				t.Fatalf("accepted a key with an empty required field: %+v", c)
			}
		}
	})
}

func FuzzParseCredentialsFile(f *testing.F) {
	f.Add([]byte(`{"STACKIT_SERVICE_ACCOUNT_KEY_PATH":"/k.json","STACKIT_PRIVATE_KEY_PATH":"/k.pem"}`))
	f.Add([]byte(`{"STACKIT_SERVICE_ACCOUNT_KEY":{"credentials":{}},"other":[1,2]}`))
	f.Add([]byte(`{"STACKIT_PRIVATE_KEY":7}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		parsed, err := parseCredentialsFile(data)
		values := parsed.values
		if err != nil {
			if strings.ContainsAny(err.Error(), "\n\r") {
				t.Fatalf("multi-line error: %q", err)
			}
			return
		}
		for k, v := range values {
			if v == "" {
				t.Fatalf("empty value kept for %s", k)
			}
			switch k {
			case EnvServiceAccountKeyPath, EnvServiceAccountKey, EnvPrivateKeyPath, EnvPrivateKey:
			default:
				t.Fatalf("unexpected key %q", k)
			}
		}
	})
}

func FuzzParseTokenResponse(f *testing.F) {
	f.Add([]byte(`{"access_token":"eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjE4MDAwMDE4MDAsImlhdCI6MTgwMDAwMDAwMH0.sig","expires_in":3600,"token_type":"Bearer"}`))
	f.Add([]byte(`{"access_token":"opaque","expires_in":"600"}`))
	f.Add([]byte(`{"access_token":"a.b.c","expires_in":1e400}`))
	f.Add([]byte(`{"access_token":"x.eyJleHAiOi0xfQ.y"}`))
	f.Add([]byte(`{"expires_in":60}`))
	received := time.Unix(1_800_000_000, 0)
	f.Fuzz(func(t *testing.T, body []byte) {
		tok, err := ParseTokenResponse(body, received)
		if err != nil {
			if strings.ContainsAny(err.Error(), "\n\r") {
				t.Fatalf("multi-line error: %q", err)
			}
			return
		}
		if tok.AccessToken == "" || !utf8.ValidString(tok.AccessToken) || strings.ContainsAny(tok.AccessToken, " \t\r\n\"") {
			t.Fatalf("accepted an unusable token %q", tok.AccessToken)
		}
		if tok.Expiry.IsZero() {
			t.Fatal("accepted a token without expiry")
		}
		if tok.IssuedAt.After(tok.Expiry) && !tok.IssuedAt.Equal(received) {
			t.Fatalf("issued %s after expiry %s", tok.IssuedAt, tok.Expiry)
		}
		_ = tok.Reusable(received)
	})
}

// FuzzCheckEndpointFastPath proves the fast path never accepts a URL that
// the full check, built on net/url, would refuse.
func FuzzCheckEndpointFastPath(f *testing.F) {
	for _, s := range []string{
		"https://service-account.api.stackit.cloud/token", "https://a:443/x?y", "https://user@host/x",
		"https://host:abc/x", "https://[::1]/x", "https:///x", "https://h/\x7f", "https://h%41/x", "https://h:/",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if plainHTTPS(raw) {
			if err := checkEndpointParsed(raw); err != nil {
				t.Fatalf("fast path accepted %q, full check says %v", raw, err)
			}
		}
	})
}
