package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/docker-credential-stackit/docker-credential-stackit/credhelper"
	"github.com/docker-credential-stackit/docker-credential-stackit/tokensource"
)

func TestStatusSaysPerHostLoginUserSourceAndCache(t *testing.T) {
	f := newFixture(t)
	f.env[credhelper.EnvRegistries] = "team.example.com"
	requests := f.srv.Requests()

	out, code := f.run(t, "", "status")
	require.Equal(t, 0, code, f.stderr.String())
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 2, "one line per served host")
	assert.Contains(t, lines[0], "registry.onstackit.cloud  key flow  ci-sa@sa.stackit.cloud  from STACKIT_SERVICE_ACCOUNT_KEY_PATH (")
	assert.Contains(t, lines[0], "no token cached")
	assert.Equal(t, requests, f.srv.Requests(), "status uses no network")

	got, code := f.run(t, credhelper.DefaultRegistry, "get")
	require.Equal(t, 0, code)
	var c struct{ Secret string }
	require.NoError(t, json.Unmarshal([]byte(got), &c))
	out, _ = f.run(t, "", "status")
	assert.Regexp(t, `registry\.onstackit\.cloud .*token cached, valid for \d+m\d+s more`, out)
	assert.NotContains(t, out, c.Secret, "no secrets")
}

func TestStatusExitsZeroAndExplainsMissingCredentials(t *testing.T) {
	f := newFixture(t)
	delete(f.env, tokensource.EnvServiceAccountKeyPath)
	out, code := f.run(t, "", "status")
	assert.Equal(t, 0, code, "a status, not a failure")
	assert.Contains(t, out, "registry.onstackit.cloud  no credentials: no STACKIT service account key configured")
	assert.Contains(t, out, "(run docker-credential-stackit doctor)")
	assert.Equal(t, 1, strings.Count(out, "registry.onstackit.cloud"), "the host is named once")
}
