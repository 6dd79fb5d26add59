package cli

import (
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/docker-credential-stackit/docker-credential-stackit/credhelper"
	"github.com/docker-credential-stackit/docker-credential-stackit/tokensource"
)

func TestDoctorExplainsFederationAndRobotFiles(t *testing.T) {
	f := newFixture(t)
	fed, tokenFile := f.withFederation(t)
	federated := fed.WriteTokenFile(t, tokenFile)
	robotPath := f.robotEntry(t, "harbor.example.com", harborJSON(robotName, robotSecret, time.Date(2099, 1, 2, 3, 4, 5, 0, time.UTC).Unix()))

	out, stderr, code := f.doctor(t)
	require.Equal(t, 0, code, out+stderr)
	for _, want := range []string{
		"credentials     workload identity federation with the token from file " + tokenFile + " (STACKIT_FEDERATED_TOKEN_FILE)",
		"why             STACKIT_SERVICE_ACCOUNT_EMAIL is set and the federated token file " + tokenFile + " (from STACKIT_FEDERATED_TOKEN_FILE) exists",
		"account         " + wifEmail + " (from STACKIT_SERVICE_ACCOUNT_EMAIL)",
		"IdP endpoint    " + f.srv.IdPURL() + " (STACKIT_IDP_TOKEN_ENDPOINT)",
		"credentials     robot account file " + robotPath,
		"account         robot$proj+ci (Harbor robot)",
		"expires         2099-01-02T03:04:05Z",
		"OK: static credentials from the file",
		"Result: every registry checked (2) can get credentials now.",
	} {
		assert.Contains(t, out, want)
	}
	assert.Regexp(t, `STACKIT_SERVICE_ACCOUNT_EMAIL +`+regexp.QuoteMeta(wifEmail), out)
	assert.Regexp(t, `STACKIT_FEDERATED_TOKEN_FILE +`+regexp.QuoteMeta(tokenFile), out)
	for _, secret := range []string{federated, robotSecret} {
		assert.NotContains(t, out+stderr, secret)
	}

	// Without the token file, the key flow serves and doctor says why.
	delete(f.env, tokensource.EnvFederatedTokenFile)
	out, _, code = f.doctor(t, "--registry", credhelper.DefaultRegistry)
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "flow            key flow; workload identity federation is not used: STACKIT_SERVICE_ACCOUNT_EMAIL is set but there is no federated token")
}
