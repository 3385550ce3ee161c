package agent

// The input devices of a machine with a display, described for the X
// server. Xorg finds its keyboard through udev (config/udev.c adds a device
// only when udev gave it ID_INPUT) and its input driver, libinput, opens
// only devices udev tagged (ID_INPUT_KEYBOARD, ID_INPUT_MOUSE, ...). udev
// does not run on a vmlab machine (fast mode has no udevd, and systemd mode
// masks it: its coldplug costs 6.3 s of CPU), so without these records
// Xorg starts with no keyboard and keys typed on the display reach nothing
// (measured: Xorg 21.1.7 and libinput 1.22 on Debian 12 log no input
// device at all).
//
// So the agent writes, for each evdev device present at boot, the record
// udev's database would hold (/run/udev/data/c13:N, the format libudev
// reads): the device is initialized, with the ID_INPUT properties udev's
// input_id builtin gives it from its capabilities. Running udevd for the
// input devices instead (udevd, udevadm trigger --subsystem-match=input,
// udevadm settle) took 1.1-1.5 s under TCG; writing the records takes
// less than a millisecond. A test that enables udev (systemd mode,
// systemd-udev-trigger.service) gets udevd's own records over these.

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Event types and codes from linux/input-event-codes.h.
const (
	evKey     = 0x01
	evRel     = 0x02
	relX      = 0x00
	relY      = 0x01
	btnMisc   = 0x100
	btnMouse  = 0x110
	keyEscape = 1
	keyD      = 31
)

// inputProperties returns the udev properties of an input device whose
// capabilities (sysfs's capabilities/ev, key and rel bitmaps) are given,
// as udev's input_id builtin sets them for keyboards and mice: ID_INPUT
// always; ID_INPUT_KEY with any key below the buttons; ID_INPUT_KEYBOARD
// with every key from Escape to D (the first 31 codes, udev's test); and
// ID_INPUT_MOUSE with relative X and Y axes and a left button.
func inputProperties(ev, key, rel bitmap) []string {
	props := []string{"ID_INPUT=1"}
	if ev.has(evKey) && key.any(keyEscape, btnMisc) {
		props = append(props, "ID_INPUT_KEY=1")
		if key.all(keyEscape, keyD+1) {
			props = append(props, "ID_INPUT_KEYBOARD=1")
		}
	}
	if ev.has(evRel) && rel.has(relX) && rel.has(relY) && key.has(btnMouse) {
		props = append(props, "ID_INPUT_MOUSE=1")
	}
	return props
}

// bitmap is a capability bitmap as sysfs prints it: hexadecimal words
// (the kernel's unsigned long, 64 bits here), the most significant first.
type bitmap []uint64

// parseBitmap parses a sysfs capability bitmap ("120013", "3 0 fffe").
func parseBitmap(s string) (bitmap, error) {
	words := strings.Fields(s)
	b := make(bitmap, len(words))
	for i, w := range words {
		v, err := strconv.ParseUint(w, 16, 64)
		if err != nil {
			return nil, fmt.Errorf("parse capability bitmap %q: %w", s, err)
		}
		b[len(words)-1-i] = v
	}
	return b, nil
}

func (b bitmap) has(bit int) bool {
	return bit/64 < len(b) && b[bit/64]&(1<<(bit%64)) != 0
}

// any reports whether a bit in [from, to) is set.
func (b bitmap) any(from, to int) bool {
	for i := from; i < to; i++ {
		if b.has(i) {
			return true
		}
	}
	return false
}

// all reports whether every bit in [from, to) is set.
func (b bitmap) all(from, to int) bool {
	for i := from; i < to; i++ {
		if !b.has(i) {
			return false
		}
	}
	return true
}

// writeInputRecords writes a udev database record under run (the root's
// /run) for each evdev device sys (/sys) lists, and returns how many.
func writeInputRecords(sys, run string) (int, error) {
	devs, err := filepath.Glob(filepath.Join(sys, "class/input/event*"))
	if err != nil || len(devs) == 0 {
		return 0, err
	}
	dir := filepath.Join(run, "udev/data")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, fmt.Errorf("create udev database: %w", err)
	}
	for _, dev := range devs {
		record, devnum, err := inputRecord(dev)
		if err != nil {
			return 0, err
		}
		if err := os.WriteFile(filepath.Join(dir, "c"+devnum), []byte(record), 0o644); err != nil {
			return 0, fmt.Errorf("write udev record of %s: %w", filepath.Base(dev), err)
		}
	}
	return len(devs), nil
}

// inputRecord returns the udev record of the evdev device at dev
// (/sys/class/input/eventN) and its device number ("13:64").
func inputRecord(dev string) (record, devnum string, err error) {
	read := func(rel string) (string, error) {
		b, err := os.ReadFile(filepath.Join(dev, rel))
		if err != nil {
			return "", fmt.Errorf("read input device %s: %w", filepath.Base(dev), err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	if devnum, err = read("dev"); err != nil {
		return "", "", err
	}
	var caps [3]bitmap
	for i, name := range []string{"ev", "key", "rel"} {
		s, err := read("device/capabilities/" + name)
		if err != nil {
			return "", "", err
		}
		if caps[i], err = parseBitmap(s); err != nil {
			return "", "", fmt.Errorf("read input device %s: %w", filepath.Base(dev), err)
		}
	}
	// I: is when udev initialized the device (USEC_INITIALIZED, in
	// microseconds since boot): libudev reports a device with a record
	// initialized, and Xorg and libinput take only those.
	var b strings.Builder
	fmt.Fprintf(&b, "I:%d\n", uptime()/time.Microsecond)
	for _, p := range inputProperties(caps[0], caps[1], caps[2]) {
		fmt.Fprintf(&b, "E:%s\n", p)
	}
	return b.String(), devnum, nil
}
