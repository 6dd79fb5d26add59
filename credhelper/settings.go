package credhelper

import (
	"fmt"
	"io/fs"
	"os/user"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/docker-credential-stackit/docker-credential-stackit/internal/platform"
	"github.com/docker-credential-stackit/docker-credential-stackit/internal/problem"
	"github.com/docker-credential-stackit/docker-credential-stackit/tokensource"
)

// Name is the helper's name as Docker knows it; credHelpers values are the
// part after "docker-credential-".
const (
	Name       = "docker-credential-stackit"
	HelperName = "stackit"
)

// Environment variables of this helper. The STACKIT_* ones belong to the
// SDK and are read by package tokensource during discovery.
const (
	EnvRegistries = "DOCKER_CREDENTIAL_STACKIT_REGISTRIES"
	EnvConfig     = "DOCKER_CREDENTIAL_STACKIT_CONFIG"
	EnvCacheDir   = "DOCKER_CREDENTIAL_STACKIT_CACHE_DIR"
	EnvDebug      = "DOCKER_CREDENTIAL_STACKIT_DEBUG"
	// EnvTimeout bounds one get (default and maximum Budgets.Get).
	EnvTimeout = "DOCKER_CREDENTIAL_STACKIT_TIMEOUT"
	// EnvRetryBudget bounds the time spent retrying transient token
	// endpoint failures (default Budgets.Retry; 0 disables retries).
	EnvRetryBudget = "DOCKER_CREDENTIAL_STACKIT_RETRY_BUDGET"
)

// Where the helper keeps its files when HOME is unset, as under systemd
// units such as the kubelet's. Root gets the FHS locations; the XDG
// defaults would resolve to /.cache and /.config there.
const (
	SystemCacheDir   = "/var/lib/" + Name
	SystemConfigPath = "/etc/" + Name + "/config.json"
)

// KubeletDeadline is how long the kubelet lets a credential provider run
// before it kills it. Every budget below fits inside it.
const KubeletDeadline = 60 * time.Second

// Budgets are the time limits of one get, in one place. The context of a
// get carries Get; the others are the parts it is spent on, each at most
// Get, so a get ends within Get whatever happens.
type Budgets struct {
	// Get bounds one get, lock wait and retries included. Users may lower
	// it with EnvTimeout, never raise it.
	Get time.Duration
	// LockWait bounds the wait for another process that is fetching the
	// same token; after it the token is fetched without the cache.
	LockWait time.Duration
	// Retry bounds the time spent retrying transient failures.
	Retry time.Duration
	// Request bounds one HTTP request to a token endpoint.
	Request time.Duration
}

// DefaultBudgets leave the kubelet 15 s of its 60 s for starting the
// process and writing the answer.
var DefaultBudgets = Budgets{Get: 45 * time.Second, LockWait: 25 * time.Second, Retry: 15 * time.Second, Request: 30 * time.Second}

// PathChoice is a path together with the reason it was chosen.
type PathChoice struct {
	Path string
	// Why says in words why this path, e.g. "XDG_CACHE_HOME".
	Why string
}

// Settings are the helper's own settings, parsed once from the environment
// and the platform. A malformed value does not fail construction: it is
// kept in Err and reported once a host we serve is asked for, so that a
// typo never breaks pulls from other registries.
type Settings struct {
	Budgets Budgets
	Retry   tokensource.RetryPolicy
	Debug   bool
	// ExtraHosts are the hosts from EnvRegistries, as written.
	ExtraHosts []string
	Config     PathChoice
	// Cache.Path is empty when there is nowhere to keep the cache.
	Cache PathChoice
	// Err is the first malformed setting, if any.
	Err error
	// ConfigErr says why there is no usable helper config path. The config
	// decides which hosts are served, so it stops every get, like a config
	// that cannot be read.
	ConfigErr error
	// Warnings are settings that are ignored, with why; New prints them.
	Warnings []string
}

