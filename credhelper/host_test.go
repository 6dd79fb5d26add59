package credhelper

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestNormalizeHost(t *testing.T) {
	ok := map[string]string{
		"registry.onstackit.cloud":                      "registry.onstackit.cloud",
		"  Registry.OnStackit.Cloud\n":                  "registry.onstackit.cloud",
		"https://registry.onstackit.cloud":              "registry.onstackit.cloud",
		"https://registry.onstackit.cloud/v1/":          "registry.onstackit.cloud",
		"http://registry.onstackit.cloud/v2/x":          "registry.onstackit.cloud",
		"registry.onstackit.cloud/myproj/app":           "registry.onstackit.cloud",
		"registry.onstackit.cloud:443":                  "registry.onstackit.cloud:443",
		"REGISTRY.onstackit.cloud:5000/a/b:tag":         "registry.onstackit.cloud:5000",
		"registry.onstackit.cloud.":                     "registry.onstackit.cloud",
		"127.0.0.1:5000":                                "127.0.0.1:5000",
		"[::1]:5000":                                    "[::1]:5000",
		"[::1]":                                         "[::1]",
		"localhost":                                     "localhost",
		"https://index.docker.io/v1/":                   "index.docker.io",
		"docker.io":                                     "docker.io",
		"ghcr.io/x/y":                                   "ghcr.io",
		"registry.onstackit.cloud.evil.com":             "registry.onstackit.cloud.evil.com",
		"evil.com/registry.onstackit.cloud":             "evil.com",
		"oci://registry.onstackit.cloud/charts/mychart": "registry.onstackit.cloud",
		"evil.com/x://registry.onstackit.cloud":         "evil.com",
	}
	for in, want := range ok {
		got, err := NormalizeHost(in)
		if assert.NoError(t, err, in) {
			assert.Equal(t, want, got, in)
		}
	}
	bad := []string{
		"", "   ", "registry.onstackit.cloud@evil.com", "user:pw@registry.onstackit.cloud",
		"https://registry.onstackit.cloud@evil.com/", "registry.onstackit.cloud:0", "registry.onstackit.cloud:99999",
		"registry.onstackit.cloud:abc", "-bad-.example", "a..b", "host with space", "registry%2eonstackit.cloud",
		"https:///path", "[::1", "registry.onstackit.cloud:",
		"registry.onstac\u212ait.cloud", "1http://registry.onstackit.cloud",
		// A query or fragment where the authority ends is a trick.
		"registry.onstackit.cloud?x=1", "evil.com?a=://registry.onstackit.cloud", "evil.com#://registry.onstackit.cloud",
	}
	for _, in := range bad {
		got, err := NormalizeHost(in)
		assert.Error(t, err, "%q gave %q", in, got)
	}
}
