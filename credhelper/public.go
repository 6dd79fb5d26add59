package credhelper

import (
	"fmt"
	"strings"
)

// publicRegistries are well-known public registries. STACKIT tokens have
// no business there: a credHelpers or DOCKER_CREDENTIAL_STACKIT_REGISTRIES
// entry for one of them is almost certainly a mistake that would hand a
// STACKIT access token to a third party.
var publicRegistries = map[string]bool{
	"docker.io":            true,
	"index.docker.io":      true,
	"registry-1.docker.io": true,
	"ghcr.io":              true,
	"quay.io":              true,
	"gcr.io":               true,
	"public.ecr.aws":       true,
	"mcr.microsoft.com":    true,
	"registry.gitlab.com":  true,
}

// IsPublicRegistry reports whether host (in any form NormalizeHost
// accepts, with or without a port) is a well-known public registry:
// Docker Hub, GitHub, Quay, Google (gcr.io, *.pkg.dev), Amazon ECR Public,
// Microsoft and GitLab.
func IsPublicRegistry(host string) bool {
	h, err := NormalizeHost(host)
	if err != nil {
		return false
	}
	if !strings.HasSuffix(h, "]") {
		if i := strings.LastIndexByte(h, ':'); i >= 0 {
			h = h[:i]
		}
	}
	return publicRegistries[h] || strings.HasSuffix(h, ".pkg.dev")
}

// PublicRegistryError says that the helper refuses to serve a public
// registry. For Get it is a not-found, so Docker goes on anonymously.
type PublicRegistryError struct {
	Host string
	// ConfigPath is the helper config, where the override goes.
	ConfigPath string
}

func (e *PublicRegistryError) Error() string {
	return e.what() + "; " + e.HowToFix()
}

func (e *PublicRegistryError) what() string {
	return fmt.Sprintf("refusing to serve %s: it is a public registry, and STACKIT tokens would go to it", e.Host)
}

// HowToFix implements problem.Fixer.
func (e *PublicRegistryError) HowToFix() string {
	return fmt.Sprintf(`if you really mean to, set "allowPublicRegistry": true in registries[%s] of %s`, e.Host, e.ConfigPath)
}

// Unwrap makes the error a Docker not-found.
func (e *PublicRegistryError) Unwrap() error { return errNotFound }

// publicRefusal returns the error for a public host whose entry does not
// allow it, and nil otherwise. A robot account file is meant for its host,
// so it is never refused.
func (h *Helper) publicRefusal(host string, entry RegistryConfig) error {
	if entry.AllowPublicRegistry || entry.RobotAccountPath != "" || !IsPublicRegistry(host) {
		return nil
	}
	return &PublicRegistryError{Host: host, ConfigPath: h.settings.Config.Path}
}

// CheckPublicRegistries refuses hosts that are well-known public
// registries (see IsPublicRegistry) unless the helper config allows them,
// with a *PublicRegistryError for the first such host.
func (h *Helper) CheckPublicRegistries(hosts []string) error {
	var cfg *Config
	for _, item := range hosts {
		host, err := NormalizeHost(item)
		if err != nil || !IsPublicRegistry(host) {
			continue
		}
		if cfg == nil {
			if cfg, err = loadConfig(h.settings.Config.Path, h.platform.System()); err != nil {
				return err
			}
		}
		if err := h.publicRefusal(host, cfg.Registries[host]); err != nil {
			return err
		}
	}
	return nil
}
