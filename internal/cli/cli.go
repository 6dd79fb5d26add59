// Package cli holds the front-ends of docker-credential-stackit: the Docker
// credential helper protocol, the kubelet credential provider, token,
// doctor, status and configure-*. Each is a thin consumer of package
// credhelper, which does the work.
package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/docker/docker-credential-helpers/credentials"

	"github.com/docker-credential-stackit/docker-credential-stackit/credhelper"
	"github.com/docker-credential-stackit/docker-credential-stackit/internal/problem"
	"github.com/docker-credential-stackit/docker-credential-stackit/internal/version"
)

// Name and the variables are the core's; the front-ends only quote them.
const (
	Name       = credhelper.Name
	HelperName = credhelper.HelperName
	EnvDebug   = credhelper.EnvDebug
)

const usage = `docker-credential-stackit: Docker credentials for STACKIT Container Registry,
minted from a STACKIT service account key or a federated CI/Kubernetes token.

Usage:
  docker-credential-stackit <get|store|erase|list>   Docker credential helper protocol (stdin/stdout)
  docker-credential-stackit configure-docker [--remove] [--registry HOST]...
                                                     add credHelpers entries to the Docker config
                                                     ($DOCKER_CONFIG, else ~/.docker/config.json);
                                                     --remove takes this helper's entries out again
  docker-credential-stackit configure-podman [--remove] [--registry HOST]...
                                                     the same for podman, buildah and skopeo
                                                     ($REGISTRY_AUTH_FILE, else ~/.config/containers/auth.json)
  docker-credential-stackit kubelet [--cache-dir DIR]
                                                     kubelet image credential provider (JSON on stdin/stdout)
  docker-credential-stackit token [--registry HOST] [--username] [--force]
                                                     print the access token (or the username) for scripts;
                                                     refuses to print a token to a terminal unless --force
  docker-credential-stackit doctor [--registry HOST]...
                                                     explain the setup and check that a token can be obtained
  docker-credential-stackit status                   one line per served registry: login, user, cached token
                                                     (no network, no secrets)
  docker-credential-stackit version                  print the version
  docker-credential-stackit --help                   this text

Credentials are found as the STACKIT SDK finds them: workload identity federation first
when STACKIT_SERVICE_ACCOUNT_EMAIL is set and a federated token is available
(STACKIT_FEDERATED_TOKEN_FILE, or GitHub Actions with STACKIT_USE_OIDC=1, a switch
of the STACKIT Terraform provider that the core SDK does not read), else the key:
STACKIT_SERVICE_ACCOUNT_KEY_PATH, STACKIT_SERVICE_ACCOUNT_KEY, then ~/.stackit/credentials.json
(STACKIT_CREDENTIALS_PATH), and last the STACKIT CLI's active service account
(stackit auth activate-service-account). A registry in the helper config may instead name a
Harbor or Quay robot account file ("robotAccountPath").
Served registries: registry.onstackit.cloud, DOCKER_CREDENTIAL_STACKIT_REGISTRIES and the
hosts in the helper config (DOCKER_CREDENTIAL_STACKIT_CONFIG).
Files: on Linux ~/.config and ~/.cache (XDG), and without HOME, for root,
/etc/docker-credential-stackit/config.json and /var/lib/docker-credential-stackit; on macOS
~/Library/Application Support and ~/Library/Caches; on Windows %APPDATA% and %LOCALAPPDATA%.
DOCKER_CREDENTIAL_STACKIT_CONFIG and DOCKER_CREDENTIAL_STACKIT_CACHE_DIR (or --cache-dir)
override them; docker-credential-stackit doctor shows which apply.
Set DOCKER_CREDENTIAL_STACKIT_DEBUG=1 to see on stderr what the helper does.

Try it: echo registry.onstackit.cloud | docker-credential-stackit get
        docker-credential-stackit doctor
`

// maxStdin bounds what we read from the caller; a server URL or a
// credentials JSON is tiny.
const maxStdin = 64 << 10

