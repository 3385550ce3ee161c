// Package vmlab runs tests in QEMU virtual machines booted from the host's
// own kernel and root file system, from `go test`:
//
//	func TestServer(t *testing.T) {
//		lab := vmlab.New(t)
//		server := lab.Machine("server")
//		server.Succeed(t, "busybox httpd -p 8000 -h /etc")
//		server.WaitForOpenPort(t, 8000, 0) // 0: the default timeout
//		out := server.Succeed(t, "curl -sf localhost:8000/os-release")
//		...
//	}
//
// Machines boot lazily, on their first command, or all at once with
// Lab.StartAll, and are stopped when the test ends. Each method takes the
// testing.TB to fail: pass the subtest's t inside t.Run. Method names are
// the NixOS test driver's, in Go spelling; every wait takes a timeout (0:
// the default). The machines' log lines (booting, up) go to the lab's test
// and name the line of the test that caused them.
//
// The guest runs a statically linked program as its init, the agent. A
// test binary built with CGO_ENABLED=0 that imports this package is one;
// otherwise New builds one with the go command from the test's module
// (`go test` puts go on PATH): a link, ~0.6 s, kept in the cache for a
// release of vmlab. VMLAB_AGENT names a static agent to use instead.
package vmlab

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/agent"
	"github.com/vmlab/vmlab/internal/coverage"
	"github.com/vmlab/vmlab/internal/lab"
	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/spec"
	"github.com/vmlab/vmlab/internal/vnet"
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

// Lab is one test's set of machines and the networks between them. Declare
// every machine first; the lab is built (networks, addresses) when the first
// machine is used, and torn down when the test ends.
type Lab struct {
	t     testing.TB
	boot  *machine.Boot
	specs []spec.Machine

	// stateDir keeps the machines' disks (KeepState); "": temporary.
	stateDir string
	// coverDir collects the machines' coverage (Coverage); "": none.
	coverDir string

	mu    sync.Mutex
	built *lab.Lab
	// site holds the test's line (a string) of a call whose work runs in
	// goroutines of its own (StartAll), for their log lines.
	site atomic.Value
}

// siteLine returns the line in site, or "".
func (l *Lab) siteLine() string {
	s, _ := l.site.Load().(string)
	return s
}

// New prepares the kernel, the initramfs and QEMU (once per test binary) and
// returns an empty lab. Captures of the lab's networks (vlanN.pcap), the
// machines' console logs and, when the test fails, a screenshot of each
// machine with a display (failure-NAME.png) go to $VMLAB_OUT/<test name>
// when VMLAB_OUT is set, else to a temporary directory removed with the
// test.
func New(t testing.TB, opts ...LabOption) *Lab {
	t.Helper()
	shared.once.Do(func() {
		shared.boot, shared.err = prepareBoot()
		if shared.err == nil {
			logfTo(t, nil)("vmlab: kernel %s, accelerator %s", shared.boot.Kernel.Version, shared.boot.Accel)
		}
	})
	if shared.err != nil {
		t.Fatalf("vmlab: %v", shared.err)
	}
	l := &Lab{t: t, boot: shared.boot}
	for _, o := range opts {
		if o.set != nil {
			o.set(l)
		}
	}
	return l
}

// testDir is the test's name as a directory's: "/" of subtests is "_".
func (l *Lab) testDir() string { return strings.ReplaceAll(l.t.Name(), "/", "_") }

// Fault is what a link does to frames. The zero Fault clears a link's
// fault. A fault that cannot be applied (a negative delay, a probability
// outside [0, 1]) fails the test.
type Fault struct {
	Delay  time.Duration // added to every frame
	Jitter time.Duration // ± uniformly around Delay, at most Delay; frames may overtake each other
	// Loss, Duplicate and Reorder are probabilities in [0, 1]. A reordered
	// frame skips the delay, so it overtakes frames delayed before it.
	Loss, Duplicate, Reorder float64
	// Rate limits the link to this many bits per second; 0 means no limit.
	// Frames wait their turn; more than a queue's worth are dropped.
	Rate int64
}

