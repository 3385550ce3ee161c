// Package cli owns vmlab's command line: parsing, the subcommands and their
// exit codes. Main is callable in-process, so tests run the CLI without
// building a binary.
package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"syscall"

	"github.com/vmlab/vmlab/internal/machine"

	"golang.org/x/sys/unix"
)

// Exit codes (docs/cli.md). A signal that stops a run exits 128 + its
// number, as a shell reports it: 130 for SIGINT, 143 for SIGTERM.
const (
	exitOK       = 0
	exitFail     = 1 // a command or test failed
	exitUsage    = 2 // bad usage or bad input
	exitInternal = 3 // vmlab failed: a panic, or it could not run, report or clean up
)

// interrupted is the cause of the run's context when a signal stopped it.
type interrupted struct{ sig os.Signal }

func (e *interrupted) Error() string {
	sig, ok := e.sig.(syscall.Signal)
	switch {
	case sig == syscall.SIGINT:
		return "interrupted by Ctrl-C (SIGINT)"
	case ok && unix.SignalName(sig) != "":
		return "interrupted by " + unix.SignalName(sig)
	}
	return "interrupted by " + e.sig.String()
}

// interruptedCode is the exit code of a run ctx's signal stopped: 128 + the
// signal's number.
func interruptedCode(ctx context.Context) int {
	var in *interrupted
	if errors.As(context.Cause(ctx), &in) {
		if sig, ok := in.sig.(syscall.Signal); ok {
			return 128 + int(sig)
		}
	}
	return 128 + int(syscall.SIGINT)
}

// signalContext returns a context that SIGINT and SIGTERM cancel with an
// *interrupted cause, and the function that stops listening (later signals
// then have their default effect again) and waits for its goroutine. While
// intr has a taker (the REPL runs a call), SIGINT goes to it instead.
func signalContext(intr *interrupts) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case sig := <-sigs:
				if sig == os.Interrupt && intr.take() {
					continue
				}
				cancel(&interrupted{sig})
				return
			case <-stop:
				return
			}
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		close(stop)
		<-done
		cancel(nil)
	}
}

type command struct {
	name, summary string
	run           func(ctx context.Context, env *env, args []string) int
	hidden        bool // a helper other commands run, not for users
}

var commands = []command{
	{"run", "run test files (.star): each test on fresh machines, with reports", runRun, false},
	{"repl", "a Starlark REPL on a test file's machines: run statements and tests, inspect", runRepl, false},
	{"exec", "boot a machine, run a shell command in it, print its output", runExec, false},
	{"up", "boot a file's machines and keep them up, reachable from other terminals", runUp, false},
	{"shell", "a shell in a machine of a lab that is up, or a command (-- CMD ARGS...)", runShell, false},
	{"console", "the serial console of a machine of a lab that is up, read and write", runConsole, false},
	{"status", "the labs that are up: machines, states, addresses, forwarded ports", runStatus, false},
	{"down", "stop a lab that is up", runDown, false},
	{"bench", "measure boot time, command round trips and wait latency", runBench, false},
	{"cache", "show the cache (kernel, initramfs) or clean it: vmlab cache [list|clean]", runCache, false},
	{"image", "list, build or remove machine images: vmlab image ls|build|rm", runImage, false},
	{"report", "merge the outputs of a sharded run into one report: vmlab report merge -out DIR SHARD_DIR...", runReport, false},
	{"version", "print vmlab's version: its module version and VCS revision", runVersion, false},
	{"guest-listen", "benchmark helper run inside the guest", runGuestListen, true},
	{"guest-tput", "benchmark helper run inside the guest", runGuestTput, true},
}

// env is what a subcommand reads, writes to and boots with.
type env struct {
	stdin          io.Reader // the REPL's statements
	stdout, stderr io.Writer
	intr           *interrupts // where SIGINT goes while the REPL runs a call
}

func (e *env) errorf(format string, args ...any) {
	fmt.Fprintf(e.stderr, "vmlab: "+format+"\n", args...)
}

