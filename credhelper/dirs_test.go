package credhelper

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestDirectoryDefaults(t *testing.T) {
	p := platform{
		euid:          1000,
		passwdHome:    func() string { return "/home/svc" },
		xdgCacheHome:  "/xdg/cache",
		xdgConfigHome: "/xdg/config",
	}
	root := p
	root.euid = 0
	homeless := p
	homeless.passwdHome = func() string { return "/" }

	cases := []struct {
		name       string
		env        map[string]string
		flag       string
		p          platform
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
			assert.NotEmpty(t, cache.Source)
			cfg := configPathChoice(env, c.p)
			assert.Equal(t, c.cfg, cfg.Path)
			assert.NotEmpty(t, cfg.Source)
		})
	}

	// A helper without a cache dir still works, uncached, and says why
	// in the debug log.
	var stderr bytes.Buffer
	h := newHelper(func(k string) string { return map[string]string{EnvDebug: "1"}[k] }, &stderr, "", homeless)
	assert.Empty(t, h.Cache.Dir)
	assert.Contains(t, stderr.String(), "token cache disabled: HOME is unset and the user has no home directory; set DOCKER_CREDENTIAL_STACKIT_CACHE_DIR")
}

func TestUsageListsEveryCommand(t *testing.T) {
	f := newFixture(t)
	out, code := f.run(t, "", "--help")
	assert.Equal(t, 0, code)
	for _, cmd := range []string{"configure-docker", "configure-podman", "kubelet [--cache-dir DIR]", "token [--registry HOST] [--username] [--force]", "doctor [--registry HOST]", "/var/lib/docker-credential-stackit"} {
		assert.Contains(t, out, cmd)
	}
}
