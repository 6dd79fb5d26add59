//go:build windows

package cli

import (
	"unsafe"

	"golang.org/x/sys/windows"
)

// namedPipeName returns the name of the named pipe behind handle fd, as
// GetFileInformationByHandleEx(FileNameInfo) reports it, e.g.
// \msys-1888ae32e00d56aa-pty0-to-master.
func namedPipeName(fd uintptr) (string, bool) {
	h := windows.Handle(fd)
	if t, err := windows.GetFileType(h); err != nil || t != windows.FILE_TYPE_PIPE {
		return "", false
	}
	// FILE_NAME_INFO: a uint32 length in bytes, then that many bytes of
	// UTF-16. A uint16 buffer keeps the name aligned.
	buf := make([]uint16, 2+windows.MAX_PATH)
	if err := windows.GetFileInformationByHandleEx(h, windows.FileNameInfo, (*byte)(unsafe.Pointer(&buf[0])), uint32(len(buf)*2)); err != nil {
		return "", false
	}
	n := int(*(*uint32)(unsafe.Pointer(&buf[0]))) / 2
	if n > len(buf)-2 {
		return "", false
	}
	return windows.UTF16ToString(buf[2 : 2+n]), true
}
