package credhelper

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestIPLiteralWithTrailingDotIsNotThatIP(t *testing.T) {
	for _, in := range []string{"127.0.0.1.:5000", "127.0.0.1.", "http://127.0.0.1.:5000/v2/", "[::1.]:5000", "10.0.0.1..", "1.2.3.4.:443"} {
		got, err := NormalizeHost(in)
		assert.Error(t, err, "%q gave %q", in, got)
	}
	got, err := NormalizeHost("127.0.0.1:5000")
	assert.NoError(t, err)
	assert.Equal(t, "127.0.0.1:5000", got)
	got, err = NormalizeHost("registry.example.com.:5000")
	assert.NoError(t, err, "a name keeps its fully-qualified form")
	assert.Equal(t, "registry.example.com:5000", got)
}

func TestServedIPHostDoesNotServeItsTrailingDotForm(t *testing.T) {
	config := filepath.Join(t.TempDir(), "config.json")
	writeConfigFile(t, config, `{"registries": {}}`)
	h, err := New(WithEnv(func(k string) string {
		return map[string]string{EnvRegistries: "127.0.0.1:5000", EnvConfig: config}[k]
	}), WithWarnings(nil), WithCacheDir(""))
	assert.NoError(t, err)
	_, ok, err := h.Served("127.0.0.1:5000")
	assert.NoError(t, err)
	assert.True(t, ok)
	_, ok, _ = h.Served("127.0.0.1.:5000")
	assert.False(t, ok, "127.0.0.1. must not match 127.0.0.1")
}

func TestQueryOrFragmentInTheAuthorityIsNotAHost(t *testing.T) {
	for _, trick := range []string{"registry.onstackit.cloud#.evil.com", "registry.onstackit.cloud?x=evil.com", "https://registry.onstackit.cloud#frag", "registry.onstackit.cloud:5000?x"} {
		_, err := NormalizeHost(trick)
		assert.Error(t, err, trick)
	}
	for in, want := range map[string]string{"https://registry.onstackit.cloud/v2/?x=1": "registry.onstackit.cloud", "registry.onstackit.cloud/p/app#x": "registry.onstackit.cloud"} {
		got, err := NormalizeHost(in)
		assert.NoError(t, err, in)
		assert.Equal(t, want, got, "after a path, a query or fragment is the path's business")
	}
}
