// Package redact keeps secrets (the signed assertion, access tokens) out of
// strings that a server supplied and that end up in error messages or logs.
//
// A hostile or broken token endpoint can echo the assertion back in many
// shapes: whole, one part of it, cut by line breaks, JSON-escaped,
// percent-encoded. Scrub finds every run of at least MinRun characters of a
// long secret in a normalised view of the text (escapes decoded, white space
// dropped) and blanks the stretch of the original text it came from.
package redact

import (
	"bytes"
	"math"
	"net/url"
	"slices"
	"strings"
	"unicode"
)

// Marker replaces every redacted stretch.
const Marker = "[redacted]"

// MinRun is the length of the shortest run of a long secret that Scrub
// treats as the secret. Secrets (and JWT parts) shorter than MinRun are
// replaced only where they occur whole.
const MinRun = 40

// DefaultLimit is the length, in runes, that RedirectTarget cuts to.
const DefaultLimit = 300

// minSecret is the length below which a secret is ignored: replacing every
// occurrence of a few characters would only destroy the message.
const minSecret = 8

// Secrets is a set of secrets to keep out of text. The zero value and a nil
// *Secrets hold none. It is immutable and safe for concurrent use.
type Secrets struct {
	windows map[string]struct{} // every MinRun-byte substring of a long secret
	prefix  []uint64            // bit set of prefixHash of the windows
	alphas  []*[256]bool        // the distinct byte sets of the long secrets
	exact   [][]byte            // short secrets, longest first
}

// New returns the set of the given secrets. Leading, trailing and inner
// white space of a secret is ignored; secrets shorter than 8 bytes are
// ignored. A JWT-shaped secret (three base64url parts joined by dots) also
// registers each of its parts, so a part echoed on its own is caught too.
// Any run of MinRun characters of a secret at least that long counts as the
// secret; shorter secrets and parts count only whole. (So for an assertion
// whose header is long, the same header in another assertion made with the
// same key is redacted as well.)
func New(secrets ...string) *Secrets {
	s := &Secrets{windows: map[string]struct{}{}, prefix: make([]uint64, 1<<prefixBits/64)}
	for _, secret := range secrets {
		secret = strings.Join(strings.FieldsFunc(secret, isSpaceOrControl), "")
		s.add(secret)
		if parts, ok := splitJWT(secret); ok {
			for _, p := range parts {
				if len(p) < MinRun { // longer parts are covered already
					s.add(p)
				}
			}
		}
	}
	slices.SortFunc(s.exact, func(a, b []byte) int { return len(b) - len(a) })
	return s
}

func (s *Secrets) add(secret string) {
	switch {
	case len(secret) < minSecret:
	case len(secret) < MinRun:
		s.exact = append(s.exact, []byte(secret))
	default:
		for i := 0; i+MinRun <= len(secret); i++ {
			s.windows[secret[i:i+MinRun]] = struct{}{}
			h := prefixHash(secret[i:])
			s.prefix[h/64] |= 1 << (h % 64)
		}
		alpha := new([256]bool)
		for i := 0; i < len(secret); i++ {
			alpha[secret[i]] = true
		}
		// One filtered view per byte set: a union would keep the '+' of a
		// base64 token and so let "+" spliced into an assertion hide it.
		for _, a := range s.alphas {
			if *a == *alpha {
				return
			}
		}
		s.alphas = append(s.alphas, alpha)
	}
}

// splitJWT splits a JWT-shaped string into its three parts.
func splitJWT(s string) ([]string, bool) {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return nil, false
	}
	for _, p := range parts {
		if p == "" {
			return nil, false
		}
		for i := 0; i < len(p); i++ {
			c := p[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '=') {
				return nil, false
			}
		}
	}
	return parts, true
}

// prefixBits sizes the bit set that lets Scrub skip the map lookup at
// almost every position: a few thousand windows set a few percent of it.
const prefixBits = 16

// prefixHash hashes the first 8 bytes of b (len(b) >= 8) to prefixBits bits.
func prefixHash[T string | []byte](b T) uint64 {
	x := uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
	return (x * 0x9E3779B97F4A7C15) >> (64 - prefixBits)
}

func (s *Secrets) empty() bool {
	return s == nil || len(s.windows) == 0 && len(s.exact) == 0
}

// Scrub returns text with every occurrence of a secret replaced by Marker.
// It finds a long secret by any run of MinRun of its characters, also where
// the run is cut by white space or control characters, JSON-escaped
// (\u002e, \/, ...), \x-escaped or percent-encoded (any byte, either case),
// up to two layers deep, and even with foreign characters spliced in. The
// whole stretch of text the run came from is replaced, escapes and all.
// Short secrets are replaced where they occur whole (white space and
// escapes are seen through there too).
func (s *Secrets) Scrub(text string) string {
	if s.empty() || text == "" {
		return text
	}
	if len(text) >= math.MaxInt32 {
		return Marker
	}
	// Blanking can join what was around a secret into a new match (for
	// instance "%2" + Marker is harmless, but a blanked stretch can leave
	// two remnants adjacent in a normalised view), so scrub until nothing is
	// found; in practice the second round finds nothing, and after a few
	// rounds the whole text is given up.
	for round := 0; ; round++ {
		ranges := s.find(text)
		if len(ranges) == 0 {
			return text
		}
		if round == 4 {
			return Marker
		}
		text = replace(text, ranges)
	}
}

