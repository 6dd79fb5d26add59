//go:build unix

// Command maxrss runs a command and prints the child's peak RSS in KiB.
//
// The benchmark needs it because Go starts children with vfork: until exec,
// the child shares its parent's memory, and Linux carries that memory's
// high-water mark into the child's ru_maxrss. Measured straight from a big
// test process, every child would report the test process's RSS. This
// launcher is small, so its own high-water mark stays below any child's.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
)

func main() {
	cmd := exec.Command(os.Args[1], os.Args[2:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "maxrss:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "maxrss %d\n", cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss)
}
