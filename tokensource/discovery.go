package tokensource

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"sync"

	"github.com/docker-credential-stackit/docker-credential-stackit/internal/suggest"

	"github.com/docker-credential-stackit/docker-credential-stackit/internal/platform"
	"github.com/docker-credential-stackit/docker-credential-stackit/internal/safefile"

	"github.com/docker-credential-stackit/docker-credential-stackit/internal/problem"
)

// Environment variables read exactly as the STACKIT SDK, CLI and Terraform
// provider read them, so existing setups work unchanged.
const (
	EnvServiceAccountKeyPath = "STACKIT_SERVICE_ACCOUNT_KEY_PATH"
	EnvServiceAccountKey     = "STACKIT_SERVICE_ACCOUNT_KEY"
	EnvPrivateKeyPath        = "STACKIT_PRIVATE_KEY_PATH"
	EnvPrivateKey            = "STACKIT_PRIVATE_KEY"
	EnvCredentialsPath       = "STACKIT_CREDENTIALS_PATH"
	EnvTokenBaseURL          = "STACKIT_TOKEN_BASEURL"
	// EnvServiceAccountToken is the retired long-lived token: read only to
	// say that it is no longer used.
	EnvServiceAccountToken = "STACKIT_SERVICE_ACCOUNT_TOKEN"
)

// DefaultTokenEndpoint is used when neither the environment nor the key names one.
const DefaultTokenEndpoint = "https://service-account.api.stackit.cloud/token"

// ErrNoCredentials means no credential source is configured at all, as
// opposed to a configured source that is broken.
var ErrNoCredentials = problem.New("no STACKIT service account key configured",
	"set STACKIT_SERVICE_ACCOUNT_KEY_PATH to the key JSON (or STACKIT_SERVICE_ACCOUNT_KEY to its content), or log in with: stackit auth activate-service-account")

// Env looks up a variable; os.Getenv in production, a map in tests.
type Env func(string) string

// setting is a value together with the place it came from, for error
// messages and the debug log.
type setting struct {
	value  string
	source string
	isPath bool
	// fromOverride marks a value from the registry's own settings, which
	// beat every variable: the fix is then there, not in the environment.
	fromOverride bool
}

// lookup walks the SDK's discovery order lazily: the credentials file is
// read only when the environment does not already answer. Token calls may
// share one lookup, so the file is read under a lock, once.
type lookup struct {
	env     Env
	homeDir func() (string, error)
	// sys judges owners and modes; zero means the machine we run on.
	sys platform.Platform

	mu        sync.Mutex
	credsRead bool
	creds     credentialsFile
	credsPath string
	credsErr  error
	// credsMissing marks an explicitly named file that does not exist.
	credsMissing bool
}

func (l *lookup) system() platform.Platform {
	if l.sys.GOOS == "" {
		return platform.Current()
	}
	return l.sys
}

func (l *lookup) credentialsFile() (map[string]string, string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.credsRead {
		return l.creds.values, l.credsPath, l.credsErr
	}
	l.credsRead = true
	path, explicit := l.env(EnvCredentialsPath), true
	if path == "" {
		explicit = false
		homeDir := l.homeDir
		if homeDir == nil {
			homeDir = func() (string, error) { return UserHomeDir(l.env, l.system().GOOS), nil }
		}
		// The SDK finds ~ with os.UserHomeDir: HOME on Unix, USERPROFILE
		// on Windows, whatever shell started us.
		home, err := homeDir()
		if err != nil || home == "" {
			return nil, "", nil
		}
		path = filepath.Join(home, ".stackit", "credentials.json")
	}
	l.credsPath = path
	data, _, err := readSmallFile(path)
	if err != nil {
		if !explicit && errors.Is(err, fs.ErrNotExist) {
			return nil, path, nil
		}
		l.credsMissing = explicit && errors.Is(err, fs.ErrNotExist)
		l.credsErr = fmt.Errorf("read STACKIT credentials file %s: %s (fix or unset %s)", path, describeFileError(err), EnvCredentialsPath)
		return nil, path, l.credsErr
	}
	// The file names the key and private key to sign with: one that
	// others can write could point us at their account, as ssh refuses.
	if err := safefile.CheckTrusted(path, l.system()); err != nil {
		l.credsErr = fmt.Errorf("STACKIT credentials file: %w", err)
		return nil, path, l.credsErr
	}
	l.creds, l.credsErr = parseCredentialsFile(data)
	if l.credsErr != nil {
		l.credsErr = fmt.Errorf("read STACKIT credentials file %s: %w", path, l.credsErr)
	}
	return l.creds.values, path, l.credsErr
}