type span struct{ lo, hi int32 }

// find returns the sorted, merged stretches of text that hold a secret.
func (s *Secrets) find(text string) []span {
	var found []span
	start := 0 // the first span of the current view
	add := func(lo, hi int32) {
		if n := len(found); n > start && lo <= found[n-1].hi {
			found[n-1].hi = max(found[n-1].hi, hi)
			return
		}
		found = append(found, span{lo, hi})
	}
	for _, v := range views(text) {
		// Within one filtered view the spans come in order, so add merges
		// them as they come; spans of different views are merged below.
		for _, alpha := range s.alphas {
			start = len(found)
			f := v.filter(alpha)
			for i := 0; i+MinRun <= len(f.b); i++ {
				if h := prefixHash(f.b[i:]); s.prefix[h/64]&(1<<(h%64)) == 0 {
					continue
				}
				if _, ok := s.windows[string(f.b[i:i+MinRun])]; ok {
					add(f.lo[i], f.hi[i+MinRun-1])
				}
			}
		}
		for _, secret := range s.exact {
			for off := 0; ; {
				j := bytes.Index(v.b[off:], secret)
				if j < 0 {
					break
				}
				j += off
				found = append(found, span{v.lo[j], v.hi[j+len(secret)-1]})
				off = j + 1
			}
		}
	}
	if len(found) == 0 {
		return nil
	}
	slices.SortFunc(found, func(a, b span) int { return int(a.lo - b.lo) })
	merged := found[:1]
	for _, sp := range found[1:] {
		last := &merged[len(merged)-1]
		if sp.lo <= last.hi {
			last.hi = max(last.hi, sp.hi)
			continue
		}
		merged = append(merged, sp)
	}
	return merged
}

func replace(text string, spans []span) string {
	var b strings.Builder
	b.Grow(len(text))
	prev := int32(0)
	for _, sp := range spans {
		b.WriteString(text[prev:sp.lo])
		b.WriteString(Marker)
		prev = sp.hi
	}
	b.WriteString(text[prev:])
	return b.String()
}

func isSpaceOrControl(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }

// Truncate cuts s to at most n runes, marking a cut with "…" (which is not
// counted; n <= 0 leaves only "…" of a non-empty s). It never splits a UTF-8 sequence; a byte that is not valid
// UTF-8 counts as one rune.
func Truncate(s string, n int) string {
	count := 0
	for i := range s {
		if count >= n {
			return s[:i] + "…"
		}
		count++
	}
	return s
}

// Clean makes a server-supplied string fit to print: secrets scrubbed,
// white space and control characters collapsed to single spaces (one line),
// invalid UTF-8 replaced, and cut to n runes. s may be nil.
func (s *Secrets) Clean(text string, n int) string {
	text = s.Scrub(text)
	text = strings.Join(strings.FieldsFunc(text, isSpaceOrControl), " ")
	text = strings.ToValidUTF8(text, "\uFFFD")
	return Truncate(text, n)
}

// RedirectTarget describes a redirect target for an error message: only
// scheme://host/path, without user info, query or fragment, then Clean'd
// to DefaultLimit runes. s may be nil.
func (s *Secrets) RedirectTarget(u *url.URL) string {
	if u == nil {
		return ""
	}
	var b strings.Builder
	if u.Scheme != "" {
		b.WriteString(u.Scheme)
		b.WriteString(":")
	}
	if u.Opaque != "" {
		b.WriteString(u.Opaque)
	} else {
		if u.Scheme != "" || u.Host != "" {
			b.WriteString("//")
			b.WriteString(u.Host)
		}
		b.WriteString(u.EscapedPath())
	}
	return s.Clean(b.String(), DefaultLimit)
}

// RedirectLocation is RedirectTarget for a raw Location header value. A
// value that does not parse is cut at the first '?' or '#', and anything up
// to an '@' in its authority is dropped.
func (s *Secrets) RedirectLocation(location string) string {
	if u, err := url.Parse(location); err == nil {
		return s.RedirectTarget(u)
	}
	if i := strings.IndexAny(location, "?#"); i >= 0 {
		location = location[:i]
	}
	if i := strings.Index(location, "//"); i >= 0 {
		authority := location[i+2:]
		if j := strings.IndexByte(authority, '/'); j >= 0 {
			authority = authority[:j]
		}
		if j := strings.LastIndexByte(authority, '@'); j >= 0 {
			location = location[:i+2] + location[i+2+j+1:]
		}
	}
	return s.Clean(location, DefaultLimit)
}
