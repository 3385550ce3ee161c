package agent

// OpServices in a systemd guest: the machine's units go into
// /run/systemd/system, what the test enables gets its links there, vmlab's
// masks of what the test names go away, systemd reloads and starts
// multi-user.target. The request returns once that start is queued:
// commands work while systemd boots on, and wait_for_unit waits for
// multi-user.target like any unit.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vmlab/vmlab/internal/agentproto"
)

// startUnits serves OpServices in a systemd guest.
func startUnits(ctx context.Context, req agentproto.Request) error {
	changed, err := installUnits("/", req.Services, req.Units, req.Enable)
	if err != nil {
		return err
	}
	// Measured under TCG: daemon-reload 0.3-0.5 s (it reruns the
	// generators that are left). Without a change there is nothing for
	// systemd to read again.
	if changed {
		if err := runTool(ctx, "systemctl", "daemon-reload"); err != nil {
			return fmt.Errorf("reload systemd: %w", err)
		}
	}
	if err := runTool(ctx, "systemctl", "--no-block", "start", "multi-user.target"); err != nil {
		return fmt.Errorf("start multi-user.target: %w", err)
	}
	return nil
}

// unitSuffixes are the unit types (spec.UnitSuffixes).
var unitSuffixes = []string{".service", ".socket", ".target", ".timer", ".path", ".mount",
	".automount", ".swap", ".slice", ".scope", ".device"}

// unitName completes a name as systemctl does (spec.UnitName): "web" is
// "web.service".
func unitName(name string) string {
	if slices.ContainsFunc(unitSuffixes, func(s string) bool { return strings.HasSuffix(name, s) }) {
		return name
	}
	return name + ".service"
}

// templateOf returns the template of an instance ("getty@.service" for
// "getty@tty1.service"), or "" when name is none.
func templateOf(name string) string {
	at, dot := strings.IndexByte(name, '@'), strings.LastIndexByte(name, '.')
	if at <= 0 || dot <= at+1 {
		return ""
	}
	return name[:at+1] + name[dot:]
}

// unitSearchDirs are where systemd finds system units, highest rank
// first; generated ones included, as enabling a generated instance
// (postgresql@15-main.service) is a test's right.
var unitSearchDirs = []string{"/run/systemd/system", "/etc/systemd/system", "/run/systemd/generator",
	"/usr/local/lib/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system", "/run/systemd/generator.late"}

// installUnits writes the units and the services rendered as units into
// root's unitDir, enables them (by their [Install] section) and the units
// enable names (wanted by multi-user.target), and removes vmlab's masks of
// all of them. It reports whether it changed anything systemd must read.
func installUnits(root string, services []agentproto.Service, units []agentproto.UnitFile, enable []string) (bool, error) {
	for _, s := range services {
		u, err := serviceUnit(s)
		if err != nil {
			return false, err
		}
		units = append(units, u)
	}
	dir := filepath.Join(root, unitDir)
	changed := false
	for _, u := range units {
		if err := checkUnitName(u.Name); err != nil {
			return false, fmt.Errorf("install unit %q: %w", u.Name, err)
		}
		// The unit's file takes the place of vmlab's mask of that name.
		if _, err := unmask(dir, u.Name); err != nil {
			return false, err
		}
		if err := writeFile(filepath.Join(dir, u.Name), u.Text); err != nil {
			return false, fmt.Errorf("install unit %s: %w", u.Name, err)
		}
		changed = true
	}
	for _, u := range units {
		for _, w := range installTargets(u) {
			if err := link(filepath.Join(dir, w.dir, w.name), filepath.Join(unitDir, u.Name)); err != nil {
				return false, fmt.Errorf("enable unit %s: %w", u.Name, err)
			}
		}
	}
	for _, name := range enable {
		name = unitName(name)
		if err := checkUnitName(name); err != nil {
			return false, fmt.Errorf("enable unit %q: %w", name, err)
		}
		if _, err := unmask(dir, name); err != nil {
			return false, err
		}
		file, err := findUnit(root, name)
		if err != nil {
			return false, fmt.Errorf("enable unit %s: %w", name, err)
		}
		if err := link(filepath.Join(dir, "multi-user.target.wants", name), file); err != nil {
			return false, fmt.Errorf("enable unit %s: %w", name, err)
		}
		changed = true
	}
	return changed, nil
}

func checkUnitName(name string) error {
	switch {
	case name == "" || strings.ContainsAny(name, "/\x00\n") || name == "." || name == "..":
		return errors.New("a unit name is a file name (\"web.service\")")
	case !slices.ContainsFunc(unitSuffixes, func(s string) bool { return strings.HasSuffix(name, s) }):
		return fmt.Errorf("a unit name ends with its type, one of %s", strings.Join(unitSuffixes, " "))
	}
	return nil
}

// unmask removes vmlab's masks of name and of its template, and reports
// whether there was one. Masks the root's administrator made in /etc stay.
func unmask(dir, name string) (bool, error) {
	removed := false
	for _, n := range []string{name, templateOf(name)} {
		if n == "" {
			continue
		}
		p := filepath.Join(dir, n)
		if target, err := os.Readlink(p); err != nil || (target != "/dev/null" && n != defaultTarget) {
			continue
		}
		if err := os.Remove(p); err != nil {
			return false, fmt.Errorf("unmask %s: %w", n, err)
		}
		removed = true
	}
	return removed, nil
}

// findUnit returns the path in the guest of the file of unit name (its
// template's for an instance) under root.
func findUnit(root, name string) (string, error) {
	for _, n := range []string{name, templateOf(name)} {
		if n == "" {
			continue
		}
		for _, d := range unitSearchDirs {
			if _, err := os.Stat(filepath.Join(root, d, n)); err == nil {
				return filepath.Join(d, n), nil
			}
		}
	}
	return "", fmt.Errorf("no such unit in the machine's root (searched %s)", strings.Join(unitSearchDirs, ", "))
}

// link makes path a symbolic link to target, replacing one that is there.
func link(path, target string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	os.Remove(path)
	return os.Symlink(target, path)
}

// installLink is one link an [Install] section asks for: dir is
// "TARGET.wants" or "TARGET.requires", name the unit (an instance for a
// template with DefaultInstance=).
type installLink struct{ dir, name string }

// installTargets reads u's [Install] section as systemctl enable does for
// WantedBy= and RequiredBy=. A template is enabled only with a
// DefaultInstance=.
func installTargets(u agentproto.UnitFile) []installLink {
	var wanted, required []string
	instance := ""
	section := ""
	sc := bufio.NewScanner(strings.NewReader(u.Text))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "[") {
			section = line
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if section != "[Install]" || !ok {
			continue
		}
		switch strings.TrimSpace(key) {
		case "WantedBy":
			wanted = append(wanted, strings.Fields(value)...)
		case "RequiredBy":
			required = append(required, strings.Fields(value)...)
		case "DefaultInstance":
			instance = strings.TrimSpace(value)
		}
	}
	name := u.Name
	if t := templateOf(name); t == "" && strings.Contains(name, "@.") {
		if instance == "" {
			return nil
		}
		name = strings.Replace(name, "@.", "@"+instance+".", 1)
	}
	var links []installLink
	for _, t := range wanted {
		links = append(links, installLink{t + ".wants", name})
	}
	for _, t := range required {
		links = append(links, installLink{t + ".requires", name})
	}
	return links
}
