//go:build unix

package platform

import (
	"io/fs"
	"syscall"
)

func sysOwner(fi fs.FileInfo) int {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid)
	}
	return -1
}
