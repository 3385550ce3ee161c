package machine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// The unit methods of a machine whose init is systemd, as in the NixOS
// driver: each runs systemctl in the guest, as root for the system's
// manager or, given a user, as that user against the user's own manager
// (systemctl --user). WaitForUnit (commands.go) is answered by the agent
// instead, event driven. A fast-mode machine has no systemd: each refuses
// at once, before booting, saying how to declare one.

// systemctl and loginctl are the programs the unit methods run in the
// guest; tests point them at a fake.
var systemctl, loginctl = "systemctl", "loginctl"

// ErrNoSystemd is wrapped by the unit methods' error on a machine whose
// init is not systemd.
var ErrNoSystemd = errors.New(`the machine's init is not systemd: declare it with init = "systemd" (in Go, the option vmlab.Systemd())`)

// Systemctl runs `systemctl q` in the guest and returns its status and
// output, as Execute does: a non-zero status is not an error. q goes to the
// shell as written ("list-jobs --no-pager", "status web 2>&1"). With a
// user it runs `systemctl --user q` as that user, with XDG_RUNTIME_DIR set,
// after starting the user's manager (user@UID.service) when it is not
// active; a user the guest does not know is an error.
func (m *Machine) Systemctl(ctx context.Context, q, user string) (Result, error) {
	if err := m.needSystemd(SystemctlLine(q, user)); err != nil {
		return Result{}, err
	}
	if user == "" {
		return m.Execute(ctx, systemctl+" "+q)
	}
	uid, err := m.userManager(ctx, user, 0)
	if err != nil {
		return Result{}, err
	}
	return m.Execute(ctx, systemctl+" --user "+q, User(user), Env("XDG_RUNTIME_DIR=/run/user/"+uid))
}

// SystemctlLine is how reports show Systemctl(q, user): the command line,
// and whose manager it asked.
func SystemctlLine(q, user string) string {
	if user == "" {
		return "systemctl " + q
	}
	return fmt.Sprintf("systemctl --user %s (as %s)", q, user)
}

// JobQuery is the systemctl query of StartJob and StopJob ("start web"):
// verb and the unit, quoted for the shell when it has to be.
func JobQuery(verb, unit string) string { return verb + " " + shellQuote(unit) }

// StartJob runs `systemctl start unit` (NixOS's start_job): it returns when
// the start job has finished, with systemctl's status and output.
func (m *Machine) StartJob(ctx context.Context, unit, user string) (Result, error) {
	return m.Systemctl(ctx, JobQuery("start", unit), user)
}

// StopJob runs `systemctl stop unit` (NixOS's stop_job).
func (m *Machine) StopJob(ctx context.Context, unit, user string) (Result, error) {
	return m.Systemctl(ctx, JobQuery("stop", unit), user)
}

// GetUnitInfo returns the unit's properties as `systemctl show` lists them
// (ActiveState, SubState, MainPID, ...). A unit systemd cannot find is an
// error, as is systemctl's failure.
func (m *Machine) GetUnitInfo(ctx context.Context, unit, user string) (map[string]string, error) {
	what := "get the properties of " + unitLabel(unit, user)
	props, err := m.show(ctx, what, unit, user)
	if err != nil {
		return nil, err
	}
	if err := m.found(what, unit, props); err != nil {
		return nil, err
	}
	return props, nil
}

// GetUnitProperty returns one property of the unit ("ActiveState"). A
// unit systemd cannot find is an error, unless the property asked for is
// LoadState (which says so), and so is a property systemd does not have.
func (m *Machine) GetUnitProperty(ctx context.Context, unit, property, user string) (string, error) {
	what := fmt.Sprintf("get property %s of %s", property, unitLabel(unit, user))
	if property == "" || strings.ContainsAny(property, "=,\n") {
		return "", fmt.Errorf("%s: %s: want a property name such as ActiveState", m.cfg.Name, what)
	}
	props, err := m.show(ctx, what, unit, user, "--property=LoadState", "--property="+shellQuote(property))
	if err != nil {
		return "", err
	}
	if property != "LoadState" {
		if err := m.found(what, unit, props); err != nil {
			return "", err
		}
	}
	v, ok := props[property]
	if !ok {
		return "", fmt.Errorf("%s: %s: systemd has no property %q (get_unit_info lists them)", m.cfg.Name, what, property)
	}
	return v, nil
}