// Main runs the command line and returns the exit status. Protocol output
// and protocol errors go to stdout, as Docker expects; everything meant for
// humans goes to stderr.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer, env func(string) string) int {
	return run(args, stdin, stdout, stderr, env, credhelper.CurrentPlatform())
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer, env func(string) string, p credhelper.Platform) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 1
	}
	// Commands for people and the kubelet parse their own flags, which may
	// change where the helper keeps its files.
	switch args[0] {
	case "kubelet":
		return runKubelet(args[1:], env, stdin, stdout, stderr, p)
	case "token":
		return runToken(args[1:], env, stdout, stderr, p, isTerminal)
	case "doctor":
		return runDoctor(args[1:], env, stdout, stderr, p)
	case "status":
		return runStatus(args[1:], env, stdout, stderr, p)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, VersionString())
		return 0
	case "--help", "-h", "help":
		fmt.Fprint(stdout, usage)
		return 0
	case "get", "store", "erase", "list":
		return runProtocol(args[0], args[1:], stdin, stdout, stderr, env, p)
	}
	h, err := newHelper(env, stderr, "", p)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %s\n", Name, problem.OneLine(err))
		return 1
	}
	switch args[0] {
	case "configure-docker", "configure-podman":
		target := dockerConfigFile
		if args[0] == "configure-podman" {
			target = containersAuth
		}
		target.goos = p.GOOS
		if err := configureCredHelpers(target, args[1:], env, h, stderr); err != nil {
			fmt.Fprintf(stderr, "%s: %s: %s\n", Name, args[0], problem.OneLine(err))
			return 1
		}
		return 0
	default:
		fmt.Fprintf(stderr, "%s: unknown command %q; run %s --help\n", Name, truncate(args[0], 80), Name)
		return 1
	}
}

// protocolHelp is the help of the Docker protocol commands, which take no
// flags or arguments.
var protocolHelp = map[string]string{
	"get":   "get\n\nReads a registry host (or URL) on stdin and prints {\"ServerURL\",\"Username\",\"Secret\"} as Docker expects.\nTry it: echo registry.onstackit.cloud | docker-credential-stackit get\n",
	"store": "store\n\nReads {\"ServerURL\",\"Username\",\"Secret\"} on stdin (docker login) and keeps that login for the registry.\n",
	"erase": "erase\n\nReads a registry host on stdin (docker logout) and forgets its stored login and cached token.\n",
	"list":  "list\n\nPrints the served registries and their usernames as a JSON object.\n",
}

// runProtocol runs one command of the Docker credential helper protocol.
// Its answer, and on failure one line of error, go to stdout, as Docker
// expects. Docker does not show that line, so every error other than
// credentials-not-found (a normal answer for hosts we do not serve) is also
// written to stderr as one line that names the helper and the command.
func runProtocol(cmd string, args []string, stdin io.Reader, stdout, stderr io.Writer, env func(string) string, p credhelper.Platform) int {
	fail := func(err error) int {
		fmt.Fprintln(stdout, problem.OneLine(err))
		if !credhelper.IsNotFound(err) {
			fmt.Fprintf(stderr, "%s: %s: %s\n", Name, cmd, problem.OneLine(err))
		}
		return 1
	}
	// No flags, no arguments; but -h and --help show the command's help
	// instead of running it.
	if err := parseCommandFlags(newFlagSet(cmd), args, protocolHelp[cmd], stderr); errors.Is(err, errHelp) {
		return 0
	} else if err != nil {
		return fail(err)
	}
	h, err := newHelper(env, stderr, "", p)
	if err != nil {
		return fail(err)
	}
	switch cmd {
	case "get":
		err = runGet(h, stdin, stdout)
	case "store":
		err = runStore(h, stdin)
	case "erase":
		err = runErase(h, stdin)
	case "list":
		err = runList(h, stdout)
	}
	if err != nil {
		return fail(err)
	}
	return 0
}

