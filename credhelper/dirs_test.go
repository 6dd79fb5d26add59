package credhelper

import (
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestDirectoriesPerOS runs the Windows and macOS branches on any CI
// through an injected Platform: each OS has one place, whether or not HOME
// is set.
func TestDirectoriesPerOS(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the expected paths are written with the separators a non-Windows test host produces for Unix systems")
	}
	linux := Platform{GOOS: "linux", EUID: 1000, PasswdHome: func() string { return "/home/ann" }, XDGCacheHome: "/home/ann/.cache", XDGConfigHome: "/home/ann/.config"}
	mac := Platform{GOOS: "darwin", EUID: 501, PasswdHome: func() string { return "/Users/ann" }, XDGCacheHome: "/ignored/cache", XDGConfigHome: "/ignored/config"}
	win := Platform{GOOS: "windows", EUID: -1, PasswdHome: func() string { return `C:\Users\ann` }, XDGCacheHome: `C:\ignored`, XDGConfigHome: `C:\ignored`}
	winNoProfile := win
	winNoProfile.PasswdHome = func() string { return "" }
	appData := map[string]string{"APPDATA": `C:\Users\ann\AppData\Roaming`, "LOCALAPPDATA": `C:\Users\ann\AppData\Local`, "USERPROFILE": `C:\Users\ann`}

	cases := []struct {
		name       string
		p          Platform
		env        map[string]string
		cfg, cache string
	}{
		{"windows without HOME", win, appData,
			`C:\Users\ann\AppData\Roaming\docker-credential-stackit\config.json`, `C:\Users\ann\AppData\Local\docker-credential-stackit\cache`},
		{"windows with HOME (Git Bash, MSYS)", win, with(appData, "HOME", "/c/Users/ann"),
			`C:\Users\ann\AppData\Roaming\docker-credential-stackit\config.json`, `C:\Users\ann\AppData\Local\docker-credential-stackit\cache`},
		{"windows with XDG variables set", win, with(with(appData, "XDG_CONFIG_HOME", `D:\xdg`), "XDG_CACHE_HOME", `D:\xdg`),
			`C:\Users\ann\AppData\Roaming\docker-credential-stackit\config.json`, `C:\Users\ann\AppData\Local\docker-credential-stackit\cache`},
		{"windows with only USERPROFILE", win, map[string]string{"USERPROFILE": `C:\Users\bob`},
			`C:\Users\bob\AppData\Roaming\docker-credential-stackit\config.json`, `C:\Users\bob\AppData\Local\docker-credential-stackit\cache`},
		{"windows with a relative APPDATA", win, map[string]string{"APPDATA": `AppData`, "LOCALAPPDATA": `Local`, "USERPROFILE": `C:\Users\bob`},
			`C:\Users\bob\AppData\Roaming\docker-credential-stackit\config.json`, `C:\Users\bob\AppData\Local\docker-credential-stackit\cache`},
		{"windows with nothing but the account's profile", win, map[string]string{},
			`C:\Users\ann\AppData\Roaming\docker-credential-stackit\config.json`, `C:\Users\ann\AppData\Local\docker-credential-stackit\cache`},
		{"windows with nothing at all", winNoProfile, map[string]string{},
			`C:\docker-credential-stackit\config.json`, ""},
		{"macOS with HOME", mac, map[string]string{"HOME": "/Users/ann"},
			"/Users/ann/Library/Application Support/docker-credential-stackit/config.json", "/Users/ann/Library/Caches/docker-credential-stackit"},
		{"macOS without HOME (launchd)", mac, map[string]string{},
			"/Users/ann/Library/Application Support/docker-credential-stackit/config.json", "/Users/ann/Library/Caches/docker-credential-stackit"},
		{"macOS ignores XDG variables", mac, map[string]string{"HOME": "/Users/ann", "XDG_CONFIG_HOME": "/x/config", "XDG_CACHE_HOME": "/x/cache"},
			"/Users/ann/Library/Application Support/docker-credential-stackit/config.json", "/Users/ann/Library/Caches/docker-credential-stackit"},
		{"linux with HOME", linux, map[string]string{"HOME": "/home/ann"},
			"/home/ann/.config/docker-credential-stackit/config.json", "/home/ann/.cache/docker-credential-stackit"},
		{"linux without HOME", linux, map[string]string{},
			"/home/ann/.config/docker-credential-stackit/config.json", "/home/ann/.cache/docker-credential-stackit"},
		{"explicit variables win everywhere", win, with(with(appData, EnvConfig, `D:\cfg.json`), EnvCacheDir, `D:\cache`),
			`D:\cfg.json`, `D:\cache`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := func(k string) string { return c.env[k] }
			s := ParseSettings(env, c.p, "")
			assert.Equal(t, c.cfg, s.Config.Path)
			assert.Equal(t, c.cache, s.Cache.Path)
			assert.NotEmpty(t, s.Config.Why)
			assert.NotEmpty(t, s.Cache.Why)
			assert.Empty(t, s.Warnings)
		})
	}
}

func with(m map[string]string, k, v string) map[string]string {
	out := map[string]string{k: v}
	for key, val := range m {
		if key != k {
			out[key] = val
		}
	}
	return out
}

func TestInjectedPlatformReachesTheFileChecks(t *testing.T) {
	sys := Platform{GOOS: "windows", EUID: -1}.System()
	assert.False(t, sys.UnixPermissions(), "a Windows platform skips owner and mode checks")
	sys = Platform{GOOS: "linux", EUID: 1234}.System()
	assert.Equal(t, 1234, sys.Euid())
}
