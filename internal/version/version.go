// Package version says which release this build is. Release builds (make
// build, install.sh, make dist) stamp the version and commit through
// ldflags into docker-credential-helpers' credentials package; a plain
// `go build` or `go install` falls back to the VERSION file embedded here
// and the commit Go records, so that no build prints "(devel)".
package version

import (
	_ "embed"
	"runtime/debug"
	"strings"

	"github.com/docker/docker-credential-helpers/credentials"
)

//go:embed VERSION
var file string

// String is "<name> <version> (revision <commit>)".
func String(name string) string {
	v, revision := Get()
	out := name + " " + v
	if revision != "" {
		out += " (revision " + revision + ")"
	}
	return out
}

// Get returns the version and the commit it was built from, if known.
func Get() (version, revision string) {
	version, revision = credentials.Version, credentials.Revision
	if version != "" && version != "v0.0.0+unknown" {
		return version, revision
	}
	version = strings.TrimSpace(file)
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			// go install module@vX.Y.Z knows its own version.
			version = strings.TrimPrefix(v, "v")
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && revision == "" {
				revision = s.Value
			}
		}
	}
	return version, revision
}
