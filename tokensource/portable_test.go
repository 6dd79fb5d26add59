package tokensource_test

import (
	"encoding/json"
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