// Machine declares a machine called name (its hostname too). It boots on its
// first command, or on Start. Declaring after the lab has started fails t;
// so does a declaration that breaks a rule (a name that is not a host name,
// too little memory, ...), with every problem, each naming its option.
func (l *Lab) Machine(name string, opts ...Option) *Machine {
	l.t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.built != nil {
		l.t.Fatalf("vmlab: machine %q declared after the lab started; declare every machine first", name)
	}
	decl := spec.New(name)
	for _, o := range opts {
		if o.set != nil {
			o.set(&decl)
		}
	}
	if errs := checkDeclaration(decl, l.specs, l.boot.Host()); len(errs) > 0 {
		for _, err := range errs {
			l.t.Error(err)
		}
		l.t.FailNow()
	}
	l.specs = append(l.specs, decl)
	return &Machine{lab: l, name: name}
}

// declared returns the declaration of machine name.
func (l *Lab) declared(name string) spec.Machine {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.specs {
		if s.Name == name {
			return s
		}
	}
	return spec.Machine{}
}

// start builds the lab on first use.
func (l *Lab) start(t testing.TB) *lab.Lab {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.built == nil {
		dir := l.t.TempDir()
		if out := os.Getenv("VMLAB_OUT"); out != "" {
			d, err := spec.Inside(out, l.testDir())
			if err != nil {
				t.Fatalf("vmlab: VMLAB_OUT: %v", err)
			}
			dir = d
		}
		if l.coverDir != "" {
			if err := coverage.Prepare(l.coverDir, []string{l.testDir()}); err != nil {
				t.Fatalf("vmlab: Coverage: %v", err)
			}
			coverTests.add(l.coverDir, l.testDir())
		}
		cfgs := make([]machine.Config, len(l.specs))
		for i, s := range l.specs {
			cfgs[i] = machine.Config{Machine: s}
			if l.coverDir != "" {
				cfgs[i].Coverage = machine.Coverage{Dir: coverage.MachineDir(l.coverDir, l.testDir(), s.Name), Test: l.testDir()}
			}
		}
		if l.stateDir != "" {
			// The test's identity in the state directory: its package's
			// directory (the working directory) and its name.
			state, err := machine.ApplyState(cfgs, l.stateDir, l.t.Name())
			if err != nil {
				t.Fatalf("vmlab: KeepState: %v", err)
			}
			l.t.Cleanup(func() { state.Close() }) // after the machines stop
		}
		logf := logfTo(l.t, l.siteLine)
		if err := lab.PrepareImages(l.t.Context(), l.boot, cfgs, nil, logf); err != nil {
			t.Fatalf("vmlab: %v", err)
		}
		built, err := lab.New(l.boot, dir, cfgs, logf)
		if err != nil {
			t.Fatalf("vmlab: %v", err)
		}
		l.built = built
		l.t.Cleanup(func() { built.Close() })
		// Registered after Close's, so it runs before it.
		l.t.Cleanup(func() { l.failureScreenshots(built, dir) })
	}
	return l.built
}

// failureShotTimeout bounds the screenshots of a failed test: one takes
// ~35 ms under TCG, and a hung QEMU must not hold the test's end.
const failureShotTimeout = 10 * time.Second

// failureScreenshots saves, when the test failed, a screenshot of each
// machine with a display that is up as failure-NAME.png in the lab's
// output directory, and logs where, as vmlab run does (docs/screens.md).
// It boots nothing; a machine that cannot be pictured is logged.
func (l *Lab) failureScreenshots(built *lab.Lab, dir string) {
	if !l.t.Failed() {
		return
	}
	// The test's context is cancelled before its cleanups run.
	ctx, cancel := context.WithTimeout(context.Background(), failureShotTimeout)
	defer cancel()
	for _, s := range l.specs {
		m := built.Machine(s.Name)
		if !s.Display || m == nil || m.NeedsBoot() {
			continue
		}
		path := filepath.Join(dir, "failure-"+s.Name+".png")
		png, err := m.Screenshot(ctx)
		if err == nil {
			err = os.WriteFile(path, png, 0o644)
		}
		if err != nil {
			l.t.Logf("vmlab: %s: no screenshot of the failed test: %v", s.Name, err)
			continue
		}
		l.t.Logf("vmlab: %s: screenshot of the failed test: %s", s.Name, path)
	}
}

