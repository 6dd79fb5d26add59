package tokensourcetest

import (
	"strconv"
	"strings"
	"testing"
)

// RequireNoAssertion fails t if out shows any of the assertions whole, or
// any 40 characters of their signatures, also once white space is taken
// out and %XX and \uXXXX escapes are decoded. It is an oracle of its own,
// independent of the scrubber it checks.
func RequireNoAssertion(t testing.TB, what, out string, assertions []string) {
	t.Helper()
	if len(assertions) == 0 {
		t.Fatal("the endpoint captured no assertion to look for")
	}
	for _, view := range []string{out, strings.Join(strings.Fields(out), ""), unescaped(out)} {
		for _, a := range assertions {
			if strings.Contains(view, a) {
				t.Fatalf("%s shows the whole assertion:\n%s", what, out)
			}
			sig := a[strings.LastIndexByte(a, '.')+1:]
			for i := 0; i+40 <= len(sig); i++ {
				if strings.Contains(view, sig[i:i+40]) {
					t.Fatalf("%s shows 40 characters of the assertion's signature (at %d):\n%s", what, i, out)
				}
			}
		}
	}
}

// unescaped decodes %XX and \uXXXX escapes and drops white space, so that
// an echo the server encoded is found too.
func unescaped(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '%' && i+2 < len(s):
			if v, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				b.WriteByte(byte(v))
				i += 2
				continue
			}
		case s[i] == '\\' && i+5 < len(s) && s[i+1] == 'u':
			if v, err := strconv.ParseUint(s[i+2:i+6], 16, 8); err == nil {
				b.WriteByte(byte(v))
				i += 5
				continue
			}
		case s[i] <= ' ':
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
