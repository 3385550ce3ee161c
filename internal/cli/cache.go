package cli

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vmlab/vmlab/internal/cachefile"
	"github.com/vmlab/vmlab/internal/machine"
)

// runCache shows the cache (`vmlab cache`, `vmlab cache list`) or empties
// it of everything no running vmlab uses (`vmlab cache clean`).
func runCache(ctx context.Context, e *env, args []string) int {
	action := "list"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		action, args = args[0], args[1:]
	}
	fs := newFlagSet(e, "cache", "")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: vmlab cache [list|clean] [flags]\n\n"+
			"list (the default) shows each entry's size, last use and whether a running vmlab uses it;\n"+
			"clean removes every entry no running vmlab uses.\n\n")
		fs.PrintDefaults()
	}
	dirFlag := fs.String("dir", "", "cache `directory` (default: $XDG_CACHE_HOME/vmlab or ~/.cache/vmlab)")
	if ok, code := parse(e, fs, args, func() bool { return fs.NArg() == 0 && (action == "list" || action == "clean") }); !ok {
		return code
	}
	dir, err := machine.CacheDir(*dirFlag)
	if err != nil {
		e.errorf("%v", err)
		return exitFail
	}
	snaps := machine.SnapshotDir(dir)
	if action == "clean" {
		removed, err := cachefile.Clean(dir)
		if err != nil {
			e.errorf("clean cache %s: %v", dir, err)
			return exitFail
		}
		gone, err := machine.CleanSnapshots(snaps)
		if err != nil {
			e.errorf("clean snapshots %s: %v", snaps, err)
			return exitFail
		}
		removed = append(removed, gone...)
		fmt.Fprintf(e.stdout, "removed %d entries, %s, from %s\n", len(removed), size(cachefile.Total(removed)), dir)
	}
	entries, err := listCache(dir, snaps)
	if err != nil {
		e.errorf("list cache %s: %v", dir, err)
		return exitFail
	}
	if action == "list" {
		printCache(e.stdout, dir, entries)
	} else if len(entries) > 0 {
		// What clean left is in use, or could not be removed (another
		// user's, say): the count says which, not "in use" for all.
		inUse := 0
		for _, en := range entries {
			if en.InUse {
				inUse++
			}
		}
		fmt.Fprintf(e.stdout, "kept %d entries, %s: %d in use by a running vmlab, %d that could not be removed (vmlab cache list shows them)\n",
			len(entries), size(cachefile.Total(entries)), inUse, len(entries)-inUse)
	}
	return exitOK
}

// listCache returns the cache's files and its snapshots (named
// snapshots/KEY), least recently used first.
func listCache(dir, snaps string) ([]cachefile.Entry, error) {
	entries, err := cachefile.List(dir)
	if err != nil {
		return nil, err
	}
	more, err := machine.ListSnapshots(snaps)
	if err != nil {
		return nil, err
	}
	for _, s := range more {
		s.Name = filepath.Base(snaps) + "/" + s.Name
		entries = append(entries, s)
	}
	slices.SortFunc(entries, func(a, b cachefile.Entry) int { return a.Used.Compare(b.Used) })
	return entries, nil
}

func printCache(w io.Writer, dir string, entries []cachefile.Entry) {
	l := cachefile.DefaultLimits
	sl := machine.SnapshotLimits
	fmt.Fprintf(w, "cache %s: %s in %d entries (bound: %s, and %d days unused; snapshots: %s, and %d days; vmlab cache clean empties it)\n",
		dir, size(cachefile.Total(entries)), len(entries), size(l.MaxBytes), int(l.MaxAge.Hours()/24), size(sl.MaxBytes), int(sl.MaxAge.Hours()/24))
	if len(entries) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "\nSIZE\tLAST USED\tIN USE\tNAME\n")
	for i := len(entries) - 1; i >= 0; i-- { // most recently used first
		e := entries[i]
		inUse := ""
		if e.InUse {
			inUse = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", size(e.Size), e.Used.Format(time.DateTime), inUse, e.Name)
	}
	tw.Flush()
}

// size formats n bytes in MiB or GiB.
func size(n int64) string {
	if n >= 1<<30 {
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}
