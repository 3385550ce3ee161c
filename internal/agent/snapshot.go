package agent

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/vmlab/vmlab/internal/agentproto"
)

// heldPort is the agent's port when init opened it at the snapshot point:
// a virtio-serial port opens once, so serve goes on with it. Nil on a cold
// boot.
var heldPort *os.File

// snapshotPoint is a snapshot boot's wait (agentproto.SnapshotParam): it
// runs after the kernel's modules are loaded and before anything of one
// machine (mounts, hostname, network, files, services). It tells the host
// it is there, waits for the Restore the host sends to the machine
// restored from the snapshot, makes the machine its own (clock, random
// generator, MAC addresses, the disks' cached blocks and partition
// tables) and returns the machine's boot configuration, from which init
// goes on as a cold boot does.
func snapshotPoint(stages []agentproto.Stage) (agentproto.BootConfig, error) {
	port, err := openPort(agentproto.PortName, 10*time.Second)
	if err != nil {
		return agentproto.BootConfig{}, err
	}
	heldPort = port
	// A shape with NICs has their driver loaded before the point, as
	// every such machine loads it to configure its network: a restored
	// machine then only gives each NIC its own address (restoreMachine).
	if hasVirtioNet("/sys/bus/virtio/devices") {
		if err := loadLazyModules(); err != nil {
			return agentproto.BootConfig{}, err
		}
	}
	// The disks' serials are the shape's: read them once, here.
	scanDisks("/sys/block")
	warmCodecs()
	point := agentproto.SnapshotPoint{Version: agentproto.Version, Stages: stages}
	if err := agentproto.NewWriter(port).WriteFrame(agentproto.TSnapshot, 0, agentproto.Encode(point)); err != nil {
		return agentproto.BootConfig{}, fmt.Errorf("tell the host the snapshot point: %w", err)
	}
	r, err := readRestore(port)
	if err != nil {
		return agentproto.BootConfig{}, err
	}
	if err := restoreMachine(r); err != nil {
		return agentproto.BootConfig{}, err
	}
	return r.Boot, nil
}

// virtioNetID is the virtio device ID of a network card.
const virtioNetID = "0x0001"

// hasVirtioNet says whether the machine has a virtio network card, its
// driver loaded or not: sysVirtio is /sys/bus/virtio/devices.
func hasVirtioNet(sysVirtio string) bool {
	ids, _ := filepath.Glob(filepath.Join(sysVirtio, "*", "device"))
	for _, id := range ids {
		if b, err := os.ReadFile(id); err == nil && strings.TrimSpace(string(b)) == virtioNetID {
			return true
		}
	}
	return false
}

// readRestore reads the Restore frame and nothing after it: Serve reads
// the port next, with its own buffer.
func readRestore(port io.Reader) (agentproto.Restore, error) {
	var r agentproto.Restore
	f, err := agentproto.ReadFrameFrom(port)
	if err != nil {
		return r, fmt.Errorf("read the host's restore frame: %w", err)
	}
	if f.Type != agentproto.TRestore {
		return r, fmt.Errorf("read the host's restore frame: got a %v frame", f.Type)
	}
	if err := json.Unmarshal(f.Payload, &r); err != nil {
		return r, fmt.Errorf("decode the host's restore frame: %w", err)
	}
	return r, nil
}

// restoreMachine makes a machine restored from a snapshot its own.
func restoreMachine(r agentproto.Restore) error {
	if err := checkPointDisk(r.Boot.Disk); err != nil {
		return err
	}
	tv := unix.NsecToTimeval(r.UnixNano)
	if err := unix.Settimeofday(&tv); err != nil {
		return fmt.Errorf("set the clock from the host: %w", err)
	}
	if err := reseed(r.Seed); err != nil {
		return err
	}
	if len(r.MACs) > 0 {
		if err := loadLazyModules(); err != nil {
			return err
		}
		if err := rebindNICs(virtioNetDriver, r.MACs); err != nil {
			return err
		}
	}
	root := ""
	if r.Boot.Disk != nil {
		root, _ = findDisk("/sys/block", r.Boot.Disk.Serial)
	}
	return rereadDisks("/sys/block", root, pointDisk != nil)
}

