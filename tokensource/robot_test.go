package tokensource

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker-credential-helpers/credentials"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	robotName   = "robot$proj+ci"
	robotSecret = "Xk9TqLm2Vb7RsWz4NpQe1HyJ"
)

func TestParseRobotAccount(t *testing.T) {
	cases := []struct {
		name    string
		json    string
		want    *RobotAccount
		wantErr string
	}{
		{"Harbor export as documented",
			`{"creation_time":"2021-08-04T13:58:45.934Z","expires_at":1628949525,"id":1,"name":"robot$proj+ci","secret":"` + robotSecret + `"}`,
			&RobotAccount{Name: robotName, Secret: robotSecret, ExpiresAt: time.Unix(1628949525, 0).UTC(), Format: RobotFormatHarbor}, ""},
		{"Harbor never expires (-1)",
			`{"name":"robot$proj+ci","secret":"` + robotSecret + `","expires_at":-1,"duration":-1,"level":"project","permissions":[{"kind":"project"}]}`,
			&RobotAccount{Name: robotName, Secret: robotSecret, Format: RobotFormatHarbor}, ""},
		{"Harbor without expires_at",
			`{"name":"robot_proj+ci","secret":"` + robotSecret + `"}`,
			&RobotAccount{Name: "robot_proj+ci", Secret: robotSecret, Format: RobotFormatHarbor}, ""},
		{"expires_at null", `{"name":"robot$a","secret":"s3cr3t-value","expires_at":null}`,
			&RobotAccount{Name: "robot$a", Secret: "s3cr3t-value", Format: RobotFormatHarbor}, ""},
		{"expires_at as a numeric string", `{"name":"robot$a","secret":"s3cr3t-value","expires_at":"1628949525"}`,
			&RobotAccount{Name: "robot$a", Secret: "s3cr3t-value", ExpiresAt: time.Unix(1628949525, 0).UTC(), Format: RobotFormatHarbor}, ""},
		{"expires_at rewritten as a float", `{"name":"robot$a","secret":"s3cr3t-value","expires_at":1628949525.0}`,
			&RobotAccount{Name: "robot$a", Secret: "s3cr3t-value", ExpiresAt: time.Unix(1628949525, 0).UTC(), Format: RobotFormatHarbor}, ""},
		{"Quay robot",
			`{"name":"org+deployer","created":"Wed, 04 Aug 2021 13:58:45 -0000","last_accessed":null,"description":"","token":"` + robotSecret + `","unstructured_metadata":{}}`,
			&RobotAccount{Name: "org+deployer", Secret: robotSecret, Format: RobotFormatQuay}, ""},
		{"secret and token equal", `{"name":"robot$a","secret":"s3cr3t-value","token":"s3cr3t-value"}`,
			&RobotAccount{Name: "robot$a", Secret: "s3cr3t-value", Format: RobotFormatHarbor}, ""},
		{"names survive byte for byte", `{"name":"robot$proj+ci$2&<x>é","secret":"s3cr3t-value"}`,
			&RobotAccount{Name: "robot$proj+ci$2&<x>é", Secret: "s3cr3t-value", Format: RobotFormatHarbor}, ""},
		{"JSON escapes in the name decode", `{"name":"robot\u0024proj+ci","secret":"s3cr3t-value"}`,
			&RobotAccount{Name: robotName, Secret: "s3cr3t-value", Format: RobotFormatHarbor}, ""},

		{"empty file", ``, nil, "(it is empty)"},
		{"truncated", `{"name":"robot$a","secret":"` + robotSecret, nil, "ends in the middle of the JSON"},
		{"not JSON", `robot$a:` + robotSecret, nil, "invalid JSON at line 1, column 1"},
		{"an array", `[{"name":"robot$a","secret":"` + robotSecret + `"}]`, nil, "it is a JSON array, not an object"},
		{"two objects", `{"name":"robot$a","secret":"` + robotSecret + `"} {}`, nil, "more than one JSON value"},
		{"Docker config instead", `{"auths":{"quay.io":{"auth":"` + robotSecret + `"}}}`, nil, `this is a Docker config with "auths"`},
		{"no name", `{"secret":"` + robotSecret + `"}`, nil, `no "name"`},
		{"name not a string", `{"name":5,"secret":"` + robotSecret + `"}`, nil, `field "name" must be a string, not a number`},
		{"name with newline", `{"name":"robot$a\nb","secret":"` + robotSecret + `"}`, nil, "control characters"},
		{"name with spaces around", `{"name":" robot$a","secret":"` + robotSecret + `"}`, nil, "starts or ends with spaces"},
		{"name <token>", `{"name":"<token>","secret":"` + robotSecret + `"}`, nil, "reserves for identity tokens"},
		{"no secret", `{"name":"robot$a","expires_at":-1}`, nil, `robot robot$a has no "secret" (Harbor) or "token" (Quay)`},
		{"empty secret", `{"name":"robot$a","secret":""}`, nil, "has an empty secret"},
		{"secret with newline", `{"name":"robot$a","secret":"` + robotSecret + `\n"}`, nil, "spaces or control characters"},
		{"secret not a string", `{"name":"robot$a","secret":{"v":"` + robotSecret + `"}}`, nil, `field "secret" must be a string`},
		{"secret and token differ", `{"name":"robot$a","secret":"` + robotSecret + `","token":"other-secret-x"}`, nil, "are set and differ"},
		{"expires_at as a word", `{"name":"robot$a","secret":"` + robotSecret + `","expires_at":"soon"}`, nil, `"expires_at" is not a number`},
		{"expires_at 0", `{"name":"robot$a","secret":"` + robotSecret + `","expires_at":0}`, nil, `"expires_at" is 0; Harbor writes Unix seconds, or -1 for never`},
		{"expires_at -5", `{"name":"robot$a","secret":"` + robotSecret + `","expires_at":-5}`, nil, `"expires_at" is -5`},
		{"expires_at in milliseconds", `{"name":"robot$a","secret":"` + robotSecret + `","expires_at":1628949525000000}`, nil, "not milliseconds"},
		{"expires_at fractional", `{"name":"robot$a","secret":"` + robotSecret + `","expires_at":1.5}`, nil, "not a whole number"},
		{"expires_at huge", `{"name":"robot$a","secret":"` + robotSecret + `","expires_at":1e400}`, nil, "not a whole number"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseRobotAccount([]byte(tc.json))
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				assert.NotContains(t, err.Error(), robotSecret, "the secret never appears in an error")
				assert.NotContains(t, err.Error(), "\n")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

// robotFixture is a registry entry served from a robot account file.
// FuzzParseRobotAccount: run with
//
//	go test -run '^$' -fuzz FuzzParseRobotAccount -fuzztime 3m ./tokensource
func FuzzParseRobotAccount(f *testing.F) {
	f.Add([]byte(`{"creation_time":"2021-08-04T13:58:45.934Z","expires_at":1628949525,"id":1,"name":"robot$proj+ci","secret":"SECRETSECRET1"}`))
	f.Add([]byte(`{"name":"org+robot","created":"x","last_accessed":null,"description":"","token":"SECRETSECRET2"}`))
	f.Add([]byte(`{"name":"robot$a","secret":"SECRETSECRET3","expires_at":-1}`))
	f.Add([]byte(`{"name":"robot$a","secret":"SECRETSECRET4","expires_at":"1.5e3"}`))
	f.Add([]byte(`{"auths":{"x":{"auth":"SECRETSECRET5"}}}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseRobotAccount(data)
		if err != nil {
			msg := err.Error()
			if strings.ContainsAny(msg, "\r\n") {
				t.Fatalf("multi-line error: %q", msg)
			}
			var raw map[string]any
			if json.Unmarshal(data, &raw) == nil {
				name, _ := raw["name"].(string)
				for _, field := range []string{"secret", "token"} {
					if s, ok := raw[field].(string); ok && len(s) >= 8 && !strings.Contains(name, s) && strings.Contains(msg, s) {
						t.Fatalf("error shows the %s: %q", field, msg)
					}
				}
			}
			return
		}
		if r.Name == "" || r.Secret == "" || (r.Format != RobotFormatHarbor && r.Format != RobotFormatQuay) {
			t.Fatalf("accepted an incomplete robot: %+v", r)
		}
		if checkRobotName(r.Name) != nil || strings.ContainsAny(r.Secret, " \t\r\n") {
			t.Fatalf("accepted a name or secret that breaks the protocol: %q", r.Name)
		}
		if !r.ExpiresAt.IsZero() && (r.ExpiresAt.Unix() <= 0 || r.ExpiresAt.Year() > 9999) {
			t.Fatalf("implausible expiry %s", r.ExpiresAt)
		}
		// What get prints decodes to the same name and secret, byte for byte.
		out, err := json.Marshal(credentials.Credentials{Username: r.Name, Secret: r.Secret})
		if err != nil {
			t.Fatal(err)
		}
		var back credentials.Credentials
		if err := json.Unmarshal(out, &back); err != nil || back.Username != r.Name || back.Secret != r.Secret {
			t.Fatalf("name or secret did not survive JSON: %q", r.Name)
		}
	})
}
