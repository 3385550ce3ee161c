package vmlab

import (
	"path/filepath"
	"testing"
	"time"
)

// TestScreenMethodWithoutDisplay: a screen method of the Go API on a
// machine declared without Display fails the test before anything boots,
// naming the Go option (not the .star file's display = True).
func TestScreenMethodWithoutDisplay(t *testing.T) {
	modules := moduleTree(t)
	for _, tc := range []struct {
		method string
		call   func(m *Machine, tb testing.TB)
	}{
		{"Screenshot", func(m *Machine, tb testing.TB) { m.Screenshot(tb, filepath.Join(t.TempDir(), "x.png")) }},
		{"SendKey", func(m *Machine, tb testing.TB) { m.SendKey(tb, "ret") }},
		{"SendChars", func(m *Machine, tb testing.TB) { m.SendChars(tb, "ls\n") }},
		{"GetScreenText", func(m *Machine, tb testing.TB) { m.GetScreenText(tb) }},
		{"GetScreenTextVariants", func(m *Machine, tb testing.TB) { m.GetScreenTextVariants(tb) }},
		{"WaitForText", func(m *Machine, tb testing.TB) { m.WaitForText(tb, "x", time.Second) }},
		{"WaitForX", func(m *Machine, tb testing.TB) { m.WaitForX(tb, time.Second) }},
		{"WaitForWindow", func(m *Machine, tb testing.TB) { m.WaitForWindow(tb, "x", time.Second) }},
		{"WindowNames", func(m *Machine, tb testing.TB) { m.WindowNames(tb) }},
	} {
		t.Run(tc.method, func(t *testing.T) {
			var plain *Machine
			errs, l := declare(t, modules, func(l *Lab) { plain = l.Machine("plain") })
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			rec := &recorder{TB: t}
			func() {
				defer func() {
					if r := recover(); r != nil && r != (failNow{}) {
						panic(r)
					}
				}()
				tc.call(plain, rec)
			}()
			want := "vmlab.Machine." + tc.method + `: machine plain has no display: declare it with lab.Machine("plain", vmlab.Display())`
			if len(rec.errs) != 1 || rec.errs[0] != want {
				t.Errorf("got %q, want [%q]", rec.errs, want)
			}
			if l.built != nil {
				t.Error("the lab was built: want the error before anything starts")
			}
		})
	}
}