// Platform is what the defaults depend on besides the environment; tests
// replace it to exercise other systems' branches. It is the
// internal/platform value (see System) plus what the directory defaults
// need.
type Platform struct {
	GOOS string
	// EUID is the effective user id; -1 where uids do not apply (Windows).
	EUID int
	// PasswdHome returns the user's home from the user database.
	PasswdHome func() string
	// XDGCacheHome and XDGConfigHome are the XDG base directories on Linux
	// and other Unix systems (XDG_CACHE_HOME and XDG_CONFIG_HOME, else
	// ~/.cache and ~/.config). Empty means: from the environment the
	// settings are parsed from. Windows and macOS do not use them: each
	// has one fixed location.
	XDGCacheHome, XDGConfigHome string
	// Owner returns the uid owning the file fi describes, or -1 if
	// unknown; nil reads it from the file. Tests fake other owners with it.
	Owner func(fi fs.FileInfo) int
}

// CurrentPlatform describes the machine we run on.
func CurrentPlatform() Platform {
	sys := platform.Current()
	return Platform{
		GOOS: sys.GOOS,
		EUID: sys.Euid(),
		PasswdHome: func() string {
			u, err := user.Current()
			if err != nil {
				return ""
			}
			return u.HomeDir
		},
	}
}

// xdgBaseDir is the XDG base directory spec's rule for one directory: the
// variable when it holds an absolute path (relative values are ignored),
// else the default under home. Two lines of the spec are all the helper
// needs; a library for them read ~/.config/user-dirs.dirs and built some
// twenty paths at every start, 7% of a warm get.
func xdgBaseDir(value, home, def string) string {
	if filepath.IsAbs(value) {
		return value
	}
	if home == "" {
		return ""
	}
	return filepath.Join(home, def)
}

// System returns p as the internal/platform value that file checks (owner
// and mode, private directories) take, so that an injected Platform
// reaches them too.
func (p Platform) System() platform.Platform {
	euid := p.EUID
	return platform.Platform{GOOS: p.GOOS, Geteuid: func() int { return euid }, Owner: p.Owner}
}

