package machine

import "testing"

// SetUnitPrograms makes the unit methods run these programs instead of
// systemctl and loginctl, for the test t.
func SetUnitPrograms(t testing.TB, systemctlPath, loginctlPath string) {
	oldS, oldL := systemctl, loginctl
	systemctl, loginctl = systemctlPath, loginctlPath
	t.Cleanup(func() { systemctl, loginctl = oldS, oldL })
}
