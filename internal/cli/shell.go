package cli

import (
	"context"
	"fmt"
	"os"

	"github.com/vmlab/vmlab/internal/attach"
	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/pty"
)

// runShell is `vmlab shell MACHINE [-- CMD ARGS...]`: a login shell on a
// terminal in a machine of the lab that is up, or the command with stdin,
// stdout, stderr and its exit status passed through (on a terminal when
// stdin is one). It exits with the command's status; 1 when the shell
// could not start (no lab, no such machine, the machine not up).
func runShell(ctx context.Context, e *env, args []string) int {
	fs := newFlagSet(e, "shell", "MACHINE [-- CMD ARGS...]")
	name := labFlag(fs)
	user := fs.String("user", "", "run as this guest `user` (default: root)")
	if ok, code := parse(e, fs, args, func() bool { return fs.NArg() >= 1 }); !ok {
		return code
	}
	target, command := fs.Arg(0), fs.Args()[1:]
	if len(command) > 0 && command[0] == "--" {
		command = command[1:]
	}
	cl := dialLab(ctx, e, *name)
	if cl == nil {
		return exitFail
	}
	defer cl.Close()
	shell := func(ctx context.Context, o machine.ShellOptions) (machine.ShellResult, error) {
		o.User = *user
		return cl.Shell(ctx, target, o)
	}
	var res machine.ShellResult
	var err error
	stdout, okOut := e.stdout.(*os.File)
	stderr, okErr := e.stderr.(*os.File)
	if okOut && okErr {
		res, err = attach.Run(ctx, os.Stdin, stdout, stderr, command, shell)
	} else {
		// A caller in this process with writers of its own (a test, the
		// bench): the output goes there, and there is no input.
		res, err = shell(ctx, machine.ShellOptions{Command: command, Stdout: e.stdout, Stderr: e.stderr})
	}
	if ctx.Err() != nil {
		e.errorf("shell on %s: %v", target, context.Cause(ctx)) // the command got the signal too
		return interruptedCode(ctx)
	}
	if err != nil {
		if okOut && okErr && pty.IsTerminal(os.Stdin) {
			fmt.Fprintln(e.stderr) // the shell's prompt may hold the line
		}
		e.errorf("%v", err)
		return exitFail
	}
	return min(res.Status, 255)
}
