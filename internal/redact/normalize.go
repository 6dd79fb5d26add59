package redact

import (
	"unicode"
	"unicode/utf8"
)

// A view is a transformed copy of the input in which every byte remembers
// the range of input bytes it came from: b[i] stands for input[lo[i]:hi[i]].
// Views only ever drop or merge input, never reorder it, so lo and hi are
// non-decreasing.
type view struct {
	b      []byte
	lo, hi []int32
}

func rawView(s string) view {
	v := view{b: []byte(s), lo: make([]int32, len(s)), hi: make([]int32, len(s))}
	for i := range s {
		v.lo[i], v.hi[i] = int32(i), int32(i+1)
	}
	// Bytes of one multi-byte rune all stand for the whole rune, so a
	// redacted range never splits a UTF-8 sequence of the input.
	for i, r := range s {
		if r >= utf8.RuneSelf {
			n := utf8.RuneLen(r)
			if r == utf8.RuneError {
				_, n = utf8.DecodeRuneInString(s[i:])
			}
			for j := i; j < i+n; j++ {
				v.lo[j], v.hi[j] = int32(i), int32(i+n)
			}
		}
	}
	return v
}

func (v *view) push(c byte, lo, hi int32) {
	v.b = append(v.b, c)
	v.lo = append(v.lo, lo)
	v.hi = append(v.hi, hi)
}

// compact drops white space and control characters (every rune that
// unicode.IsSpace or unicode.IsControl accepts, which is what Clean turns
// into a single space), so a secret split across lines is contiguous again.
func (v view) compact() view {
	out := view{b: make([]byte, 0, len(v.b)), lo: make([]int32, 0, len(v.b)), hi: make([]int32, 0, len(v.b))}
	for i := 0; i < len(v.b); {
		c := v.b[i]
		if c < utf8.RuneSelf {
			if c > ' ' && c != 0x7f {
				out.push(c, v.lo[i], v.hi[i])
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(v.b[i:])
		if !(n > 1 && (unicode.IsSpace(r) || unicode.IsControl(r))) {
			lo, hi := v.lo[i], v.hi[i+n-1]
			for j := i; j < i+n; j++ {
				out.push(v.b[j], lo, hi)
			}
		}
		i += n
	}
	return out
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// hexAt decodes n hex digits at b[i:].
func hexAt(b []byte, i, n int) (rune, bool) {
	if i+n > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+n] {
		d, ok := unhex(c)
		if !ok {
			return 0, false
		}
		r = r<<4 | rune(d)
	}
	return r, true
}

// decode undoes one layer of escaping, left to right without overlap:
// percent-encoding (%2E, %2e, any byte), JSON escapes (\uXXXX, \/, \\, \",
// \b \f \n \r \t) and \xXX, and \' as a courtesy to other quoting styles.
// Anything that is not a complete escape is kept as it is. The decoded
// bytes stand for the whole escape. It reports whether anything changed.
func (v view) decode() (view, bool) {
	out := view{b: make([]byte, 0, len(v.b)), lo: make([]int32, 0, len(v.b)), hi: make([]int32, 0, len(v.b))}
	changed := false
	var buf [utf8.UTFMax]byte
	for i := 0; i < len(v.b); {
		c := v.b[i]
		var dec []byte
		n := 0
		switch c {
		case '%':
			if r, ok := hexAt(v.b, i+1, 2); ok {
				buf[0], dec, n = byte(r), buf[:1], 3
			}
		case '\\':
			if i+1 >= len(v.b) {
				break
			}
			switch e := v.b[i+1]; e {
			case 'u':
				if r, ok := hexAt(v.b, i+2, 4); ok {
					if r < utf8.RuneSelf {
						buf[0], dec = byte(r), buf[:1]
					} else {
						dec = utf8.AppendRune(buf[:0], r)
					}
					n = 6
				}
			case 'x':
				if r, ok := hexAt(v.b, i+2, 2); ok {
					buf[0], dec, n = byte(r), buf[:1], 4
				}
			case '/', '\\', '"', '\'':
				buf[0], dec, n = e, buf[:1], 2
			case 'b', 'f', 'n', 'r', 't':
				buf[0], dec, n = controlEscape(e), buf[:1], 2
			}
		}
		if n == 0 {
			out.push(c, v.lo[i], v.hi[i])
			i++
			continue
		}
		changed = true
		lo, hi := v.lo[i], v.hi[i+n-1]
		for _, d := range dec {
			out.push(d, lo, hi)
		}
		i += n
	}
	return out, changed
}

func controlEscape(e byte) byte {
	switch e {
	case 'b':
		return '\b'
	case 'f':
		return '\f'
	case 'n':
		return '\n'
	case 'r':
		return '\r'
	}
	return '\t'
}

// filter keeps only bytes that occur in some long secret, so that any
// foreign character spliced into a secret (quotes, '+', '=', '>', zero
// width spaces, ...) no longer hides it.
func (v view) filter(keep *[256]bool) view {
	out := view{b: make([]byte, 0, len(v.b)), lo: make([]int32, 0, len(v.b)), hi: make([]int32, 0, len(v.b))}
	for i, c := range v.b {
		if keep[c] {
			out.push(c, v.lo[i], v.hi[i])
		}
	}
	return out
}

// views returns the normalised views of s that are searched: s compacted,
// and s decoded once and twice, with and without compacting before each
// decode (so that "%2\nE", a percent escape cut by a line wrap, is seen
// too).
func views(s string) []view {
	raw := rawView(s)
	c0 := raw.compact()
	out := []view{c0}
	if d1, ok := raw.decode(); ok {
		out = append(out, d1.compact())
		if d2, ok := d1.decode(); ok {
			out = append(out, d2.compact())
		}
	}
	if e1, ok := c0.decode(); ok {
		e1 = e1.compact()
		out = append(out, e1)
		if e2, ok := e1.decode(); ok {
			out = append(out, e2.compact())
		}
	}
	return out
}
