package qemu

import (
	"fmt"
	"os"
	"strings"
)

// NIC is a network card on a virtual switch: QEMU sends and receives frames
// as datagrams on File, one end of a socketpair whose other end is a switch
// port.
type NIC struct {
	ID   string // netdev id, e.g. "vlan1"
	MAC  string
	File *os.File
	// Mcast, instead of File, puts the NIC on QEMU's own multicast network
	// (group:port on loopback). Any local process can read and inject
	// frames there, so vmlab uses it only as the benchmark's baseline.
	Mcast string
}

// UserNet is eth0, QEMU's user-mode network, kept only for forwarding host
// ports into the guest: restrict=on cuts the guest off from the host and the
// outside world.
type UserNet struct {
	// Forwards are host 127.0.0.1 ports to guest ports, set at start;
	// more can be added at run time over QMP (hostfwd_add).
	Forwards []Forward
}

// Forward maps a TCP port on the host's 127.0.0.1 to a guest port.
type Forward struct{ HostPort, GuestPort int }

// UserNetID is the netdev id of the user-mode NIC, for hostfwd_add.
const UserNetID = "user0"

// nicFiles returns the files QEMU inherits for the NICs, in order: the
// first is fd 3 in QEMU (exec.Cmd.ExtraFiles).
func (c Config) nicFiles() []*os.File {
	var files []*os.File
	for _, n := range c.NICs {
		if n.File != nil {
			files = append(files, n.File)
		}
	}
	return files
}

// nicArgs returns the NICs' arguments.
//
// romfile= keeps QEMU from loading the iPXE option ROM for each NIC, which
// the firmware would otherwise scan at every boot.
func (c Config) nicArgs() []string {
	var args []string
	if c.UserNet != nil {
		opts := []string{"user", "id=" + UserNetID, "restrict=on", "net=10.0.2.0/24"}
		for _, f := range c.UserNet.Forwards {
			opts = append(opts, fmt.Sprintf("hostfwd=tcp:127.0.0.1:%d-:%d", f.HostPort, f.GuestPort))
		}
		args = append(args, "-netdev", strings.Join(opts, ","),
			"-device", "virtio-net-pci,netdev="+UserNetID+",mac="+UserNetMAC+",romfile=")
	}
	fd := 3
	for _, n := range c.NICs {
		netdev := fmt.Sprintf("dgram,id=%s,local.type=fd,local.str=%d", n.ID, fd)
		if n.File == nil {
			netdev = fmt.Sprintf("socket,id=%s,mcast=%s,localaddr=127.0.0.1", n.ID, n.Mcast)
		} else {
			fd++
		}
		args = append(args, "-netdev", netdev,
			"-device", "virtio-net-pci,netdev="+n.ID+",mac="+n.MAC+",romfile=")
	}
	return args
}

// UserNetMAC is eth0's MAC address.
const UserNetMAC = "52:54:00:12:00:00"
