package cli

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestFlagErrorsNameTheFlagAsTheUsageDoes(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"token", "--registry"}, "docker-credential-stackit: token: --registry needs a value; run docker-credential-stackit token --help\n"},
		{[]string{"status", "--frobnicate"}, "docker-credential-stackit: status: unknown flag --frobnicate; run docker-credential-stackit status --help\n"},
		{[]string{"doctor", "--registry", "a@b"}, `docker-credential-stackit: doctor: invalid value "a@b" for flag --registry: "a@b" is not a registry host; run docker-credential-stackit doctor --help` + "\n"},
		{[]string{"token", "--force=maybe"}, `docker-credential-stackit: token: invalid boolean value "maybe" for flag --force: parse error; run docker-credential-stackit token --help` + "\n"},
		{[]string{"configure-docker", "--bogus"}, "docker-credential-stackit: configure-docker: unknown flag --bogus; run docker-credential-stackit configure-docker --help\n"},
		{[]string{"configure-podman", "stray"}, `docker-credential-stackit: configure-podman: unexpected argument "stray"; run docker-credential-stackit configure-podman --help` + "\n"},
	} {
		f.stderr.Reset()
		out, code := f.run(t, "", c.args...)
		assert.Equal(t, 1, code, c.args)
		assert.Empty(t, out, c.args)
		assert.Equal(t, c.want, f.stderr.String(), c.args)
	}
}

func TestCommandHelpSpellsFlagsWithTwoDashes(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct {
		cmd   string
		flags []string
	}{
		{"token", []string{"--registry HOST", "--username", "--force", "--cache-dir DIR"}},
		{"doctor", []string{"--registry HOST", "--cache-dir DIR"}},
		{"status", []string{"--cache-dir DIR"}},
		{"kubelet", []string{"--cache-dir DIR"}},
		{"configure-docker", []string{"--registry HOST", "--remove"}},
		{"configure-podman", []string{"--registry HOST", "--remove"}},
	} {
		f.stderr.Reset()
		out, code := f.run(t, "", c.cmd, "--help")
		assert.Equal(t, 0, code, c.cmd)
		assert.Empty(t, out, c.cmd)
		help := f.stderr.String()
		assert.True(t, strings.HasPrefix(help, "Usage: docker-credential-stackit "+c.cmd+" "), help)
		for _, flag := range c.flags {
			assert.Contains(t, help, "\n  "+flag+"\n", c.cmd)
		}
		assert.NotRegexp(t, `(?m)^\s+-[a-z]`, help, "no flag with one dash")
	}
}
