package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/docker-credential-stackit/docker-credential-stackit/credhelper"
	"github.com/docker-credential-stackit/docker-credential-stackit/internal/problem"
)

// runToken implements `docker-credential-stackit token`: the access token
// (or with --username the login name) for one registry, for scripts such
// as calls to the Harbor API. stdout holds only that value; errors are one
// line on stderr.
//
// A token is refused to a terminal unless --force: printed there it stays
// in scrollback, screen shares and recordings, and no script needs it
// there. Usernames are not secret and always print.
func runToken(args []string, env func(string) string, stdout, stderr io.Writer, p credhelper.Platform, terminal func(io.Writer) bool) int {
	fail := func(err error) int {
		fmt.Fprintf(stderr, "%s: token: %s\n", Name, problem.OneLine(err))
		return 1
	}
	f := newCommandFlags("token", "token [--registry HOST] [--username] [--force] [--cache-dir DIR]", stderr)
	registry := f.String("registry", credhelper.DefaultRegistry, "registry `HOST` to get the token for")
	username := f.Bool("username", false, "print the username (the service account email) instead of the token")
	force := f.Bool("force", false, "print the token even when stdout is a terminal")
	if err := f.parse(args); errors.Is(err, errHelp) {
		return 0
	} else if err != nil {
		return fail(err)
	}
	if !*username && !*force && terminal(stdout) {
		return fail(errors.New("refusing to print an access token to a terminal, where it stays in scrollback; capture it as in TOKEN=$(docker-credential-stackit token), pipe it, or pass --force"))
	}
	h, err := newHelper(env, stderr, f.cacheDir, p)
	if err != nil {
		return fail(err)
	}
	cred, err := credentialForCommand(h, *registry)
	if err != nil {
		return fail(err)
	}
	value := cred.Secret
	if *username {
		value = cred.Username
	}
	if _, err := fmt.Fprintln(stdout, value); err != nil {
		return fail(fmt.Errorf("write stdout: %w", err))
	}
	return 0
}

// credentialForCommand resolves a registry named on the command line.
// Unlike the Docker protocol, where not-found is a quiet signal, a person
// asked for this host, so not-found becomes an error that says why.
func credentialForCommand(h *credhelper.Helper, registry string) (*credhelper.Credential, error) {
	host, err := credhelper.NormalizeHost(registry)
	if err != nil {
		return nil, problem.New(fmt.Sprintf("%q is not a registry host", registry), "pass e.g. --registry "+credhelper.DefaultRegistry)
	}
	if _, served, err := h.Served(host); err != nil {
		return nil, err
	} else if !served {
		return nil, notServed(host)
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.Settings().Budgets.Get)
	defer cancel()
	return h.Credential(ctx, host)
}

// notServed explains a host a person named that the helper does not serve.
func notServed(host string) error {
	return problem.New(fmt.Sprintf("%s is not a registry this helper serves", host),
		fmt.Sprintf("add it with %s configure-docker --registry %s, or list it in %s", Name, host, credhelper.EnvRegistries))
}
