// Package stackitauthn gives Go programs, in-process, the registry
// credentials that docker-credential-stackit gives Docker: the same key
// discovery, allowed hosts, static logins and on-disk token cache, shared
// with the binary.
//
// A Helper satisfies go-containerregistry's authn.Helper, so a tool built
// on it (crane, ko, kaniko-style builders) can use STACKIT credentials
// without the binary on PATH:
//
//	kc := authn.NewMultiKeychain(
//		authn.NewKeychainFromHelper(stackitauthn.New()),
//		authn.DefaultKeychain,
//	)
//	img, err := remote.Image(ref, remote.WithAuthFromKeychain(kc))
//
// This package does not import go-containerregistry; it only matches the
// interface, so depending on it adds nothing to a program's dependencies.
package stackitauthn

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/docker/docker-credential-helpers/credentials"

	"github.com/docker-credential-stackit/docker-credential-stackit/credhelper"
)

// Options change where a Helper looks. The zero value behaves like the
// binary run in the current process's environment.
type Options struct {
	// Env looks up environment variables; nil means os.Getenv.
	Env func(string) string
	// Warnings receives the helper's warnings, and the errors Get returns:
	// go-containerregistry turns every Get error into an anonymous request,
	// so without this a broken key would only show up as a 401 later. Nil
	// means os.Stderr; use io.Discard for silence.
	Warnings io.Writer
	// CacheDir overrides the token cache directory (an absolute path).
	CacheDir string
	// ConfigPath overrides the helper config file.
	ConfigPath string
	// HTTPClient is used for token requests; nil means the helper's
	// default client (system roots, proxies from the environment, timeouts).
	HTTPClient *http.Client
}

// Helper resolves registry hosts to credentials. It is safe for concurrent
// use. The allowed hosts are read once, on first use.
type Helper struct {
	h        *credhelper.Helper
	warnings io.Writer
}

// New returns a Helper configured like the binary, from os.Getenv.
func New() *Helper { return NewWithOptions(Options{}) }

// NewWithOptions returns a Helper configured by o.
func NewWithOptions(o Options) *Helper {
	env := o.Env
	if env == nil {
		env = os.Getenv
	}
	w := o.Warnings
	if w == nil {
		w = os.Stderr
	}
	h := credhelper.NewHelper(env, w)
	if o.CacheDir != "" {
		h.Cache.Dir = o.CacheDir
		h.CacheSource = "stackitauthn.Options.CacheDir"
	}
	if o.ConfigPath != "" {
		h.ConfigPath = o.ConfigPath
		h.ConfigSource = "stackitauthn.Options.ConfigPath"
	}
	h.HTTPClient = o.HTTPClient
	return &Helper{h: h, warnings: w}
}

// Get returns the username and secret for serverURL, which may be a host,
// host:port, a URL or host/repository as go-containerregistry and Docker
// send them. Hosts this helper does not serve yield an error for which
// IsNotFound is true, without reading a key or using the network. It
// matches go-containerregistry's authn.Helper.
func (h *Helper) Get(serverURL string) (string, string, error) {
	user, secret, err := h.h.Get(serverURL)
	h.report(serverURL, err)
	return user, secret, err
}

// GetContext is Get bounded by ctx instead of the helper's own timeout.
func (h *Helper) GetContext(ctx context.Context, serverURL string) (string, string, error) {
	c, err := h.h.Credential(ctx, serverURL)
	h.report(serverURL, err)
	if err != nil {
		return "", "", err
	}
	return c.Username, c.Secret, nil
}

func (h *Helper) report(serverURL string, err error) {
	if err != nil && !IsNotFound(err) {
		fmt.Fprintf(h.warnings, "%s: %s: %s\n", credhelper.Name, strings.TrimSpace(serverURL), strings.Join(strings.Fields(err.Error()), " "))
	}
}

// IsNotFound reports whether err means "not a registry this helper
// serves, or no credentials configured for it": callers then go on
// without credentials, as Docker does.
func IsNotFound(err error) bool { return credentials.IsErrCredentialsNotFound(err) }
