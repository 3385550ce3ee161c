package agent

// OpServices in a systemd guest, served by the PID-1 agent before it execs
// systemd (the handover, systemd.go): the machine's units go into
// /run/systemd/system, what the test enables gets its links there, and
// vmlab's masks of what the test names go away. systemd then loads them
// with everything else at its start: no daemon-reload.

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vmlab/vmlab/internal/agentproto"
)

// unitName completes a name as systemctl does: "web" is "web.service".
func unitName(name string) string { return agentproto.UnitName(name) }

// unitSearchDirs are where systemd finds system units (agentproto.UnitDirs),
// as paths in the guest.
var unitSearchDirs = func() []string {
	var dirs []string
	for _, d := range agentproto.UnitDirs {
		dirs = append(dirs, "/"+d)
	}
	return dirs
}()

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
		if err := agentproto.CheckUnitName(u.Name); err != nil {
			return false, fmt.Errorf("install unit: %w", err)
		}
		// The unit's file takes the place of vmlab's mask of that name.
		if _, err := unmask(dir, u.Name); err != nil {
			return false, err
		}
		if err := writeFile(filepath.Join(dir, u.Name), u.Text); err != nil {
			return false, fmt.Errorf("install unit %s: %w", u.Name, err)
		}
		if err := unshadow(root, u.Name); err != nil {
			return false, err
		}
		changed = true
	}
	for _, u := range units {
		links, err := installTargets(u)
		if err != nil {
			return false, fmt.Errorf("enable unit %s: %w", u.Name, err)
		}
		for _, w := range links {
			if err := link(filepath.Join(dir, w.dir, w.name), filepath.Join(unitDir, u.Name)); err != nil {
				return false, fmt.Errorf("enable unit %s: %w", u.Name, err)
			}
		}
	}
	for _, name := range enable {
		name = unitName(name)
		if err := agentproto.CheckUnitName(name); err != nil {
			return false, fmt.Errorf("enable unit: %w", err)
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
	named := slices.Concat(enable, nil)
	for _, u := range units {
		named = append(named, u.Name)
	}
	if err := yieldTTY1(dir, named); err != nil {
		return false, err
	}
	unmasked, err := unmaskNeeds(root, named)
	if err != nil {
		return false, err
	}
	return changed || unmasked, nil
}

// yieldTTY1 leaves tty1 to a login of the test's own (tty1Units, named in
// its units or enable): vmlab's console shell is not started beside it.
func yieldTTY1(dir string, named []string) error {
	if !slices.ContainsFunc(named, func(n string) bool { return slices.Contains(tty1Units, unitName(n)) }) {
		return nil
	}
	p := filepath.Join(dir, bootTarget+".wants", consoleUnit)
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("leave tty1 to the test's login: %w", err)
	}
	return nil
}

