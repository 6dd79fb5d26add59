package tokensource

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/docker-credential-stackit/docker-credential-stackit/internal/platform"
	"github.com/docker-credential-stackit/docker-credential-stackit/internal/problem"
	"github.com/docker-credential-stackit/docker-credential-stackit/internal/safefile"
)

// The STACKIT CLI's login, read the way the CLI reads it (stackit-cli,
// internal/pkg/auth/storage.go and internal/pkg/config): every field is one
// keyring item (service "stackit-cli" for the default profile,
// "stackit-cli/<profile>" for others, user = the field name), and when the
// keyring does not answer, the same field from cli-auth-storage.txt (base64
// of a JSON object of all fields) in the profile's config folder.
const (
	// EnvCLIProfile chooses the STACKIT CLI's active profile.
	EnvCLIProfile = "STACKIT_CLI_PROFILE"

	cliKeyringService = "stackit-cli"
	cliConfigFolder   = "stackit"
	cliProfilesFolder = "profiles"
	cliProfileFile    = "cli-profile.txt"
	cliStorageFile    = "cli-auth-storage.txt"
	cliDefaultProfile = "default"

	cliFieldFlow       = "auth_flow_type"
	cliFieldSession    = "session_expires_at_unix"
	cliFieldKey        = "service_account_key"
	cliFieldPrivateKey = "private_key"
	cliFieldEndpoint   = "token_custom_endpoint"
	cliFieldEmail      = "service_account_email"

	cliFlowKey   = "sa_key"
	cliFlowToken = "sa_token"
	cliFlowUser  = "user_token"

	cliActivate = "run: stackit auth activate-service-account --service-account-key-path <key.json>"
)

// SecretStore reads one secret from the OS keyring, as
// github.com/zalando/go-keyring's Get does. A missing item is
// ErrSecretNotFound; any other error means the keyring is unavailable.
type SecretStore interface {
	Get(service, user string) (string, error)
}

// ErrSecretNotFound means the keyring answered and holds no such item.
var ErrSecretNotFound = errors.New("no such item in the keyring")

// CLILoginReason says why the STACKIT CLI's login gives no credentials.
type CLILoginReason int

// The reasons a stored STACKIT CLI login cannot be used.
const (
	// CLIUserLogin: the CLI is logged in as a user (stackit auth login);
	// a user's browser session is not for unattended registry logins.
	CLIUserLogin CLILoginReason = iota + 1
	// CLITokenLogin: a long-lived service account token (sa_token), retired.
	CLITokenLogin
	// CLILoggedOut: the session is gone (stackit auth logout).
	CLILoggedOut
	// CLISessionExpired: session_expires_at_unix has passed.
	CLISessionExpired
	// CLIUnreadable: the stored login is damaged or of an unknown kind.
	CLIUnreadable
)

// CLILoginError says why the STACKIT CLI's stored login gives no
// credentials, in one line with its fix. It wraps ErrNoCredentials: for
// the helper this is still "nothing usable is configured".
type CLILoginError struct {
	Reason  CLILoginReason
	Profile string
	// Where is "keyring" or "file <path>".
	Where   string
	Problem string
	Fix     string
}

func (e *CLILoginError) Error() string {
	return "the STACKIT CLI's login (profile " + e.Profile + ", " + e.Where + ") " + e.Problem + "; " + e.Fix
}

// Unwrap makes the error ErrNoCredentials.
func (e *CLILoginError) Unwrap() error { return ErrNoCredentials }

// HowToFix returns the fix.
func (e *CLILoginError) HowToFix() string { return e.Fix }

// noneSet reports whether the registry has no settings of its own.
func (o Overrides) noneSet() bool {
	o.Origin = ""
	return o == Overrides{}
}

// cliProfile is the CLI's active profile and where its files are.
type cliProfile struct {
	name string
	dir  string
	// why says how the profile was chosen, for doctor.
	why string
}

