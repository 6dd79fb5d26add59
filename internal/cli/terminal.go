package cli

import (
	"io"
	"os"
	"runtime"
	"strings"

	"golang.org/x/term"
)

// terminalProbe decides whether a file descriptor is an interactive
// terminal. Its questions to the OS are injected, so that a test on any
// platform can play Windows.
type terminalProbe struct {
	goos string
	// isTerminal reports a terminal the OS knows as one: a tty on Unix, a
	// console on Windows (golang.org/x/term.IsTerminal).
	isTerminal func(fd uintptr) bool
	// pipeName returns the name of the named pipe fd refers to, or ok ==
	// false when it is no named pipe. Only Windows asks.
	pipeName func(fd uintptr) (name string, ok bool)
}

// currentTerminal asks this machine.
var currentTerminal = terminalProbe{
	goos:       runtime.GOOS,
	isTerminal: func(fd uintptr) bool { return term.IsTerminal(int(fd)) },
	pipeName:   namedPipeName,
}

// isTerminal reports whether w is an interactive terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && currentTerminal.fdIsTerminal(f.Fd())
}

// fdIsTerminal reports whether fd is a terminal. On Windows that is a
// console, or the named pipe through which mintty (Git Bash, MSYS2,
// Cygwin) plays the terminal, which GetConsoleMode does not recognise.
// NUL and ordinary pipes are no terminal.
func (p terminalProbe) fdIsTerminal(fd uintptr) bool {
	if p.isTerminal(fd) {
		return true
	}
	if p.goos != "windows" || p.pipeName == nil {
		return false
	}
	name, ok := p.pipeName(fd)
	return ok && isMinttyPipe(name)
}

// isMinttyPipe recognises the pipes of the MSYS2 and Cygwin pseudo
// terminals, \msys-<id>-pty<N>-to-master and \cygwin-<id>-pty<N>-from-master
// (the kernel may prefix \Device\NamedPipe).
func isMinttyPipe(name string) bool {
	name = strings.TrimPrefix(name, `\Device\NamedPipe`)
	parts := strings.Split(name, "-")
	if len(parts) < 3 || (parts[0] != `\msys` && parts[0] != `\cygwin`) || parts[1] == "" {
		return false
	}
	return strings.HasPrefix(parts[2], "pty")
}
