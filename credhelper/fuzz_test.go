package credhelper

import (
	"regexp"
	"strings"
	"testing"
)

var ownsDefaultRegistry = regexp.MustCompile(`(?s)^([a-z][a-z0-9+.-]*://)?registry\.onstackit\.cloud\.?([/?#].*)?$`)

func FuzzNormalizeHost(f *testing.F) {
	for _, s := range []string{
		"registry.onstackit.cloud", "https://index.docker.io/v1/", "docker.io", "ghcr.io/x/y",
		"registry.onstackit.cloud.evil.com", "evil.com/registry.onstackit.cloud", "registry.onstackit.cloud@evil.com",
		"[::1]:5000", "REGISTRY.ONSTACKIT.CLOUD:443/v2/", "registry.onstackit.cloud.", "a:b:c", "http://[::1", "\x00",
		"evil.com/x://registry.onstackit.cloud", "evil.com?a=://registry.onstackit.cloud", "registry.onstac\u212ait.cloud",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		host, err := NormalizeHost(in)
		if err != nil {
			return
		}
		if host == "" || strings.ContainsAny(host, "/@?#\\ \t\r\n%") || strings.ToLower(host) != host {
			t.Fatalf("NormalizeHost(%q) = %q, not a clean host[:port]", in, host)
		}
		again, err := NormalizeHost(host)
		if err != nil || again != host {
			t.Fatalf("not idempotent: %q -> %q -> %q (%v)", in, host, again, err)
		}
		// Security: the served host must be the authority of the input,
		// never something found in a path, user info or a longer name. The
		// oracle is independent of NormalizeHost: an optional leading scheme,
		// the exact name, then nothing or a path, query or fragment.
		if host == DefaultRegistry && !ownsDefaultRegistry.MatchString(strings.ToLower(strings.TrimSpace(in))) {
			t.Fatalf("%q was taken for %s", in, DefaultRegistry)
		}
	})
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(`{"registries":{"registry.onstackit.cloud":{},"x.example.com:5000":{"serviceAccountKeyPath":"/k","username":"robot$p+ci"}}}`))
	f.Add([]byte(`{"registries":{"a@b":{}}}`))
	f.Add([]byte(`{"registries":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig(data)
		if err != nil {
			if strings.ContainsAny(err.Error(), "\r\n") {
				t.Fatalf("multi-line error: %q", err)
			}
			return
		}
		for host := range cfg.Registries {
			if h, err := NormalizeHost(host); err != nil || h != host {
				t.Fatalf("config kept a non-normalised host %q", host)
			}
		}
	})
}
