package credhelper

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/docker-credential-stackit/docker-credential-stackit/cache"
	"github.com/docker-credential-stackit/docker-credential-stackit/tokensource"
)

// runDoctor implements `docker-credential-stackit doctor`: a report in plain
// words of what the helper would do and whether it works, for a person.
// The report goes to stdout, since reading it is the point (doctor | less);
// flag errors go to stderr. It never prints a secret: no token, no key
// material, no inline environment value. The exit status is 1 when a token
// cannot be obtained for a registry it checked.
func runDoctor(args []string, env func(string) string, stdout, stderr io.Writer, p platform) int {
	f := newCommandFlags("doctor", stderr)
	var only hostList
	f.Var(&only, "registry", "check only this registry `HOST` (repeatable; default: every allowed registry)")
	if err := f.parse(args); errors.Is(err, errHelp) {
		return 0
	} else if err != nil {
		fmt.Fprintf(stderr, "%s: doctor: %s\n", Name, oneLine(err))
		return 1
	}
	h := newHelper(env, stderr, f.cacheDir, p)
	h.NoCredentialsIsError = true
	d := &doctor{h: h, env: env, out: stdout, now: time.Now}
	if !d.run(only) {
		return 1
	}
	return 0
}

type doctor struct {
	h   *Helper
	env tokensource.Env
	out io.Writer
	now func() time.Time
}

func (d *doctor) printf(format string, args ...any) { fmt.Fprintf(d.out, format, args...) }

// line prints one labelled line of a section.
func (d *doctor) line(label, format string, args ...any) {
	d.printf("  %-15s %s\n", label, fmt.Sprintf(format, args...))
}

// problem prints an error split into what is wrong and how to fix it. Our
// errors put the fix after the last "; ".
func (d *doctor) problem(err error) {
	msg := oneLine(err)
	fix := "run with " + EnvDebug + "=1 to see each step on stderr"
	if errors.Is(err, tokensource.ErrNoCredentials) {
		fix = "export " + tokensource.EnvServiceAccountKeyPath + "=/path/to/sa-key.json (the JSON key from the STACKIT portal), or put the key JSON itself in " + tokensource.EnvServiceAccountKey
		msg = strings.SplitN(msg, ";", 2)[0]
	} else if i := strings.LastIndex(msg, "; "); i >= 0 {
		msg, fix = msg[:i], msg[i+2:]
	}
	d.line("problem", "%s", msg)
	d.line("fix", "%s", fix)
}

