// Package vmlab runs tests in QEMU virtual machines booted from the host's
// own kernel and root file system, from `go test`:
//
//	func TestServer(t *testing.T) {
//		lab := vmlab.New(t)
//		server := lab.Machine("server")
//		server.Succeed(t, "python3 -m http.server 8000 >/dev/null 2>&1 &")
//		server.WaitForOpenPort(t, 8000)
//		out := server.Succeed(t, "curl -s localhost:8000/ | head -c 15")
//		...
//	}
//
// Machines boot lazily, on their first command, and are stopped when the
// test ends. Each method takes the testing.TB to fail: pass the subtest's t
// inside t.Run. Method names are the NixOS test driver's, in Go spelling.
//
// The guest needs a statically linked program to run as its init. A test
// binary built with CGO_ENABLED=0 that imports this package is one; otherwise
// set VMLAB_AGENT to a static vmlab (CGO_ENABLED=0 go build ./cmd/vmlab) or
// put one on PATH.
package vmlab

import (
	"io"
	"sync"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/agent"
	"github.com/vmlab/vmlab/internal/machine"
)

// A binary that imports vmlab is the guest agent when the kernel runs it as
// PID 1.
func init() {
	if agent.IsGuest() {
		agent.Main()
	}
}

var shared struct {
	once sync.Once
	boot *machine.Boot
	err  error
}

// Lab is one test's set of machines.
type Lab struct {
	t    testing.TB
	boot *machine.Boot
}

// New prepares the kernel, the initramfs and QEMU (once per test binary) and
// returns an empty lab whose machines stop when t ends.
func New(t testing.TB) *Lab {
	t.Helper()
	shared.once.Do(func() {
		shared.boot, shared.err = machine.PrepareBoot(machine.BootOptions{})
		if shared.err == nil {
			t.Logf("vmlab: kernel %s, accelerator %s", shared.boot.Kernel.Version, shared.boot.Accel)
		}
	})
	if shared.err != nil {
		t.Fatalf("vmlab: %v", shared.err)
	}
	return &Lab{t: t, boot: shared.boot}
}

// Option configures a machine.
type Option func(*machine.Config)

// Memory sets the guest's memory in MiB (default 512).
func Memory(mib int) Option { return func(c *machine.Config) { c.MemoryMiB = mib } }

// CPUs sets the guest's CPU count (default 1).
func CPUs(n int) Option { return func(c *machine.Config) { c.CPUs = n } }

// Share makes the host directory hostPath visible at guestPath. The guest
// may write there; its writes stay in the guest.
func Share(hostPath, guestPath string) Option {
	return func(c *machine.Config) {
		c.Shares = append(c.Shares, machine.Share{HostPath: hostPath, GuestPath: guestPath})
	}
}

// Machine declares a machine called name (its hostname too). It boots on its
// first command, or on Start.
func (l *Lab) Machine(name string, opts ...Option) *Machine {
	l.t.Helper()
	cfg := machine.Config{Name: name, Boot: l.boot, Dir: l.t.TempDir(), Logf: l.t.Logf}
	for _, o := range opts {
		o(&cfg)
	}
	m, err := machine.New(cfg)
	if err != nil {
		l.t.Fatalf("vmlab: %v", err)
	}
	l.t.Cleanup(func() { m.Close() })
	return &Machine{m: m}
}

// Machine is one VM of a lab.
type Machine struct {
	m *machine.Machine
}

// ExecOption changes how a command runs.
type ExecOption = machine.ExecOption

// Timeout bounds a command; the guest kills its process group at the deadline.
func Timeout(d time.Duration) ExecOption { return machine.Timeout(d) }

// User runs a command as the named guest user.
func User(name string) ExecOption { return machine.User(name) }

// Dir sets a command's working directory.
func Dir(dir string) ExecOption { return machine.Dir(dir) }

// Env adds KEY=VALUE pairs to a command's environment.
func Env(kv ...string) ExecOption { return machine.Env(kv...) }

// Stdin feeds r to a command's standard input.
func Stdin(r io.Reader) ExecOption { return machine.Stdin(r) }

// Name returns the machine's name.
func (m *Machine) Name() string { return m.m.Name() }

// Start boots the machine now instead of on its first command.
func (m *Machine) Start(t testing.TB) {
	t.Helper()
	check(t, m.m.Start(t.Context()))
}

