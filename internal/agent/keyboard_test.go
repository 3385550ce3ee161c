package agent

import (
	"context"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/agentproto"
)

// TestOpenKeyboard finds the PS/2 keyboard's event device by its
// physical path among the input devices sysfs lists, and says what is
// missing when there is none.
func TestOpenKeyboard(t *testing.T) {
	class, dev := t.TempDir(), t.TempDir()
	for name, phys := range map[string]string{"event0": "isa0060/serio1/input0", "event1": keyboardPhys + "\n", "event2": "usb-0000:00:1d.0-1/input0"} {
		if err := os.MkdirAll(filepath.Join(class, name, "device"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(class, name, "device", "phys"), []byte(phys), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dev, name), []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f, err := openKeyboard(class, dev)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(f)
	f.Close()
	if string(b) != "event1" {
		t.Errorf("opened %q, want event1, the keyboard's", b)
	}
	os.Remove(filepath.Join(class, "event1", "device", "phys"))
	if _, err := openKeyboard(class, dev); err == nil || !strings.Contains(err.Error(), agentproto.NoKeyCount) || !strings.Contains(err.Error(), keyboardPhys) {
		t.Errorf("without the keyboard: got %v, want an error with %q naming its phys", err, agentproto.NoKeyCount)
	}
	if _, err := openKeyboard(t.TempDir(), dev); err == nil || !strings.Contains(err.Error(), "evdev") {
		t.Errorf("without event devices: got %v, want it to suspect evdev", err)
	}
}

// TestWaitKeys counts key events (not the scancode and sync events around
// them) as the driver's device gives them, answers a wait as soon as the
// count is reached, with the count, and times out with the count so far.
func TestWaitKeys(t *testing.T) {
	r, w := io.Pipe()
	k := &keyCounter{changed: make(chan struct{})}
	k.once.Do(func() {})
	go k.read(r)
	event := func(typ, code uint16, value int32) []byte {
		b := make([]byte, inputEventSize)
		binary.LittleEndian.PutUint16(b[16:], typ)
		binary.LittleEndian.PutUint16(b[18:], code)
		binary.LittleEndian.PutUint32(b[20:], uint32(value))
		return b
	}
	const evMsc, mscScan, evSyn = 4, 4, 0
	press := func(code uint16, value int32) []byte {
		var b []byte
		b = append(b, event(evMsc, mscScan, int32(code))...)
		b = append(b, event(evKey, code, value)...)
		return append(b, event(evSyn, 0, 0)...)
	}
	ctx := t.Context()
	done := make(chan agentproto.Result)
	go func() {
		done <- waitKeys(ctx, k, agentproto.Wait{Kind: agentproto.WaitKeys, Keys: 3, Timeout: time.Minute})
	}()
	w.Write(press(30, 1))
	w.Write(press(30, 0))
	select {
	case res := <-done:
		t.Fatalf("the wait for 3 ended after 2 key events: %+v", res)
	case <-time.After(50 * time.Millisecond):
	}
	w.Write(append(press(42, 1), press(42, 0)...))
	if res := <-done; res.Error != "" || res.TimedOut || res.Output != "4" {
		t.Errorf("got %+v, want the count, 4", res)
	}
	res := waitKeys(ctx, k, agentproto.Wait{Kind: agentproto.WaitKeys, Keys: 5, Timeout: 20 * time.Millisecond})
	if !res.TimedOut || res.Output != "4" {
		t.Errorf("a wait for more than came: got %+v, want it timed out with the count, 4", res)
	}
	w.CloseWithError(io.ErrUnexpectedEOF)
	res = waitKeys(context.Background(), k, agentproto.Wait{Kind: agentproto.WaitKeys, Keys: 5, Timeout: time.Minute})
	if !strings.Contains(res.Error, "read the keyboard's events") {
		t.Errorf("after the device failed: got %+v, want the read's error", res)
	}
}