// joinPath joins path elements with p's separator, so that Windows paths
// come out right even when a test on Linux computes them.
func (p Platform) joinPath(elem ...string) string {
	if p.GOOS != "windows" || runtime.GOOS == "windows" {
		return filepath.Join(elem...)
	}
	parts := make([]string, 0, len(elem))
	for i, e := range elem {
		if i > 0 {
			e = strings.TrimLeft(e, `\/`)
		}
		if e = strings.TrimRight(e, `\/`); e != "" {
			parts = append(parts, e)
		}
	}
	return strings.Join(parts, `\`)
}

// isAbs reports whether path is absolute on p: C:\x or \\server\share on
// Windows, /x elsewhere.
func (p Platform) isAbs(path string) bool {
	if p.GOOS != "windows" {
		return strings.HasPrefix(path, "/")
	}
	if strings.HasPrefix(path, `\\`) || strings.HasPrefix(path, "//") {
		return true
	}
	return len(path) >= 3 && path[1] == ':' && (path[2] == '\\' || path[2] == '/') &&
		(path[0] >= 'a' && path[0] <= 'z' || path[0] >= 'A' && path[0] <= 'Z')
}

// ParseSettings reads the helper's variables once. cacheDirFlag is the
// --cache-dir of the commands that take it, empty otherwise.
func ParseSettings(env tokensource.Env, p Platform, cacheDirFlag string) Settings {
	s := Settings{Budgets: DefaultBudgets, Retry: tokensource.DefaultRetryPolicy}
	s.Retry.Budget = s.Budgets.Retry
	s.Debug = isOn(env(EnvDebug))
	for _, item := range strings.Split(env(EnvRegistries), ",") {
		if item = strings.TrimSpace(item); item != "" {
			s.ExtraHosts = append(s.ExtraHosts, item)
		}
	}
	if p.XDGCacheHome == "" && p.XDGConfigHome == "" {
		// From the environment the helper was given, so that an injected
		// environment decides, as the real one does.
		p.XDGCacheHome = xdgBaseDir(env("XDG_CACHE_HOME"), env("HOME"), ".cache")
		p.XDGConfigHome = xdgBaseDir(env("XDG_CONFIG_HOME"), env("HOME"), ".config")
	}
	s.Config = configPathChoice(env, p)
	s.Cache = cacheDirChoice(env, cacheDirFlag, p)
	if !tokensource.LooksLikePath(s.Config.Path) {
		// Never echoed: a key pasted into the variable would be printed.
		s.ConfigErr = tokensource.NotAPathError(EnvConfig, s.Config.Path)
		s.Config = PathChoice{"", EnvConfig + " holds something other than a path"}
	} else if !p.isAbs(s.Config.Path) {
		// Docker runs the helper in directories of its own: a relative
		// config would be found from one and missing from the next.
		s.ConfigErr = problem.New(fmt.Sprintf("%s=%s is not an absolute path", EnvConfig, s.Config.Path),
			"set it to the full path of the helper config")
	}
	if s.Cache.Path != "" && !tokensource.LooksLikePath(s.Cache.Path) {
		s.Warnings = append(s.Warnings, problem.OneLine(tokensource.NotAPathError(s.Cache.Why, s.Cache.Path))+"; the token cache is not used")
		s.Cache = PathChoice{"", s.Cache.Why + " holds something other than a path"}
	} else if s.Cache.Path != "" && !p.isAbs(s.Cache.Path) {
		// A relative cache dir would follow whatever directory docker or
		// the kubelet happens to run in.
		s.Warnings = append(s.Warnings, fmt.Sprintf("%s %q is not an absolute path, so the token cache is not used; set an absolute path", s.Cache.Why, s.Cache.Path))
		s.Cache = PathChoice{"", s.Cache.Why + " is not an absolute path"}
	}
	if d, set, err := parseBudget(env, EnvTimeout, s.Budgets.Get); err != nil {
		s.Err = err
	} else if set && d > 0 {
		s.Budgets.Get = d
	}
	if d, set, err := parseBudget(env, EnvRetryBudget, s.Budgets.Get); err != nil {
		s.Err = err
	} else if set {
		s.Retry.Budget = d
	}
	return s
}

func isOn(v string) bool { return v != "" && v != "0" && !strings.EqualFold(v, "false") }

// parseBudget reads a duration variable, capped at limit.
func parseBudget(env tokensource.Env, name string, limit time.Duration) (time.Duration, bool, error) {
	v := env(name)
	if v == "" {
		return 0, false, nil
	}
	if v == "0" {
		return 0, true, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, false, problem.New(fmt.Sprintf("%s=%q is not a duration", name, v), "use e.g. 20s or 0")
	}
	if d < 0 {
		return 0, false, problem.New(fmt.Sprintf("%s=%q is negative", name, v), "use a positive duration such as 20s, or 0")
	}
	return min(d, limit), true, nil
}

// usableHome reports whether dir can hold per-user files: an absolute
// path other than "/", which is what passwd gives daemons without a home.
func usableHome(dir string) bool {
	return filepath.IsAbs(dir) && filepath.Clean(dir) != "/"
}

// cacheDirChoice picks the token cache directory: the --cache-dir flag,
// DOCKER_CREDENTIAL_STACKIT_CACHE_DIR, else one place per OS (see
// osCacheDir). An empty Path disables the cache.
func cacheDirChoice(env tokensource.Env, flagDir string, p Platform) PathChoice {
	switch {
	case flagDir != "":
		return PathChoice{flagDir, "--cache-dir"}
	case env(EnvCacheDir) != "":
		return PathChoice{env(EnvCacheDir), EnvCacheDir}
	}
	switch p.GOOS {
	case "windows":
		if dir, why := windowsDir(env, p, "LOCALAPPDATA", "Local"); dir != "" {
			return PathChoice{p.joinPath(dir, Name, "cache"), why}
		}
		return PathChoice{"", "neither LOCALAPPDATA nor USERPROFILE is set and the user has no home directory; set " + EnvCacheDir + " or pass --cache-dir to enable the cache"}
	case "darwin":
		if home, why := macHome(env, p); home != "" {
			return PathChoice{p.joinPath(home, "Library", "Caches", Name), "~/Library/Caches (" + why + ")"}
		}
		return PathChoice{"", "HOME is unset and the user has no home directory; set " + EnvCacheDir + " or pass --cache-dir to enable the cache"}
	}
	switch {
	case filepath.IsAbs(env("XDG_CACHE_HOME")):
		// The XDG spec ignores relative values.
		return PathChoice{filepath.Join(p.XDGCacheHome, Name), "XDG_CACHE_HOME"}
	case env("HOME") != "":
		return PathChoice{filepath.Join(p.XDGCacheHome, Name), "the user cache dir under HOME"}
	case p.EUID == 0:
		return PathChoice{SystemCacheDir, "HOME is unset and the helper runs as root"}
	}
	if home := p.PasswdHome(); usableHome(home) {
		return PathChoice{filepath.Join(home, ".cache", Name), "HOME is unset; home directory from the user database"}
	}
	return PathChoice{"", "HOME is unset and the user has no home directory; set " + EnvCacheDir + " or pass --cache-dir to enable the cache"}
}

// configPathChoice picks the helper config file the same way; with HOME
// unset on Linux, root reads /etc/docker-credential-stackit/config.json.
func configPathChoice(env tokensource.Env, p Platform) PathChoice {
	if env(EnvConfig) != "" {
		return PathChoice{env(EnvConfig), EnvConfig}
	}
	switch p.GOOS {
	case "windows":
		if dir, why := windowsDir(env, p, "APPDATA", "Roaming"); dir != "" {
			return PathChoice{p.joinPath(dir, Name, "config.json"), why}
		}
		// Nothing to go by: a path that exists nowhere, so that store
		// fails naming it instead of writing somewhere odd.
		return PathChoice{p.joinPath(`C:\`, Name, "config.json"), "neither APPDATA nor USERPROFILE is set and the user has no home directory"}
	case "darwin":
		if home, why := macHome(env, p); home != "" {
			return PathChoice{p.joinPath(home, "Library", "Application Support", Name, "config.json"), "~/Library/Application Support (" + why + ")"}
		}
		return PathChoice{SystemConfigPath, "HOME is unset and the user has no home directory"}
	}
	switch {
	case filepath.IsAbs(env("XDG_CONFIG_HOME")):
		return PathChoice{filepath.Join(p.XDGConfigHome, Name, "config.json"), "XDG_CONFIG_HOME"}
	case env("HOME") != "":
		return PathChoice{filepath.Join(p.XDGConfigHome, Name, "config.json"), "the user config dir under HOME"}
	case p.EUID == 0:
		return PathChoice{SystemConfigPath, "HOME is unset and the helper runs as root"}
	}
	if home := p.PasswdHome(); usableHome(home) {
		return PathChoice{filepath.Join(home, ".config", Name, "config.json"), "HOME is unset; home directory from the user database"}
	}
	// Readable by everyone, writable by root only: store fails with a
	// permission error naming this path instead of writing somewhere odd.
	return PathChoice{SystemConfigPath, "HOME is unset and the user has no home directory"}
}

// windowsDir finds a Windows known folder from its variable (APPDATA or
// LOCALAPPDATA), else under USERPROFILE or the account's profile as
// AppData\<sub>. Whether HOME is set does not matter on Windows.
func windowsDir(env tokensource.Env, p Platform, variable, sub string) (dir, why string) {
	if v := env(variable); p.isAbs(v) {
		return v, "%" + variable + "%"
	}
	if v := env("USERPROFILE"); p.isAbs(v) {
		return p.joinPath(v, "AppData", sub), "%USERPROFILE%\\AppData\\" + sub + " (" + variable + " is unset)"
	}
	if v := p.PasswdHome(); p.isAbs(v) {
		return p.joinPath(v, "AppData", sub), "the profile directory of the account (" + variable + " and USERPROFILE are unset)"
	}
	return "", ""
}

// macHome is the home directory on macOS: HOME, else the user database's
// (launchd jobs may run without HOME). Either way the same place.
func macHome(env tokensource.Env, p Platform) (home, why string) {
	if h := env("HOME"); usableHome(h) {
		return h, "HOME"
	}
	if h := p.PasswdHome(); usableHome(h) {
		return h, "home directory from the user database"
	}
	return "", ""
}