// unmask removes vmlab's masks of name and of its template, and reports
// whether there was one. Masks the root's administrator made in /etc stay.
func unmask(dir, name string) (bool, error) {
	removed := false
	for _, n := range []string{name, agentproto.TemplateOf(name)} {
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
	for _, n := range []string{name, agentproto.TemplateOf(name)} {
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
// DefaultInstance=. Each value becomes part of a path, so each must make a
// unit name (no '/': "WantedBy=../../x" would write outside the unit
// directory, onto a writable share of the host's).
func installTargets(u agentproto.UnitFile) ([]installLink, error) {
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
	if agentproto.IsTemplate(name) {
		if instance == "" {
			return nil, nil
		}
		name = strings.Replace(name, "@.", "@"+instance+".", 1)
		if err := agentproto.CheckUnitName(name); err != nil {
			return nil, fmt.Errorf("DefaultInstance=%s: %w", instance, err)
		}
	}
	var links []installLink
	for _, t := range wanted {
		if err := agentproto.CheckUnitName(t); err != nil {
			return nil, fmt.Errorf("WantedBy=%s: %w", t, err)
		}
		links = append(links, installLink{t + ".wants", name})
	}
	for _, t := range required {
		if err := agentproto.CheckUnitName(t); err != nil {
			return nil, fmt.Errorf("RequiredBy=%s: %w", t, err)
		}
		links = append(links, installLink{t + ".requires", name})
	}
	return links, nil
}

// unmaskNeeds removes vmlab's masks of what the named units need to start,
// as their unit files (and drop-ins) in root say: the units they require,
// want, bind to, uphold or take sockets from, and the unit a socket, timer,
// path or automount starts, recursively. sys-kernel-config.mount requires
// modprobe@configfs.service; systemd-udevd.service takes the two udevd
// sockets; systemd-udev-trigger.service wants systemd-udevd.service: each
// of those is masked, and a test that names the first would get a unit
// that cannot start. A target reached as a dependency is unmasked but its
// own members are not followed: they are what vmlab masks on purpose
// (sysinit.target's, multi-user.target's). It reports whether it removed
// a mask.
func unmaskNeeds(root string, named []string) (bool, error) {
	dir := filepath.Join(root, unitDir)
	files := readUnitDirs(root)
	seen := make(map[string]bool)
	queue := make([]string, 0, len(named))
	for _, n := range named {
		queue = append(queue, unitName(n))
	}
	removed, depth := false, map[string]int{}
	for len(queue) > 0 {
		name := queue[0]
		queue = queue[1:]
		if seen[name] {
			continue
		}
		seen[name] = true
		r, err := unmask(dir, name)
		if err != nil {
			return false, err
		}
		removed = removed || r
		if depth[name] > 0 && strings.HasSuffix(name, ".target") {
			continue
		}
		for _, dep := range unitNeeds(root, files, name) {
			if !seen[dep] {
				depth[dep] = depth[name] + 1
				queue = append(queue, dep)
			}
		}
	}
	return removed, nil
}

// readUnitDirs lists each of the unit directories under root once (over 9p,
// a lookup per candidate file would cost more than the listing).
func readUnitDirs(root string) map[string]map[string]bool {
	files := make(map[string]map[string]bool)
	for _, d := range unitSearchDirs {
		entries, _ := os.ReadDir(filepath.Join(root, d))
		names := make(map[string]bool, len(entries))
		for _, e := range entries {
			names[e.Name()] = true
		}
		files[d] = names
	}
	return files
}

// needKeys are the settings that make a unit start others.
var needKeys = []string{"Requires", "Wants", "Requisite", "BindsTo", "Upholds", "Sockets"}

// unitNeeds returns the units name pulls in: by needKeys in its file (the
// first found in rank order, its template's for an instance) and its
// drop-ins, by its .wants, .requires and .upholds links, and the unit it
// triggers when it is a socket, timer, path or automount. Names with a
// specifier vmlab does not expand are left out.
func unitNeeds(root string, files map[string]map[string]bool, name string) []string {
	template := agentproto.TemplateOf(name)
	var text strings.Builder
	for _, n := range []string{name, template} {
		if n == "" {
			continue
		}
		if text.Len() == 0 {
			for _, d := range unitSearchDirs {
				if files[d][n] {
					if b, err := os.ReadFile(filepath.Join(root, d, n)); err == nil {
						text.Write(b)
						break
					}
				}
			}
		}
		for _, d := range unitSearchDirs {
			if files[d][n+".d"] {
				confs, _ := filepath.Glob(filepath.Join(root, d, n+".d", "*.conf"))
				for _, c := range confs {
					if b, err := os.ReadFile(c); err == nil {
						text.WriteString("\n")
						text.Write(b)
					}
				}
			}
		}
	}
	values := unitSettings(text.String())
	var deps []string
	for _, k := range needKeys {
		deps = append(deps, values[k]...)
	}
	deps = append(deps, triggered(name, values)...)
	for _, n := range []string{name, template} {
		for _, suffix := range []string{".wants", ".requires", ".upholds"} {
			for _, d := range unitSearchDirs {
				if n != "" && files[d][n+suffix] {
					entries, _ := os.ReadDir(filepath.Join(root, d, n+suffix))
					for _, e := range entries {
						deps = append(deps, e.Name())
					}
				}
			}
		}
	}
	var out []string
	for _, dep := range deps {
		dep = expandSpecifiers(dep, name)
		if agentproto.CheckUnitName(dep) == nil {
			out = append(out, dep)
		}
	}
	return out
}

// unitSettings returns the space-separated values of every setting of a
// unit file's text, by key, whatever the section.
func unitSettings(text string) map[string][]string {
	values := make(map[string][]string)
	for _, line := range strings.Split(text, "\n") {
		key, value, ok := strings.Cut(strings.TrimSpace(line), "=")
		if ok && !strings.HasPrefix(key, "#") && !strings.HasPrefix(key, ";") {
			key = strings.TrimSpace(key)
			values[key] = append(values[key], strings.Fields(value)...)
		}
	}
	return values
}

// triggered returns the unit a socket, timer, path or automount starts:
// the one Service= or Unit= names, else the one of the same name (a
// template for a socket with Accept=yes; a mount for an automount).
func triggered(name string, values map[string][]string) []string {
	typ := agentproto.UnitType(name)
	stem := strings.TrimSuffix(name, typ)
	switch typ {
	case ".socket":
		if s := values["Service"]; len(s) > 0 {
			return s
		}
		if slices.Contains(values["Accept"], "yes") || slices.Contains(values["Accept"], "true") {
			return []string{stem + "@.service"}
		}
		return []string{stem + ".service"}
	case ".timer", ".path":
		if u := values["Unit"]; len(u) > 0 {
			return u
		}
		return []string{stem + ".service"}
	case ".automount":
		return []string{stem + ".mount"}
	}
	return nil
}

// expandSpecifiers expands in dep the specifiers of unit name that make
// unit names (%i and %I the instance, %p the prefix, %n and %N the name);
// a name left with '%' is not one, and the caller drops it.
func expandSpecifiers(dep, name string) string {
	if !strings.Contains(dep, "%") {
		return dep
	}
	typ := agentproto.UnitType(name)
	prefix, instance, _ := strings.Cut(strings.TrimSuffix(name, typ), "@")
	return strings.NewReplacer("%i", instance, "%I", instance, "%p", prefix, "%n", name,
		"%N", strings.TrimSuffix(name, typ), "%%", "%").Replace(dep)
}

// unshadow removes, from the guest's view of /etc, a unit file of the
// host's administrator named as a unit the test declares: /etc's
// directory outranks /run's, so systemd would read the host's file and
// never the test's. The removal is a whiteout in the /etc overlay's upper
// layer, on the machine's disk: the host's file is untouched, and the
// declaration writes the test's unit again at every boot.
func unshadow(root, name string) error {
	p := filepath.Join(root, agentproto.UnitDirs[0], name)
	if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err := os.Remove(p); err != nil {
		return fmt.Errorf("install unit %s: hide the root's /%s: %w", name, agentproto.UnitDirs[0], err)
	}
	return nil
}
