package redact

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzScrub embeds pieces of a signed-looking assertion and of an access
// token, in random encodings and cut by random white space, among fuzz
// bytes, and checks with the oracle (oracle_test.go, which shares no code
// with the package) that no 40-character window of the signature, the
// assertion or the token survives in any normalised view of the output.
//
//	go test -run '^$' -fuzz FuzzScrub -fuzztime 120s ./internal/redact
//
// The secrets come from a ChaCha8 stream keyed by the fuzz input rather than
// from crypto/rand so that a failing input in testdata/fuzz reproduces.
func FuzzScrub(f *testing.F) {
	f.Add(uint64(1), []byte{1, 0, 0, 0, 0, 0}, []byte(`{"error":"x"}`))
	f.Add(uint64(2), []byte{2, 1, 0, 255, 3, 10, 0}, []byte("\r\n"))
	f.Add(uint64(3), []byte{1, 0, 100, 40, 7, 3, 3, 0, 1, 2, 200, 41, 10, 5}, []byte("%2"))
	f.Fuzz(func(t *testing.T, seed uint64, layout, junk []byte) {
		var key [32]byte
		binary.LittleEndian.PutUint64(key[:], seed)
		src := rand.NewChaCha8(key)
		j := jwtFrom(t, src)
		tok := accessTokenFrom(t, src)
		secrets := []string{j.sig, j.String(), tok}
		s := New(j.String(), tok)

		in := embed(layout, junk, j, tok, rand.New(src))
		out := s.Scrub(in)
		if w := leakedWindow(out, secrets...); w != "" {
			t.Fatalf("Scrub left %q\nin:  %q\nout: %q", w, in, out)
		}
		if again := s.Scrub(out); again != out {
			t.Fatalf("Scrub is not idempotent:\n%q\n%q", out, again)
		}
		cl := s.Clean(in, 1<<20)
		if w := leakedWindow(cl, secrets...); w != "" {
			t.Fatalf("Clean left %q\nin:  %q\nout: %q", w, in, cl)
		}
		if strings.ContainsAny(cl, "\r\n") || !utf8.ValidString(cl) {
			t.Fatalf("Clean output not one valid line: %q", cl)
		}
		if w := leakedWindow(s.Scrub(string(junk)), secrets...); w != "" {
			t.Fatalf("Scrub of the bare fuzz bytes left %q", w)
		}
		n := len(layout) % 50
		if tr := Truncate(in, n); utf8.RuneCountInString(strings.TrimSuffix(tr, "…")) > n ||
			!strings.HasPrefix(in, strings.TrimSuffix(tr, "…")) {
			t.Fatalf("Truncate(%q, %d) = %q", in, n, tr)
		}
	})
}

var fuzzSeps = []string{" ", "\n", "\r\n", "\t", "\x00", "\u2028", "\u00a0", `\n`, `\r\n`, "%0A", "%0d%0a", `\u000a`, `"+"`, "=\n", "\n> "}

// embed builds the input from the layout bytes, one segment per step:
// fuzz bytes, an encoded piece of a secret, or a lone escape fragment.
func embed(layout, junk []byte, j testJWT, tok string, r *rand.Rand) string {
	pos := 0
	next := func() int {
		if pos < len(layout) {
			pos++
			return int(layout[pos-1])
		}
		return r.IntN(256)
	}
	var b strings.Builder
	for step := 0; step < 12 && pos < len(layout); step++ {
		switch next() % 4 {
		case 0:
			n := min(next()%48, len(junk))
			b.Write(junk[:n])
			junk = junk[n:]
		case 3:
			frags := []string{"%", `\`, "%2", `\u00`, `\u`, "%25", `\\`, "\n", ".", "=", "%5C"}
			b.WriteString(frags[next()%len(frags)])
		default:
			secret := []string{j.sig, j.String(), tok, j.payload}[next()%4]
			a := next() * len(secret) / 256
			var n int
			switch next() % 5 {
			case 0:
				n = 40
			case 1:
				n = 39
			case 2:
				n = len(secret)
			default:
				n = 40 + next()
			}
			if next()%2 == 0 {
				a = 0
			}
			piece := secret[a:min(a+n, len(secret))]
			enc := next()
			every := next() % 24
			sep := fuzzSeps[next()%len(fuzzSeps)]
			for i := 0; i < len(piece); i++ {
				if every > 0 && i > 0 && i%every == 0 {
					b.WriteString(sep)
				}
				writeEncoded(&b, piece[i], enc%12, r)
			}
		}
	}
	b.Write(junk)
	return b.String()
}

func writeEncoded(b *strings.Builder, c byte, mode int, r *rand.Rand) {
	if mode == 11 {
		mode = r.IntN(11)
	}
	switch mode {
	case 0:
		b.WriteByte(c)
	case 1:
		fmt.Fprintf(b, "%%%02X", c)
	case 2:
		fmt.Fprintf(b, "%%%02x", c)
	case 3:
		fmt.Fprintf(b, `\u%04x`, c)
	case 4:
		fmt.Fprintf(b, `\u%04X`, c)
	case 5:
		fmt.Fprintf(b, `\x%02x`, c)
	case 6: // what JSON encoders escape
		switch c {
		case '/':
			b.WriteString(`\/`)
		case '+', '=', '.':
			fmt.Fprintf(b, `\u%04x`, c)
		default:
			b.WriteByte(c)
		}
	case 7:
		fmt.Fprintf(b, "%%25%02X", c)
	case 8:
		fmt.Fprintf(b, `%%5Cu%04x`, c)
	case 9: // an escape cut by a line wrap
		fmt.Fprintf(b, "%%%X\n%X", c>>4, c&0xf)
	default: // a JSON escape cut by a line wrap
		fmt.Fprintf(b, "\\u00\r\n%02x", c)
	}
}
