//go:build !((dragonfly && cgo) || (freebsd && cgo) || linux || netbsd || openbsd)

package tokensource

// sessionKeyringReachable: macOS and Windows keyrings need no session bus.
func sessionKeyringReachable() error { return nil }
