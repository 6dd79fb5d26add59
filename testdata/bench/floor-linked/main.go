// Command floor-linked is floor-bare with net/http and crypto/tls linked in
// but never called: the start-up cost every helper that can fetch over
// HTTPS pays, whatever it does.
package main

import (
	"bufio"
	_ "crypto/tls"
	"encoding/json"
	_ "net/http"
	"os"
)

func main() {
	line, _ := bufio.NewReader(os.Stdin).ReadString('\n')
	data, _ := os.ReadFile(os.Getenv("FLOOR_FILE"))
	var v map[string]any
	_ = json.Unmarshal(data, &v)
	_ = json.NewEncoder(os.Stdout).Encode(map[string]string{"ServerURL": line, "Username": "floor", "Secret": "floor"})
}