// Ioctls of random(4) and of block devices.
const (
	rndAddEntropy = 0x40085203 // RNDADDENTROPY
	rndReseedCRNG = 0x5207     // RNDRESEEDCRNG
	blkFlushBuf   = 0x1261     // BLKFLSBUF
	blkRRPart     = 0x125f     // BLKRRPART
)

// reseed adds seed to the kernel's entropy pool, credited, and reseeds the
// generator from it at once: every machine restored from one snapshot
// would otherwise draw the same numbers until the kernel's next scheduled
// reseed.
func reseed(seed []byte) error {
	if len(seed) == 0 {
		return errors.New("reseed the random generator: the host sent no seed")
	}
	f, err := os.OpenFile("/dev/urandom", os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("reseed the random generator: %w", err)
	}
	defer f.Close()
	// struct rand_pool_info { int entropy_count; int buf_size; __u32 buf[]; }
	info := make([]byte, 8+((len(seed)+3)&^3))
	binary.NativeEndian.PutUint32(info[0:], uint32(8*len(seed)))
	binary.NativeEndian.PutUint32(info[4:], uint32(len(seed)))
	copy(info[8:], seed)
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), rndAddEntropy, uintptr(unsafe.Pointer(&info[0]))); e != 0 {
		return fmt.Errorf("reseed the random generator: add the host's seed: %w", e)
	}
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), rndReseedCRNG, 0); e != 0 {
		return fmt.Errorf("reseed the random generator: %w", e)
	}
	return nil
}

// virtioNetDriver is virtio_net's directory in sysfs.
const virtioNetDriver = "/sys/bus/virtio/drivers/virtio_net"

// rebindNICs makes each NIC whose address the snapshot's machine probed
// (a change's From) the one the machine's own device has (To): it
// unbinds virtio_net from the device and binds it again. Unbinding resets
// the device, and QEMU's reset gives it the address of the machine's own
// command line, which the new probe reads: the NIC's permanent address
// (ethtool -P, IFLA_PERM_ADDRESS) is then the machine's and
// addr_assign_type is 0, as on a cold boot, which a change of the
// current address alone (SIOCSIFHWADDR) leaves at the snapshot's and 3.
// The devices go one at a time in the order a cold boot probes them, so
// each gets back its kernel name (eth0, eth1, ...): the lowest free.
// Nothing has used the NICs since the probe: they are down.
func rebindNICs(driver string, changes []agentproto.MACChange) error {
	devs, err := filepath.Glob(filepath.Join(driver, "virtio*"))
	if err != nil {
		return fmt.Errorf("list the NICs: %w", err)
	}
	slices.SortFunc(devs, func(a, b string) int { return virtioIndex(a) - virtioIndex(b) })
	done := 0
	for _, d := range devs {
		dev := filepath.Base(d)
		from, err := nicAddress(d)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(changes, func(c agentproto.MACChange) bool { return strings.EqualFold(c.From, from) })
		if i < 0 {
			continue
		}
		to := changes[i].To
		if err := os.WriteFile(filepath.Join(driver, "unbind"), []byte(dev), 0); err != nil {
			return fmt.Errorf("give NIC %s (%s) the address %s: unbind virtio_net: %w", dev, from, to, err)
		}
		if err := os.WriteFile(filepath.Join(driver, "bind"), []byte(dev), 0); err != nil {
			return fmt.Errorf("give NIC %s (%s) the address %s: bind virtio_net again: %w", dev, from, to, err)
		}
		got, err := nicAddress(d)
		if err != nil {
			return err
		}
		if !strings.EqualFold(got, to) {
			return fmt.Errorf("give NIC %s (%s) the address %s: the device gives %s after a reset: check QEMU's mac= for it", dev, from, to, got)
		}
		done++
	}
	if done != len(changes) {
		return fmt.Errorf("give the NICs their addresses: %d of %d found (changes %v, devices %v)", done, len(changes), changes, devs)
	}
	return nil
}

// virtioIndex is N of a virtio device's path ending in virtioN: the
// order the bus found the devices in.
func virtioIndex(path string) int {
	n, _ := strconv.Atoi(strings.TrimPrefix(filepath.Base(path), "virtio"))
	return n
}