func (d *doctor) run(only []string) bool {
	d.printf("%s doctor (%s)\n\n", Name, VersionString())
	d.files()
	d.environment()

	cfg, err := LoadConfig(d.h.ConfigPath)
	if err != nil {
		d.printf("\nThe helper config cannot be used\n")
		d.problem(err)
		return false
	}
	hosts, err := allowedHosts(d.env, cfg)
	if err != nil {
		d.printf("\nThe allowed registries cannot be determined\n")
		d.problem(err)
		return false
	}
	d.printf("\nAllowed registries: the helper answers only for these, and for any other host says \"not found\" without reading a key or using the network\n")
	width := 0
	for host := range hosts {
		width = max(width, len(host))
	}
	for _, host := range sortedKeys(hosts) {
		d.printf("  %-*s  %s\n", width, host, hostOrigin(host, d.env, cfg))
	}

	check := only
	if len(check) == 0 {
		check = sortedKeys(hosts)
	}
	failed := 0
	for _, host := range check {
		d.printf("\n%s\n", host)
		entry, ok := hosts[host]
		if !ok {
			d.line("token now", "FAILED")
			d.problem(fmt.Errorf("%s is not an allowed registry, so the helper never sends it credentials; run %s configure-docker --registry %s to allow it", host, Name, host))
			failed++
			continue
		}
		if !d.checkHost(host, entry) {
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
	state := "does not exist, so only the built-in and environment settings apply"
	if _, err := os.Stat(d.h.ConfigPath); err == nil {
		state = "exists"
	} else if !errors.Is(err, fs.ErrNotExist) {
		state = "cannot be read: " + err.Error()
	}
	d.line("helper config", "%s (%s); %s", d.h.ConfigPath, sourceOr(d.h.ConfigSource, "set by the caller"), state)
	if d.h.Cache.Dir == "" {
		d.line("token cache", "disabled: %s", d.h.CacheSource)
	} else {
		d.line("token cache", "%s (%s)", d.h.Cache.Dir, sourceOr(d.h.CacheSource, "set by the caller"))
	}
	d.line("debug log", "%s", map[bool]string{true: "on (" + EnvDebug + ")", false: "off; set " + EnvDebug + "=1 to see each step on stderr"}[d.h.Debug])
}

func sourceOr(s, fallback string) string {
	if s == "" {
		return fallback
	}
	return s
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
		EnvRegistries, EnvConfig, EnvCacheDir, EnvTimeout, EnvRetryBudget, "HOME",
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

// hostOrigin says why a host is allowed.
func hostOrigin(host string, env tokensource.Env, cfg *Config) string {
	var from []string
	if host == DefaultRegistry {
		from = append(from, "built in")
	}
	for _, item := range strings.Split(env(EnvRegistries), ",") {
		if h, err := NormalizeHost(item); err == nil && h == host {
			from = append(from, EnvRegistries)
			break
		}
	}
	if entry, ok := cfg.Registries[host]; ok {
		s := "the helper config"
		if entry != (RegistryConfig{}) {
			s += " (with its own settings for this registry)"
		}
		from = append(from, s)
	}
	return strings.Join(from, ", ")
}

// checkHost reports on one allowed host and says whether credentials can
// be obtained for it now.
func (d *doctor) checkHost(host string, entry RegistryConfig) bool {
	logins := d.h.logins()
	if login, found, err := logins.get(host); err != nil {
		d.line("token now", "FAILED")
		d.problem(err)
		return false
	} else if found {
		d.line("credentials", "static login %s, stored by docker login in %s", login.Username, logins.path)
		d.line("why", "a stored login for this host comes before the service account; docker logout %s removes it", host)
		d.line("token now", "OK: static credentials, nothing to fetch (only the registry can tell whether they are still valid)")
		return true
	}

	m, err := d.h.method(entry)
	if err != nil {
		d.line("credentials", "none usable")
		if m != nil && m.choice.Reason != "" {
			d.line("flow", "%s: %s", m.choice.Flow, m.choice.Reason)
		}
		if errors.Is(err, tokensource.ErrNoCredentials) && d.env("HOME") == "" && d.env(tokensource.EnvCredentialsPath) == "" {
			d.line("note", "HOME is unset, so ~/.stackit/credentials.json was not looked at; set %s to use a credentials file", tokensource.EnvCredentialsPath)
		}
		d.line("token now", "FAILED")
		d.problem(err)
		return false
	}
	switch f := m.flow.(type) {
	case nil:
		return d.checkRobot(host, m.robotPath)
	case *tokensource.WorkloadIdentity:
		return d.checkFederation(host, entry, m, f)
	}
	flow := m.flow.(*tokensource.KeyFlow)
	d.line("flow", "key flow: %s", m.choice.Reason)
	why, ignored := d.keyWhy(entry)
	d.line("credentials", "service account key from %s", flow.KeySource)
	d.line("why", "%s", why)
	for _, ig := range ignored {
		d.line("ignored", "%s", ig)
	}
	if entry.Username != "" {
		d.line("account", "%s (username set in the helper config; tokens are minted for %s)", entry.Username, flow.Username())
	} else {
		d.line("account", "%s", flow.Username())
	}
	d.line("key id", "%s", flow.Key.Credentials.Kid)
	d.line("token endpoint", "%s (%s)", flow.Endpoint, flow.EndpointSource)

	keySource, keyErr := flow.CheckPrivateKey()
	if keySource != "" {
		d.line("private key", "%s", keySource)
	}
	for _, w := range flow.Warnings {
		d.line("warning", "%s", w)
	}
	before := d.h.Cache.Peek(flow.CacheKey())
	d.line("cache", "%s", d.cacheState(before))
	if keyErr != nil {
		d.line("token now", "FAILED")
		d.problem(keyErr)
		return false
	}

	return d.tokenNow(host, before)
}

// tokenNow gets a token the way get does and reports the outcome.
func (d *doctor) tokenNow(host string, before *cache.Entry) bool {
	ctx, cancel := d.h.budgetContext()
	defer cancel()
	cred, err := d.h.Credential(ctx, host)
	if err != nil {
		d.line("token now", "FAILED")
		d.problem(err)
		return false
	}
	how := "fetched from the token endpoint just now"
	if before != nil && before.AccessToken == cred.Secret {
		how = "served from the cache"
	}
	d.line("token now", "OK: %s, valid for %s more (until %s)", how, roundSeconds(cred.Expiry.Sub(d.now())), clock(cred.Expiry))
	return true
}

// checkFederation reports a registry served by workload identity
// federation. The federated token is not read here: the check below
// exchanges it like get does, and its errors say what is wrong.
func (d *doctor) checkFederation(host string, entry RegistryConfig, m *method, w *tokensource.WorkloadIdentity) bool {
	d.line("credentials", "%s", m.source)
	d.line("why", "%s", m.choice.Reason)
	if entry.Username != "" {
		d.line("account", "%s (username set in the helper config; tokens are minted for %s, from %s)", entry.Username, w.Email, w.EmailSource)
	} else {
		d.line("account", "%s (from %s)", w.Email, w.EmailSource)
	}
	d.line("IdP endpoint", "%s (%s)", w.Endpoint, w.EndpointSource)
	before := d.h.Cache.Peek(w.CacheKey())
	d.line("cache", "%s", d.cacheState(before))
	return d.tokenNow(host, before)
}

// checkRobot reports a registry served from a robot account file.
func (d *doctor) checkRobot(host, path string) bool {
	d.line("credentials", "robot account file %s", path)
	d.line("why", "the helper config sets robotAccountPath for this registry; the file is read on every get")
	r, err := readRobotAccount(path)
	if err != nil {
		d.line("token now", "FAILED")
		d.problem(err)
		return false
	}
	d.line("account", "%s (%s robot)", r.Name, r.Format)
	if r.ExpiresAt.IsZero() {
		d.line("expires", "never")
	} else {
		d.line("expires", "%s", r.ExpiresAt.UTC().Format(time.RFC3339))
	}
	ctx, cancel := d.h.budgetContext()
	defer cancel()
	if _, err := d.h.Credential(ctx, host); err != nil {
		d.line("token now", "FAILED")
		d.problem(err)
		return false
	}
	d.line("token now", "OK: static credentials from the file, nothing to fetch (only the registry can tell whether they are still valid)")
	return true
}

// keyWhy explains, in the SDK's discovery order, why this key was chosen
// and which other configured sources lose to it.
func (d *doctor) keyWhy(entry RegistryConfig) (why string, ignored []string) {
	pathSet := d.env(tokensource.EnvServiceAccountKeyPath) != ""
	inlineSet := d.env(tokensource.EnvServiceAccountKey) != ""
	order := "the order is: the registry's serviceAccountKeyPath in the helper config, " + tokensource.EnvServiceAccountKeyPath + ", " + tokensource.EnvServiceAccountKey + ", the credentials file"
	switch {
	case entry.ServiceAccountKeyPath != "":
		why = "the helper config sets serviceAccountKeyPath for this registry, which comes first; " + order
		if pathSet {
			ignored = append(ignored, tokensource.EnvServiceAccountKeyPath+" is set too, but the helper config wins for this registry")
		}
		if inlineSet {
			ignored = append(ignored, tokensource.EnvServiceAccountKey+" is set too, but the helper config wins for this registry")
		}
	case pathSet:
		why = tokensource.EnvServiceAccountKeyPath + " is set; " + order
		if inlineSet {
			ignored = append(ignored, tokensource.EnvServiceAccountKey+" is set too, but "+tokensource.EnvServiceAccountKeyPath+" comes first")
		}
	case inlineSet:
		why = tokensource.EnvServiceAccountKey + " is set and " + tokensource.EnvServiceAccountKeyPath + " is not; " + order
	default:
		why = "neither " + tokensource.EnvServiceAccountKeyPath + " nor " + tokensource.EnvServiceAccountKey + " is set, so the STACKIT credentials file decides"
	}
	return why, ignored
}

func (d *doctor) cacheState(e *cache.Entry) string {
	if d.h.Cache.Dir == "" {
		return "disabled, so every request fetches a new token"
	}
	if e == nil {
		return "no cached token; the next request fetches one"
	}
	tok := &tokensource.Token{AccessToken: e.AccessToken, IssuedAt: e.IssuedAt, Expiry: e.Expiry}
	now := d.now()
	left := e.Expiry.Sub(now)
	switch {
	case tok.Expired(now):
		return fmt.Sprintf("the cached token expired at %s; the next request fetches a new one", clock(e.Expiry))
	case tok.Reusable(now):
		return fmt.Sprintf("a token valid for %s more (until %s); it is handed out until %s remain, then refreshed", roundSeconds(left), clock(e.Expiry), tok.ReuseMargin())
	default:
		return fmt.Sprintf("a token valid for %s more (until %s), below the %s kept in reserve; the next request refreshes it", roundSeconds(left), clock(e.Expiry), tok.ReuseMargin())
	}
}

func roundSeconds(d time.Duration) time.Duration { return d.Round(time.Second) }

func clock(t time.Time) string { return t.Local().Format("15:04:05 MST") }