// StartAll boots every declared machine at once and returns when all are
// up; a machine that fails to boot fails t, naming it, once every boot has
// ended. Without it machines boot on their first command, one after the
// other when the test's first commands go to each in turn.
func (l *Lab) StartAll(t testing.TB) {
	t.Helper()
	built := l.start(t)
	l.site.Store(callerOutside())
	defer l.site.Store("")
	names := built.Names()
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Go(func() { errs[i] = built.Machine(name).Start(t.Context()) })
	}
	wg.Wait()
	check(t, errors.Join(errs...))
}

// Block cuts the machine off the given VLANs, or all of its VLANs.
func (l *Lab) Block(t testing.TB, name string, vlans ...int) {
	t.Helper()
	check(t, l.start(t).Block(name, vlans...))
}

// Unblock reconnects the machine to the given VLANs, or all of its VLANs.
func (l *Lab) Unblock(t testing.TB, name string, vlans ...int) {
	t.Helper()
	check(t, l.start(t).Unblock(name, vlans...))
}

// Partition splits the networks into groups of machines that cannot reach
// each other; machines in no group reach nobody. Heal ends it.
func (l *Lab) Partition(t testing.TB, groups ...[]string) {
	t.Helper()
	check(t, l.start(t).Partition(groups...))
}

// Heal ends a partition.
func (l *Lab) Heal(t testing.TB) {
	t.Helper()
	l.start(t).Heal()
}

// SetLinkFault sets the fault on the link from one machine to another (one
// direction) on VLAN v, or on every VLAN they share when v is 0.
func (l *Lab) SetLinkFault(t testing.TB, from, to string, v int, f Fault) {
	t.Helper()
	check(t, l.start(t).SetLinkFault(from, to, v, vnet.Fault(f)))
}

// SetVLANFault sets the fault on every link of VLAN v.
func (l *Lab) SetVLANFault(t testing.TB, v int, f Fault) {
	t.Helper()
	check(t, l.start(t).SetVLANFault(v, vnet.Fault(f)))
}

// Machine is one VM of a lab.
type Machine struct {
	lab  *Lab
	name string
}

// m returns the running lab's machine, building the lab on first use.
func (m *Machine) m(t testing.TB) *machine.Machine {
	t.Helper()
	return m.lab.start(t).Machine(m.name)
}

// screen returns the running lab's machine for a screen method (Screenshot,
// the keys and OCR methods, the X waits), failing t first, before anything
// boots, when the machine was declared without Display: the machine
// package's own error names the .star file's declaration.
func (m *Machine) screen(t testing.TB, method string) *machine.Machine {
	t.Helper()
	if !m.lab.declared(m.name).Display {
		t.Fatalf("vmlab.Machine.%s: machine %s has no display: declare it with lab.Machine(%q, vmlab.Display())", method, m.name, m.name)
	}
	return m.m(t)
}

// ExecOption changes how a command runs (Succeed, Fail, Execute,
// ExecuteResult): Timeout, User, Dir, Env, Stdin. Without them a command
// runs as root in root's home, with the default timeout.
type ExecOption struct{ opt machine.ExecOption }

// Timeout bounds a command; the guest kills its process group at the
// deadline. Zero means the default (15 minutes under TCG, 3 under KVM).
func Timeout(d time.Duration) ExecOption { return ExecOption{machine.Timeout(d)} }

// User runs a command as the named guest user (default root).
func User(name string) ExecOption { return ExecOption{machine.User(name)} }

// Dir sets a command's working directory (default: the user's home).
func Dir(dir string) ExecOption { return ExecOption{machine.Dir(dir)} }

