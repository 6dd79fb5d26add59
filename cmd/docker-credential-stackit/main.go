// Command docker-credential-stackit is a Docker credential helper for
// STACKIT Container Registry.
package main

import (
	"os"

	"github.com/docker-credential-stackit/docker-credential-stackit/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv))
}
