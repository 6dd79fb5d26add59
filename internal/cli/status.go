package cli

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/docker-credential-stackit/docker-credential-stackit/credhelper"
	"github.com/docker-credential-stackit/docker-credential-stackit/internal/problem"
)

// runStatus implements `docker-credential-stackit status`: one line per
// served registry with the login kind, the username and the cached token's
// remaining life. No network, no secrets, exit 0 even when a registry has
// no usable credentials: that is a status, which the line states.
func runStatus(args []string, env func(string) string, stdout, stderr io.Writer, p credhelper.Platform) int {
	f := newCommandFlags("status", "status [--cache-dir DIR]", stderr)
	if err := f.parse(args); errors.Is(err, errHelp) {
		return 0
	} else if err != nil {
		fmt.Fprintf(stderr, "%s: status: %s\n", Name, problem.OneLine(err))
		return 1
	}
	h, err := newHelper(env, io.Discard, f.cacheDir, p)
	if err != nil {
		fmt.Fprintf(stderr, "%s: status: %s\n", Name, problem.OneLine(err))
		return 1
	}
	plans, err := h.Plans()
	if err != nil {
		fmt.Fprintf(stderr, "%s: status: %s\n", Name, problem.OneLine(err))
		return 1
	}
	width := 0
	for _, p := range plans {
		width = max(width, len(p.Host))
	}
	now := time.Now()
	for _, p := range plans {
		fmt.Fprintf(stdout, "%-*s  %s\n", width, p.Host, statusLine(p, now))
	}
	return 0
}

func statusLine(p *credhelper.Plan, now time.Time) string {
	if p.Err != nil {
		what, _ := problem.Split(p.Err)
		return "no credentials: " + what + " (run docker-credential-stackit doctor)"
	}
	user := p.Username
	if user == "" {
		user = "(unknown user)"
	}
	line := string(p.Kind) + "  " + user + "  "
	if p.Source != "" {
		line += "from " + p.Source + "  "
	}
	switch {
	case p.Kind == credhelper.LoginStored || p.Kind == credhelper.LoginRobot:
		return line + "static secret, nothing cached"
	case p.CacheProblem != nil:
		return line + "cache not used (see doctor)"
	case p.CacheDisabled:
		return line + "cache disabled"
	case p.Cached == nil:
		return line + "no token cached"
	case p.Cached.Expired:
		return line + "cached token expired"
	default:
		return line + fmt.Sprintf("token cached, valid for %s more", p.Cached.Expiry.Sub(now).Round(time.Second))
	}
}
