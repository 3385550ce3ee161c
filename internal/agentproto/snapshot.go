package agentproto

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
)

// SnapshotParam is the kernel command-line parameter of a snapshot boot
// ("vmlabsnap=1"), which a machine of a shape not yet snapshotted boots
// with instead of BootParam: the agent loads the kernel's modules, opens
// its port, sends Snapshot and waits there. The host saves the machine's
// state (the snapshot) while it waits; the machine restored from it, and
// every later one of that shape, gets its BootConfig in a Restore frame and
// goes on from that point (docs/snapshots.md). The command line carries
// nothing of one machine, so no machine restored from the snapshot reads
// another's configuration in /proc/cmdline.
const SnapshotParam = "vmlabsnap"

// IsSnapshotBoot reports whether the kernel command line is a snapshot
// boot's.
func IsSnapshotBoot(cmdline string) bool {
	for _, f := range strings.Fields(cmdline) {
		if f == SnapshotParam+"=1" {
			return true
		}
	}
	return false
}

// SnapshotDiskParam is the kernel command-line parameter of a snapshot
// boot whose machine's own disk the host made for it, empty, as it makes
// every new machine's: its value is the RootDisk as base64url-encoded
// JSON. The agent mounts that disk before the point, so that a restored
// machine does not mount it again; the host then gives every machine
// restored from that snapshot a copy of the disk as it was at the point
// (docs/snapshots.md "The disk at the point"). A machine whose disk has
// a content of its own (a reboot, a kept disk) is another shape, whose
// snapshot boot has no such parameter.
const SnapshotDiskParam = "vmlabsnapdisk"

// SnapshotDiskArg is the SnapshotDiskParam field for d.
func SnapshotDiskArg(d RootDisk) string {
	return SnapshotDiskParam + "=" + base64.RawURLEncoding.EncodeToString(Encode(d))
}

// ParseSnapshotDisk returns the disk a snapshot boot's command line asks
// to mount before the point, or nil when it asks for none.
func ParseSnapshotDisk(cmdline string) (*RootDisk, error) {
	for _, field := range strings.Fields(cmdline) {
		v, ok := strings.CutPrefix(field, SnapshotDiskParam+"=")
		if !ok {
			continue
		}
		var d RootDisk
		b, err := base64.RawURLEncoding.DecodeString(v)
		if err == nil {
			err = json.Unmarshal(b, &d)
		}
		if err == nil && (d.Serial == "" || d.FSType == "") {
			err = fmt.Errorf("no serial or file system type in %s", b)
		}
		if err != nil {
			return nil, fmt.Errorf("decode %s: %w", SnapshotDiskParam, err)
		}
		return &d, nil
	}
	return nil, nil
}

// SnapshotPoint is the payload of a Snapshot frame: the agent is at the
// snapshot point and waits for a Restore.
type SnapshotPoint struct {
	Version int     `json:"version"` // the protocol version, as Hello's
	Stages  []Stage `json:"stages"`  // the boot's stages so far (init, modules)
}

// Restore is the payload of a Restore frame: what a machine restored from
// a snapshot needs to go on as itself. Everything the snapshot's own boot
// could not know, or knew as another machine's, is here.
type Restore struct {
	Boot BootConfig `json:"boot"`
	// UnixNano is the host's clock when it sent the frame: the guest's
	// clock is the snapshot's until it is set.
	UnixNano int64 `json:"unix_nano"`
	// Seed is host randomness the guest adds to its kernel's pool before
	// it reseeds its generator: every machine restored from one snapshot
	// starts with the same generator state.
	Seed []byte `json:"seed"`
	// MACs are the NICs whose address the snapshot's device state gave
	// them (the snapshot's machine's) and the address each must have.
	MACs []MACChange `json:"macs,omitempty"`
}

// MACChange renames a NIC's hardware address From to To.
type MACChange struct {
	From string `json:"from"`
	To   string `json:"to"`
}
