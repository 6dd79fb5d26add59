package credhelper

import (
	"errors"
	"net"
	"strconv"
	"strings"
)

// DefaultRegistry is the STACKIT Container Registry, always served.
const DefaultRegistry = "registry.onstackit.cloud"

var errBadHost = errors.New("not a registry host")

// NormalizeHost reduces every form callers send (host, host:port,
// https://host/v1/, host/repo/path, any case) to host[:port]. Anything
// that is not plainly a host, such as user info or an empty host, is an
// error, so that tricks like "registry.onstackit.cloud@evil.com" never
// match an allowed host.
func NormalizeHost(serverURL string) (string, error) {
	s := strings.TrimSpace(serverURL)
	// Only ASCII is a registry host here; lower-casing first would turn
	// look-alikes such as the Kelvin sign into ASCII letters.
	if strings.ContainsFunc(s, func(c rune) bool { return c >= 0x80 }) {
		return "", errBadHost
	}
	s = strings.ToLower(s)
	// A scheme counts only at the very start: "evil.com/x://registry..."
	// has the authority evil.com.
	if scheme, rest, ok := strings.Cut(s, "://"); ok && isScheme(scheme) {
		s = rest
	}
	if i := strings.IndexAny(s, "/?#"); i >= 0 {
		// A query or fragment right after the authority is no server
		// URL any client sends; "registry.onstackit.cloud#.evil.com" is a
		// trick, and matches nothing.
		if s[i] != '/' {
			return "", errBadHost
		}
		s = s[:i]
	}
	if s == "" || strings.ContainsAny(s, "@\\ \t\r\n%") {
		return "", errBadHost
	}
	host, port := s, ""
	// The net parsers run only when needed: the common name without a port
	// then costs a warm get no extra code pages.
	if !strings.Contains(s, ":") {
		// no port, not IPv6
	} else if h, p, err := net.SplitHostPort(s); err == nil {
		host, port = h, p
		n, err := strconv.Atoi(port)
		if err != nil || n <= 0 || n > 65535 || port[0] == '0' {
			return "", errBadHost
		}
	} else if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		host = s[1 : len(s)-1]
	}
	// A trailing dot marks a fully qualified name ("registry.example.com."
	// is registry.example.com). An IP literal has no such form: "127.0.0.1."
	// is not 127.0.0.1 and must never match it, so it stays and is refused.
	if name := strings.TrimSuffix(host, "."); !isIPLike(name) {
		host = name
	}
	if !validHostname(host) {
		return "", errBadHost
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		return host + ":" + port, nil
	}
	return host, nil
}

// isIPLike reports whether h can only be an IP literal (IPv6, or digits and
// dots only), whatever follows.
func isIPLike(h string) bool {
	return strings.Contains(h, ":") || strings.Trim(h, "0123456789.") == ""
}

func validHostname(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	if isIPLike(h) {
		return net.ParseIP(h) != nil
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// isScheme reports whether s is a URL scheme: a letter, then letters,
// digits, '+', '-' or '.'.
func isScheme(s string) bool {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	return !strings.ContainsFunc(s, func(c rune) bool {
		return !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.')
	})
}