// cliConfigDir is os.UserConfigDir()/stackit read through env, so that
// XDG_CONFIG_HOME counts and tests can inject it.
func cliConfigDir(env Env, goos string) string {
	var dir string
	switch goos {
	case "windows":
		dir = env("AppData")
	case "darwin", "ios":
		if h := env("HOME"); h != "" {
			dir = filepath.Join(h, "Library", "Application Support")
		}
	case "plan9":
		if h := env("home"); h != "" {
			dir = filepath.Join(h, "lib")
		}
	default:
		dir = env("XDG_CONFIG_HOME")
		if dir != "" && !filepath.IsAbs(dir) {
			return "" // os.UserConfigDir fails, and so does the CLI
		}
		if dir == "" {
			if h := env("HOME"); h != "" {
				dir = filepath.Join(h, ".config")
			}
		}
	}
	if dir == "" {
		return ""
	}
	return filepath.Join(dir, cliConfigFolder)
}

// validCLIProfile is the CLI's rule: ^[a-z0-9][a-z0-9-]+$.
func validCLIProfile(name string) bool {
	if len(name) < 2 {
		return false
	}
	for i, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' && i > 0) {
			return false
		}
	}
	return true
}

// resolveCLIProfile finds the active profile as the CLI does:
// STACKIT_CLI_PROFILE, else cli-profile.txt, else default; a named profile
// whose folder does not exist falls back to default.
func resolveCLIProfile(env Env, configDir string) (cliProfile, error) {
	def := cliProfile{name: cliDefaultProfile, dir: configDir, why: "the default profile (neither " + EnvCLIProfile + " nor " + cliProfileFile + " names another)"}
	name, by := strings.TrimSpace(env(EnvCLIProfile)), EnvCLIProfile
	if name == "" {
		by = filepath.Join(configDir, cliProfileFile)
		data, _, err := safefile.ReadFile(by, platform.Current())
		if errors.Is(err, fs.ErrNotExist) {
			return def, nil
		}
		if err != nil {
			return def, &CLILoginError{Reason: CLIUnreadable, Profile: "?", Where: "file " + by, Problem: "cannot be read: " + safefile.DescribeFileError(err), Fix: "fix or remove " + by}
		}
		name = strings.TrimSpace(string(data))
	}
	if name == cliDefaultProfile {
		def.why = "the default profile, named by " + by
		return def, nil
	}
	dir := filepath.Join(configDir, cliProfilesFolder, name)
	if name == "" || strings.ContainsAny(name, `/\`) || name == "." || name == ".." {
		dir = ""
	}
	if fi, err := os.Stat(dir); dir == "" || err != nil || !fi.IsDir() {
		def.why = fmt.Sprintf("the default profile: %s names profile %q, whose folder %s does not exist, so the CLI uses default", by, name, filepath.Join(configDir, cliProfilesFolder, name))
		return def, nil
	}
	if !validCLIProfile(name) {
		return def, &CLILoginError{Reason: CLIUnreadable, Profile: name, Where: "named by " + by, Problem: "has an invalid profile name (the CLI allows a-z, 0-9 and -)",
			Fix: "set " + EnvCLIProfile + " to a valid profile, or run: stackit config profile set <profile>"}
	}
	return cliProfile{name: name, dir: dir, why: "profile " + name + ", named by " + by}, nil
}

// cliKeyringServiceName is the CLI's keyring service of a profile:
// filepath.Join("stackit-cli", profile), so with a backslash on Windows.
func cliKeyringServiceName(profile, goos string) string {
	if profile == cliDefaultProfile {
		return cliKeyringService
	}
	if goos == "windows" {
		return cliKeyringService + `\` + profile
	}
	return cliKeyringService + "/" + profile
}

// cliStore reads fields of one profile: each from the keyring, else from
// the file, as the CLI's getAuthFieldWithProfile does. The file is read
// at most once per store; the keyring once per field, and not at all once
// it has failed.
type cliStore struct {
	sys     platform.Platform
	secrets SecretStore
	service string
	path    string

	keyringErr  error
	fileRead    bool
	file        cliFile
	fileErr     error
	fromKeyring map[string]bool
}

// cliFile is the storage file's object, reduced to the fields we use: the
// CLI's access and refresh tokens are skipped, and the private key is kept
// raw until a cache miss needs it, so that a warm get decodes little.
type cliFile struct {
	Flow       *string         `json:"auth_flow_type"`
	Session    *string         `json:"session_expires_at_unix"`
	Key        *string         `json:"service_account_key"`
	PrivateKey json.RawMessage `json:"private_key"`
	Endpoint   *string         `json:"token_custom_endpoint"`
	Email      *string         `json:"service_account_email"`
}

// decode fills f from the storage object field by field: decoding into the
// struct would make encoding/json build its field table on every get, and
// the file holds several fields nobody here reads.
func (f *cliFile) decode(data []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	for name, dst := range map[string]**string{
		cliFieldFlow: &f.Flow, cliFieldSession: &f.Session, cliFieldKey: &f.Key,
		cliFieldEndpoint: &f.Endpoint, cliFieldEmail: &f.Email,
	} {
		v, ok := raw[name]
		if !ok || string(v) == "null" {
			continue
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return err
		}
		*dst = &s
	}
	f.PrivateKey = raw[cliFieldPrivateKey]
	return nil
}

func (f *cliFile) field(name string) (string, bool) {
	var p *string
	switch name {
	case cliFieldFlow:
		p = f.Flow
	case cliFieldSession:
		p = f.Session
	case cliFieldKey:
		p = f.Key
	case cliFieldEndpoint:
		p = f.Endpoint
	case cliFieldEmail:
		p = f.Email
	case cliFieldPrivateKey:
		var v string
		if f.PrivateKey == nil || json.Unmarshal(f.PrivateKey, &v) != nil {
			return "", false
		}
		return v, true
	}
	if p == nil {
		return "", false
	}
	return *p, true
}

func newCLIStore(secrets SecretStore, p cliProfile, goos string) *cliStore {
	return &cliStore{sys: platform.Current(), secrets: secrets, service: cliKeyringServiceName(p.name, goos), path: filepath.Join(p.dir, cliStorageFile), fromKeyring: map[string]bool{}}
}

// get returns a field and whether it is stored. An error means the file
// is untrusted or damaged.
func (s *cliStore) get(field string) (string, bool, error) {
	if s.secrets != nil && s.keyringErr == nil {
		v, err := s.secrets.Get(s.service, field)
		if err == nil {
			s.fromKeyring[field] = true
			return v, true, nil
		}
		if !errors.Is(err, ErrSecretNotFound) {
			s.keyringErr = err
		}
	}
	if err := s.readFile(); err != nil {
		return "", false, err
	}
	v, ok := s.file.field(field)
	return v, ok, nil
}

// errCLIFileDamaged marks a storage file that does not decode: torn by a
// concurrent write, or corrupt.
var errCLIFileDamaged = errors.New("damaged")

func (s *cliStore) readFile() error {
	if s.fileRead {
		return s.fileErr
	}
	s.fileRead = true
	p := s.sys
	data, _, err := safefile.ReadFile(s.path, p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err == nil {
		err = safefile.CheckTrusted(s.path, p)
	}
	if err != nil {
		s.fileErr = err
		return err
	}
	raw, err := base64.StdEncoding.DecodeString(string(data))
	if err == nil {
		err = s.file.decode(raw)
	}
	if err != nil {
		s.fileErr = fmt.Errorf("%w: %s is not base64 of a JSON object", errCLIFileDamaged, s.path)
	}
	return s.fileErr
}

// where names the place the key came from.
func (s *cliStore) where() string {
	if s.fromKeyring[cliFieldFlow] {
		return "keyring"
	}
	return "file " + s.path
}

// cliLogin is one consistent read of the fields the key flow needs.
type cliLogin struct {
	profile  cliProfile
	store    *cliStore
	where    string
	flowType string
	// mu guards parse, which Token and Describe may run at once.
	mu sync.Mutex
	// key is nil until parse: a cache hit needs only keyJSON's digest.
	key     *ServiceAccountKey
	keyJSON string
	// custom is token_custom_endpoint; endpoint is the one in use, known
	// once the key is parsed.
	custom   string
	endpoint string
	// endpointSource says where endpoint came from.
	endpointSource string
	expires        time.Time
}

// cacheKey identifies the stored key by the digest of its JSON and the
// custom endpoint: a new key, even of the same account, is a new cache
// entry, so that switching accounts is immediate, and a hit needs no
// parsing. A key read between two of the CLI's writes has bytes no token
// was ever minted for, so it misses and is checked in full (parse).
func (l *cliLogin) cacheKey() string {
	sum := sha256.Sum256([]byte(l.keyJSON))
	return "stackit-cli\x00" + l.custom + "\x00" + hex.EncodeToString(sum[:])
}

// errCLIInconsistent marks fields that do not belong together: the CLI
// writes them one at a time, unlocked, and we read between two writes.
var errCLIInconsistent = errors.New("inconsistent")

// readCLILogin reads the profile's login once. It returns nil, nil when
// nothing is stored; errCLIInconsistent or errCLIFileDamaged (wrapped)
// when a re-read may help.
func readCLILogin(s *cliStore, p cliProfile, now time.Time) (*cliLogin, error) {
	unusable := func(r CLILoginReason, problem, fix string) error {
		return &CLILoginError{Reason: r, Profile: p.name, Where: s.where(), Problem: problem, Fix: fix}
	}
	flowType, ok, err := s.get(cliFieldFlow)
	if err != nil {
		return nil, err
	}
	if !ok || flowType == "" {
		return nil, nil
	}
	switch flowType {
	case cliFlowKey:
	case cliFlowUser:
		return nil, unusable(CLIUserLogin, "is a user login (stackit auth login), which the helper does not use for registries", "log in with a service account key instead: stackit auth activate-service-account --service-account-key-path <key.json>")
	case cliFlowToken:
		return nil, unusable(CLITokenLogin, "is a service account token (sa_token): long-lived STACKIT tokens were retired in December 2025", "activate a service account key instead: stackit auth activate-service-account --service-account-key-path <key.json>")
	default:
		return nil, unusable(CLIUnreadable, fmt.Sprintf("has an unknown auth_flow_type %q", flowType), cliActivate)
	}
	l := &cliLogin{profile: p, store: s, flowType: flowType}
	session, ok, err := s.get(cliFieldSession)
	if err != nil {
		return nil, err
	}
	if !ok || session == "" {
		return nil, unusable(CLILoggedOut, "has no session (logged out)", cliActivate)
	}
	unix, err := strconv.ParseInt(session, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("%w: session_expires_at_unix is not a number", errCLIInconsistent)
	}
	l.expires = time.Unix(unix, 0)
	if now.After(l.expires) {
		return nil, unusable(CLISessionExpired, "session expired at "+l.expires.UTC().Format(time.RFC3339), "activate it again, "+cliActivate)
	}
	l.keyJSON, _, err = s.get(cliFieldKey)
	if err != nil {
		return nil, err
	}
	if l.keyJSON == "" {
		return nil, fmt.Errorf("%w: service_account_key is empty", errCLIInconsistent)
	}
	l.custom, _, err = s.get(cliFieldEndpoint)
	if err != nil {
		return nil, err
	}
	l.where = s.where()
	return l, nil
}

// parse decodes the stored key, picks the endpoint and checks that the
// fields belong together. It is needed to mint, and to describe the login,
// not to find a cached token.
func (l *cliLogin) parse() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.key != nil {
		return nil
	}
	key, err := ParseServiceAccountKey([]byte(l.keyJSON))
	if err != nil {
		return fmt.Errorf("%w: service_account_key: %w", errCLIInconsistent, err)
	}
	s := l.store
	if s.fileRead && s.fileErr == nil && len(s.fromKeyring) == 0 {
		// Free with the file: the email is written with the key, so a
		// mismatch is a read between two writes.
		if email, _ := s.file.field(cliFieldEmail); email != "" && email != key.Credentials.Iss {
			return fmt.Errorf("%w: service_account_email does not match the key", errCLIInconsistent)
		}
	}
	l.key = key
	switch {
	case l.custom != "":
		l.endpoint, l.endpointSource = l.custom, "token_custom_endpoint of the STACKIT CLI login"
	case key.Credentials.TokenEndpoint != "":
		l.endpoint, l.endpointSource = key.Credentials.TokenEndpoint, "credentials.tokenEndpoint in the key"
	default:
		l.endpoint, l.endpointSource = DefaultTokenEndpoint, "default"
	}
	return nil
}

// retryable reports whether a second read may give a consistent login.
func retryable(err error) bool {
	return errors.Is(err, errCLIInconsistent) || errors.Is(err, errCLIFileDamaged)
}

// cliFlowSource is what Discover needs to read the CLI's login again.
type cliFlowSource struct {
	opts    Options
	profile cliProfile
	goos    string
	secrets SecretStore
}

// read reads the login, parsed when parse is set, once more if the first
// read caught the CLI between two writes.
func (c *cliFlowSource) read(parse bool) (*cliLogin, error) {
	now := c.opts.now()()
	var s *cliStore
	once := func() (*cliLogin, error) {
		s = newCLIStore(c.secrets, c.profile, c.goos)
		s.sys = c.opts.sys()
		login, err := readCLILogin(s, c.profile, now)
		if err == nil && login != nil && parse {
			err = login.parse()
		}
		return login, err
	}
	login, err := once()
	if err != nil && retryable(err) {
		login, err = once()
	}
	if err != nil && retryable(err) {
		return nil, &CLILoginError{Reason: CLIUnreadable, Profile: c.profile.name, Where: s.where(), Problem: "cannot be used: " + err.Error(), Fix: "activate it again, " + cliActivate}
	}
	return login, err
}

// stackitCLIFlow is the last credential source: the STACKIT CLI's active
// service account. sdkReason says why the SDK's own sources gave nothing.
// Nothing stored gives ErrNoCredentials itself; a login that cannot be
// used gives a *CLILoginError, which is ErrNoCredentials too.
func stackitCLIFlow(opts Options, sdkReason string) (*Flow, error) {
	none := &Flow{Kind: KindKey, Reason: sdkReason}
	goos := opts.sys().GOOS
	configDir := cliConfigDir(opts.env(), goos)
	if configDir == "" {
		return none, ErrNoCredentials
	}
	profile, err := resolveCLIProfile(opts.env(), configDir)
	if err != nil {
		return none, err
	}
	c := &cliFlowSource{opts: opts, profile: profile, goos: goos, secrets: opts.Keyring}
	if c.secrets == nil {
		c.secrets = defaultKeyring()
	}
	login, err := c.read(!opts.Lazy)
	if err != nil {
		var unusable *CLILoginError
		if errors.As(err, &unusable) {
			return none, err
		}
		return none, problem.Wrap(err, "read the STACKIT CLI's login (profile "+profile.name+"): "+problem.OneLine(err), "fix the file, or run: stackit auth logout")
	}
	if login == nil {
		return none, ErrNoCredentials
	}
	if err := login.checkEndpoint(); err != nil {
		return none, err
	}
	if opts.Lazy {
		return login.lazyFlow(c, sdkReason), nil
	}
	return login.flow(c, sdkReason), nil
}

// checkEndpoint checks the endpoint known so far: the custom one before
// the key is parsed, the one in use after.
func (l *cliLogin) checkEndpoint() error {
	endpoint, source := l.endpoint, l.endpointSource
	if l.key == nil {
		endpoint, source = l.custom, "token_custom_endpoint of the STACKIT CLI login"
	}
	if endpoint == "" {
		return nil
	}
	if err := CheckEndpoint(endpoint); err != nil {
		return problem.Wrap(err, fmt.Sprintf("token endpoint from %s: %s", source, problem.OneLine(err)), "run: stackit config unset --token-custom-endpoint, then activate the service account again")
	}
	return nil
}

// lazyFlow is the login before its key is parsed: enough to look in the
// cache (see Options.Lazy). Describe and Token parse it.
func (l *cliLogin) lazyFlow(c *cliFlowSource, sdkReason string) *Flow {
	src := &cliTokenSource{c: c, login: l, cacheKey: l.cacheKey()}
	var (
		once sync.Once
		full *Flow
		err  error
	)
	return &Flow{
		Kind: KindKey, CacheKey: src.cacheKey, Source: l.source(), Endpoint: l.custom,
		Reason: l.reason(sdkReason), source: src,
		describe: func() (*Flow, error) {
			once.Do(func() {
				if err = l.parse(); err == nil {
					full = l.flow(c, sdkReason)
				}
			})
			return full, err
		},
	}
}

func (l *cliLogin) source() string {
	return "STACKIT CLI profile " + l.profile.name + " (" + l.where + ")"
}

func (l *cliLogin) reason(sdkReason string) string {
	return "no STACKIT SDK credentials are set (" + sdkReason + "; no service account key in the environment or the credentials file), so the STACKIT CLI's active service account is used"
}

// flow describes the login for callers.
func (l *cliLogin) flow(c *cliFlowSource, sdkReason string) *Flow {
	src := &cliTokenSource{c: c, login: l, cacheKey: l.cacheKey()}
	where, reason := l.source(), l.reason(sdkReason)
	f := &Flow{
		Kind: KindKey, Username: l.key.Credentials.Iss, CacheKey: src.cacheKey,
		Source: where, Endpoint: l.endpoint, Reason: reason, source: src,
		Facts: []Fact{
			{"flow", "key flow: " + reason},
			{"credentials", where},
			{"why", l.profile.why},
		},
	}
	if l.store.keyringErr != nil {
		f.Facts = append(f.Facts, Fact{"keyring", "not used: " + problem.OneLine(l.store.keyringErr) + "; the CLI falls back to its file too"})
	}
	f.Facts = append(f.Facts,
		Fact{"account", l.key.Credentials.Iss},
		Fact{"key id", l.key.Credentials.Kid},
		Fact{"token endpoint", l.endpoint + " (" + l.endpointSource + ")"},
		Fact{"session", "active until " + l.expires.UTC().Format(time.RFC3339) + " (stackit auth activate-service-account starts a new one)"})
	f.check = func() ([]Fact, error) {
		k, source, err := src.keyFlow()
		if k == nil {
			return nil, err
		}
		return []Fact{{"private key", source}}, err
	}
	return f
}

// cliTokenSource mints tokens with the CLI's stored key through our own
// key flow; the CLI's access_token is never reused.
type cliTokenSource struct {
	c        *cliFlowSource
	login    *cliLogin
	cacheKey string
}

// keyFlow reads the private key and checks that it belongs to the key,
// reading the whole login once more if it does not: the CLI may have been
// half-way through writing another account.
func (s *cliTokenSource) keyFlow() (*keyFlow, string, error) {
	login := s.login
	for attempt := 0; ; attempt++ {
		k, err := login.keyFlow(s.c.opts)
		var source string
		if err == nil {
			source, err = k.CheckPrivateKey()
		}
		if err == nil && login.cacheKey() != s.cacheKey {
			return nil, "", problem.New("the STACKIT CLI's login changed to another key while it was being read",
				"run the command again")
		}
		if err == nil || attempt == 1 {
			return k, source, err
		}
		again, rerr := s.c.read(true)
		if rerr != nil || again == nil {
			return k, source, err
		}
		login = again
	}
}

// Token signs an assertion with the stored key and exchanges it.
func (s *cliTokenSource) Token(ctx context.Context) (*Token, error) {
	k, _, err := s.keyFlow()
	if err != nil {
		return nil, err
	}
	return k.Token(ctx)
}

// keyFlow builds the key flow from the stored fields without reading any
// file: private_key wins over the key's embedded private key.
func (l *cliLogin) keyFlow(opts Options) (*keyFlow, error) {
	if err := l.parse(); err != nil {
		return nil, err
	}
	if err := l.checkEndpoint(); err != nil {
		return nil, err
	}
	priv, _, err := l.store.get(cliFieldPrivateKey)
	if err != nil {
		return nil, err
	}
	k := &keyFlow{Key: l.key, KeySource: "service_account_key of STACKIT CLI profile " + l.profile.name + " (" + l.where + ")",
		Endpoint: l.endpoint, EndpointSource: l.endpointSource, HTTPClient: opts.HTTPClient, Now: opts.Now, requestTimeout: opts.RequestTimeout}
	if priv != "" {
		k.privateKeyOverride = setting{value: priv, source: "private_key of STACKIT CLI profile " + l.profile.name + " (" + l.where + ")"}
	}
	return k, nil
}
