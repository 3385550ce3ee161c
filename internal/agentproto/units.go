package agentproto

// Unit names and unit directories, shared by the host (spec's checks when
// a file loads) and the agent (installing a systemd guest's units), so
// that what the host accepts is what the guest installs.

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/vmlab/vmlab/internal/near"
)

// UnitSuffixes are the unit types a unit name may end with.
var UnitSuffixes = []string{".service", ".socket", ".target", ".timer", ".path", ".mount",
	".automount", ".swap", ".slice", ".scope", ".device"}

// UnitDirs are the directories, relative to a root, where systemd (252)
// finds system unit files, highest rank first as systemd.unit(5) lists
// them: the administrator's, the run time's (where vmlab writes a guest's
// units, masks and links), then the distribution's (merged /usr makes the
// last two one on Debian 12, not everywhere). systemd's transient,
// control, attached and generator directories are left out: vmlab writes
// none of them, and a systemd guest runs no generator.
var UnitDirs = []string{"etc/systemd/system", "run/systemd/system", "usr/local/lib/systemd/system",
	"lib/systemd/system", "usr/lib/systemd/system"}

// RunUnitDir is the one of UnitDirs that belongs to the running guest
// rather than to its root's files.
const RunUnitDir = "run/systemd/system"

// UnitType returns the type suffix name ends with (".service"), "" when
// none of UnitSuffixes.
func UnitType(name string) string {
	for _, s := range UnitSuffixes {
		if strings.HasSuffix(name, s) {
			return s
		}
	}
	return ""
}

// UnitName completes a name as systemctl does: "web" is "web.service".
func UnitName(name string) string {
	if UnitType(name) != "" {
		return name
	}
	return name + ".service"
}

// TemplateOf returns the template of an instance ("getty@.service" for
// "getty@tty1.service"), or "" when name is none.
func TemplateOf(name string) string {
	at, dot := strings.IndexByte(name, '@'), strings.LastIndexByte(name, '.')
	if at <= 0 || dot <= at+1 {
		return ""
	}
	return name[:at+1] + name[dot:]
}

// IsTemplate reports whether a unit name is a template ("getty@.service").
func IsTemplate(name string) bool {
	return strings.HasSuffix(strings.TrimSuffix(name, UnitType(name)), "@")
}

// unitPrefix is what a unit name may be before its type suffix, as
// systemd's unit_name_is_valid has it: letters, digits and ":-_.\", then
// an '@' that starts an instance, empty in a template. No '/': a unit
// name is a file name in a unit directory.
var unitPrefix = regexp.MustCompile(`^[A-Za-z0-9:_.\\-]+(@[A-Za-z0-9:_.\\@-]*)?$`)

// MaxUnitName is systemd's UNIT_NAME_MAX less its NUL.
const MaxUnitName = 255

// UnitNameRule says in words what a unit name may be.
var UnitNameRule = "NAME.TYPE, TYPE one of " + strings.Join(unitTypes(), ", ") +
	"; NAME of letters, digits, ':', '-', '_', '.' and '\\', with one '@' for a template (NAME@.service) or an instance (NAME@INSTANCE.service)"

func unitTypes() []string {
	var out []string
	for _, s := range UnitSuffixes {
		out = append(out, strings.TrimPrefix(s, "."))
	}
	return out
}

// CheckUnitName reports what is wrong with a unit's full name: no type
// suffix or an unknown one (with the name it likely means), characters
// systemd refuses ('/', spaces, ...), more than MaxUnitName bytes.
func CheckUnitName(name string) error {
	suffix := UnitType(name)
	if suffix == "" {
		switch dot := strings.LastIndexByte(name, '.'); {
		case dot < 0 && unitPrefix.MatchString(name):
			return fmt.Errorf("unit name %q: a unit name ends with its type (did you mean %s.service?)", name, name)
		case dot > 0 && unitPrefix.MatchString(name[:dot]):
			typ := name[dot+1:]
			return fmt.Errorf("unit name %q: %q is no unit type (want %s)%s", name, typ, strings.Join(unitTypes(), ", "), near.Hint(typ, unitTypes()))
		}
		return fmt.Errorf("unit name %q: want %s", name, UnitNameRule)
	}
	if !unitPrefix.MatchString(strings.TrimSuffix(name, suffix)) {
		return fmt.Errorf("unit name %q: want %s", name, UnitNameRule)
	}
	if len(name) > MaxUnitName {
		return fmt.Errorf("unit name %.20q...: %d bytes, and systemd takes at most %d", name, len(name), MaxUnitName)
	}
	return nil
}
