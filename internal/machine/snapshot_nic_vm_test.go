package machine_test

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/vmlab/vmlab/internal/agentproto"
	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/spec"
)

// permAddr prints each named link's permanent address as ethtool -P
// reads it (SIOCETHTOOL, ETHTOOL_GPERMADDR), its current address and
// addr_assign_type, one line per link. The host root has perl, not
// ethtool.
const permAddr = `for l in "$@"; do
perl -e '
socket(my $s, 2, 2, 0) or die "socket: $!";
my $d = pack("LLa32", 0x20, 32, "");
my $ifr = pack("a16 Q x16", $ARGV[0], unpack("Q", pack("p", $d)));
ioctl($s, 0x8946, $ifr) or die "SIOCETHTOOL $ARGV[0]: $!";
my ($cmd, $n, $a) = unpack("LLa32", $d);
print "$ARGV[0] perm ", join(":", map { sprintf "%02x", $_ } unpack("C$n", $a));
' "$l"
echo " addr $(cat /sys/class/net/$l/address) type $(cat /sys/class/net/$l/addr_assign_type)"
done`

// TestSnapshotNICs restores two machines with two NICs each from one
// snapshot: each NIC's current and permanent address is its machine's
// own, assigned as on a cold boot (addr_assign_type 0, where a changed
// address has 3), and the links' names are those of a cold boot of the
// same machine. On the snapshot's own NICs, a permanent address would
// reach systemd's PermanentMACAddress=, udev's ID_NET_NAME_MAC and
// NetworkManager's cloned-mac-address=permanent.
func TestSnapshotNICs(t *testing.T) {
	t.Parallel() // long: beside another, after the sequential tests
	if testing.Short() {
		t.Skip("boots VMs")
	}
	ctx := t.Context()
	rigs := map[string]*snapRig{"on": newRig(t, "on"), "off": newRig(t, "off")}
	start := func(name, snapshot string, host byte) (*machine.Machine, []string) {
		var nics []machine.NIC
		var macs []string
		for i := range 2 {
			fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			peer := os.NewFile(uintptr(fds[1]), "switch end")
			t.Cleanup(func() { peer.Close() })
			mac := fmt.Sprintf("52:54:00:aa:%02x:%02x", host, i+1)
			macs = append(macs, mac)
			nics = append(nics, machine.NIC{VLAN: i + 1, File: os.NewFile(uintptr(fds[0]), "nic"),
				Interface: agentproto.Interface{MAC: mac, Name: fmt.Sprintf("eth%d", i),
					Addrs: []string{fmt.Sprintf("192.168.%d.%d/24", i+1, host)}}})
		}
		m := rigs[snapshot].up(ctx, machine.Config{Machine: spec.Machine{Name: name}, NICs: nics})
		return m, macs
	}
	links := func(m *machine.Machine) (names, nics string) {
		out, err := m.Succeed(ctx, "ls /sys/class/net | tr '\\n' ' '")
		if err != nil {
			t.Fatal(err)
		}
		nicOut, err := m.Succeed(ctx, "set -- eth0 eth1\n"+permAddr)
		if err != nil {
			t.Fatal(err)
		}
		return out, nicOut
	}
	cold, coldMACs := start("cold", "off", 1)
	coldNames, coldNICs := links(cold)
	want := fmt.Sprintf("eth0 perm %s addr %s type 0\neth1 perm %s addr %s type 0\n", coldMACs[0], coldMACs[0], coldMACs[1], coldMACs[1])
	if coldNICs != want {
		t.Fatalf("cold boot: NICs\n%s\nwant\n%s", coldNICs, want)
	}
	start("taker", "on", 2) // takes the snapshot, with its NICs' addresses
	for i, name := range []string{"alpha", "beta"} {
		m, macs := start(name, "on", byte(3+i))
		if !strings.Contains(stagesOf(m), "restore") {
			t.Fatalf("%s: stages %s, want a restore", name, stagesOf(m))
		}
		names, nics := links(m)
		if names != coldNames {
			t.Errorf("%s: links %q, a cold boot's %q", name, names, coldNames)
		}
		want := fmt.Sprintf("eth0 perm %s addr %s type 0\neth1 perm %s addr %s type 0\n", macs[0], macs[0], macs[1], macs[1])
		if nics != want {
			t.Errorf("%s: NICs\n%s\nwant its own, as a cold boot has them\n%s", name, nics, want)
		}
	}
}