// newHelper builds the core for a front-end: settings from the environment
// and the --cache-dir flag, warnings and the debug log on stderr. The
// front-ends report errors themselves.
func newHelper(env func(string) string, stderr io.Writer, cacheDirFlag string, p credhelper.Platform) (*credhelper.Helper, error) {
	return credhelper.New(credhelper.WithEnv(env), credhelper.WithPlatform(p),
		credhelper.WithSettings(credhelper.ParseSettings(env, p, cacheDirFlag)),
		credhelper.WithWarnings(stderr), credhelper.WithErrorReports(false))
}

func readStdin(stdin io.Reader) (string, error) {
	data, err := io.ReadAll(io.LimitReader(stdin, maxStdin+1))
	if err != nil {
		return "", fmt.Errorf("read stdin: %w", err)
	}
	if len(data) > maxStdin {
		return "", errors.New("stdin is larger than 64 KiB; expected a registry host")
	}
	return strings.TrimSpace(string(data)), nil
}

func runGet(h *credhelper.Helper, stdin io.Reader, stdout io.Writer) error {
	serverURL, err := readStdin(stdin)
	if err != nil {
		return err
	}
	if serverURL == "" {
		return errors.New("no credentials server URL: pass the registry host on stdin, e.g. echo registry.onstackit.cloud | docker-credential-stackit get")
	}
	username, secret, err := h.Get(serverURL)
	if err != nil {
		return err
	}
	out, err := encodeCredentials(serverURL, username, secret)
	if err != nil {
		return err
	}
	_, err = stdout.Write(out)
	return err
}

// encodeCredentials renders {"ServerURL","Username","Secret"} as
// credentials.Credentials does, one string at a time: encoding the struct
// would make encoding/json build its field table on every get. Robot names
// such as robot$proj+ci must reach the caller byte for byte, so HTML
// escaping (& < > as \u0026 and friends) is off.
func encodeCredentials(serverURL, username, secret string) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	buf.WriteString(`{"ServerURL":`)
	for i, field := range []struct{ name, value string }{{"", serverURL}, {`,"Username":`, username}, {`,"Secret":`, secret}} {
		if i > 0 {
			buf.Truncate(buf.Len() - 1) // the encoder's newline
			buf.WriteString(field.name)
		}
		if err := enc.Encode(field.value); err != nil {
			return nil, err
		}
	}
	buf.Truncate(buf.Len() - 1)
	buf.WriteString("}\n")
	return buf.Bytes(), nil
}

func runStore(h *credhelper.Helper, stdin io.Reader) error {
	data, err := readStdin(stdin)
	if err != nil {
		return err
	}
	var c credentials.Credentials
	if err := json.Unmarshal([]byte(data), &c); err != nil {
		return problem.New("stdin is not a credentials JSON object", `send {"ServerURL":"…","Username":"…","Secret":"…"}, as docker login does`)
	}
	if c.ServerURL == "" {
		return credentials.NewErrCredentialsMissingServerURL()
	}
	if _, err := credhelper.NormalizeHost(c.ServerURL); err != nil {
		// Quote only a prefix: stdin may hold 64 KiB.
		return fmt.Errorf("ServerURL %q is not a registry host", truncate(c.ServerURL, 100))
	}
	if c.Username == "" {
		return credentials.NewErrCredentialsMissingUsername()
	}
	return h.Add(&c)
}

func runErase(h *credhelper.Helper, stdin io.Reader) error {
	serverURL, err := readStdin(stdin)
	if err != nil {
		return err
	}
	if serverURL == "" {
		return errors.New("no credentials server URL: pass the registry host on stdin, e.g. echo registry.onstackit.cloud | docker-credential-stackit erase")
	}
	return h.Delete(serverURL)
}

func runList(h *credhelper.Helper, stdout io.Writer) error {
	m, err := h.List()
	if err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(m)
}

// VersionString reports the version set by the Makefile through ldflags,
// or the module version when built with go install.
func VersionString() string { return version.String(Name) }

// versionOnly is the version and commit without the name, for headers.
func versionOnly() string {
	v, revision := version.Get()
	if revision != "" {
		v += ", revision " + revision
	}
	return v
}
