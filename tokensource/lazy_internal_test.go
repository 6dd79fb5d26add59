package tokensource

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLazyDiscoveryDoesNotParseTheKeyUntilItIsNeeded(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "key.json")
	// Not a key at all: a lazy discovery must not notice, because a cache
	// hit never needs the key's contents.
	require.NoError(t, os.WriteFile(path, []byte(`{"not": "a key"`), 0o600))
	env := func(k string) string { return map[string]string{EnvServiceAccountKeyPath: path, "HOME": dir}[k] }

	flow, err := Discover(Options{Env: env, Lazy: true}, Overrides{})
	require.NoError(t, err)
	assert.NotEmpty(t, flow.CacheKey)
	assert.Empty(t, flow.Username, "the email is in the key, which was not parsed")
	lazy, ok := flow.source.(*lazyKey)
	require.True(t, ok)
	assert.Nil(t, lazy.full, "nothing parsed yet")

	_, err = flow.Token(context.Background())
	require.Error(t, err, "minting needs the key, and the key is broken")
	assert.Contains(t, err.Error(), "not valid JSON")
	_, err = flow.Describe()
	require.Error(t, err)

	_, err = Discover(Options{Env: env}, Overrides{})
	require.Error(t, err, "a discovery that is not lazy parses at once")
}

func TestKeyCacheKeyIsTheKeysBytesAndTheEndpointSetOutsideIt(t *testing.T) {
	a := &keyInput{data: []byte(`{"k":1}`)}
	b := &keyInput{data: []byte(`{"k":1}`)}
	c := &keyInput{data: []byte(`{"k":2}`)}
	d := &keyInput{data: []byte(`{"k":1}`), endpointOverride: "https://other.example/token"}
	assert.Equal(t, a.cacheKey(), b.cacheKey(), "the same bytes are the same identity, run after run")
	assert.NotEqual(t, a.cacheKey(), c.cacheKey(), "a changed key file is another identity: a miss, never another account's token")
	assert.NotEqual(t, a.cacheKey(), d.cacheKey(), "another endpoint is another identity")
	assert.NotContains(t, a.cacheKey(), `{"k":1}`, "the key's content is only digested")
}