// Main runs the command line args and returns the exit code. SIGINT and
// SIGTERM cancel the run: machines are stopped and temporary files removed
// before it returns. A panic on Main's goroutine is exitInternal with its
// stack on stderr.
func Main(args []string, stdout, stderr io.Writer) (code int) {
	e := &env{stdin: os.Stdin, stdout: stdout, stderr: stderr, intr: &interrupts{}}
	ctx, stop := signalContext(e.intr)
	defer stop()
	defer func() {
		if v := recover(); v != nil {
			e.errorf("internal error (please report it with this stack): panic: %v\n%s", v, debug.Stack())
			code = exitInternal
		}
	}()
	switch {
	case len(args) == 0:
		usage(stderr)
		return exitUsage
	case args[0] == "help" && len(args) > 1:
		// vmlab help run is vmlab run -h; vmlab help report merge is
		// vmlab report merge -h.
		return Main(append(slices.Clone(args[1:]), "-h"), stdout, stderr)
	case args[0] == "help" || args[0] == "-h" || args[0] == "-help" || args[0] == "--help":
		usage(stdout)
		return exitOK
	}
	for _, c := range commands {
		if c.name == args[0] {
			return c.run(ctx, e, args[1:])
		}
	}
	e.errorf("unknown command %q", args[0])
	usage(stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "usage: vmlab COMMAND [flags]\n\ncommands:\n")
	for _, c := range commands {
		if c.hidden {
			continue
		}
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nvmlab help COMMAND (or vmlab COMMAND -h) shows a command's flags.\n")
}

// bootFlags are the flags every booting command has.
type bootFlags struct {
	opts   machine.BootOptions
	memory int
	cpus   int
}

func (b *bootFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&b.opts.Kernel, "kernel", "", "kernel image `path` (default: newest /boot/vmlinuz-* with modules)")
	fs.StringVar(&b.opts.Modules, "modules", "", "kernel module tree `dir` (default: /lib/modules/VERSION)")
	fs.StringVar(&b.opts.QEMU, "qemu", "", "qemu-system-x86_64 `path` (default: from PATH)")
	fs.StringVar(&b.opts.Accel, "accel", "", "force the accelerator: kvm or tcg (default: kvm when usable)")
	fs.StringVar(&b.opts.Screen, "screen", "", "watch the displays of machines with one: vnc (a unix socket each) or window (default: $VMLAB_SCREEN, else none)")
	fs.StringVar(&b.opts.Snapshot, "snapshot", "", "restore machines from a snapshot of their shape's boot, their files over 9p: on or off (cold boots, over virtiofs where it works) (default: $VMLAB_SNAPSHOT, else on)")
	fs.IntVar(&b.memory, "memory", 512, "guest memory in `MiB`")
	fs.IntVar(&b.cpus, "cpus", 1, "guest CPUs")
}

// prepare prepares the boot and says once which accelerator runs the VMs.
func (b *bootFlags) prepare(e *env) (*machine.Boot, error) {
	boot, err := machine.PrepareBoot(b.opts)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(e.stderr, "vmlab: kernel %s, accelerator %s\n", boot.Kernel.Version, boot.Accel)
	return boot, nil
}

func newFlagSet(e *env, name, args string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: vmlab %s [flags] %s\n", name, args)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args, flags before the arguments; when it returns false, the
// command returns code: exitOK after -h, with the help on stdout (it was
// asked for), exitUsage after a bad flag or when valid says the arguments
// are wrong, with the usage on stderr.
func parse(e *env, fs *flag.FlagSet, args []string, valid func() bool) (ok bool, code int) {
	return parseWith(e, fs, valid, func() error { return fs.Parse(args) })
}

// parseMixed is parse with flags after the arguments too, as go test takes
// them (vmlab run a.star -v -run x); "--" ends the flags.
func parseMixed(e *env, fs *flag.FlagSet, args []string, valid func() bool) (ok bool, code int) {
	return parseWith(e, fs, valid, func() error { return parseInterleaved(fs, args) })
}

func parseWith(e *env, fs *flag.FlagSet, valid func() bool, parseArgs func() error) (ok bool, code int) {
	var out bytes.Buffer
	fs.SetOutput(&out)
	err := parseArgs()
	fs.SetOutput(e.stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		e.stdout.Write(out.Bytes())
		return false, exitOK
	case err != nil:
		e.stderr.Write(out.Bytes())
		return false, exitUsage
	case !valid():
		fs.Usage()
		return false, exitUsage
	}
	return true, 0
}

// parseInterleaved parses the flags among args wherever they are; the
// other arguments, in order, become fs.Args().
func parseInterleaved(fs *flag.FlagSet, args []string) error {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			positional = append(positional, rest...)
			break
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
	// After "--" Parse takes every argument as it is: fs.Args() is them.
	return fs.Parse(append([]string{"--"}, positional...))
}