// Env adds KEY=VALUE pairs to a command's environment.
func Env(kv ...string) ExecOption { return ExecOption{machine.Env(kv...)} }

// Stdin feeds r to a command's standard input.
func Stdin(r io.Reader) ExecOption { return ExecOption{machine.Stdin(r)} }

// execOptions unwraps opts for package machine, skipping zero ones.
func execOptions(opts []ExecOption) []machine.ExecOption {
	var out []machine.ExecOption
	for _, o := range opts {
		if o.opt != nil {
			out = append(out, o.opt)
		}
	}
	return out
}

// Name returns the machine's name.
func (m *Machine) Name() string { return m.name }

// Start boots the machine now instead of on its first command.
func (m *Machine) Start(t testing.TB) {
	t.Helper()
	check(t, m.m(t).Start(t.Context()))
}

// Succeed runs command with sh -c and returns its standard output; a
// non-zero exit fails t with the command's output and status.
func (m *Machine) Succeed(t testing.TB, command string, opts ...ExecOption) string {
	t.Helper()
	out, err := m.m(t).Succeed(t.Context(), command, execOptions(opts)...)
	check(t, err)
	return out
}

// Fail runs command and returns its standard output; a zero exit fails t.
func (m *Machine) Fail(t testing.TB, command string, opts ...ExecOption) string {
	t.Helper()
	out, err := m.m(t).Fail(t.Context(), command, execOptions(opts)...)
	check(t, err)
	return out
}

// Execute runs command and returns its exit status and standard output,
// as the NixOS driver's execute does; ExecuteResult returns its standard
// error too. A command that does not exit (a timeout, a machine that went
// down) fails t.
func (m *Machine) Execute(t testing.TB, command string, opts ...ExecOption) (int, string) {
	t.Helper()
	r := m.ExecuteResult(t, command, opts...)
	return r.Status, r.Stdout
}

// Result is what a command did.
type Result struct {
	Status int    // exit status; -1 when a signal killed the command
	Signal string // the signal that killed it, if one did ("SIGKILL")
	// Stdout and Stderr are the command's outputs, each up to 1 MiB (the
	// rest is dropped).
	Stdout, Stderr string
	Elapsed        time.Duration // how long it ran, measured in the guest
}

// ExecuteResult runs command and returns its status and both outputs,
// whatever the status.
func (m *Machine) ExecuteResult(t testing.TB, command string, opts ...ExecOption) Result {
	t.Helper()
	r, err := m.m(t).Execute(t.Context(), command, execOptions(opts)...)
	check(t, err)
	return Result{Status: r.Status, Signal: r.Signal, Stdout: r.Stdout, Stderr: r.Stderr, Elapsed: r.Elapsed}
}

// WaitUntilSucceeds runs command until it exits 0 and returns its output.
//
// Every wait takes a timeout, as the test files' waits do: when it passes,
// the wait fails t. A zero timeout means the default: 15 minutes under TCG,
// 3 under KVM (NixOS's 900 s, scaled).
func (m *Machine) WaitUntilSucceeds(t testing.TB, command string, timeout time.Duration) string {
	t.Helper()
	out, err := m.m(t).WaitUntilSucceeds(t.Context(), command, timeout)
	check(t, err)
	return out
}

// WaitUntilFails runs command until it exits non-zero and returns its output.
func (m *Machine) WaitUntilFails(t testing.TB, command string, timeout time.Duration) string {
	t.Helper()
	out, err := m.m(t).WaitUntilFails(t.Context(), command, timeout)
	check(t, err)
	return out
}

// WaitForFile waits until path exists in the guest.
func (m *Machine) WaitForFile(t testing.TB, path string, timeout time.Duration) {
	t.Helper()
	check(t, m.m(t).WaitForFile(t.Context(), path, timeout))
}

// WaitForOpenPort waits until a TCP connect to localhost:port succeeds in the
// guest.
func (m *Machine) WaitForOpenPort(t testing.TB, port int, timeout time.Duration) {
	t.Helper()
	check(t, m.m(t).WaitForOpenPort(t.Context(), "", port, timeout))
}

