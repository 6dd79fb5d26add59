package credhelper

import (
	"time"

	"bytes"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stretchr/testify/assert"
)

func TestDirectoryDefaults(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the faked Linux platform's paths (/xdg/cache) are not absolute for filepath on a Windows host; TestDirectoriesPerOS runs the Windows branch on Unix hosts")
	}
	p := Platform{
		GOOS:          "linux",
		EUID:          1000,
		PasswdHome:    func() string { return "/home/svc" },
		XDGCacheHome:  "/xdg/cache",
		XDGConfigHome: "/xdg/config",
	}
	root := p
	root.EUID = 0
	homeless := p
	homeless.PasswdHome = func() string { return "/" }

	cases := []struct {
		name       string
		env        map[string]string
		flag       string
		p          Platform
		cache, cfg string
	}{
		{"flag beats env", map[string]string{EnvCacheDir: "/env/cache", "HOME": "/h"}, "/flag/cache", p, "/flag/cache", "/xdg/config/docker-credential-stackit/config.json"},
		{"env", map[string]string{EnvCacheDir: "/env/cache", EnvConfig: "/env/config.json"}, "", root, "/env/cache", "/env/config.json"},
		{"home", map[string]string{"HOME": "/h"}, "", root, "/xdg/cache/docker-credential-stackit", "/xdg/config/docker-credential-stackit/config.json"},
		{"xdg without home", map[string]string{"XDG_CACHE_HOME": "/c", "XDG_CONFIG_HOME": "/g"}, "", root, "/xdg/cache/docker-credential-stackit", "/xdg/config/docker-credential-stackit/config.json"},
		{"relative xdg without home is ignored", map[string]string{"XDG_CACHE_HOME": "rel", "XDG_CONFIG_HOME": "rel"}, "", root, "/var/lib/docker-credential-stackit", "/etc/docker-credential-stackit/config.json"},
		{"root without home", map[string]string{}, "", root, "/var/lib/docker-credential-stackit", "/etc/docker-credential-stackit/config.json"},
		{"user without home", map[string]string{}, "", p, "/home/svc/.cache/docker-credential-stackit", "/home/svc/.config/docker-credential-stackit/config.json"},
		{"daemon user whose home is /", map[string]string{}, "", homeless, "", "/etc/docker-credential-stackit/config.json"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := func(k string) string { return c.env[k] }
			cache := cacheDirChoice(env, c.flag, c.p)
			assert.Equal(t, c.cache, cache.Path)
			assert.NotEmpty(t, cache.Why)
			cfg := configPathChoice(env, c.p)
			assert.Equal(t, c.cfg, cfg.Path)
			assert.NotEmpty(t, cfg.Why)
		})
	}

	// A helper without a cache dir still works, uncached, and says why
	// in the debug log.
	var stderr bytes.Buffer
	h, err := New(WithEnv(func(k string) string { return map[string]string{EnvDebug: "1"}[k] }), WithWarnings(&stderr), WithPlatform(homeless))
	require.NoError(t, err)
	assert.Empty(t, h.Settings().Cache.Path)
	assert.Contains(t, stderr.String(), "token cache disabled: HOME is unset and the user has no home directory; set DOCKER_CREDENTIAL_STACKIT_CACHE_DIR")
}

func TestBudgetsFitTheKubeletDeadline(t *testing.T) {
	b := DefaultBudgets
	// The context of one get carries Get, so Get bounds everything; the
	// parts must each fit inside it, and Get inside the kubelet's deadline
	// with room to start the process and answer.
	assert.LessOrEqual(t, b.Get+10*time.Second, KubeletDeadline, "one get must end well inside the kubelet's 60 s")
	for name, d := range map[string]time.Duration{"lock wait": b.LockWait, "retry": b.Retry, "request": b.Request} {
		assert.Positive(t, d, name)
		assert.LessOrEqual(t, d, b.Get, "%s must fit inside one get", name)
	}

	env := func(v map[string]string) func(string) string { return func(k string) string { return v[k] } }
	s := ParseSettings(env(map[string]string{EnvTimeout: "5m", EnvRetryBudget: "10m"}), CurrentPlatform(), "")
	require.NoError(t, s.Err)
	assert.Equal(t, b.Get, s.Budgets.Get, "a user cannot raise the budget past the kubelet's deadline")
	assert.Equal(t, b.Get, s.Retry.Budget, "nor the retry budget past one get")
	s = ParseSettings(env(map[string]string{EnvTimeout: "20s", EnvRetryBudget: "0"}), CurrentPlatform(), "")
	require.NoError(t, s.Err)
	assert.Equal(t, 20*time.Second, s.Budgets.Get)
	assert.Zero(t, s.Retry.Budget, "0 turns retries off")
	s = ParseSettings(env(map[string]string{EnvRetryBudget: "-1s"}), CurrentPlatform(), "")
	require.Error(t, s.Err)
	assert.Contains(t, s.Err.Error(), "negative")
}
