package machine

import (
	"strings"
	"testing"
)

// TestReadForkServer checks the option's values, its default (on) and its
// error.
func TestReadForkServer(t *testing.T) {
	env := func(v string) func(string) string { return func(string) string { return v } }
	if on, err := readForkServer("", env("")); !on || err != nil {
		t.Errorf("default: got %v, %v; want on", on, err)
	}
	if on, err := readForkServer("", env("off")); on || err != nil {
		t.Errorf("VMLAB_FORKSRV=off: got %v, %v", on, err)
	}
	if on, err := readForkServer("on", env("off")); !on || err != nil {
		t.Errorf("on over VMLAB_FORKSRV=off: got %v, %v", on, err)
	}
	if _, err := readForkServer("", env("no")); err == nil || !strings.Contains(err.Error(), "VMLAB_FORKSRV") || !strings.Contains(err.Error(), "want on or off") {
		t.Errorf("VMLAB_FORKSRV=no: got %v, want an error naming it and on and off", err)
	}
}
