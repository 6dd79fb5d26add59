package tokensource

import (
	"errors"
	"flag"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/zalando/go-keyring"
)

// keyringTimeout bounds one keyring read: a keyring that prompts to be
// unlocked, or a D-Bus service that never answers, must not hang docker.
// After a timeout the keyring is not asked again until that call returns.
const keyringTimeout = 3 * time.Second

// osKeyring is the OS keyring the STACKIT CLI writes: the Secret Service
// over D-Bus on Linux and the BSDs, the login keychain (through
// /usr/bin/security) on macOS, the Credential Manager on Windows.
type osKeyring struct {
	timeout time.Duration
	get     func(service, user string) (string, error)
	// stuck is set while a call that timed out is still running.
	stuck *atomic.Bool
}

var theKeyring = osKeyring{timeout: keyringTimeout, get: keyring.Get, stuck: new(atomic.Bool)}

// errNoSessionBus: without a D-Bus session there is no Secret Service.
var errNoSessionBus = errors.New("no D-Bus session (DBUS_SESSION_BUS_ADDRESS is unset and there is no session bus socket)")

// errNoKeyringInTests stands in for the keyring in test binaries, which
// must never read the real one: tests inject Options.Keyring.
var errNoKeyringInTests = errors.New("the OS keyring is not used in tests")

type unavailableKeyring struct{ err error }

func (u unavailableKeyring) Get(string, string) (string, error) { return "", u.err }

// defaultKeyring is the real keyring, except in a test binary.
func defaultKeyring() SecretStore {
	if flag.Lookup("test.v") != nil {
		return unavailableKeyring{errNoKeyringInTests}
	}
	return theKeyring
}

func (k osKeyring) Get(service, user string) (string, error) {
	if err := sessionKeyringReachable(); err != nil {
		return "", err
	}
	if k.stuck.Load() {
		return "", errors.New("the keyring did not answer an earlier request")
	}
	type answer struct {
		value string
		err   error
	}
	ch := make(chan answer, 1)
	go func() {
		v, err := k.get(service, user)
		ch <- answer{v, err}
	}()
	t := time.NewTimer(k.timeout)
	defer t.Stop()
	select {
	case a := <-ch:
		if errors.Is(a.err, keyring.ErrNotFound) {
			return "", ErrSecretNotFound
		}
		return a.value, a.err
	case <-t.C:
		k.stuck.Store(true)
		go func() { <-ch; k.stuck.Store(false) }()
		return "", fmt.Errorf("the keyring did not answer within %s", k.timeout)
	}
}
