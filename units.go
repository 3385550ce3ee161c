package vmlab

import (
	"testing"
	"time"
)

// The unit methods of a machine whose init is systemd, as in the NixOS
// driver. Each asks the system's manager, or with UserManager a user's
// (systemctl --user). On a fast-mode machine each fails t at once, before
// booting, saying how to declare a systemd machine.

// UnitOption changes which systemd manager a unit method asks.
type UnitOption struct{ user string }

// UserManager makes a unit method ask the named guest user's own systemd
// manager (user@UID.service, started first when it is not active) about
// the user's units, as NixOS's user= does.
func UserManager(name string) UnitOption { return UnitOption{user: name} }

// unitUser is the user the options name; "": the system's manager.
func unitUser(opts []UnitOption) string {
	user := ""
	for _, o := range opts {
		if o.user != "" {
			user = o.user
		}
	}
	return user
}

// WaitForUnit waits until a unit is active. On a machine whose init is
// systemd it asks systemd for the unit as written ("nfs-server",
// "multi-user.target") and fails t at once when the unit fails, is
// inactive with no job pending, or does not exist, with the unit's status
// and journal tail. In fast mode the unit is a service declared with
// Services: it waits until the service is ready, and fails t at once, with
// the service's last output lines, when it has exited and will not be
// restarted; a system target ("multi-user.target") means every declared
// service is ready.
func (m *Machine) WaitForUnit(t testing.TB, name string, timeout time.Duration, opts ...UnitOption) {
	t.Helper()
	check(t, m.m(t).WaitForUnit(t.Context(), name, unitUser(opts), timeout))
}

// Systemctl runs `systemctl q` in the guest (q goes to the shell as
// written: "list-jobs --no-pager") and returns its exit status and
// standard output, as Execute does.
func (m *Machine) Systemctl(t testing.TB, q string, opts ...UnitOption) (int, string) {
	t.Helper()
	r, err := m.m(t).Systemctl(t.Context(), q, unitUser(opts))
	check(t, err)
	return r.Status, r.Stdout
}

// StartJob runs `systemctl start unit` and returns its exit status and
// output: a job that fails is a non-zero status, not a failure of t.
func (m *Machine) StartJob(t testing.TB, unit string, opts ...UnitOption) (int, string) {
	t.Helper()
	r, err := m.m(t).StartJob(t.Context(), unit, unitUser(opts))
	check(t, err)
	return r.Status, r.Stdout
}

// StopJob runs `systemctl stop unit`, as StartJob starts it.
func (m *Machine) StopJob(t testing.TB, unit string, opts ...UnitOption) (int, string) {
	t.Helper()
	r, err := m.m(t).StopJob(t.Context(), unit, unitUser(opts))
	check(t, err)
	return r.Status, r.Stdout
}

// GetUnitInfo returns the unit's properties as `systemctl show` lists
// them; a unit systemd cannot find fails t.
func (m *Machine) GetUnitInfo(t testing.TB, unit string, opts ...UnitOption) map[string]string {
	t.Helper()
	info, err := m.m(t).GetUnitInfo(t.Context(), unit, unitUser(opts))
	check(t, err)
	return info
}

// GetUnitProperty returns one property of the unit ("ActiveState"). A
// property systemd does not have fails t, and so does a unit it cannot
// find, unless the property is LoadState.
func (m *Machine) GetUnitProperty(t testing.TB, unit, property string, opts ...UnitOption) string {
	t.Helper()
	v, err := m.m(t).GetUnitProperty(t.Context(), unit, property, unitUser(opts))
	check(t, err)
	return v
}

// RequireUnitState fails t unless the unit's ActiveState is state
// ("active", "inactive", "failed", ...), naming the unit, the state wanted
// and the state it is in.
func (m *Machine) RequireUnitState(t testing.TB, unit, state string, opts ...UnitOption) {
	t.Helper()
	check(t, m.m(t).RequireUnitState(t.Context(), unit, state, unitUser(opts)))
}
