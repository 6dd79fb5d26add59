//go:build !windows

package cli

// namedPipeName matters only on Windows, where mintty's terminal is a
// named pipe.
func namedPipeName(uintptr) (string, bool) { return "", false }
