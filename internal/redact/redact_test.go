package redact

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

func percentAll(s string, hexFmt string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		fmt.Fprintf(&b, hexFmt, s[i])
	}
	return b.String()
}

func jsonEscapeAll(s string) string { return percentAll(s, `\u%04x`) }

func insertEvery(s string, k int, sep string) string {
	var b strings.Builder
	for i := 0; i < len(s); i += k {
		if i > 0 {
			b.WriteString(sep)
		}
		b.WriteString(s[i:min(i+k, len(s))])
	}
	return b.String()
}

// requireScrubbedTo checks got against want, which holds one Marker. The
// secrets are random, so a character next to a piece of one continues the
// piece with chance 1/64, and Scrub rightly takes it (and what lies between)
// too: a few bytes around the marker may be gone.
func requireScrubbedTo(t *testing.T, want, got string, msgAndArgs ...any) {
	t.Helper()
	before, after, ok := strings.Cut(want, Marker)
	require.True(t, ok && !strings.Contains(after, Marker), "want needs one marker: %q", want)
	gb, ga, ok := strings.Cut(got, Marker)
	if ok && !strings.Contains(ga, Marker) &&
		strings.HasPrefix(before, gb) && len(before)-len(gb) <= 6 &&
		strings.HasSuffix(after, ga) && len(after)-len(ga) <= 6 {
		return
	}
	require.Equal(t, want, got, msgAndArgs...)
}

// scrubbed scrubs in, checks with the oracle that nothing of the
// signature or the whole assertion survives, and returns the result.
func scrubbed(t *testing.T, s *Secrets, in string, secrets ...string) string {
	t.Helper()
	out := s.Scrub(in)
	require.Contains(t, out, Marker)
	requireNoLeak(t, out, secrets...)
	requireNoLeak(t, s.Clean(in, 1<<20), secrets...)
	return out
}

func TestScrubReplacesTheExactAssertion(t *testing.T) {
	j := newJWT(t)
	s := New(j.String())
	out := scrubbed(t, s, `{"error":"invalid_grant","assertion":"`+j.String()+`"}`, j.sig, j.String())
	requireScrubbedTo(t, `{"error":"invalid_grant","assertion":"`+Marker+`"}`, out)
}

func TestScrubReplacesEachPartOnItsOwn(t *testing.T) {
	j := newJWT(t)
	s := New(j.String())
	for name, part := range map[string]string{"header": j.header, "payload": j.payload, "signature": j.sig} {
		t.Run(name, func(t *testing.T) {
			requireScrubbedTo(t, "part <"+Marker+"> end", s.Scrub("part <"+part+"> end"))
		})
	}
}

func TestScrubCatchesAnyFortyCharPieceOfTheSignature(t *testing.T) {
	j := newJWT(t)
	s := New(j.String())
	for off := 0; off+window <= len(j.sig); off += 13 {
		piece := j.sig[off : off+window]
		requireScrubbedTo(t, "sig=["+Marker+"]", s.Scrub("sig=["+piece+"]"), "offset %d", off)
	}
}

func TestScrubCatchesAFortyCharPieceOfAnAccessToken(t *testing.T) {
	tok := accessTokenFrom(t, randReader())
	s := New(tok)
	out := scrubbed(t, s, "token <"+tok[20:60]+"> seen", tok)
	requireScrubbedTo(t, "token <"+Marker+"> seen", out)
}

func TestScrubLeavesAThirtyNineCharPieceOfTheSignature(t *testing.T) {
	// MinRun is the threshold: 39 characters are not enough to redeem
	// anything and not enough to tell apart from chance. (No letters
	// around it: one that continues the piece, chance 1/64, makes it 40.)
	j := newJWT(t)
	s := New(j.String())
	in := "<<" + j.sig[100:139] + ">>"
	require.Equal(t, in, s.Scrub(in))
}

