// Command vmlab tests software in networks of QEMU virtual machines. The same
// static binary is the guest's agent: run as PID 1 inside a VM, it becomes
// the guest's init and serves the host's requests; run by systemd as
// "vmlab-ready", it is the readiness check of a service rendered as a unit.
package main

import (
	"os"

	"github.com/vmlab/vmlab/internal/agent"
	"github.com/vmlab/vmlab/internal/cli"
)

func main() {
	if agent.IsReadyCheck() {
		agent.ReadyMain()
	}
	if agent.IsGuest() {
		agent.Main()
	}
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
