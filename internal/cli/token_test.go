package cli

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/docker-credential-stackit/docker-credential-stackit/tokensource"
)

func (f *fixture) token(t *testing.T, terminal bool, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = runToken(args, func(k string) string { return f.env[k] }, &out, &errOut, testPlatform(t), func(io.Writer) bool { return terminal })
	return out.String(), errOut.String(), code
}

func TestTokenPrintsTokenAndUsername(t *testing.T) {
	f := newFixture(t)
	out, stderr, code := f.token(t, false)
	require.Equal(t, 0, code, stderr)
	assert.Empty(t, stderr)
	tok := strings.TrimSuffix(out, "\n")
	assert.Equal(t, tok+"\n", out, "the token and one newline, for $(…)")
	assert.True(t, f.srv.Valid("ci-sa@sa.stackit.cloud", tok))

	out, _, code = f.token(t, false, "--username")
	require.Equal(t, 0, code)
	assert.Equal(t, "ci-sa@sa.stackit.cloud\n", out)

	out, _, code = f.token(t, false, "--registry", "https://Registry.onstackit.cloud/v2/")
	require.Equal(t, 0, code)
	assert.Equal(t, tok+"\n", out, "served from the cache")
	assert.Equal(t, 1, f.srv.Requests())
}

func TestTokenRefusesATerminal(t *testing.T) {
	f := newFixture(t)
	out, stderr, code := f.token(t, true)
	assert.Equal(t, 1, code)
	assert.Empty(t, out)
	assert.Equal(t, "docker-credential-stackit: token: refusing to print an access token to a terminal, where it stays in scrollback; capture it as in TOKEN=$(docker-credential-stackit token), pipe it, or pass --force\n", stderr)
	assert.Equal(t, 0, f.srv.Requests(), "refused before fetching anything")

	out, _, code = f.token(t, true, "--username")
	require.Equal(t, 0, code, "a username is not secret")
	assert.Equal(t, "ci-sa@sa.stackit.cloud\n", out)

	out, _, code = f.token(t, true, "--force")
	require.Equal(t, 0, code)
	assert.True(t, f.srv.Valid("ci-sa@sa.stackit.cloud", strings.TrimSpace(out)))
}

func TestTokenErrors(t *testing.T) {
	cases := []struct {
		name  string
		setup func(f *fixture)
		args  []string
		want  string
	}{
		{"foreign host", nil, []string{"--registry", "ghcr.io"}, "ghcr.io is not a registry this helper serves; add it with docker-credential-stackit configure-docker --registry ghcr.io"},
		{"bad host", nil, []string{"--registry", "a@b"}, `"a@b" is not a registry host`},
		{"stray argument", nil, []string{"registry.onstackit.cloud"}, `unexpected argument "registry.onstackit.cloud"; run docker-credential-stackit token --help`},
		{"no key", func(f *fixture) { delete(f.env, tokensource.EnvServiceAccountKeyPath) }, nil, "registry.onstackit.cloud: no STACKIT service account key configured (workload identity federation not used either: STACKIT_SERVICE_ACCOUNT_EMAIL is not set); set STACKIT_SERVICE_ACCOUNT_KEY_PATH"},
		{"deleted key", func(f *fixture) { f.srv.DeleteKey(f.acct) }, nil, "does not know key id"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			if c.setup != nil {
				c.setup(f)
			}
			out, stderr, code := f.token(t, false, c.args...)
			assert.Equal(t, 1, code)
			assert.Empty(t, out)
			assert.Contains(t, stderr, c.want)
			assert.True(t, strings.HasPrefix(stderr, "docker-credential-stackit: token: "), stderr)
			assert.Equal(t, 1, strings.Count(stderr, "\n"), "one line: %q", stderr)
		})
	}
}