func TestScrubLeavesOrdinaryErrorTextAlone(t *testing.T) {
	j := newJWT(t)
	other := newJWT(t) // another assertion's signature: unrelated random text
	s := New(j.String(), accessTokenFrom(t, randReader()))
	for _, in := range []string{
		`{"error":"invalid_grant","error_description":"The JWT assertion has expired or is not yet valid; check the clock of this machine (skew 300s)"}`,
		"<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx/1.25.3</center></body></html>",
		"upstream connect error or disconnect/reset before headers. reset reason: connection termination",
		other.sig,
		// Another party's JWT (own header and claims).
		"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJzb21lb25lLWVsc2UiLCJleHAiOjE3NTAwMDAwMDB9." + other.sig,
		strings.Repeat("A", 500),
		strings.Repeat("%41", 100),
		"",
	} {
		require.Equal(t, in, s.Scrub(in))
	}
}

func TestScrubReplacesAShortSecretOnlyWhole(t *testing.T) {
	s := New("hunter2-hunter2")
	requireScrubbedTo(t, "pw="+Marker+";", s.Scrub("pw=hunter2-hunter2;"))
	require.Equal(t, "pw=hunter2-hunter;", s.Scrub("pw=hunter2-hunter;"))
	requireScrubbedTo(t, "pw="+Marker+";", s.Scrub(`pw=hunter2%2Dhunter2;`))
}

func TestScrubIgnoresSecretsShorterThanEightBytes(t *testing.T) {
	s := New("abc", " ", "")
	require.Equal(t, "abc abc", s.Scrub("abc abc"))
}

func TestScrubWithoutSecretsChangesNothing(t *testing.T) {
	var s *Secrets
	require.Equal(t, "a\nb", s.Scrub("a\nb"))
	require.Equal(t, "a b", s.Clean("a\nb", 10))
	require.Equal(t, "x", New().Scrub("x"))
}

func TestScrubCatchesTheSignatureSplitByWhiteSpace(t *testing.T) {
	j := newJWT(t)
	s := New(j.String())
	for _, sep := range []string{"\n", "\r\n", " ", "\t", "\n\t ", "\u2028", "\x00", "\x1b"} {
		in := "body: " + insertEvery(j.sig, 10, sep) + " end"
		out := scrubbed(t, s, in, j.sig)
		requireScrubbedTo(t, "body: "+Marker+" end", out, "sep %q", sep)
	}
	// The whole assertion wrapped at 64 columns, like PEM.
	out := scrubbed(t, s, "x\n"+insertEvery(j.String(), 64, "\n")+"\ny", j.sig, j.String())
	requireScrubbedTo(t, "x\n"+Marker+"\ny", out)
}

func TestScrubCatchesJSONEscapedSecrets(t *testing.T) {
	j := newJWT(t)
	tok := accessTokenFrom(t, randReader())
	s := New(j.String(), tok)

	out := scrubbed(t, s, `{"echo":"`+jsonEscapeAll(j.String())+`"}`, j.sig, j.String())
	requireScrubbedTo(t, `{"echo":"`+Marker+`"}`, out)

	upper := percentAll(j.sig, `\u%04X`)
	requireScrubbedTo(t, `"`+Marker+`"`, scrubbed(t, s, `"`+upper+`"`, j.sig))

	// Only the dots escaped, as some encoders do for '.'.
	dots := strings.ReplaceAll(j.String(), ".", `\u002e`)
	requireScrubbedTo(t, `"`+Marker+`"`, scrubbed(t, s, `"`+dots+`"`, j.sig, j.String()))

	// Go's encoding/json leaves '/' alone, others write "\/".
	slashed := strings.ReplaceAll(tok, "/", `\/`)
	require.NotEqual(t, tok, slashed)
	requireScrubbedTo(t, `{"access_token":"`+Marker+`"}`, scrubbed(t, s, `{"access_token":"`+slashed+`"}`, tok))

	// \n escapes inside the JSON string.
	wrapped := insertEvery(j.sig, 76, `\n`)
	requireScrubbedTo(t, `"`+Marker+`"`, scrubbed(t, s, `"`+wrapped+`"`, j.sig))
}

