package machine_test

import (
	"strings"
	"testing"

	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/spec"
	"github.com/vmlab/vmlab/internal/vmtest"
)

// TestVMDisplayInput checks what an X server needs to read the display's
// keyboard, in fast mode and under systemd, neither of which runs udev:
// the keyboard's /dev/input/event device (evdev), and the udev record that
// tags it, which Xorg's udev backend and libinput read through libudev
// (examples/x_terminal.star types into an xterm with it).
func TestVMDisplayInput(t *testing.T) {
	if testing.Short() {
		t.Skip("boots VMs")
	}
	for _, init := range []string{spec.InitFast, spec.InitSystemd} {
		t.Run(init, func(t *testing.T) {
			if init == spec.InitSystemd {
				needsSystemd(t)
			}
			t.Parallel()
			m := vmtest.Machine(t, machine.Config{Machine: spec.Machine{Name: "desk", Init: init, Display: true}, Dir: t.TempDir()})
			ctx := t.Context()
			out, err := m.Succeed(ctx, "grep -l keyboard /sys/class/input/event*/device/name")
			if err != nil {
				t.Fatalf("no keyboard among the evdev devices: %v", err)
			}
			dev := "/dev/input/" + strings.Split(strings.TrimSpace(out), "/")[4]
			props, err := m.Succeed(ctx, "udevadm info --query=property --name="+dev)
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"ID_INPUT=1\n", "ID_INPUT_KEYBOARD=1\n", "USEC_INITIALIZED="} {
				if !strings.Contains(props, want) {
					t.Errorf("udevadm info %s: got\n%s\nwant %q", dev, props, want)
				}
			}
		})
	}
}
