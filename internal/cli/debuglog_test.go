package cli

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/docker-credential-stackit/docker-credential-stackit/credhelper"
)

func TestDebugLogQuotesOnlyAShortPrintablePrefixOfStdin(t *testing.T) {
	f := newFixture(t)
	f.env[credhelper.EnvDebug] = "1"
	stdin := "evil\x1b[2J\x00" + strings.Repeat("\x07y", 32<<10-8)
	out, code := f.run(t, stdin, "get")
	assert.Equal(t, 1, code)
	assert.Equal(t, "credentials not found in native keychain\n", out)
	log := f.stderr.String()
	assert.Contains(t, log, `debug: "evil?[2J??y?y`)
	assert.Less(t, len(log), 300, "at most 100 bytes of stdin in the debug log: %q", log)
	assert.NotContains(t, log, "\x1b")
	assert.NotContains(t, log, "\x07")
}
