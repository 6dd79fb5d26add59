package credhelper

import (
	"os"
	"os/user"
	"path/filepath"

	"github.com/adrg/xdg"

	"github.com/docker-credential-stackit/docker-credential-stackit/tokensource"
)

// Where the helper keeps its files when HOME is unset, as under systemd
// units such as the kubelet's. Root gets the FHS locations; the XDG
// defaults would resolve to /.cache and /.config there.
const (
	SystemCacheDir   = "/var/lib/" + Name
	SystemConfigPath = "/etc/" + Name + "/config.json"
)

// Choice is a path together with the reason it was chosen, for doctor.
type Choice struct {
	Path   string
	Source string
}

// platform is what the directory defaults depend on besides the
// environment; tests replace it.
type platform struct {
	euid int
	// passwdHome returns the user's home from the user database.
	passwdHome func() string
	// xdgCacheHome and xdgConfigHome are adrg/xdg's answers, which know each
	// OS's conventions (e.g. ~/Library/Caches on macOS).
	xdgCacheHome, xdgConfigHome string
}

func currentPlatform() platform {
	return platform{
		euid: os.Geteuid(),
		passwdHome: func() string {
			u, err := user.Current()
			if err != nil {
				return ""
			}
			return u.HomeDir
		},
		xdgCacheHome:  xdg.CacheHome,
		xdgConfigHome: xdg.ConfigHome,
	}
}

// usableHome reports whether dir can hold per-user files: an absolute
// path other than "/", which is what passwd gives daemons without a home.
func usableHome(dir string) bool {
	return filepath.IsAbs(dir) && filepath.Clean(dir) != "/"
}

// cacheDirChoice picks the token cache directory: the --cache-dir flag,
// DOCKER_CREDENTIAL_STACKIT_CACHE_DIR, the XDG cache dir, and with HOME
// unset /var/lib/docker-credential-stackit for root or the passwd home
// for other users. An empty Path disables the cache.
func cacheDirChoice(env tokensource.Env, flagDir string, p platform) Choice {
	switch {
	case flagDir != "":
		return Choice{flagDir, "--cache-dir"}
	case env(EnvCacheDir) != "":
		return Choice{env(EnvCacheDir), EnvCacheDir}
	case filepath.IsAbs(env("XDG_CACHE_HOME")):
		// The XDG spec ignores relative values, and so does adrg/xdg.
		return Choice{filepath.Join(p.xdgCacheHome, Name), "XDG_CACHE_HOME"}
	case env("HOME") != "":
		return Choice{filepath.Join(p.xdgCacheHome, Name), "the user cache dir under HOME"}
	case p.euid == 0:
		return Choice{SystemCacheDir, "HOME is unset and the helper runs as root"}
	}
	if home := p.passwdHome(); usableHome(home) {
		return Choice{filepath.Join(home, ".cache", Name), "HOME is unset; home directory from the user database"}
	}
	return Choice{"", "HOME is unset and the user has no home directory; set " + EnvCacheDir + " or pass --cache-dir to enable the cache"}
}

// configPathChoice picks the helper config file the same way; with HOME
// unset, root reads /etc/docker-credential-stackit/config.json.
func configPathChoice(env tokensource.Env, p platform) Choice {
	switch {
	case env(EnvConfig) != "":
		return Choice{env(EnvConfig), EnvConfig}
	case filepath.IsAbs(env("XDG_CONFIG_HOME")):
		return Choice{filepath.Join(p.xdgConfigHome, Name, "config.json"), "XDG_CONFIG_HOME"}
	case env("HOME") != "":
		return Choice{filepath.Join(p.xdgConfigHome, Name, "config.json"), "the user config dir under HOME"}
	case p.euid == 0:
		return Choice{SystemConfigPath, "HOME is unset and the helper runs as root"}
	}
	if home := p.passwdHome(); usableHome(home) {
		return Choice{filepath.Join(home, ".config", Name, "config.json"), "HOME is unset; home directory from the user database"}
	}
	// Readable by everyone, writable by root only: store fails with a
	// permission error naming this path instead of writing somewhere odd.
	return Choice{SystemConfigPath, "HOME is unset and the user has no home directory"}
}
