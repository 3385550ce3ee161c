package cli

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"text/tabwriter"

	"github.com/vmlab/vmlab/internal/vmtest"
)

// TestBenchImageKeys: the figures are in `vmlab bench --json` under their
// stable names, and absent when not measured.
func TestBenchImageKeys(t *testing.T) {
	b, err := json.Marshal(&benchResult{imageBench: imageBench{ImageBuildS: 25.5, ImageBootRatio: 1.02, ImageIORatio: 0.25}})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"image_build_s":25.5`, `"image_boot_ratio":1.02`, `"image_io_ratio":0.25`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("got %s; want %s in it", b, want)
		}
	}
	if b, _ = json.Marshal(&benchResult{}); strings.Contains(string(b), "image_") {
		t.Errorf("got %s; want no image keys when they were not measured", b)
	}
}

// TestBenchImageSkipped: -image "" measures nothing and boots nothing.
func TestBenchImageSkipped(t *testing.T) {
	var r imageBench
	var stderr bytes.Buffer
	if err := r.benchImage(t.Context(), &env{stdout: &stderr, stderr: &stderr}, nil, bootFlags{}, 1, ""); err != nil {
		t.Fatalf("got %v, want the section skipped", err)
	}
	if r.ImageBuildS != 0 || stderr.Len() != 0 {
		t.Errorf("got image_build_s %v and %q; want nothing", r.ImageBuildS, stderr.String())
	}
}

// TestBenchImagePrint: the rows say the figures and whether the targets
// were met; unmeasured, they are absent.
func TestBenchImagePrint(t *testing.T) {
	met := imageBench{ImageBuildS: 25, ImageBootRatio: 1.05, ImageIORatio: 0.3, imageBootS: 2.1, hostBootS: 2,
		imageIO: ioFigure{files: 6000, s: 1}, hostIO: ioFigure{files: 130000, s: 70}, imageRef: "debian:bookworm", imageFSType: "erofs", imageSizeMB: 102}
	missed := met
	missed.ImageBootRatio, missed.ImageIORatio = 1.5, 1.2
	tests := []struct {
		name string
		r    imageBench
		want []string
	}{
		{"met", met, []string{"debian:bookworm + iputils-ping (erofs, 102 MB) 25.0 s", "2.10 / 2.00 s (1.05x) <= 1.1x met",
			"6000 files 1.00 s / 130000 files 70.00 s (0.30x) < 1x met"}},
		{"missed", missed, []string{"(1.50x) <= 1.1x MISSED", "(1.20x) < 1x MISSED"}},
		{"unmeasured", imageBench{}, nil},
	}
	for _, tt := range tests {
		checkRows(t, tt.name, tt.r.print, tt.want)
	}
}

// TestBenchImageVM measures the section once: a bookworm build into an
// empty cache (downloads ~25 s), then one boot of each kind and the find
// on each, of /usr/share/doc (the host's /usr over 9p takes over a
// minute).
func TestBenchImageVM(t *testing.T) {
	boot := vmtest.Boot(t)
	if _, err := exec.LookPath("mmdebstrap"); err != nil {
		t.Skip("no mmdebstrap to build the image")
	}
	r := imageBench{ioDir: "/usr/share/doc"}
	var stderr bytes.Buffer
	if err := r.benchImage(t.Context(), &env{stdout: &stderr, stderr: &stderr}, boot, bootFlags{memory: 512, cpus: 1}, 1, "debian:bookworm"); err != nil {
		t.Fatalf("bench image: %v\n%s", err, stderr.String())
	}
	if r.ImageBuildS <= 0 || r.ImageBootRatio <= 0 || r.ImageIORatio <= 0 || r.imageIO.files == 0 || r.hostIO.files <= r.imageIO.files {
		t.Errorf("got build %v s, boot ratio %v, io ratio %v (%d files on the image, %d on the host); want all measured, the host's /usr the larger",
			r.ImageBuildS, r.ImageBootRatio, r.ImageIORatio, r.imageIO.files, r.hostIO.files)
	}
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	r.print(tw)
	tw.Flush()
	t.Logf("\n%s", b.String())
}
