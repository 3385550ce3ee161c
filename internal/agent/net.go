package agent

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/vmlab/vmlab/internal/agentproto"
)

// configureNetwork names the NICs the host described (found by MAC address),
// gives them their addresses, brings them up and writes /etc/hosts. It uses
// ioctls rather than netlink: a handful of calls, no dependency.
func configureNetwork(cfg *agentproto.Network) error {
	if len(cfg.Interfaces) == 0 && len(cfg.Hosts) == 0 {
		return nil
	}
	// Duplicate address detection holds IPv6 addresses back for a second or
	// more; on a private test network there is nothing to detect.
	for _, f := range []string{"all", "default"} {
		os.WriteFile("/proc/sys/net/ipv6/conf/"+f+"/accept_dad", []byte("0"), 0o644)
	}
	if len(cfg.Interfaces) > 0 {
		if err := loadLazyModules(); err != nil {
			return err
		}
	}
	current := make([]string, len(cfg.Interfaces))
	want := make([]string, len(cfg.Interfaces))
	for i, ifc := range cfg.Interfaces {
		name, err := findNIC(ifc.MAC, 10*time.Second)
		if err != nil {
			return fmt.Errorf("configure %s: %w", ifc.Name, err)
		}
		current[i], want[i] = name, ifc.Name
	}
	links, err := os.ReadDir("/sys/class/net")
	if err != nil {
		return fmt.Errorf("list the links: %w", err)
	}
	taken := make(map[string]bool, len(links))
	for _, l := range links {
		taken[l.Name()] = true
	}
	if err := nameNICs(current, want, taken, renameLink); err != nil {
		return err
	}
	for _, ifc := range cfg.Interfaces {
		if err := configureInterface(ifc); err != nil {
			return err
		}
	}
	return writeHosts(cfg.Hosts)
}

// findNIC returns the name of the link with the MAC address. Links appear
// shortly after virtio_net loads; they are looked for every millisecond.
func findNIC(mac string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		byMAC, err := interfacesByMAC()
		if err != nil {
			return "", err
		}
		if name, ok := byMAC[strings.ToLower(mac)]; ok {
			return name, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no NIC with MAC %s after %v (have %v)", mac, timeout, byMAC)
		}
		time.Sleep(time.Millisecond)
	}
}

func interfacesByMAC() (map[string]string, error) {
	links, err := filepath.Glob("/sys/class/net/*/address")
	if err != nil {
		return nil, err
	}
	m := make(map[string]string)
	for _, l := range links {
		b, err := os.ReadFile(l)
		if err == nil {
			m[strings.TrimSpace(string(b))] = filepath.Base(filepath.Dir(l))
		}
	}
	return m, nil
}

// nameNICs renames the NICs named current to want (current[i] becomes
// want[i]); taken holds every link's name. The kernel's names (eth0, eth1,
// ...) and ours overlap, and a rename costs a guest under TCG 15-45 ms, so
// a NIC already named so stays, a free name is taken at once (which may
// free another's), and only NICs that hold each other's names go through a
// temporary one.
func nameNICs(current, want []string, taken map[string]bool, rename func(from, to string) error) error {
	var pending []int
	for i := range current {
		if current[i] != want[i] {
			pending = append(pending, i)
		}
	}
	move := func(i int, to string) error {
		if err := rename(current[i], to); err != nil {
			return err
		}
		delete(taken, current[i])
		taken[to], current[i] = true, to
		return nil
	}
	for progress := true; progress; {
		progress = false
		for k := 0; k < len(pending); k++ {
			if i := pending[k]; !taken[want[i]] {
				if err := move(i, want[i]); err != nil {
					return err
				}
				pending = slices.Delete(pending, k, k+1)
				k--
				progress = true
			}
		}
	}
	for n, i := range pending {
		if err := move(i, fmt.Sprintf("vmlabnic%d", n)); err != nil {
			return err
		}
	}
	for _, i := range pending {
		if err := move(i, want[i]); err != nil {
			return err
		}
	}
	return nil
}

