package machine

import "testing"

// SetSystemctl makes the unit methods run program instead of systemctl,
// for the test t.
func SetSystemctl(t testing.TB, program string) {
	old := systemctl
	systemctl = program
	t.Cleanup(func() { systemctl = old })
}
