package lab_test

import (
	"os"
	"strings"
	"testing"

	"github.com/vmlab/vmlab/internal/image"
	"github.com/vmlab/vmlab/internal/lab"
	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/spec"
)

// TestPrepareImagesChecksFirst: a bad image reference is a declaration
// problem, found before the store is asked for anything (its directory
// is not even made).
func TestPrepareImagesChecksFirst(t *testing.T) {
	dir := t.TempDir() + "/images"
	m := spec.New("deb")
	m.Image = "bookworm"
	err := lab.PrepareImages(t.Context(), &machine.Boot{}, []machine.Config{{Machine: m}}, &image.Store{Dir: dir}, nil)
	if err == nil || !strings.Contains(err.Error(), `machine deb: parse image "bookworm": no scheme`) {
		t.Errorf("got %v, want the reference's problem, naming the machine", err)
	}
	if _, err := os.Stat(dir); err == nil {
		t.Errorf("the store's directory %s was made: the store was asked", dir)
	}
}

// TestNewRefusesUnpreparedImage: a machine declared with an image that
// PrepareImages did not resolve would boot the host's root: New refuses.
func TestNewRefusesUnpreparedImage(t *testing.T) {
	m := spec.New("deb")
	m.Image = "debian:bookworm"
	_, err := lab.New(&machine.Boot{}, t.TempDir(), []machine.Config{{Machine: m}}, nil)
	if err == nil || !strings.Contains(err.Error(), "machine deb: image debian:bookworm was not prepared") {
		t.Errorf("got %v, want the unprepared image refused", err)
	}
}
