package spec

import (
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/vmlab/vmlab/internal/agentproto"
)

// SystemdPath is where a root's systemd is, the PID 1 of init = "systemd".
const SystemdPath = "/lib/systemd/systemd"

// UnitDirs are the directories, relative to a root, that hold the root's
// system unit files: agentproto.UnitDirs but /run's, which is the guest's
// own (TestUnitDirs checks they agree). Messages name the first two, the
// administrator's and the distribution's; systemd's rank order is
// agentproto.UnitDirs'.
var UnitDirs = []string{"etc/systemd/system", "lib/systemd/system", "usr/lib/systemd/system", "usr/local/lib/systemd/system"}

// UnitSuffixes are the unit types a unit name may end with.
var UnitSuffixes = agentproto.UnitSuffixes

// UnitName completes a name as systemctl does: "web" is "web.service".
func UnitName(name string) string { return agentproto.UnitName(name) }

// SystemUnits returns the names of the unit files (and links) in the root's
// UnitDirs, sorted and without duplicates.
func SystemUnits(root string) []string {
	var names []string
	for _, d := range UnitDirs {
		entries, _ := os.ReadDir(filepath.Join(root, d))
		for _, e := range entries {
			if !e.IsDir() && agentproto.UnitType(e.Name()) != "" {
				names = append(names, e.Name())
			}
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// HasUnit reports whether name (completed by UnitName) is among names; an
// instance of a template ("getty@tty1.service") is when its template
// ("getty@.service") is.
func HasUnit(names []string, name string) bool {
	name = UnitName(name)
	if slices.Contains(names, name) {
		return true
	}
	t := agentproto.TemplateOf(name)
	return t != "" && slices.Contains(names, t)
}

// hostUnits is SystemUnits("/"), read once.
var hostUnits = sync.OnceValue(func() []string { return SystemUnits("/") })