// Succeed runs command with sh -c and returns its standard output; a
// non-zero exit fails t with the command's output and status.
func (m *Machine) Succeed(t testing.TB, command string, opts ...ExecOption) string {
	t.Helper()
	out, err := m.m.Succeed(t.Context(), command, opts...)
	check(t, err)
	return out
}

// Fail runs command and returns its standard output; a zero exit fails t.
func (m *Machine) Fail(t testing.TB, command string, opts ...ExecOption) string {
	t.Helper()
	out, err := m.m.Fail(t.Context(), command, opts...)
	check(t, err)
	return out
}

// Execute runs command and returns its exit status and standard output.
func (m *Machine) Execute(t testing.TB, command string, opts ...ExecOption) (int, string) {
	t.Helper()
	r, err := m.m.Execute(t.Context(), command, opts...)
	check(t, err)
	return r.Status, r.Stdout
}

// WaitUntilSucceeds runs command until it exits 0 and returns its output.
// A zero timeout means the default (15 minutes under TCG, 3 under KVM).
func (m *Machine) WaitUntilSucceeds(t testing.TB, command string, timeout time.Duration) string {
	t.Helper()
	out, err := m.m.WaitUntilSucceeds(t.Context(), command, timeout)
	check(t, err)
	return out
}

// WaitUntilFails runs command until it exits non-zero and returns its output.
func (m *Machine) WaitUntilFails(t testing.TB, command string, timeout time.Duration) string {
	t.Helper()
	out, err := m.m.WaitUntilFails(t.Context(), command, timeout)
	check(t, err)
	return out
}

// WaitForFile waits until path exists in the guest.
func (m *Machine) WaitForFile(t testing.TB, path string) {
	t.Helper()
	check(t, m.m.WaitForFile(t.Context(), path, 0))
}

// WaitForOpenPort waits until a TCP connect to localhost:port succeeds in the
// guest.
func (m *Machine) WaitForOpenPort(t testing.TB, port int) {
	t.Helper()
	check(t, m.m.WaitForOpenPort(t.Context(), "", port, 0))
}

// WaitForClosedPort waits until a TCP connect to localhost:port is refused.
func (m *Machine) WaitForClosedPort(t testing.TB, port int) {
	t.Helper()
	check(t, m.m.WaitForClosedPort(t.Context(), "", port, 0))
}

// WaitForOpenUnixSocket waits until the unix socket at path accepts.
func (m *Machine) WaitForOpenUnixSocket(t testing.TB, path string) {
	t.Helper()
	check(t, m.m.WaitForOpenUnixSocket(t.Context(), path, 0))
}

// WaitForConsoleText waits for a console line matching the regular
// expression and returns it.
func (m *Machine) WaitForConsoleText(t testing.TB, regex string) string {
	t.Helper()
	line, err := m.m.WaitForConsoleText(t.Context(), regex, 0)
	check(t, err)
	return line
}

// CopyFromHost copies a host file or directory into the guest.
func (m *Machine) CopyFromHost(t testing.TB, src, dst string) {
	t.Helper()
	check(t, m.m.CopyFromHost(t.Context(), src, dst))
}

// CopyFromMachine copies a guest file or directory to the host.
func (m *Machine) CopyFromMachine(t testing.TB, src, dst string) {
	t.Helper()
	check(t, m.m.CopyFromMachine(t.Context(), src, dst))
}

// Shutdown powers the machine off cleanly and waits for it to stop.
func (m *Machine) Shutdown(t testing.TB) {
	t.Helper()
	check(t, m.m.Shutdown(t.Context()))
}

// Reboot shuts the machine down cleanly and boots it again.
func (m *Machine) Reboot(t testing.TB) {
	t.Helper()
	check(t, m.m.Reboot(t.Context()))
}

// Crash stops the machine at once, like pulling the plug.
func (m *Machine) Crash() { m.m.Crash() }

// WaitForShutdown waits until the machine powers off by itself.
func (m *Machine) WaitForShutdown(t testing.TB) {
	t.Helper()
	check(t, m.m.WaitForShutdown(t.Context(), 0))
}

// Sleep waits d.
func (m *Machine) Sleep(t testing.TB, d time.Duration) {
	t.Helper()
	check(t, m.m.Sleep(t.Context(), d))
}

func check(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
