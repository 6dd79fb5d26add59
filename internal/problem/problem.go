// Package problem is the one error type that carries its fix.
//
// Every message the user sees is "what is wrong; how to fix it". Keeping the
// two apart in a value, instead of joining them into text that a reader
// splits again, lets doctor print them on separate lines and lets a message
// be reworded without changing behaviour.
package problem

import (
	"errors"
	"strings"
)

// Error is a problem with its fix. Err, when set, is the underlying cause;
// it is kept for errors.Is and errors.As, not printed twice.
type Error struct {
	// What says what is wrong, naming the file, variable or host.
	What string
	// Fix says what the user should do; empty when there is nothing to do.
	Fix string
	Err error
}

func (e *Error) Error() string {
	if e.Fix == "" {
		return e.What
	}
	return e.What + "; " + e.Fix
}

func (e *Error) Unwrap() error { return e.Err }

// HowToFix returns the fix.
func (e *Error) HowToFix() string { return e.Fix }

// Fixer is an error that knows its fix. Error types that build their
// message from parts (an HTTP status, a network failure) implement it, so
// that they need not be flattened into an Error.
type Fixer interface {
	error
	HowToFix() string
}

// New returns a problem with its fix.
func New(what, fix string) error { return &Error{What: what, Fix: fix} }

// Wrap returns a problem caused by err. errors.Is(result, err) holds.
func Wrap(err error, what, fix string) error { return &Error{What: what, Fix: fix, Err: err} }

// Split returns what is wrong and how to fix it. Context added around a
// problem by fmt.Errorf("%s: %w", …) stays part of what is wrong, so
// nothing is lost; an error without a fix has an empty one.
func Split(err error) (what, fix string) {
	if err == nil {
		return "", ""
	}
	var p Fixer
	if !errors.As(err, &p) || p.HowToFix() == "" {
		return OneLine(err), ""
	}
	full := OneLine(err)
	suffix := "; " + OneLine(errors.New(p.HowToFix()))
	// The problem's own text ends at its fix unless a wrapper appended
	// more; only then is the fix repeated on its own.
	if i := strings.LastIndex(full, suffix); i >= 0 {
		return full[:i] + full[i+len(suffix):], p.HowToFix()
	}
	return full, p.HowToFix()
}

// OneLine keeps a message on one line: Docker and the kubelet read the
// first line only.
func OneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
