package tokensource_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/docker-credential-stackit/docker-credential-stackit/cache"
	"github.com/docker-credential-stackit/docker-credential-stackit/tokensource"
	"github.com/docker-credential-stackit/docker-credential-stackit/tokensource/tokensourcetest"
)

// benchWarmGet measures what a warm get costs in-process: a lazy Discover
// (as get does), then a cache hit. The cache is warmed once before the
// loop.
func benchWarmGet(b *testing.B, opts tokensource.Options) {
	b.Helper()
	opts.Lazy = true
	c := &cache.Cache{Dir: b.TempDir()}
	warm := func() {
		flow, err := tokensource.Discover(opts, tokensource.Overrides{})
		if err != nil {
			b.Fatal(err)
		}
		tok, _, err := c.Token(context.Background(), flow.CacheKey, flow.Source, flow)
		if err != nil || tok.AccessToken == "" {
			b.Fatal(err)
		}
	}
	warm()
	b.ReportAllocs()
	for b.Loop() {
		warm()
	}
}

func benchWorld(b *testing.B) (*tokensourcetest.Server, *tokensourcetest.Account, string) {
	srv := tokensourcetest.NewServer(b)
	return srv, srv.NewAccount(b, "bench@sa.stackit.cloud"), b.TempDir()
}

// BenchmarkWarmGetKeyPath is the reference: STACKIT_SERVICE_ACCOUNT_KEY_PATH.
func BenchmarkWarmGetKeyPath(b *testing.B) {
	srv, acct, root := benchWorld(b)
	env := map[string]string{
		"HOME":                               filepath.Join(root, "home"),
		tokensource.EnvServiceAccountKeyPath: acct.WriteKeyFile(b, root, true),
		tokensource.EnvTokenBaseURL:          srv.TokenURL(),
	}
	benchWarmGet(b, tokensource.Options{Env: envOf(env), Keyring: noKeyring{}})
}

// BenchmarkWarmGetCLIFile is the STACKIT CLI's login in its file, with the
// keyring unavailable (headless Linux): budget 1.3× BenchmarkWarmGetKeyPath.
func BenchmarkWarmGetCLIFile(b *testing.B) {
	srv, acct, root := benchWorld(b)
	config := filepath.Join(root, "config")
	writeCLIStorage(b, filepath.Join(config, "stackit"), saKeyFields(b, acct, srv.TokenURL()))
	env := map[string]string{"HOME": filepath.Join(root, "home"), "XDG_CONFIG_HOME": config}
	benchWarmGet(b, tokensource.Options{Env: envOf(env), Keyring: noKeyring{}})
}

// BenchmarkWarmGetCLIKeyring is the keyring path with an in-memory fake:
// what we add around the four keyring reads per get. The real keyring
// adds four D-Bus round trips on Linux (four runs of /usr/bin/security on
// macOS).
func BenchmarkWarmGetCLIKeyring(b *testing.B) {
	srv, acct, root := benchWorld(b)
	ring := &fakeKeyring{}
	ring.set("stackit-cli", saKeyFields(b, acct, srv.TokenURL()))
	env := map[string]string{"HOME": filepath.Join(root, "home"), "XDG_CONFIG_HOME": filepath.Join(root, "config")}
	benchWarmGet(b, tokensource.Options{Env: envOf(env), Keyring: ring})
}
