package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"

	"github.com/docker-credential-stackit/docker-credential-stackit/credhelper"
)

// errHelp means the user asked for a command's help, which has been
// printed; the command exits 0.
var errHelp = errors.New("help requested")

// commandFlags is a flag set for the commands beyond the Docker protocol,
// with the --cache-dir flag they all share. The flag package's own error
// output is silenced so that every error stays one line.
type commandFlags struct {
	*flag.FlagSet
	cacheDir string
	stderr   io.Writer
}

func newCommandFlags(name string, stderr io.Writer) *commandFlags {
	f := &commandFlags{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError), stderr: stderr}
	f.SetOutput(io.Discard)
	f.StringVar(&f.cacheDir, "cache-dir", "", "token cache `DIR`, an absolute path (default: $"+credhelper.EnvCacheDir+", else the user cache dir, else "+credhelper.SystemCacheDir+" for root without HOME)")
	return f
}

func (f *commandFlags) parse(args []string) error {
	if err := f.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(f.stderr, "Usage of %s %s:\n", Name, f.Name())
			f.SetOutput(f.stderr)
			f.PrintDefaults()
			return errHelp
		}
		return fmt.Errorf("%v; run %s %s --help", err, Name, f.Name())
	}
	if f.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q; run %s %s --help", f.Arg(0), Name, f.Name())
	}
	if f.cacheDir != "" && !filepath.IsAbs(f.cacheDir) {
		return fmt.Errorf("--cache-dir %q is not an absolute path; pass e.g. --cache-dir %s", f.cacheDir, credhelper.SystemCacheDir)
	}
	return nil
}

// parseCacheDirFlags parses a command that takes only --cache-dir.
func parseCacheDirFlags(name string, args []string, stderr io.Writer) (string, error) {
	f := newCommandFlags(name, stderr)
	if err := f.parse(args); err != nil {
		return "", err
	}
	return f.cacheDir, nil
}
