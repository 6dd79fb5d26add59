// Command floor-bare is the bare floor of the process benchmark: the least a
// credential helper can do (read a line, read a small JSON file, print JSON)
// with nothing else linked in.
package main

import (
	"bufio"
	"encoding/json"
	"os"
)

func main() {
	line, _ := bufio.NewReader(os.Stdin).ReadString('\n')
	data, _ := os.ReadFile(os.Getenv("FLOOR_FILE"))
	var v map[string]any
	_ = json.Unmarshal(data, &v)
	_ = json.NewEncoder(os.Stdout).Encode(map[string]string{"ServerURL": line, "Username": "floor", "Secret": "floor"})
}