func TestScrubCatchesPercentEncodedSecrets(t *testing.T) {
	j := newJWT(t)
	tok := accessTokenFrom(t, randReader())
	s := New(j.String(), tok)
	for _, f := range []string{"%%%02X", "%%%02x"} {
		out := scrubbed(t, s, "assertion="+percentAll(j.String(), f)+"&x=1", j.sig, j.String())
		requireScrubbedTo(t, "assertion="+Marker+"&x=1", out)
	}
	// What url.QueryEscape does to a standard base64 token.
	q := url.QueryEscape(tok)
	require.NotEqual(t, tok, q)
	requireScrubbedTo(t, "t="+Marker, scrubbed(t, s, "t="+q, tok))
	// Only the dots encoded.
	dots := strings.ReplaceAll(j.String(), ".", "%2e")
	requireScrubbedTo(t, "a="+Marker, scrubbed(t, s, "a="+dots, j.sig, j.String()))
}

func TestScrubCatchesMixedAndLayeredEncodings(t *testing.T) {
	j := newJWT(t)
	s := New(j.String())
	var mixed strings.Builder
	for i := 0; i < len(j.sig); i++ {
		c := j.sig[i]
		switch i % 6 {
		case 0:
			fmt.Fprintf(&mixed, "%%%02X", c)
		case 1:
			fmt.Fprintf(&mixed, `\u%04x`, c)
		case 2:
			fmt.Fprintf(&mixed, "%c\n", c)
		case 3:
			fmt.Fprintf(&mixed, `\x%02x`, c)
		case 4:
			fmt.Fprintf(&mixed, "%%25%02x", c) // percent-encoded twice
		default:
			fmt.Fprintf(&mixed, "%%5Cu%04X", c) // a JSON escape, percent-encoded
		}
	}
	out := scrubbed(t, s, "<"+mixed.String()+">", j.sig)
	requireScrubbedTo(t, "<"+Marker+">", out)

	// A percent escape cut by a line wrap: "%2\nE".
	var wrapped strings.Builder
	for i := 0; i < len(j.sig); i++ {
		fmt.Fprintf(&wrapped, "%%%X\n%X", j.sig[i]>>4, j.sig[i]&0xf)
	}
	requireScrubbedTo(t, "<"+Marker+">", scrubbed(t, s, "<"+wrapped.String()+">", j.sig))

	// Foreign characters spliced in every few characters, also when another
	// secret (a standard base64 token) has '+' in its alphabet.
	spliced := insertEvery(j.sig, 7, `"+"`)
	s = New(j.String(), accessTokenFrom(t, randReader()))
	requireScrubbedTo(t, "<"+Marker+">", scrubbed(t, s, "<"+spliced+">", j.sig))
}

func TestScrubBlanksTheWholeEncodedStretchAndKeepsTheRest(t *testing.T) {
	j := newJWT(t)
	s := New(j.String())
	in := "before %41 \\u0042 " + percentAll(j.sig, "%%%02x") + " after %43"
	requireScrubbedTo(t, "before %41 \\u0042 "+Marker+" after %43", s.Scrub(in))
}

func TestScrubNeverSplitsAUTF8Sequence(t *testing.T) {
	j := newJWT(t)
	s := New(j.String())
	out := s.Scrub("é" + j.sig + "€ü")
	require.True(t, utf8.ValidString(out))
	requireScrubbedTo(t, "é"+Marker+"€ü", out)
}

func TestScrubHandlesRedirectsAndEchoedTokenType(t *testing.T) {
	j := newJWT(t)
	s := New(j.String())
	// A 200 whose token_type is the assertion: the caller quotes it.
	body := `{"access_token":"x","token_type":"` + j.String() + `"}`
	msg := fmt.Sprintf("unexpected token_type %q", s.Clean(`"`+j.String()+`"`, 300))
	requireNoLeak(t, msg, j.sig, j.String())
	requireNoLeak(t, s.Clean(body, 300), j.sig, j.String())

	loc := "https://user:pw@evil.example/path/" + j.sig + "?assertion=" + j.String() + "#" + j.sig
	requireScrubbedTo(t, "https://evil.example/path/"+Marker, s.RedirectLocation(loc))
	u, err := url.Parse("https://evil.example/a%2Fb?assertion=" + j.String())
	require.NoError(t, err)
	require.Equal(t, "https://evil.example/a%2Fb", s.RedirectTarget(u))
	require.Equal(t, "", s.RedirectTarget(nil))
	require.Equal(t, "/relative/only", s.RedirectLocation("/relative/only?x=1"))
	require.Equal(t, "mailto:x@example.com", s.RedirectLocation("mailto:x@example.com?subject=hi"))
	// Unparseable: still no query, no user info, no secret.
	bad := "https://user:pw@ex ample.com/%zz" + j.sig + "?q=" + j.String()
	requireScrubbedTo(t, "https://ex ample.com/%zz"+Marker, s.RedirectLocation(bad))
}

