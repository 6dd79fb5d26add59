package redact

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// This file is the test oracle. It shares no code with the package: it
// normalises text its own way (a regexp for the escapes, strings.Map for
// white space) and scans every MinRun-window by brute force.

const window = 40

// escapeRE matches one escape, leftmost first, as the spec in the package
// documentation describes them.
var escapeRE = regexp.MustCompile(`%[0-9A-Fa-f]{2}|\\u[0-9A-Fa-f]{4}|\\x[0-9A-Fa-f]{2}|\\[/\\"'bfnrt]`)

func oracleDecode(s string) string {
	return escapeRE.ReplaceAllStringFunc(s, func(e string) string {
		switch {
		case e[0] == '%':
			b, _ := hex.DecodeString(e[1:])
			return string(b)
		case e[1] == 'x':
			b, _ := hex.DecodeString(e[2:])
			return string(b)
		case e[1] == 'u':
			n, _ := strconv.ParseUint(e[2:], 16, 32)
			if n < utf8.RuneSelf {
				return string([]byte{byte(n)})
			}
			return string(rune(n))
		}
		return map[byte]string{'/': "/", '\\': `\`, '"': `"`, '\'': "'", 'b': "\b", 'f': "\f", 'n': "\n", 'r': "\r", 't': "\t"}[e[1]]
	})
}

// oracleCompact drops white space and control characters. Invalid UTF-8
// bytes are kept (strings.Map would rewrite them as U+FFFD).
func oracleCompact(s string) string {
	var b strings.Builder
	for len(s) > 0 {
		r, n := utf8.DecodeRuneInString(s)
		if !(unicode.IsSpace(r) || unicode.IsControl(r)) || (r == utf8.RuneError && n == 1) {
			b.WriteString(s[:n])
		}
		s = s[n:]
	}
	return b.String()
}

// oracleViews: compacted, decoded once or twice, compacting before each
// decode or only after.
func oracleViews(s string) []string {
	d1 := oracleDecode(s)
	e1 := oracleCompact(oracleDecode(oracleCompact(s)))
	return []string{
		oracleCompact(s),
		oracleCompact(d1),
		oracleCompact(oracleDecode(d1)),
		e1,
		oracleCompact(oracleDecode(e1)),
	}
}

// leakedWindow returns a window-long piece of secret found in any
// normalised view of text, or "".
func leakedWindow(text string, secrets ...string) string {
	pieces := map[string]bool{}
	for _, secret := range secrets {
		for i := 0; i+window <= len(secret); i++ {
			pieces[secret[i:i+window]] = true
		}
	}
	for _, v := range oracleViews(text) {
		for i := 0; i+window <= len(v); i++ {
			if pieces[v[i:i+window]] {
				return v[i : i+window]
			}
		}
	}
	return ""
}

func requireNoLeak(t testing.TB, out string, secrets ...string) {
	t.Helper()
	if w := leakedWindow(out, secrets...); w != "" {
		t.Fatalf("output still holds %q:\n%q", w, out)
	}
}

// testJWT is a signed-looking assertion: an RS512 header, a payload with a
// random jti and a 256-byte (RSA-2048) random signature, 342 characters.
type testJWT struct {
	header, payload, sig string
}

func (j testJWT) String() string { return j.header + "." + j.payload + "." + j.sig }

func newJWT(t testing.TB) testJWT { return jwtFrom(t, rand.Reader) }

func jwtFrom(t testing.TB, r io.Reader) testJWT {
	enc := base64.RawURLEncoding
	jti := make([]byte, 16)
	sig := make([]byte, 256)
	if _, err := io.ReadFull(r, jti); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(r, sig); err != nil {
		t.Fatal(err)
	}
	claims := fmt.Sprintf(`{"iss":"sa-1@sa.stackit.cloud","sub":"0b5b-11ee","aud":"https://service-account.api.stackit.cloud/token","iat":1750000000,"exp":1750000600,"jti":"%x"}`, jti)
	j := testJWT{
		header:  enc.EncodeToString([]byte(`{"alg":"RS512","kid":"key-1","typ":"JWT"}`)),
		payload: enc.EncodeToString([]byte(claims)),
		sig:     enc.EncodeToString(sig),
	}
	if len(j.sig) != 342 {
		t.Fatalf("signature is %d chars", len(j.sig))
	}
	return j
}

// accessToken is a long opaque secret in standard base64, so it has '/',
// '+' and '=' for the escapes to work on.
func accessTokenFrom(t testing.TB, r io.Reader) string {
	b := make([]byte, 61)
	if _, err := io.ReadFull(r, b); err != nil {
		t.Fatal(err)
	}
	b[0], b[1], b[2] = 0xff, 0xef, 0xbf         // "/++/" near the start
	return base64.StdEncoding.EncodeToString(b) // 84 chars, ends in "=="
}

func randReader() io.Reader { return rand.Reader }