// RequireUnitState fails unless the unit's ActiveState is state
// ("active", "inactive", "failed", ...); the error names the unit, the
// state wanted and the state it is in.
func (m *Machine) RequireUnitState(ctx context.Context, unit, state, user string) error {
	props, err := m.GetUnitInfo(ctx, unit, user)
	if err != nil {
		return err
	}
	if got := props["ActiveState"]; got != state {
		return fmt.Errorf("%s: require %s to be %s: it is %s (SubState=%s, Result=%s)",
			m.cfg.Name, unitLabel(unit, user), state, got, props["SubState"], props["Result"])
	}
	return nil
}

// show runs `systemctl show unit` with the extra arguments and returns the
// properties it printed.
func (m *Machine) show(ctx context.Context, what, unit, user string, extra ...string) (map[string]string, error) {
	q := "--no-pager show " + shellQuote(unit)
	if len(extra) > 0 {
		q += " " + strings.Join(extra, " ")
	}
	res, err := m.Systemctl(ctx, q, user)
	if err != nil {
		return nil, err
	}
	if res.Status != 0 {
		var b strings.Builder
		fmt.Fprintf(&b, "%s: %s: %s exited with status %d", m.cfg.Name, what, SystemctlLine(q, user), res.Status)
		section(&b, "stderr", res.Stderr)
		return nil, errors.New(b.String())
	}
	return parseProperties(res.Stdout), nil
}

// found says whether systemd found the unit: `systemctl show` of a unit
// that does not exist succeeds, with LoadState=not-found.
func (m *Machine) found(what, unit string, props map[string]string) error {
	if props["LoadState"] != "not-found" {
		return nil
	}
	return fmt.Errorf("%s: %s: systemd has no unit %s (LoadState=not-found): declare it with units = or install the package that ships it",
		m.cfg.Name, what, unit)
}

// parseProperties reads `systemctl show`'s KEY=VALUE lines; a value may
// hold '='.
func parseProperties(out string) map[string]string {
	props := make(map[string]string)
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && k != "" {
			props[k] = v
		}
	}
	return props
}

// userManager returns the user's UID, once the user's systemd manager
// (user@UID.service) is active: systemctl --user needs it, and a guest
// whose init is systemd starts it only for a login. Its runtime directory
// (user-runtime-dir@UID) asks logind over D-Bus, so logind (and with it
// dbus.socket) starts first; lingering keeps the manager up without a
// login session, as logind would stop it otherwise.
//
// Measured under TCG, in a systemd guest with multi-user.target up: a
// user's first Systemctl takes 6.8 s (logind, dbus and the user's manager
// start), later ones 0.7 s (is-active, then the command), against 0.4 s
// for the system's. Without logind, user-runtime-dir@UID fails ("Failed
// to connect to system bus"). timeout bounds it (zero: DefaultTimeout).
func (m *Machine) userManager(ctx context.Context, user string, timeout time.Duration) (string, error) {
	what := "start the systemd manager of user " + user
	u := shellQuote(user)
	cmd := fmt.Sprintf(`uid=$(id -u -- %[1]s); echo "$uid"
%[2]s is-active --quiet "user@$uid.service" && exit
%[2]s start systemd-logind.service
%[3]s enable-linger %[1]s
%[2]s start "user@$uid.service"`, u, systemctl, loginctl)
	res, err := m.Execute(ctx, cmd, Timeout(timeout))
	if err != nil {
		return "", err
	}
	uid := strings.TrimSpace(res.Stdout)
	var b strings.Builder
	switch {
	case uid == "":
		fmt.Fprintf(&b, "%s: %s: the guest has no user %s: declare it with users = [%q]", m.cfg.Name, what, user, user)
	case res.Status != 0:
		fmt.Fprintf(&b, "%s: %s (user@%s.service): exited with status %d", m.cfg.Name, what, uid, res.Status)
	default:
		return uid, nil
	}
	section(&b, "stderr", res.Stderr)
	return "", errors.New(b.String())
}

// needSystemd refuses a unit method on a machine whose init is not
// systemd.
func (m *Machine) needSystemd(what string) error {
	if m.cfg.Systemd() {
		return nil
	}
	return fmt.Errorf("%s: %s: %w", m.cfg.Name, what, ErrNoSystemd)
}

// unitLabel names a unit in errors: "unit web", "unit web of user alice".
func unitLabel(unit, user string) string {
	if user == "" {
		return "unit " + unit
	}
	return "unit " + unit + " of user " + user
}

// shellQuote quotes s for the guest's shell, unless it is a plain word
// (what unit names and properties are).
func shellQuote(s string) string {
	plain := s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("@%+=:,./_-", r))
	}) < 0
	if plain {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