// fileWarnings are the warnings about the credentials file's names, once
// it has been read; nil when it was not needed.
func (l *lookup) fileWarnings() []Warning {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.credsRead {
		return nil
	}
	var out []Warning
	for _, n := range l.creds.names {
		out = append(out, Warning{Message: "STACKIT credentials file " + l.credsPath + ": " + n, OnceADay: "credsname\x00" + l.credsPath + "\x00" + n})
	}
	return out
}

// fileWasRead reports whether the credentials file has been looked at.
func (l *lookup) fileWasRead() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.credsRead
}

// missingExplicitFile reports whether STACKIT_CREDENTIALS_PATH names a
// file that does not exist: unlike the SDK, that is never skipped.
func (l *lookup) missingExplicitFile() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.credsMissing
}

// noCredentials is ErrNoCredentials, explained when the user set something
// that looks like credentials but is not used: the retired long-lived
// token, or a misspelt name in the credentials file.
func (l *lookup) noCredentials() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	where := ""
	switch {
	case l.env(EnvServiceAccountToken) != "":
		where = EnvServiceAccountToken + " is set"
	case l.creds.legacyToken:
		where = EnvServiceAccountToken + " is set in " + l.credsPath
	}
	if where != "" {
		return problem.Wrap(ErrNoCredentials,
			"no STACKIT service account key configured; "+where+", but STACKIT retired long-lived service account tokens in December 2025, so it is not used",
			"create a service account key and set "+EnvServiceAccountKeyPath+" to it, or use workload identity federation ("+EnvServiceAccountEmail+" and a federated token file)")
	}
	if len(l.creds.keyNames) > 0 {
		n := l.creds.keyNames[0]
		return problem.Wrap(ErrNoCredentials,
			fmt.Sprintf("no STACKIT service account key configured; the STACKIT credentials file %s has %q, a name the STACKIT SDK does not read: did you mean %s?", l.credsPath, n[0], n[1]),
			"rename it to "+n[1])
	}
	return ErrNoCredentials
}

// UserHomeDir is os.UserHomeDir read through env, so that tests and the
// per-OS branches can inject both: USERPROFILE on Windows, home on Plan 9,
// HOME elsewhere.
func UserHomeDir(env Env, goos string) string {
	switch goos {
	case "windows":
		return env("USERPROFILE")
	case "plan9":
		return env("home")
	}
	return env("HOME")
}

// credentialsFile is what the credentials file holds for us.
type credentialsFile struct {
	values map[string]string
	// legacyToken: STACKIT_SERVICE_ACCOUNT_TOKEN is set, which is retired.
	legacyToken bool
	// names says what is wrong with names in the file, one line each.
	names []string
	// keyNames are unknown names that look like the key's own two, each
	// with the name it was probably meant to be.
	keyNames [][2]string
}

// credentialsFileNames are the names the SDK reads from the file (its
// Credentials struct); the last two we deliberately do not use.
var credentialsFileNames = []string{EnvServiceAccountKeyPath, EnvServiceAccountKey, EnvPrivateKeyPath, EnvPrivateKey, EnvServiceAccountEmail, EnvServiceAccountToken}

// parseCredentialsFile decodes the SDK's credentials file: a flat JSON
// object whose keys are the SDK's environment variable names. Values of
// keys we do not use may have any type.
func parseCredentialsFile(data []byte) (credentialsFile, error) {
	var f credentialsFile
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return f, fmt.Errorf("not a JSON object (%s); expected {\"%s\": \"/path/key.json\"}", safefile.DescribeJSONError(data, err), EnvServiceAccountKeyPath)
	}
	f.values = make(map[string]string, 4)
	// The SDK decodes the file with encoding/json into a struct, so a name
	// matches in any case, and of several spellings the last one wins:
	// walk the names in file order.
	dec := json.NewDecoder(bytes.NewReader(data))
	_, _ = dec.Token()
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			break
		}
		name, _ := t.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			break
		}
		canonical := ""
		for _, known := range credentialsFileNames {
			if name == known {
				canonical = known
				break
			}
			if canonical == "" && strings.EqualFold(name, known) {
				canonical = known
			}
		}
		if canonical == "" {
			f.noteUnknown(name)
			continue
		}
		if canonical != name {
			f.names = append(f.names, fmt.Sprintf("%q is read as %s, as the STACKIT SDK matches names in any case; write it as %s", name, canonical, canonical))
		}
		if string(v) == "null" {
			continue
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			switch {
			case canonical == EnvServiceAccountKey && len(v) > 0 && v[0] == '{':
				// The SDK file sometimes embeds the key as an object.
				s = string(v)
			case canonical == EnvServiceAccountEmail || canonical == EnvServiceAccountToken:
				// Names we never read cannot break the login.
				continue
			default:
				return credentialsFile{}, fmt.Errorf("%s must be a string", canonical)
			}
		}
		switch {
		case canonical == EnvServiceAccountToken:
			f.legacyToken = s != ""
		case canonical == EnvServiceAccountEmail:
		case s != "":
			f.values[canonical] = s
		default:
			delete(f.values, canonical)
		}
	}
	return f, nil
}

