package redact

import (
	"strings"
	"testing"
)

// benchBody is an error body of about size bytes: HTML-ish text with the
// assertion echoed twice, once JSON-escaped and wrapped.
func benchBody(tb testing.TB, size int) (*Secrets, string) {
	j := newJWT(tb)
	s := New(j.String())
	var b strings.Builder
	b.WriteString(`{"error":"invalid_grant","assertion":"` + j.String() + `","echo":"`)
	b.WriteString(insertEvery(jsonEscapeAll(j.sig), 76, `\n`))
	b.WriteString(`"}` + "\n")
	for b.Len() < size {
		b.WriteString("<p>upstream said: request rejected, see https://status.example/?id=%2F42 for details</p>\n")
	}
	return s, b.String()[:size]
}

func benchmarkScrub(b *testing.B, size int) {
	s, body := benchBody(b, size)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if !strings.Contains(s.Scrub(body), Marker) {
			b.Fatal("nothing redacted")
		}
	}
}

func BenchmarkScrub(b *testing.B)      { benchmarkScrub(b, 4<<10) }
func BenchmarkScrub64KiB(b *testing.B) { benchmarkScrub(b, 64<<10) }

func BenchmarkScrubNoSecretInBody(b *testing.B) {
	s, _ := benchBody(b, 0)
	body := strings.Repeat("<p>upstream said: request rejected, see https://status.example/?id=%2F42</p>\n", 4<<10/78)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		s.Scrub(body)
	}
}