// nicAddress is the address of the NIC of the virtio device at dev (its
// directory in sysfs): the one link under dev/net.
func nicAddress(dev string) (string, error) {
	links, _ := filepath.Glob(filepath.Join(dev, "net", "*", "address"))
	if len(links) != 1 {
		return "", fmt.Errorf("read the address of NIC %s: %d links under it, want 1", filepath.Base(dev), len(links))
	}
	b, err := os.ReadFile(links[0])
	if err != nil {
		return "", fmt.Errorf("read the address of NIC %s: %w", filepath.Base(dev), err)
	}
	return strings.TrimSpace(string(b)), nil
}

// rereadDisks drops what the kernel cached of each virtio disk's blocks
// and reads its partition table again: the snapshot's machine read its
// own disks' first blocks and partition tables when virtio_blk probed
// them, and a restored machine's disks are other files (a kept disk, or
// one the guest partitioned before a reboot). Nothing has a disk open
// yet, so the re-read cannot find a partition busy. The machine's own
// disk, root (its /dev path; "" for none), holds one file system on the
// whole disk, made by vmlab as the snapshot's was, so its partition table
// is not read again (30-40 ms of a restore under TCG), only its blocks
// dropped; and not even those when it is mounted (mounted: the disk
// mounted before the point, of which the machine has a copy).
func rereadDisks(sysBlock, root string, mounted bool) error {
	devs, _ := filepath.Glob(filepath.Join(sysBlock, "vd*"))
	for _, d := range devs {
		name := filepath.Base(d)
		if strings.ContainsAny(name, "0123456789") {
			continue // a partition's blocks are its disk's
		}
		dev := "/dev/" + name
		if mounted && dev == root {
			continue
		}
		if err := rereadDisk(dev, dev != root); err != nil {
			return err
		}
	}
	return nil
}

// rereadDisk flushes the disk at dev's cached blocks and, with partitions,
// re-reads its partition table.
func rereadDisk(dev string, partitions bool) error {
	f, err := os.Open(dev)
	if err != nil {
		return fmt.Errorf("flush the cached blocks of %s: %w", dev, err)
	}
	defer f.Close()
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), blkFlushBuf, 0); e != 0 {
		return fmt.Errorf("flush the cached blocks of %s: %w", dev, e)
	}
	if !partitions {
		return nil
	}
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), blkRRPart, 0); e != 0 {
		return fmt.Errorf("re-read the partition table of %s: %w", dev, e)
	}
	return nil
}

// warmCodecs runs encoding/json once over each message a restored machine
// decodes or encodes first (the Restore frame, the hello, the host's
// requests, a command's result), each filled in to every field, before the
// point: json's caches of their types are then in the snapshot, and a
// restored machine, whose every first run of code is slow under TCG
// (docs/snapshots.md), does not build them again.
func warmCodecs() {
	for _, v := range []any{&agentproto.Restore{}, &agentproto.Request{}} {
		fillIn(reflect.ValueOf(v).Elem(), 4)
		b := agentproto.Encode(v)
		json.Unmarshal(b, reflect.New(reflect.TypeOf(v).Elem()).Interface())
	}
	for _, v := range []any{&agentproto.Hello{}, &agentproto.Result{}} {
		fillIn(reflect.ValueOf(v).Elem(), 4)
		agentproto.Encode(v)
	}
}

// fillIn gives every pointer, slice and map under v, depth levels down,
// one element, so that its encoding holds every field.
func fillIn(v reflect.Value, depth int) {
	if depth == 0 {
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		fillIn(v.Elem(), depth-1)
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fillIn(v.Field(i), depth)
			}
		}
	case reflect.Slice:
		if v.Len() == 0 {
			v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		}
		fillIn(v.Index(0), depth-1)
	case reflect.Map:
		if v.Type().Key().Kind() == reflect.String && v.Len() == 0 {
			m := reflect.MakeMap(v.Type())
			e := reflect.New(v.Type().Elem()).Elem()
			fillIn(e, depth-1)
			m.SetMapIndex(reflect.ValueOf("k").Convert(v.Type().Key()), e)
			v.Set(m)
		}
	}
}
