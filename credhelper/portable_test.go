package credhelper

import (
	"encoding/json"
	"runtime"
	"strings"
)

// jsonQuote is s as a JSON string, quotes included: a path pasted into a
// JSON fixture as it is breaks on Windows, where its backslashes are escapes.
func jsonQuote(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// hostAbs makes the Unix absolute paths in a fixture ("/k.json") absolute on
// this host too: on Windows a path needs a drive, so "/k.json" becomes
// "C:/k.json" there. Elsewhere s is returned as it is.
func hostAbs(s string) string {
	if runtime.GOOS != "windows" {
		return s
	}
	return strings.ReplaceAll(s, `"/`, `"C:/`)
}