// configureInterface brings up the NIC named ifc.Name and gives it its
// addresses.
func configureInterface(ifc agentproto.Interface) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("configure %s: %w", ifc.Name, err)
	}
	defer unix.Close(fd)
	// The NIC may have existed before configureNetwork set the default
	// (virtio_net is loaded early on a machine image, with erofs), and
	// the kernel applies the larger of "all" and the NIC's own setting.
	os.WriteFile("/proc/sys/net/ipv6/conf/"+ifc.Name+"/accept_dad", []byte("0"), 0o644)
	if err := setFlags(fd, ifc.Name, unix.IFF_UP); err != nil {
		return err
	}
	for _, a := range ifc.Addrs {
		p, err := netip.ParsePrefix(a)
		if err != nil {
			return fmt.Errorf("configure %s: address %q: %w", ifc.Name, a, err)
		}
		if p.Addr().Is4() {
			err = addIPv4(fd, ifc.Name, p)
		} else {
			err = addIPv6(fd, ifc.Name, p)
		}
		if err != nil {
			return fmt.Errorf("configure %s: add %s: %w", ifc.Name, a, err)
		}
	}
	return nil
}

// renameLink renames a link (it must be down, as a fresh NIC is).
func renameLink(from, to string) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("rename %s: %w", from, err)
	}
	defer unix.Close(fd)
	return rename(fd, from, to)
}

func rename(fd int, from, to string) error {
	var req struct {
		name, newName [unix.IFNAMSIZ]byte
		_             [8]byte
	}
	copy(req.name[:], from)
	copy(req.newName[:], to)
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCSIFNAME, uintptr(unsafe.Pointer(&req))); errno != 0 {
		return fmt.Errorf("rename %s to %s: %w", from, to, errno)
	}
	return nil
}

func setFlags(fd int, name string, flags uint16) error {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return fmt.Errorf("bring up %s: %w", name, err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring up %s: %w", name, err)
	}
	ifr.SetUint16(ifr.Uint16() | flags)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring up %s: %w", name, err)
	}
	return nil
}

func addIPv4(fd int, name string, p netip.Prefix) error {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	addr := p.Addr().As4()
	if err := ifr.SetInet4Addr(addr[:]); err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFADDR, ifr); err != nil {
		return err
	}
	mask := net.CIDRMask(p.Bits(), 32)
	if err := ifr.SetInet4Addr(mask); err != nil {
		return err
	}
	return unix.IoctlIfreq(fd, unix.SIOCSIFNETMASK, ifr)
}

// addIPv6 adds an address with SIOCSIFADDR on an AF_INET6 socket, which
// takes a struct in6_ifreq. The link's index comes from an ioctl on fd, an
// AF_INET socket (net.InterfaceByName dumps every link over netlink: 50 ms
// more of a guest under TCG).
func addIPv6(fd int, name string, p netip.Prefix) error {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFINDEX, ifr); err != nil {
		return fmt.Errorf("find the link's index: %w", err)
	}
	fd6, err := unix.Socket(unix.AF_INET6, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd6)
	req := struct {
		addr      [16]byte
		prefixLen uint32
		ifindex   int32
	}{addr: p.Addr().As16(), prefixLen: uint32(p.Bits()), ifindex: int32(ifr.Uint32())}
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd6), unix.SIOCSIFADDR, uintptr(unsafe.Pointer(&req))); errno != 0 {
		return errno
	}
	return nil
}

// writeHosts writes /etc/hosts: localhost, then the test's machines.
func writeHosts(hosts []agentproto.HostEntry) error {
	var b strings.Builder
	b.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	for _, h := range hosts {
		for _, a := range h.Addrs {
			fmt.Fprintf(&b, "%s\t%s\n", a, h.Name)
		}
	}
	if err := os.WriteFile("/etc/hosts", []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("write /etc/hosts: %w", err)
	}
	return nil
}