// The transport's own error quotes a malformed header line verbatim.
func TestCleanRemovesTheAssertionFromGoTransportErrors(t *testing.T) {
	j := newJWT(t)
	s := New(j.String())
	for name, reply := range map[string]string{
		"bare header line":     "HTTP/1.1 200 OK\r\n" + j.String() + "\r\n\r\n",
		"bad status":           "HTTP/1.1 2" + j.sig + " OK\r\n\r\n",
		"bad content length":   "HTTP/1.1 200 OK\r\nContent-Length: " + j.sig + "\r\n\r\n",
		"bad transfer enc":     "HTTP/1.1 200 OK\r\nTransfer-Encoding: " + j.sig + "\r\n\r\n",
		"header split by CRLF": "HTTP/1.1 200 OK\r\nX: " + j.sig[:100] + "\r\n" + j.sig[100:] + "\r\n\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			defer ln.Close()
			go func() {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				_, _ = http.ReadRequest(bufio.NewReader(c))
				_, _ = c.Write([]byte(reply))
			}()
			client := &http.Client{Timeout: 5 * time.Second}
			resp, err := client.Post("http://"+ln.Addr().String()+"/token", "application/x-www-form-urlencoded", strings.NewReader("assertion="+j.String()))
			if err == nil {
				resp.Body.Close()
				t.Skipf("transport accepted %s", name)
			}
			require.NotEmpty(t, leakedWindow(err.Error(), j.sig), "the raw error should quote the secret: %v", err)
			out := s.Clean(err.Error(), 300)
			requireNoLeak(t, out, j.sig, j.String())
			require.NotContains(t, out, "\n")
		})
	}
}

func TestCleanCollapsesToOneLineAndTruncates(t *testing.T) {
	j := newJWT(t)
	s := New(j.String())
	requireScrubbedTo(t, "a b c "+Marker+" d", s.Clean("  a\r\nb\t\x00c\n"+j.sig+"\n d  ", 100))
	require.Equal(t, "a b…", s.Clean("a\nb\ncde", 3))
	require.Equal(t, "bad \uFFFD byte", s.Clean("bad \xff byte", 100))
	long := s.Clean(strings.Repeat("é", 500), 300)
	require.Equal(t, 301, utf8.RuneCountInString(long))
	require.True(t, strings.HasSuffix(long, "…"))
}

func TestTruncateCutsOnRuneBoundaries(t *testing.T) {
	require.Equal(t, "abc", Truncate("abc", 3))
	require.Equal(t, "ab…", Truncate("abc", 2))
	require.Equal(t, "…", Truncate("abc", 0))
	require.Equal(t, "…", Truncate("abc", -1))
	require.Equal(t, "", Truncate("", 0))
	require.Equal(t, "hé…", Truncate("héllo", 2))
	require.Equal(t, "😀😀…", Truncate("😀😀😀", 2))
	// An invalid byte counts as one rune and is never split off its neighbours.
	out := Truncate("a\xffé\xe2\x82", 3)
	require.Equal(t, "a\xffé…", out)
	for n := 0; n < 10; n++ {
		require.True(t, utf8.ValidString(Truncate("ü€😀ab€", n)))
	}
}

// Large hostile inputs are scrubbed whole; how fast is BenchmarkScrub's
// business (no timed assertions on a shared machine).
func TestScrubOfLargeHostileInputLeaksNothing(t *testing.T) {
	j := newJWT(t)
	s := New(j.String())
	inputs := map[string]string{
		"escapes":   strings.Repeat(`%25\u0041\x2e`, 64<<10/15),
		"secret":    strings.Repeat(jsonEscapeAll(j.sig)+"\n", 64<<10/len(jsonEscapeAll(j.sig))),
		"near miss": strings.Repeat(j.sig[:39]+" ", 64<<10/40),
	}
	for name, in := range inputs {
		out := s.Scrub(in)
		requireNoLeak(t, out, j.sig)
		require.NotEmpty(t, out, name)
	}
}
