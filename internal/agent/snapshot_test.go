package agent

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/vmlab/vmlab/internal/agentproto"
)

// TestReadRestore checks that the agent at the snapshot point reads the
// Restore frame and not a byte more (Serve reads what follows with its
// own buffer), and refuses another frame.
func TestReadRestore(t *testing.T) {
	var buf bytes.Buffer
	w := agentproto.NewWriter(&buf)
	want := agentproto.Restore{Boot: agentproto.BootConfig{Hostname: "beta"}, UnixNano: 42, Seed: []byte{1, 2, 3},
		MACs: []agentproto.MACChange{{From: "52:54:00:00:00:01", To: "52:54:00:00:00:02"}}}
	w.WriteFrame(agentproto.TRestore, 0, agentproto.Encode(want))
	w.WriteFrame(agentproto.TRequest, 1, []byte(`{"op":"exec"}`))
	r, err := readRestore(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if r.Boot.Hostname != "beta" || r.UnixNano != 42 || len(r.Seed) != 3 || len(r.MACs) != 1 || r.MACs[0].To != "52:54:00:00:00:02" {
		t.Errorf("got %+v, want %+v", r, want)
	}
	f, err := agentproto.NewReader(&buf).ReadFrame()
	if err != nil || f.Type != agentproto.TRequest {
		t.Errorf("the frame after the restore: got %v, %v; want the request, unread", f.Type, err)
	}

	buf.Reset()
	agentproto.NewWriter(&buf).WriteFrame(agentproto.THello, 0, []byte("{}"))
	if _, err := readRestore(&buf); err == nil || !strings.Contains(err.Error(), "hello") {
		t.Errorf("a hello frame: got %v, want an error naming it", err)
	}
	if _, err := readRestore(io.LimitReader(strings.NewReader("\xa7\x10\x00"), 3)); err == nil {
		t.Error("a cut frame: got no error")
	}
}

// TestIsSnapshotBoot checks the parameter is found as a whole field only.
func TestIsSnapshotBoot(t *testing.T) {
	for line, want := range map[string]bool{
		"console=ttyS0 quiet vmlabsnap=1":    true,
		"console=ttyS0 vmlab=eyJob3N0Ijoi":   false,
		"console=ttyS0 xvmlabsnap=1 vmlab=1": false,
		"vmlabsnap=10":                       false,
	} {
		if got := agentproto.IsSnapshotBoot(line); got != want {
			t.Errorf("IsSnapshotBoot(%q) = %v, want %v", line, got, want)
		}
	}
}

// TestParseSnapshotDisk reads the disk a snapshot boot mounts before the
// point: the one SnapshotDiskArg wrote, none without the parameter, and an
// error for a value that is no disk.
func TestParseSnapshotDisk(t *testing.T) {
	d := agentproto.RootDisk{Serial: "vmlab-root", FSType: "ext4", Options: "noinit_itable,no_prefetch_block_bitmaps"}
	got, err := agentproto.ParseSnapshotDisk("console=ttyS0 vmlabsnap=1 " + agentproto.SnapshotDiskArg(d) + " quiet")
	if err != nil || got == nil || *got != d {
		t.Errorf("got %+v, %v; want %+v", got, err, d)
	}
	if got, err := agentproto.ParseSnapshotDisk("console=ttyS0 vmlabsnap=1"); got != nil || err != nil {
		t.Errorf("without the parameter: got %+v, %v; want nothing", got, err)
	}
	for _, bad := range []string{"vmlabsnapdisk=!!", "vmlabsnapdisk=e30"} { // e30: {}
		if got, err := agentproto.ParseSnapshotDisk(bad); err == nil {
			t.Errorf("%s: got %+v, want an error", bad, got)
		}
	}
}

// TestCheckPointDisk: a machine restored from a snapshot that mounted its
// disk before the point must have that disk; any other (or none) is
// refused before anything uses the mount, and without such a snapshot
// every disk passes.
func TestCheckPointDisk(t *testing.T) {
	d := agentproto.RootDisk{Serial: "vmlab-root", FSType: "ext4", Options: "noatime"}
	other := d
	other.Serial = "another"
	if err := checkPointDisk(&other); err != nil {
		t.Errorf("no disk at the point: got %v", err)
	}
	pointDisk = &pointMount{spec: d}
	defer func() { pointDisk = nil }()
	if err := checkPointDisk(&d); err != nil {
		t.Errorf("the disk at the point: got %v", err)
	}
	for _, bad := range []*agentproto.RootDisk{&other, nil} {
		if err := checkPointDisk(bad); err == nil || !strings.Contains(err.Error(), "not the one mounted before the snapshot point") {
			t.Errorf("%+v: got %v, want a refusal", bad, err)
		}
	}
}

// TestHasVirtioNet finds a virtio network card (device ID 1) among the
// virtio devices, and none among a console, a block device and a 9p
// share.
func TestHasVirtioNet(t *testing.T) {
	dir := t.TempDir()
	dev := func(name, id string) {
		os.MkdirAll(filepath.Join(dir, name), 0o755)
		if err := os.WriteFile(filepath.Join(dir, name, "device"), []byte(id+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if hasVirtioNet(dir) {
		t.Error("no devices: got a NIC")
	}
	dev("virtio0", "0x0003") // console
	dev("virtio1", "0x0002") // block
	dev("virtio2", "0x0009") // 9p
	if hasVirtioNet(dir) {
		t.Error("console, block, 9p: got a NIC")
	}
	dev("virtio3", "0x0001")
	if !hasVirtioNet(dir) {
		t.Error("with a network card: got none")
	}
}

// TestRebindNICs runs rebindNICs on a fake virtio_net directory whose
// "bind" gives no device a new address (a QEMU whose reset kept the
// snapshot's): only the changed NIC is unbound and bound, the address
// left over is an error that names the NIC, and a change with no NIC is
// one too. The bus's order is by number: virtio10 after virtio2.
func TestRebindNICs(t *testing.T) {
	driver := t.TempDir()
	for dev, mac := range map[string]string{"virtio1": "52:54:00:00:00:01", "virtio2": "52:54:00:00:00:02", "virtio10": "52:54:00:00:00:03"} {
		dir := filepath.Join(driver, dev, "net", "eth"+strings.TrimPrefix(dev, "virtio"))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "address"), []byte(mac+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"bind", "unbind"} {
		if err := os.WriteFile(filepath.Join(driver, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	err := rebindNICs(driver, []agentproto.MACChange{{From: "52:54:00:00:00:03", To: "52:54:00:00:00:13"}})
	if err == nil || !strings.Contains(err.Error(), "virtio10") || !strings.Contains(err.Error(), "gives 52:54:00:00:00:03 after a reset") {
		t.Errorf("a device that kept its address: got %v, want an error naming virtio10", err)
	}
	for _, f := range []string{"bind", "unbind"} {
		if b, _ := os.ReadFile(filepath.Join(driver, f)); string(b) != "virtio10" {
			t.Errorf("%s got %q, want virtio10 alone", f, b)
		}
	}
	err = rebindNICs(driver, []agentproto.MACChange{{From: "52:54:00:00:00:09", To: "52:54:00:00:00:19"}})
	if err == nil || !strings.Contains(err.Error(), "0 of 1 found") {
		t.Errorf("a change with no NIC: got %v, want an error", err)
	}
	if a, b := virtioIndex(filepath.Join(driver, "virtio2")), virtioIndex(filepath.Join(driver, "virtio10")); a != 2 || b != 10 {
		t.Errorf("the bus's order: virtio2 is %d, virtio10 %d", a, b)
	}
}

// TestWarmCodecs: the messages warmed before the snapshot point have every
// field filled in, down to the nested ones a restored machine meets first
// (a request's command, its network's interfaces, a Restore's image and
// MAC changes), so json has seen each of their types.
func TestWarmCodecs(t *testing.T) {
	warmCodecs() // does not panic on any of the types
	var req agentproto.Request
	fillIn(reflect.ValueOf(&req).Elem(), 4)
	if req.Exec == nil || req.Wait == nil || req.Net == nil || req.Setup == nil || len(req.Services) != 1 || len(req.Units) != 1 {
		t.Errorf("a filled-in request: %+v", req)
	}
	var r agentproto.Restore
	fillIn(reflect.ValueOf(&r).Elem(), 4)
	if r.Boot.Image == nil || r.Boot.Disk == nil || len(r.Boot.Mounts) != 1 || len(r.MACs) != 1 || len(r.Seed) != 1 {
		t.Errorf("a filled-in restore: %+v", r)
	}
	for _, key := range []string{`"image":{`, `"macs":[{`, `"mounts":[{`} {
		if b := agentproto.Encode(r); !strings.Contains(string(b), key) {
			t.Errorf("its encoding lacks %s: %s", key, b)
		}
	}
}
