package agent

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The capabilities of QEMU's input devices, as sysfs shows them in a guest
// (Linux 6.1): the PS/2 keyboard, the PS/2 mouse (psmouse) and ACPI's power
// button.
var qemuInputs = []struct {
	name         string
	ev, key, rel string
	want         []string
}{
	{name: "AT Raw Set 2 keyboard", ev: "120013", key: "402000002 3803078f800d001 feffffdfffefffff fffffffffffffffe", rel: "0",
		want: []string{"ID_INPUT=1", "ID_INPUT_KEY=1", "ID_INPUT_KEYBOARD=1"}},
	{name: "ImExPS/2 Generic Explorer Mouse", ev: "7", key: "1f0000 0 0 0 0", rel: "1943",
		want: []string{"ID_INPUT=1", "ID_INPUT_MOUSE=1"}},
	{name: "Power Button", ev: "3", key: "10000000000000 0", rel: "0",
		want: []string{"ID_INPUT=1", "ID_INPUT_KEY=1"}},
	{name: "no capabilities", ev: "0", key: "0", rel: "0", want: []string{"ID_INPUT=1"}},
}

func TestInputProperties(t *testing.T) {
	for _, tc := range qemuInputs {
		t.Run(tc.name, func(t *testing.T) {
			var caps [3]bitmap
			for i, s := range []string{tc.ev, tc.key, tc.rel} {
				var err error
				if caps[i], err = parseBitmap(s); err != nil {
					t.Fatal(err)
				}
			}
			if got := inputProperties(caps[0], caps[1], caps[2]); !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestParseBitmapBad(t *testing.T) {
	if _, err := parseBitmap("12 zz"); err == nil || !strings.Contains(err.Error(), `"12 zz"`) {
		t.Errorf("got %v, want an error naming the bitmap", err)
	}
}

// TestWriteInputRecords writes the records of a keyboard and a mouse from
// a sysfs tree laid out as the kernel's, and checks that each is where
// libudev looks (/run/udev/data/cMAJOR:MINOR) and says what udev would.
func TestWriteInputRecords(t *testing.T) {
	sys, run := t.TempDir(), t.TempDir()
	for i, dev := range []struct{ devnum, ev, key, rel string }{
		{"13:64", qemuInputs[0].ev, qemuInputs[0].key, qemuInputs[0].rel},
		{"13:65", qemuInputs[1].ev, qemuInputs[1].key, qemuInputs[1].rel},
	} {
		dir := filepath.Join(sys, "class/input", "event"+string(rune('0'+i)))
		files := map[string]string{"dev": dev.devnum, "device/capabilities/ev": dev.ev,
			"device/capabilities/key": dev.key, "device/capabilities/rel": dev.rel}
		for name, text := range files {
			os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755)
			if err := os.WriteFile(filepath.Join(dir, name), []byte(text+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	n, err := writeInputRecords(sys, run)
	if err != nil || n != 2 {
		t.Fatalf("got %d records, %v; want 2", n, err)
	}
	for file, want := range map[string]string{
		"c13:64": "E:ID_INPUT=1\nE:ID_INPUT_KEY=1\nE:ID_INPUT_KEYBOARD=1\n",
		"c13:65": "E:ID_INPUT=1\nE:ID_INPUT_MOUSE=1\n",
	} {
		b, err := os.ReadFile(filepath.Join(run, "udev/data", file))
		if err != nil {
			t.Fatal(err)
		}
		got := string(b)
		if !strings.HasPrefix(got, "I:") || !strings.HasSuffix(got, "\n"+want) {
			t.Errorf("%s: got %q, want an I: line then %q", file, got, want)
		}
	}
}

// TestWriteInputRecordsNone: a machine without evdev devices gets no
// database, and no error.
func TestWriteInputRecordsNone(t *testing.T) {
	run := t.TempDir()
	if n, err := writeInputRecords(t.TempDir(), run); n != 0 || err != nil {
		t.Errorf("got %d, %v; want 0, nil", n, err)
	}
	if _, err := os.Stat(filepath.Join(run, "udev")); err == nil {
		t.Error("got /run/udev written, want nothing")
	}
}
