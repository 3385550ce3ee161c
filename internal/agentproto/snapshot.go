package agentproto

import "strings"

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
