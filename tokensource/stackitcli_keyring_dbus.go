//go:build (dragonfly && cgo) || (freebsd && cgo) || linux || netbsd || openbsd

package tokensource

import (
	"os"
	"path/filepath"
	"strconv"
)

// sessionKeyringReachable finds the D-Bus session bus the way godbus does,
// but never starts one: godbus would run dbus-launch, which on a headless
// machine leaves a new bus daemon behind on every get.
func sessionKeyringReachable() error {
	if a := os.Getenv("DBUS_SESSION_BUS_ADDRESS"); a != "" && a != "autolaunch:" {
		return nil
	}
	dir := os.Getenv("XDG_RUNTIME_DIR")
	if dir == "" {
		dir = "/run/user/" + strconv.Itoa(os.Getuid())
	}
	for _, name := range []string{"bus", "dbus-session"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return nil
		}
	}
	return errNoSessionBus
}
