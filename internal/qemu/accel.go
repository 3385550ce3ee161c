// Package qemu owns the QEMU process: choosing the accelerator, building the
// command line, starting and supervising the process, and the sockets it
// connects to (QMP and the agent channel). It does not know what runs in the
// guest; package machine does.
package qemu

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Accel is the accelerator QEMU runs with.
type Accel struct {
	Name string // "kvm" or "tcg"
	// Why says why this one was chosen, for the one line the driver prints.
	Why string
}

// TimeoutScale is the factor applied to default timeouts. Under TCG the guest
// runs roughly ten times slower than under KVM (boot: 4.5 s against well
// under a second); 5 keeps defaults generous without waiting for ever.
func (a Accel) TimeoutScale() int {
	if a.Name == "kvm" {
		return 1
	}
	return 5
}

func (a Accel) String() string { return a.Name + " (" + a.Why + ")" }

const kvmGetAPIVersion = 0xAE00 // _IO(KVMIO, 0x00)

// ProbeAccel returns KVM when /dev/kvm opens read-write and answers the API
// version KVM has had since 2007 (12), TCG otherwise, with the reason.
func ProbeAccel() Accel {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return Accel{Name: "tcg", Why: fmt.Sprintf("KVM unusable: %v; software emulation is ~10x slower", err)}
	}
	defer f.Close()
	v, err := unix.IoctlRetInt(int(f.Fd()), kvmGetAPIVersion)
	if err != nil || v != 12 {
		return Accel{Name: "tcg", Why: fmt.Sprintf("KVM unusable: API version %d, %v", v, err)}
	}
	return Accel{Name: "kvm", Why: "/dev/kvm is usable"}
}
