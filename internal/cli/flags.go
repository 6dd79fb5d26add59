package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/docker-credential-stackit/docker-credential-stackit/credhelper"
)

// errHelp means the user asked for a command's help, which has been
// printed; the command exits 0.
var errHelp = errors.New("help requested")

// newFlagSet is a flag set whose own output is silenced: errors are
// reported as one line by flagError, help by printCommandHelp.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parseCommandFlags parses args for command name. On -h or --help it
// prints the command's help (synopsis, then the flags spelt with two
// dashes, as the usage text spells them) to w and returns errHelp. Any
// other error is one line that says how to get the help.
func parseCommandFlags(fs *flag.FlagSet, args []string, synopsis string, w io.Writer) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printCommandHelp(w, fs, synopsis)
			return errHelp
		}
		return flagError(err, fs.Name())
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q; run %s %s --help", truncate(fs.Arg(0), 80), Name, fs.Name())
	}
	return nil
}

// flagError rewrites the flag package's errors, which name flags with one
// dash ("flag provided but not defined: -x"), into one line that names them
// as the usage text does and says how to get the command's help.
func flagError(err error, command string) error {
	msg := err.Error()
	switch {
	case strings.HasPrefix(msg, "flag provided but not defined: -"):
		msg = "unknown flag -" + strings.TrimPrefix(msg, "flag provided but not defined: ")
	case strings.HasPrefix(msg, "flag needs an argument: -"):
		msg = "-" + strings.TrimPrefix(msg, "flag needs an argument: ") + " needs a value"
	case strings.HasPrefix(msg, "invalid value "):
		msg = strings.Replace(msg, " for flag -", " for flag --", 1)
	case strings.HasPrefix(msg, "invalid boolean value "):
		msg = strings.Replace(msg, " for -", " for flag --", 1)
	}
	return fmt.Errorf("%s; run %s %s --help", truncate(msg, 200), Name, command)
}

// printCommandHelp prints "Usage: docker-credential-stackit <synopsis>"
// and each flag as --name VALUE with its description.
func printCommandHelp(w io.Writer, fs *flag.FlagSet, synopsis string) {
	fmt.Fprintf(w, "Usage: %s %s\n", Name, synopsis)
	first := true
	fs.VisitAll(func(f *flag.Flag) {
		if first {
			fmt.Fprintln(w, "\nFlags:")
			first = false
		}
		value, text := flag.UnquoteUsage(f)
		if isBoolFlag(f) {
			value = ""
		}
		line := "  --" + f.Name
		if value != "" {
			line += " " + value
		}
		fmt.Fprintf(w, "%s\n        %s\n", line, strings.ReplaceAll(text, "\n", "\n        "))
	})
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// commandFlags is a flag set for the commands beyond the Docker protocol,
// with the --cache-dir flag they all share.
type commandFlags struct {
	*flag.FlagSet
	cacheDir string
	synopsis string
	stderr   io.Writer
}

// newCommandFlags makes the flag set of command name; synopsis is its
// usage line without the program name, e.g. "status [--cache-dir DIR]".
func newCommandFlags(name, synopsis string, stderr io.Writer) *commandFlags {
	f := &commandFlags{FlagSet: newFlagSet(name), synopsis: synopsis, stderr: stderr}
	f.StringVar(&f.cacheDir, "cache-dir", "", "token cache `DIR`, an absolute path (default: $"+credhelper.EnvCacheDir+", else the user cache dir, else "+credhelper.SystemCacheDir+" for root without HOME)")
	return f
}

func (f *commandFlags) parse(args []string) error {
	if err := parseCommandFlags(f.FlagSet, args, f.synopsis, f.stderr); err != nil {
		return err
	}
	if f.cacheDir != "" && !filepath.IsAbs(f.cacheDir) {
		return fmt.Errorf("--cache-dir %q is not an absolute path; pass e.g. --cache-dir %s", f.cacheDir, credhelper.SystemCacheDir)
	}
	return nil
}

// parseCacheDirFlags parses a command that takes only --cache-dir.
func parseCacheDirFlags(name, synopsis string, args []string, stderr io.Writer) (string, error) {
	f := newCommandFlags(name, synopsis, stderr)
	if err := f.parse(args); err != nil {
		return "", err
	}
	return f.cacheDir, nil
}
