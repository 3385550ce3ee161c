package cli

import (
	"context"
	"errors"
	"flag"
	"path/filepath"
	"sync"

	"github.com/vmlab/vmlab/internal/control"
	"github.com/vmlab/vmlab/internal/lab"
	"github.com/vmlab/vmlab/internal/script"
)

// serveLabs makes every session of f (each test of vmlab run, a REPL)
// reachable from other terminals: its lab is served on a control socket
// while the session is open, so vmlab shell, console and status work on a
// running test's machines as on vmlab up's. name gives the lab's name
// from the session's label. When the name is taken by a lab that is up
// (the same test running in another vmlab), the session goes on without a
// socket, and taken (nil: silent) says so; any other failure to serve is
// told once through notef.
func serveLabs(f *script.File, command string, name func(label string) string, taken, notef func(string, ...any)) {
	abs, _ := filepath.Abs(f.Name)
	var once sync.Once
	f.OnLab = func(label string, l *lab.Lab) func() {
		n := name(label)
		srv, err := control.Listen(n, control.LabInfo{File: abs, Command: command}, control.LabBackend(l), nil)
		var up *control.AlreadyUpError
		switch {
		case errors.As(err, &up):
			if taken != nil {
				taken("lab %s is up already (pid %d): these machines are not reachable with vmlab shell; -lab NAME names them", n, up.Info.Pid)
			}
			return func() {}
		case err != nil:
			once.Do(func() { notef("machines not reachable with vmlab shell: %v", err) })
			return func() {}
		}
		return func() { srv.Close() }
	}
}

// labFlag registers -lab on the flag set of a command that reaches a lab
// that is up (shell, console, down).
func labFlag(fs *flag.FlagSet) *string {
	return fs.String("lab", "", "the lab called `name` (default: the only lab up, else the only one vmlab up or repl serves)")
}

// dialLab connects to the lab name (Dial's choice when ""); on failure it
// says why and returns nil, and the command exits 1.
func dialLab(ctx context.Context, e *env, name string) *control.Client {
	cl, err := control.Dial(ctx, name, e.errorf)
	if err != nil {
		e.errorf("%v", err)
		return nil
	}
	return cl
}
