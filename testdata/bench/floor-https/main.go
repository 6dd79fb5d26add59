// Command floor-https is the cold floor: one HTTPS POST to FLOOR_URL with the
// system roots (SSL_CERT_FILE applies), printing the body. Any Go HTTPS
// client pays this much for a token request.
package main

import (
	"io"
	"net/http"
	"os"
	"strings"
)

func main() {
	resp, err := http.Post(os.Getenv("FLOOR_URL"), "application/x-www-form-urlencoded", strings.NewReader("grant_type=floor"))
	if err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(1)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(os.Stdout, resp.Body)
}
