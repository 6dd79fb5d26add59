//go:build !unix

package platform

import "io/fs"

// sysOwner knows no owners where files have no Unix uid.
func sysOwner(fs.FileInfo) int { return -1 }
