// Command guestinit is the guest's init alone: the agent, without the CLI.
// The Go API builds it (CGO_ENABLED=0, so static) when the test binary is
// dynamically linked and cannot be the guest's init itself. It imports only
// what package vmlab imports, so `go build` of it works from any module that
// requires vmlab, with the go.sum that module already has (cmd/vmlab needs
// go.starlark.net, whose checksum a user's go.sum lacks).
package main

import (
	"fmt"
	"os"

	"github.com/vmlab/vmlab/internal/agent"
)

func main() {
	if agent.IsGuest() {
		agent.Main()
	}
	fmt.Fprintln(os.Stderr, "guestinit: the guest's init; the kernel runs it as PID 1")
	os.Exit(2)
}