func TestTokenStaticLogin(t *testing.T) {
	f := newFixture(t)
	require.NoError(t, f.helper().Add(robotLogin()))
	out, _, code := f.token(t, false, "--username")
	require.Equal(t, 0, code)
	assert.Equal(t, "robot$proj+ci\n", out)
	out, _, code = f.token(t, false)
	require.Equal(t, 0, code)
	assert.Equal(t, "robot-secret-value\n", out, "the Harbor API takes the robot secret the same way")
}

func TestIsTerminal(t *testing.T) {
	assert.False(t, isTerminal(&bytes.Buffer{}))
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	require.NoError(t, err)
	defer null.Close()
	assert.False(t, isTerminal(null), "/dev/null (NUL on Windows) is a character device but no terminal")
	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer r.Close()
	defer w.Close()
	assert.False(t, isTerminal(w))
	file, err := os.Create(filepath.Join(t.TempDir(), "out"))
	require.NoError(t, err)
	defer file.Close()
	assert.False(t, isTerminal(file))

	pty, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal to test with: %v", err)
	}
	defer pty.Close()
	assert.True(t, isTerminal(pty))
}

// fakeHandles plays the OS for terminalProbe: which descriptors are
// consoles, and the names of the named pipes.
type fakeHandles struct {
	consoles map[uintptr]bool
	pipes    map[uintptr]string
}

func (h fakeHandles) probe(goos string) terminalProbe {
	return terminalProbe{
		goos:       goos,
		isTerminal: func(fd uintptr) bool { return h.consoles[fd] },
		pipeName: func(fd uintptr) (string, bool) {
			name, ok := h.pipes[fd]
			return name, ok
		},
	}
}

func TestTerminalGuardOnWindowsRefusesConsolesAndMinttyPipes(t *testing.T) {
	const (
		console = iota + 3
		nul
		mintty
		minttyFrom
		cygwin
		kernelName
		otherPipe
		msysNoPty
		file
	)
	h := fakeHandles{
		consoles: map[uintptr]bool{console: true},
		pipes: map[uintptr]string{
			mintty:     `\msys-1888ae32e00d56aa-pty0-to-master`,
			minttyFrom: `\msys-1888ae32e00d56aa-pty1-from-master`,
			cygwin:     `\cygwin-e022582115c10879-pty3-to-master`,
			kernelName: `\Device\NamedPipe\msys-1888ae32e00d56aa-pty0-to-master`,
			otherPipe:  `\dockerBackendApiServer`,
			msysNoPty:  `\msys-1888ae32e00d56aa-sigwait`,
		},
	}
	windows := h.probe("windows")
	for fd, want := range map[uintptr]bool{
		console: true, nul: false, mintty: true, minttyFrom: true, cygwin: true, kernelName: true,
		otherPipe: false, msysNoPty: false, file: false,
	} {
		assert.Equal(t, want, windows.fdIsTerminal(fd), "fd %d", fd)
	}
	// Elsewhere a pipe is a pipe, whatever its name.
	assert.False(t, h.probe("linux").fdIsTerminal(mintty))
	assert.True(t, h.probe("linux").fdIsTerminal(console))
}

func TestTokenRefusesAMinttyTerminalOnWindows(t *testing.T) {
	f := newFixture(t)
	h := fakeHandles{pipes: map[uintptr]string{7: `\msys-1888ae32e00d56aa-pty0-to-master`, 8: `\pipe-to-a-script`}}
	probe := h.probe("windows")
	for fd, refused := range map[uintptr]bool{7: true, 8: false} {
		var out, errOut bytes.Buffer
		code := runToken(nil, func(k string) string { return f.env[k] }, &out, &errOut, testPlatform(t), func(io.Writer) bool { return probe.fdIsTerminal(fd) })
		if refused {
			assert.Equal(t, 1, code)
			assert.Contains(t, errOut.String(), "refusing to print an access token to a terminal")
			assert.Empty(t, out.String())
		} else {
			assert.Equal(t, 0, code, errOut.String())
			assert.NotEmpty(t, out.String())
		}
	}
}
