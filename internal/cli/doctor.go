package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/docker-credential-stackit/docker-credential-stackit/credhelper"
	"github.com/docker-credential-stackit/docker-credential-stackit/internal/problem"
	"github.com/docker-credential-stackit/docker-credential-stackit/tokensource"
)

// runDoctor implements `docker-credential-stackit doctor`: a report in plain
// words of what the helper would do and whether it works, for a person.
// The report goes to stdout, since reading it is the point (doctor | less);
// flag errors go to stderr. It never prints a secret: no token, no key
// material, no inline environment value. The exit status is 1 when a token
// cannot be obtained for a registry it checked.
func runDoctor(args []string, env func(string) string, stdout, stderr io.Writer, p credhelper.Platform) int {
	f := newCommandFlags("doctor", "doctor [--registry HOST]... [--cache-dir DIR]", stderr)
	var only hostList
	f.Var(&only, "registry", "check only this registry `HOST` (repeatable; default: every allowed registry)")
	if err := f.parse(args); errors.Is(err, errHelp) {
		return 0
	} else if err != nil {
		fmt.Fprintf(stderr, "%s: doctor: %s\n", Name, problem.OneLine(err))
		return 1
	}
	h, err := newHelper(env, stderr, f.cacheDir, p)
	if err != nil {
		fmt.Fprintf(stderr, "%s: doctor: %s\n", Name, problem.OneLine(err))
		return 1
	}
	d := &doctor{h: h, env: env, out: stdout, now: time.Now}
	if !d.run(only) {
		return 1
	}
	return 0
}

type doctor struct {
	h   *credhelper.Helper
	env func(string) string
	out io.Writer
	now func() time.Time
}

func (d *doctor) printf(format string, args ...any) { fmt.Fprintf(d.out, format, args...) }

// line prints one labelled line of a section.
func (d *doctor) line(label, format string, args ...any) {
	d.printf("  %-15s %s\n", label, fmt.Sprintf(format, args...))
}

// problem prints an error as what is wrong and how to fix it, as the
// error itself carries them.
func (d *doctor) problem(err error) {
	what, fix := problem.Split(err)
	if fix == "" {
		fix = "run with " + EnvDebug + "=1 to see each step on stderr"
	}
	d.line("problem", "%s", what)
	d.line("fix", "%s", fix)
}

func (d *doctor) run(only []string) bool {
	d.printf("%s doctor (version %s)\n\n", Name, versionOnly())
	d.files()
	d.environment()

	plans, err := d.h.Plans()
	if err != nil {
		d.printf("\nThe helper config cannot be used\n")
		d.problem(err)
		return false
	}
	d.printf("\nAllowed registries: the helper answers only for these, and for any other host says \"not found\" without reading a key or using the network\n")
	width := 0
	byHost := map[string]*credhelper.Plan{}
	for _, p := range plans {
		width = max(width, len(p.Host))
		byHost[p.Host] = p
	}
	var check []string
	for _, p := range plans {
		d.printf("  %-*s  %s\n", width, p.Host, p.Origin)
		check = append(check, p.Host)
	}
	if len(only) > 0 {
		check = only
	}
	failed := 0
	for _, host := range check {
		d.printf("\n%s\n", host)
		p, ok := byHost[host]
		if !ok {
			d.line("token now", "FAILED")
			d.problem(problem.New(fmt.Sprintf("%s is not an allowed registry, so the helper never sends it credentials", host),
				fmt.Sprintf("run %s configure-docker --registry %s to allow it", Name, host)))
			failed++
			continue
		}
		if !d.checkHost(p) {
			failed++
		}
	}
	d.printf("\n")
	if failed > 0 {
		d.printf("Result: %d of %d registries checked cannot get credentials now; see \"fix\" above.\n", failed, len(check))
		return false
	}
	d.printf("Result: every registry checked (%d) can get credentials now.\n", len(check))
	return true
}

func (d *doctor) files() {
	d.printf("Files\n")
	s := d.h.Settings()
	d.line("helper config", "%s (%s); %s", s.Config.Path, s.Config.Why, d.h.ConfigState())
	if s.Cache.Path == "" {
		d.line("token cache", "disabled: %s", s.Cache.Why)
	} else {
		d.line("token cache", "%s (%s)", s.Cache.Path, s.Cache.Why)
	}
	d.line("debug log", "%s", map[bool]string{true: "on (" + EnvDebug + ")", false: "off; set " + EnvDebug + "=1 to see each step on stderr"}[s.Debug])
}

// secretEnv are variables whose values are secrets: doctor says only that
// they are set.
var secretEnv = map[string]bool{
	tokensource.EnvServiceAccountKey: true,
	tokensource.EnvPrivateKey:        true,
	"STACKIT_SERVICE_ACCOUNT_TOKEN":  true,
	// The runner's request token is a secret; its URL carries run ids.
	tokensource.EnvActionsIDTokenRequestToken: true,
	tokensource.EnvActionsIDTokenRequestURL:   true,
}

