package machine_test

import (
	"os"
	"testing"

	"github.com/vmlab/vmlab/internal/vmtest"
)

// TestInitramfsForDisplay: machines with a display boot an archive of
// their own, with the display's modules; the others boot the one without
// them, no larger than before.
func TestInitramfsForDisplay(t *testing.T) {
	boot := vmtest.Boot(t)
	plain, err := boot.InitramfsFor(false)
	if err != nil || plain != boot.Initramfs {
		t.Fatalf("without a display: got %q, %v; want %q", plain, err, boot.Initramfs)
	}
	display, err := boot.InitramfsFor(true)
	if err != nil {
		t.Fatal(err)
	}
	a, errA := os.Stat(plain)
	b, errB := os.Stat(display)
	if errA != nil || errB != nil {
		t.Fatalf("stat the archives: %v, %v", errA, errB)
	}
	// Debian 6.1's bochs and its DRM dependencies are 2 MB.
	if b.Size()-a.Size() < 1<<20 {
		t.Errorf("got archives of %d and %d bytes, want the display's larger by the DRM modules", a.Size(), b.Size())
	}
	t.Logf("initramfs %d bytes, with the display's modules %d", a.Size(), b.Size())
}
