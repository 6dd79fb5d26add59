//go:build unix

package safefile

import (
	"os"
	"syscall"
)

const openRefusesSymlinks = true

// open never blocks: O_NONBLOCK makes opening a FIFO without a writer
// return at once (the fstat that follows then refuses it). It has no
// effect on reading regular files.
func open(path string, noFollow bool) (*os.File, error) {
	flag := os.O_RDONLY | syscall.O_NONBLOCK
	if noFollow {
		flag |= syscall.O_NOFOLLOW
	}
	return os.OpenFile(path, flag, 0)
}