func (d *doctor) environment() {
	names := []string{
		tokensource.EnvServiceAccountKeyPath, tokensource.EnvServiceAccountKey,
		tokensource.EnvPrivateKeyPath, tokensource.EnvPrivateKey,
		tokensource.EnvCredentialsPath, tokensource.EnvTokenBaseURL,
		"STACKIT_SERVICE_ACCOUNT_TOKEN",
		tokensource.EnvServiceAccountEmail, tokensource.EnvFederatedTokenFile, tokensource.EnvUseOIDC,
		tokensource.EnvIDPTokenEndpoint, tokensource.EnvIDPEndpoint,
		tokensource.EnvActionsIDTokenRequestURL, tokensource.EnvActionsIDTokenRequestToken,
		tokensource.EnvCLIProfile,
		credhelper.EnvRegistries, credhelper.EnvConfig, credhelper.EnvCacheDir, credhelper.EnvTimeout, credhelper.EnvRetryBudget, EnvDebug,
		"HOME", "USERPROFILE", "XDG_CONFIG_HOME", "XDG_CACHE_HOME",
	}
	d.printf("\nEnvironment\n")
	width := 0
	for _, name := range names {
		width = max(width, len(name))
	}
	for _, name := range names {
		v := d.env(name)
		switch {
		case v == "":
			v = "not set"
		case name == "STACKIT_SERVICE_ACCOUNT_TOKEN":
			v = "set but not used: long-lived STACKIT tokens were retired in December 2025; use a service account key"
		case secretEnv[name]:
			v = fmt.Sprintf("set (%d bytes, not shown)", len(v))
		case !tokensource.LooksLikePath(v):
			v = fmt.Sprintf("set (%d bytes, not shown): looks like secret content, not a path or URL", len(v))
		}
		d.printf("  %-*s  %s\n", width, name, v)
	}
}

// checkHost reports on one served host from its plan and says whether
// credentials can be obtained for it now.
func (d *doctor) checkHost(p *credhelper.Plan) bool {
	for _, f := range p.Facts {
		d.line(f.Label, "%s", f.Value)
	}
	if p.Err != nil {
		d.line("credentials", "none usable")
		if tokensource.IsNoCredentials(p.Err) && d.env("HOME") == "" && d.env(tokensource.EnvCredentialsPath) == "" {
			d.line("note", "HOME is unset, so ~/.stackit/credentials.json was not looked at; set %s to use a credentials file", tokensource.EnvCredentialsPath)
		}
		d.line("token now", "FAILED")
		d.problem(p.Err)
		return false
	}
	if p.Kind == credhelper.LoginStored {
		d.line("token now", "OK: static credentials, nothing to fetch (only the registry can tell whether they are still valid)")
		return true
	}
	facts, checkErr := p.Check()
	for _, f := range facts {
		d.line(f.Label, "%s", f.Value)
	}
	for _, w := range p.Warnings {
		d.line("warning", "%s", w)
	}
	if p.Kind != credhelper.LoginRobot {
		d.line("cache", "%s", d.cacheState(p))
	}
	if checkErr != nil {
		d.line("token now", "FAILED")
		d.problem(checkErr)
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), d.h.Settings().Budgets.Get)
	defer cancel()
	cred, err := d.h.Credential(ctx, p.Host)
	if err != nil {
		d.line("token now", "FAILED")
		d.problem(err)
		return false
	}
	if cred.Static {
		d.line("token now", "OK: static credentials from the file, nothing to fetch (only the registry can tell whether they are still valid)")
		return true
	}
	how := "fetched from the token endpoint just now"
	if p.Cached != nil && p.Cached.Reusable {
		how = "served from the cache"
	}
	d.line("token now", "OK: %s, valid for %s more (until %s)", how, roundSeconds(cred.Expiry.Sub(d.now())), clock(cred.Expiry))
	return true
}

func (d *doctor) cacheState(p *credhelper.Plan) string {
	c := p.Cached
	switch {
	case p.CacheProblem != nil:
		what, fix := problem.Split(p.CacheProblem)
		return "not used, so every request fetches a new token: " + joinFix(what, fix)
	case p.CacheDisabled:
		return "disabled, so every request fetches a new token"
	case c == nil:
		return "no cached token; the next request fetches one"
	case c.Expired:
		return fmt.Sprintf("the cached token expired at %s; the next request fetches a new one", clock(c.Expiry))
	case c.Reusable:
		return fmt.Sprintf("a token valid for %s more (until %s); it is handed out until %s remain, then refreshed", roundSeconds(c.Expiry.Sub(d.now())), clock(c.Expiry), c.ReuseMargin)
	default:
		return fmt.Sprintf("a token valid for %s more (until %s), below the %s kept in reserve; the next request refreshes it", roundSeconds(c.Expiry.Sub(d.now())), clock(c.Expiry), c.ReuseMargin)
	}
}

func roundSeconds(d time.Duration) time.Duration { return d.Round(time.Second) }

func clock(t time.Time) string { return t.Local().Format("15:04:05 MST") }

func joinFix(what, fix string) string {
	if fix == "" {
		return what
	}
	return what + "; " + fix
}
