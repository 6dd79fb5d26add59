// Command docker-credential-stackit is a Docker credential helper for
// STACKIT Container Registry.
package main

import (
	"os"

	"github.com/docker-credential-stackit/docker-credential-stackit/credhelper"
)

func main() {
	os.Exit(credhelper.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv))
}
