package machine_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmlab/vmlab/internal/agentproto"
	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/spec"
)

// TestNewChecks checks that New refuses a bad declaration with every
// problem, before it creates the machine's directory, and takes zero
// memory and CPUs as the defaults.
func TestNewChecks(t *testing.T) {
	boot := &machine.Boot{}
	tests := []struct {
		name string
		decl spec.Machine
		want []string // "" for none
	}{
		{"zero means the defaults", spec.Machine{Name: "a"}, nil},
		{"name with a slash", spec.Machine{Name: "../x"}, []string{`machine name "../x": a machine name is a host name`}},
		{"every problem", spec.Machine{Name: "a", MemoryMiB: 64, Disks: []int{-1},
			Services: []agentproto.Service{{Name: "web", Command: "x"}, {Name: "web", Command: "y"}}},
			[]string{"memory 64 MiB", "disk 0: size -1 MiB", `service "web" is declared twice`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "m")
			m, err := machine.New(machine.Config{Machine: tt.decl, Boot: boot, Dir: dir})
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				m.Close()
				return
			}
			for _, w := range tt.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("got %v, want an error with %q", err, w)
				}
			}
			if _, err := os.Stat(dir); err == nil {
				t.Errorf("New made %s for a declaration it refused", dir)
			}
		})
	}
}