// noteUnknown records a name the SDK does not read, with the SDK name it
// was probably meant to be.
func (f *credentialsFile) noteUnknown(name string) {
	best, ok := suggest.Closest(name, credentialsFileNames, 2)
	if !ok {
		f.names = append(f.names, fmt.Sprintf("unknown name %q is ignored; the names it may hold are %s", name, strings.Join(credentialsFileNames[:4], ", ")))
		return
	}
	f.names = append(f.names, fmt.Sprintf("unknown name %q is ignored; did you mean %s?", name, best))
	if best == EnvServiceAccountKeyPath || best == EnvServiceAccountKey {
		f.keyNames = append(f.keyNames, [2]string{name, best})
	}
}

// first returns the first set value among the overrides, the environment
// and the credentials file, in that order.
func (l *lookup) first(override setting, pathVar, inlineVar string) (setting, error) {
	if override.value != "" {
		return override, nil
	}
	if v := l.env(pathVar); v != "" {
		return setting{value: v, source: pathVar, isPath: true}, nil
	}
	if v := l.env(inlineVar); v != "" {
		return setting{value: v, source: inlineVar}, nil
	}
	creds, path, err := l.credentialsFile()
	if err != nil {
		return setting{}, err
	}
	if v := creds[pathVar]; v != "" {
		return setting{value: v, source: pathVar + " in " + path, isPath: true}, nil
	}
	if v := creds[inlineVar]; v != "" {
		return setting{value: v, source: inlineVar + " in " + path}, nil
	}
	return setting{}, nil
}

// load returns the setting's content: the file it names, or the inline
// value. Like ssh, it warns (through warn, if set) when a secret file is
// readable by group or others.
func (s setting) load(what, fix string, warn func(Warning), sys platform.Platform) ([]byte, error) {
	if !s.isPath {
		return []byte(s.value), nil
	}
	if !LooksLikePath(s.value) {
		return nil, NotAPathError(s.source, s.value)
	}
	data, mode, err := readSmallFile(s.value)
	if err != nil {
		return nil, problem.Wrap(err, fmt.Sprintf("read %s %s (from %s): %s", what, s.value, s.source, describeFileError(err)), fix)
	}
	if mode&0o077 != 0 && warn != nil && sys.UnixPermissions() {
		warn(Warning{Message: fmt.Sprintf("%s %s is readable by others (mode %04o); run: chmod 600 %s", what, s.value, mode, s.value), OnceADay: "mode\x00" + s.value})
	}
	return data, nil
}

func (s setting) describe() string {
	if s.isPath {
		return s.source + " (" + s.value + ")"
	}
	return s.source
}

// readSmallFile reads a small input file the one hardened way (no
// blocking on a FIFO, at most 1 MiB, regular files only) and reports its
// permission bits.
func readSmallFile(path string) ([]byte, fs.FileMode, error) {
	data, fi, err := safefile.ReadFile(path, platform.Current())
	if err != nil {
		return nil, 0, err
	}
	return data, fi.Mode().Perm(), nil
}

// describeFileError turns an open/read error into words without repeating
// the path, which the caller already names.
func describeFileError(err error) string { return safefile.DescribeFileError(err) }

// LooksLikePath tells a file name from secret content pasted into a *_PATH
// or *_FILE variable by mistake (a PEM, key JSON or a JWT), so that such a
// value is never echoed in an error, the debug log or doctor.
func LooksLikePath(v string) bool {
	if v == "" || len(v) > 4096 {
		return false
	}
	for _, prefix := range []string{"{", "-----BEGIN", "eyJ"} {
		if strings.HasPrefix(strings.TrimSpace(v), prefix) {
			return false
		}
	}
	return !strings.ContainsFunc(v, func(c rune) bool { return c < ' ' || c == 0x7f })
}

// NotAPathError says that name holds content instead of a path, without
// showing the content.
func NotAPathError(name, value string) error {
	return fmt.Errorf("%s holds what looks like secret content (%d bytes, not shown), not a file path; write it to a file and point %s at that file", name, len(value), name)
}

// fixHint names the right knob: a value from the registry's own settings
// beats every variable, so pointing the user at a variable would change
// nothing.
func (s setting) fixHint(o Overrides, field, envFix string) string {
	if s.fromOverride {
		return "fix " + field + " for this registry in " + o.origin()
	}
	return envFix
}
