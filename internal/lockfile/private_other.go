//go:build !unix

package lockfile

import "os"

// Without O_NOFOLLOW, inspect looks with Lstat first and compares what it
// opened with what it saw.
const openRefusesSymlinks = false

const privateFlags = os.O_CREATE | os.O_RDONLY