// WaitForClosedPort waits until a TCP connect to localhost:port is refused.
func (m *Machine) WaitForClosedPort(t testing.TB, port int, timeout time.Duration) {
	t.Helper()
	check(t, m.m(t).WaitForClosedPort(t.Context(), "", port, timeout))
}

// WaitForOpenUnixSocket waits until the unix socket at path accepts.
func (m *Machine) WaitForOpenUnixSocket(t testing.TB, path string, timeout time.Duration) {
	t.Helper()
	check(t, m.m(t).WaitForOpenUnixSocket(t.Context(), path, timeout))
}

// WaitForConsoleText waits for a console line matching the regular
// expression and returns it.
func (m *Machine) WaitForConsoleText(t testing.TB, regex string, timeout time.Duration) string {
	t.Helper()
	line, err := m.m(t).WaitForConsoleText(t.Context(), regex, timeout)
	check(t, err)
	return line
}

// GetTTYText returns the text on virtual terminal tty (1 for tty1), read
// from the guest kernel's screen buffer as NixOS reads it: every row at
// the terminal's full width, trailing blanks kept, rows joined by
// newlines. It works with or without a display.
func (m *Machine) GetTTYText(t testing.TB, tty int) string {
	t.Helper()
	text, err := m.m(t).GetTTYText(t.Context(), tty)
	check(t, err)
	return text
}

// WaitUntilTTYMatches waits until the text on virtual terminal tty
// matches the regular expression, and returns it. A timeout's failure
// shows the terminal's last text.
func (m *Machine) WaitUntilTTYMatches(t testing.TB, tty int, regex string, timeout time.Duration) string {
	t.Helper()
	text, err := m.m(t).WaitUntilTTYMatches(t.Context(), tty, regex, timeout)
	check(t, err)
	return text
}

// CopyFromHost copies a host file or directory into the guest.
func (m *Machine) CopyFromHost(t testing.TB, src, dst string) {
	t.Helper()
	check(t, m.m(t).CopyFromHost(t.Context(), src, dst))
}

// CopyFromMachine copies a guest file or directory to the host.
func (m *Machine) CopyFromMachine(t testing.TB, src, dst string) {
	t.Helper()
	check(t, m.m(t).CopyFromMachine(t.Context(), src, dst))
}

// Screenshot saves a PNG of the machine's display (declared with
// Display) as path on the host, and returns path.
func (m *Machine) Screenshot(t testing.TB, path string) string {
	t.Helper()
	png, err := m.screen(t, "Screenshot").Screenshot(t.Context())
	check(t, err)
	check(t, os.WriteFile(path, png, 0o644))
	return path
}

// SendKey presses the keys of a NixOS key name together on the machine's
// keyboard: "ctrl-alt-delete", "ret", "shift-0x0c", or one character.
func (m *Machine) SendKey(t testing.TB, key string) {
	t.Helper()
	check(t, m.screen(t, "SendKey").SendKey(t.Context(), key, 0))
}

// SendChars types text on the machine's keyboard (US layout); it
// reaches the root shell on tty1, in fast mode and under systemd.
func (m *Machine) SendChars(t testing.TB, text string) {
	t.Helper()
	check(t, m.screen(t, "SendChars").SendChars(t.Context(), text, 0))
}

// SendMonitorCommand runs a command in QEMU's human monitor and returns
// its output.
func (m *Machine) SendMonitorCommand(t testing.TB, command string) string {
	t.Helper()
	out, err := m.m(t).SendMonitorCommand(t.Context(), command)
	check(t, err)
	return out
}

// GetScreenText returns the text OCR (tesseract) reads on a screenshot of
// the machine's display (declared with Display).
func (m *Machine) GetScreenText(t testing.TB) string {
	t.Helper()
	text, err := m.screen(t, "GetScreenText").GetScreenText(t.Context())
	check(t, err)
	return text
}

