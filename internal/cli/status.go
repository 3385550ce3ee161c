package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/vmlab/vmlab/internal/control"
)

// runStatus is `vmlab status`: the labs that are up (or the one -lab
// names), their machines, states, addresses and forwards.
func runStatus(ctx context.Context, e *env, args []string) int {
	fs := newFlagSet(e, "status", "")
	name := fs.String("lab", "", "show only the lab called `name`")
	asJSON := fs.Bool("json", false, "print a JSON array of the labs (docs/control-protocol.md: the status message's status)")
	if ok, code := parse(e, fs, args, func() bool { return fs.NArg() == 0 }); !ok {
		return code
	}
	names := []string{*name}
	if *name == "" {
		var err error
		if names, err = control.Labs(e.errorf); err != nil {
			e.errorf("%v", err)
			return exitInternal
		}
	}
	labs := []control.LabStatus{}
	for _, n := range names {
		st, err := labStatus(ctx, n, e.errorf)
		if err != nil && *name == "" && !stillUp(n) {
			// Listed, then gone before we asked (a test of vmlab run
			// that ended): not an error of status.
			continue
		}
		if err != nil {
			e.errorf("%v", err)
			return exitFail
		}
		labs = append(labs, st)
	}
	if *asJSON {
		b, _ := json.MarshalIndent(labs, "", "  ")
		fmt.Fprintf(e.stdout, "%s\n", b)
		return exitOK
	}
	if len(labs) == 0 {
		fmt.Fprintln(e.stdout, "no lab is up (vmlab up FILE starts one)")
	}
	for _, st := range labs {
		fmt.Fprintf(e.stdout, "lab %s: %s, vmlab %s pid %d, up %s\n", st.Name, st.File, cmp.Or(st.Command, "up"), st.Pid, time.Since(st.Started).Round(time.Second))
		printMachines(e.stdout, st.Machines)
	}
	return exitOK
}

// stillUp says whether the lab called name is still among those up.
func stillUp(name string) bool {
	up, err := control.Labs(nil)
	return err != nil || slices.Contains(up, name)
}

// labStatus asks one lab for its status.
func labStatus(ctx context.Context, name string, logf func(string, ...any)) (control.LabStatus, error) {
	cl, err := control.Dial(ctx, name, logf)
	if err != nil {
		return control.LabStatus{}, err
	}
	defer cl.Close()
	return cl.Status(ctx)
}
