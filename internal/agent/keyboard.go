package agent

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/vmlab/vmlab/internal/agentproto"
)

// The keyboard's acknowledgements (WaitKeys): the agent counts the key
// events the kernel's driver of the emulated PS/2 keyboard delivers, read
// from its evdev device, so that the host types only as far ahead of the
// guest as the keyboard's queue holds (machine.SendChars,
// docs/screens.md). Counting starts at the first WaitKeys and goes on
// for the agent's life; the host asks for a count relative to the one it
// was told first.

// keyboardPhys is the physical path the kernel gives the keyboard on the
// i8042 controller's first port: QEMU's PS/2 keyboard.
const keyboardPhys = "isa0060/serio0/input0"

// inputEventSize is the size of struct input_event on 64-bit Linux: a
// timeval (16 bytes), type and code (2 each), value (4).
const inputEventSize = 24

// keyCounter counts the keyboard's key events once started.
type keyCounter struct {
	once sync.Once
	err  error // why counting could not start

	mu      sync.Mutex
	count   int64
	changed chan struct{} // closed and replaced at each change
	failed  error         // the read that ended the count
}

var keyboard = &keyCounter{changed: make(chan struct{})}

// start opens the keyboard's event device and counts its key events in
// the background, once; it returns why it cannot.
func (k *keyCounter) start() error {
	k.once.Do(func() {
		if !IsGuest() {
			k.err = fmt.Errorf("%s: keys are counted only inside a guest", agentproto.NoKeyCount)
			return
		}
		f, err := openKeyboard("/sys/class/input", "/dev/input")
		if err != nil {
			k.err = err
			return
		}
		go k.read(f)
	})
	return k.err
}

// openKeyboard opens the evdev device whose input device has
// keyboardPhys, as sysfs lists them under class, nodes under dev.
func openKeyboard(class, dev string) (*os.File, error) {
	names, err := filepath.Glob(filepath.Join(class, "event*"))
	if err != nil || len(names) == 0 {
		return nil, fmt.Errorf("%s: find the keyboard: no event device in %s (evdev not loaded?)", agentproto.NoKeyCount, class)
	}
	for _, n := range names {
		phys, err := os.ReadFile(filepath.Join(n, "device", "phys"))
		if err != nil || strings.TrimSpace(string(phys)) != keyboardPhys {
			continue
		}
		f, err := os.Open(filepath.Join(dev, filepath.Base(n)))
		if err != nil {
			return nil, fmt.Errorf("%s: open the keyboard: %w", agentproto.NoKeyCount, err)
		}
		return f, nil
	}
	return nil, fmt.Errorf("%s: find the keyboard: no event device in %s has phys %s", agentproto.NoKeyCount, class, keyboardPhys)
}

// read counts key events from f until a read fails.
func (k *keyCounter) read(f io.ReadCloser) {
	defer f.Close()
	buf := make([]byte, 64*inputEventSize)
	for {
		n, err := f.Read(buf)
		var keys int64
		for off := 0; off+inputEventSize <= n; off += inputEventSize {
			if binary.LittleEndian.Uint16(buf[off+16:]) == evKey {
				keys++
			}
		}
		if keys > 0 || err != nil {
			k.mu.Lock()
			k.count += keys
			if err != nil {
				k.failed = fmt.Errorf("read the keyboard's events: %w", err)
			}
			close(k.changed)
			k.changed = make(chan struct{})
			k.mu.Unlock()
		}
		if err != nil {
			return
		}
	}
}

// now returns the count, a channel closed when it changes, and the error
// that stopped the count.
func (k *keyCounter) now() (int64, <-chan struct{}, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.count, k.changed, k.failed
}

// waitKeys answers a WaitKeys: it returns once the count reaches w.Keys,
// with the count in Output.
func waitKeys(ctx context.Context, k *keyCounter, w agentproto.Wait) agentproto.Result {
	if err := k.start(); err != nil {
		return agentproto.Result{Error: err.Error()}
	}
	if w.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, w.Timeout)
		defer cancel()
	}
	var res agentproto.Result
	for {
		res.Tries++
		n, changed, failed := k.now()
		res.Output = strconv.FormatInt(n, 10)
		if n >= w.Keys {
			return res
		}
		if failed != nil {
			res.Error = failed.Error()
			return res
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ended(ctx, res)
		}
	}
}
