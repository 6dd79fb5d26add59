//go:build unix

package lockfile

import (
	"os"
	"runtime"
	"syscall"
)

const openRefusesSymlinks = true

// privateFlags never follow a symbolic link and never block on a FIFO.
// Like flock.New, it opens read-write only where an exclusive lock needs
// it (fcntl locks on AIX and Solaris).
var privateFlags = os.O_CREATE | accessMode() | syscall.O_NOFOLLOW | syscall.O_NONBLOCK

func accessMode() int {
	switch runtime.GOOS {
	case "aix", "solaris", "illumos":
		return os.O_RDWR
	}
	return os.O_RDONLY
}