// GetScreenTextVariants returns the texts OCR reads on one screenshot of
// the machine's display, one per way of preparing it, in order.
func (m *Machine) GetScreenTextVariants(t testing.TB) []string {
	t.Helper()
	texts, err := m.screen(t, "GetScreenTextVariants").GetScreenTextVariants(t.Context())
	check(t, err)
	return texts
}

// WaitForText waits until the text OCR reads on the machine's display
// matches the regular expression (Go's syntax). When the timeout passes,
// it fails t with the last text read and the path of the last screenshot,
// saved in the machine's directory.
func (m *Machine) WaitForText(t testing.TB, regex string, timeout time.Duration) {
	t.Helper()
	check(t, m.screen(t, "WaitForText").WaitForText(t.Context(), regex, timeout))
}

// WaitForX waits until the guest's X server on display :0 accepts a
// client (the machine is declared with Display). When the timeout
// passes, it fails t with why the last try failed.
func (m *Machine) WaitForX(t testing.TB, timeout time.Duration) {
	t.Helper()
	check(t, m.screen(t, "WaitForX").WaitForX(t.Context(), timeout))
}

// WaitForWindow waits until a window on display :0 has a name matching
// the regular expression (Go's syntax). When the timeout passes, it fails
// t with the window names last read.
func (m *Machine) WaitForWindow(t testing.TB, regex string, timeout time.Duration) {
	t.Helper()
	check(t, m.screen(t, "WaitForWindow").WaitForWindow(t.Context(), regex, timeout))
}

// WindowNames returns the names of the windows on display :0, in the
// order of the window tree, windows without a name left out.
func (m *Machine) WindowNames(t testing.TB) []string {
	t.Helper()
	names, err := m.screen(t, "WindowNames").WindowNames(t.Context())
	check(t, err)
	return names
}

// SendConsole writes chars to the guest's serial console.
func (m *Machine) SendConsole(t testing.TB, chars string) {
	t.Helper()
	check(t, m.m(t).SendConsole(t.Context(), chars))
}

// Shutdown powers the machine off cleanly and waits for it to stop.
func (m *Machine) Shutdown(t testing.TB) {
	t.Helper()
	check(t, m.m(t).Shutdown(t.Context()))
}

// Reboot shuts the machine down cleanly and boots it again.
func (m *Machine) Reboot(t testing.TB) {
	t.Helper()
	check(t, m.m(t).Reboot(t.Context()))
}

// Crash stops the machine at once, like pulling the plug.
func (m *Machine) Crash(t testing.TB) {
	t.Helper()
	m.m(t).Crash()
}

// Block cuts the machine off the given VLANs, or all of its VLANs.
func (m *Machine) Block(t testing.TB, vlans ...int) {
	t.Helper()
	m.lab.Block(t, m.name, vlans...)
}

// Unblock reconnects the machine to the given VLANs, or all of its VLANs.
func (m *Machine) Unblock(t testing.TB, vlans ...int) {
	t.Helper()
	m.lab.Unblock(t, m.name, vlans...)
}

// ForwardPort makes TCP port hostPort on the host's 127.0.0.1 reach
// guestPort on the machine's eth0 (the machine needs UserNet), and returns
// hostPort. A zero hostPort picks a free port: then ForwardPort boots the
// machine, so the port is still free when QEMU binds it. A port another
// process holds fails t, naming the port and the cause.
func (m *Machine) ForwardPort(t testing.TB, hostPort, guestPort int) int {
	t.Helper()
	if hostPort == 0 {
		port, err := m.m(t).ForwardFreePort(t.Context(), guestPort)
		check(t, err)
		return port
	}
	check(t, m.m(t).ForwardPort(t.Context(), hostPort, guestPort))
	return hostPort
}

// WaitForShutdown waits until the machine powers off by itself.
func (m *Machine) WaitForShutdown(t testing.TB, timeout time.Duration) {
	t.Helper()
	check(t, m.m(t).WaitForShutdown(t.Context(), timeout))
}

// Sleep waits d.
func (m *Machine) Sleep(t testing.TB, d time.Duration) {
	t.Helper()
	check(t, m.m(t).Sleep(t.Context(), d))
}

func check(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
