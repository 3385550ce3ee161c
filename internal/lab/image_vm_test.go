package lab_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/lab"
	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/spec"
	"github.com/vmlab/vmlab/internal/vmtest"
)

// TestImageBesideHostRoot boots a machine from a Debian bookworm image
// beside one on the host's root, on one VLAN: they reach each other, each
// sees its own root (the image's /etc/debian_version is bookworm's), the
// image machine loads a module from the host's tree although the image
// holds none, and what it writes over the image survives a reboot.
func TestImageBesideHostRoot(t *testing.T) {
	img := vmtest.DebianImage(t)
	cfgs := []machine.Config{
		{Machine: spec.New("deb"), RootImage: img},
		{Machine: spec.New("host")},
	}
	l, err := lab.New(vmtest.Boot(t), t.TempDir(), cfgs, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	ctx := t.Context()
	for _, name := range []string{"deb", "host"} {
		if err := l.Machine(name).Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	deb, host := l.Machine("deb"), l.Machine("host")
	// virtio_net loads early on an image machine (with erofs): its NIC
	// must still skip duplicate address detection, or its IPv6 address is
	// unreachable for its first second up.
	if out, err := deb.Succeed(ctx, "cat /proc/sys/net/ipv6/conf/eth1/accept_dad"); err != nil || out != "0\n" {
		t.Errorf("deb's eth1 accept_dad: got %q, %v; want 0", out, err)
	}
	for _, tt := range []struct{ from, to string }{{"deb", "host"}, {"host", "deb"}} {
		if out, err := l.Machine(tt.from).Succeed(ctx, "ping -c 1 -W 5 "+tt.to); err != nil {
			t.Errorf("%s -> %s: %v: %s", tt.from, tt.to, err, out)
		}
	}
	if out, err := deb.Succeed(ctx, "cat /etc/debian_version"); err != nil || !strings.HasPrefix(out, "12.") {
		t.Errorf("deb's /etc/debian_version: got %q, %v; want bookworm's 12.x", out, err)
	}
	if out, err := host.Succeed(ctx, "cat /etc/debian_version"); err != nil || out != hostFile(t, "/etc/debian_version") {
		t.Errorf("host's /etc/debian_version: got %q, %v; want the host's", out, err)
	}
	// The host's root has QEMU (vmlab found it there); the image has not.
	qemu := vmtest.Boot(t).QEMU
	if res, err := deb.Execute(ctx, "test -e "+qemu); err != nil || res.Status == 0 {
		t.Errorf("deb sees the host's %s (%v, %v): its root is not the image", qemu, res.Status, err)
	}
	if out, err := host.Succeed(ctx, "test -e "+qemu); err != nil {
		t.Errorf("host lacks the host's %s: %v: %s", qemu, err, out)
	}
	if out, err := deb.Succeed(ctx, "modprobe dummy && ip link add d0 type dummy && test -d /sys/module/dummy && grep -c . /proc/mounts"); err != nil {
		t.Errorf("load a host module in the image: %v: %s", err, out)
	}
	if out, err := deb.Succeed(ctx, "echo kept > /etc/kept && echo home > /root/kept && sync"); err != nil {
		t.Fatalf("write over the image: %v: %s", err, out)
	}
	if err := deb.Reboot(ctx); err != nil {
		t.Fatal(err)
	}
	if out, err := deb.Succeed(ctx, "cat /etc/kept /root/kept /etc/debian_version"); err != nil || !strings.HasPrefix(out, "kept\nhome\n12.") {
		t.Errorf("after reboot: got %q, %v; want the files kept over the image", out, err)
	}
}

// hostFile returns the host's file at path.
func hostFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestImageSystemd boots a systemd machine from a Debian image built
// without systemd in its packages (PrepareImages adds it) beside a
// fast-mode machine on the host's root: systemd is PID 1, the image's
// multi-user.target is reached, and the two reach each other by name.
func TestImageSystemd(t *testing.T) {
	if _, err := exec.LookPath("mmdebstrap"); err != nil {
		t.Skip("no mmdebstrap to build a Debian image")
	}
	unit := spec.New("unit")
	unit.Image, unit.Init, unit.Packages = "debian:bookworm", spec.InitSystemd, []string{"iproute2", "iputils-ping"}
	cfgs := []machine.Config{{Machine: unit}, {Machine: spec.New("fast")}}
	boot := vmtest.Boot(t)
	if err := lab.PrepareImages(t.Context(), boot, cfgs, nil, t.Logf); err != nil {
		t.Fatal(err)
	}
	l, err := lab.New(boot, t.TempDir(), cfgs, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	ctx := t.Context()
	for _, name := range []string{"unit", "fast"} {
		if err := l.Machine(name).Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := l.Machine("unit").Succeed(ctx, "cat /proc/1/comm"); err != nil || out != "systemd\n" {
		t.Errorf("unit's PID 1: got %q, %v; want systemd", out, err)
	}
	if err := l.Machine("unit").WaitForUnit(ctx, "multi-user.target", "", time.Minute); err != nil {
		t.Errorf("wait for multi-user.target: %v", err)
	}
	for _, tt := range []struct{ from, to string }{{"unit", "fast"}, {"fast", "unit"}} {
		if out, err := l.Machine(tt.from).Succeed(ctx, "ping -c 1 -W 5 "+tt.to); err != nil {
			t.Errorf("%s -> %s: %v: %s", tt.from, tt.to, err, out)
		}
	}
}
