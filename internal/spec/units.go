package spec

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// SystemdPath is where a root's systemd is, the PID 1 of init = "systemd".
const SystemdPath = "/lib/systemd/systemd"

// UnitDirs are the directories, relative to a root, that hold system unit
// files: the administrator's, then the distribution's (merged /usr makes
// the last two one on Debian 12, not everywhere).
var UnitDirs = []string{"etc/systemd/system", "lib/systemd/system", "usr/lib/systemd/system"}

// UnitSuffixes are the unit types a unit name may end with.
var UnitSuffixes = []string{".service", ".socket", ".target", ".timer", ".path", ".mount",
	".automount", ".swap", ".slice", ".scope", ".device"}

// UnitName completes a name as systemctl does: "web" is "web.service".
func UnitName(name string) string {
	if slices.ContainsFunc(UnitSuffixes, func(s string) bool { return strings.HasSuffix(name, s) }) {
		return name
	}
	return name + ".service"
}

// SystemUnits returns the names of the unit files (and links) in the root's
// UnitDirs, sorted and without duplicates.
func SystemUnits(root string) []string {
	var names []string
	for _, d := range UnitDirs {
		entries, _ := os.ReadDir(filepath.Join(root, d))
		for _, e := range entries {
			if !e.IsDir() && slices.ContainsFunc(UnitSuffixes, func(s string) bool { return strings.HasSuffix(e.Name(), s) }) {
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
	at := strings.IndexByte(name, '@')
	dot := strings.LastIndexByte(name, '.')
	return at > 0 && dot > at && slices.Contains(names, name[:at+1]+name[dot:])
}

// hostUnits is SystemUnits("/"), read once.
var hostUnits = sync.OnceValue(func() []string { return SystemUnits("/") })
