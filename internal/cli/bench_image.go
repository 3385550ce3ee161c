package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/vmlab/vmlab/internal/image"
	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/spec"
)

// imageBench is the machine image section of `vmlab bench`
// (docs/images.md): building a small image, and booting and reading files
// on it against the host's root.
type imageBench struct {
	// ImageBuildS is the first build of a small image (a Debian minbase
	// with benchImagePackage) into an empty cache: the archive's index,
	// the downloads, mmdebstrap and the erofs file.
	ImageBuildS float64 `json:"image_build_s,omitempty"`
	// ImageBootRatio is a machine on that (now cached) image, Start to the
	// first Succeed("true"), over a host-root machine's: medians of
	// alternating boots in the same run. The target is 1.1.
	ImageBootRatio float64 `json:"image_boot_ratio,omitempty"`
	// ImageIORatio is benchImageIO's time per file found on a freshly
	// booted image machine over that on a freshly booted host-root machine
	// (its root over the default transport, 9p or virtiofs): below 1, the
	// image is faster. Per file, because the image's /usr holds far fewer
	// files than the host's.
	ImageIORatio float64 `json:"image_io_ratio,omitempty"`

	// What the ratios are made of, for the table.
	imageBootS, hostBootS float64
	imageIO, hostIO       ioFigure
	imageRef, imageFSType string
	imageSizeMB           float64
	// ioDir is the tree benchImageIO counts; empty: /usr. Tests count
	// a smaller one (the host's /usr over 9p takes over a minute).
	ioDir string
}

// ioFigure is one run of benchImageIO: how many files, how long.
type ioFigure struct {
	files int
	s     float64
}

// benchImagePackage is the one package the benchmark's image gets beyond
// Debian's minbase: small, and what a test of a network would add.
const benchImagePackage = "iputils-ping"

// benchImageIO is the file-heavy command: every file of /usr, one file
// system (the root's), counted.
const benchImageIO = "find /usr -xdev -type f | wc -l"

// ioCommand is benchImageIO, or the same count of ioDir's files.
func (r *imageBench) ioCommand() string {
	if r.ioDir == "" {
		return benchImageIO
	}
	return "find " + r.ioDir + " -xdev -type f | wc -l"
}

// imageBootTarget is the target for ImageBootRatio.
const imageBootTarget = 1.1

// benchImage measures the image section for ref ("" skips it; a host
// without mmdebstrap skips it with a note). The image is built in a
// temporary cache, removed after.
func (r *imageBench) benchImage(ctx context.Context, e *env, boot *machine.Boot, bf bootFlags, runs int, ref string) error {
	if ref == "" {
		return nil
	}
	if _, err := exec.LookPath("mmdebstrap"); err != nil {
		fmt.Fprintf(e.stderr, "vmlab: bench: no image figures: no mmdebstrap to build %s (apt install mmdebstrap)\n", ref)
		return nil
	}
	parsed, err := image.ParseRef(ref)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "vmlab-bench-images-")
	if err != nil {
		return fmt.Errorf("create image cache: %w", err)
	}
	defer os.RemoveAll(dir)
	store := &image.Store{Dir: dir, Logf: func(format string, args ...any) {
		fmt.Fprintf(e.stderr, "vmlab: bench: "+format+"\n", args...)
	}}
	fmt.Fprintf(e.stderr, "vmlab: bench: first build of %s with %s\n", ref, benchImagePackage)
	start := time.Now()
	img, err := store.Get(ctx, parsed, []string{benchImagePackage})
	if err != nil {
		return fmt.Errorf("build image %s: %w", ref, err)
	}
	r.ImageBuildS = time.Since(start).Seconds()
	r.imageRef, r.imageFSType = ref, img.FSType
	if fi, err := os.Stat(img.Path); err == nil {
		r.imageSizeMB = float64(fi.Size()) / 1e6
	}
	root := &machine.RootImage{Name: ref, Path: img.Path, FSType: img.FSType}
	return r.benchImageBoots(ctx, e, boot, bf, runs, root)
}

// benchImageBoots boots a host-root and an image machine runs times each,
// alternating so that a change in the host's load hits both alike; the
// last machine of each kind then runs benchImageIO, its first command
// after the boot's.
func (r *imageBench) benchImageBoots(ctx context.Context, e *env, boot *machine.Boot, bf bootFlags, runs int, root *machine.RootImage) error {
	var hostBoots, imageBoots []time.Duration
	for i := range runs {
		fmt.Fprintf(e.stderr, "vmlab: bench: boot on the host root and on %s, %d of %d\n", root.Name, i+1, runs)
		last := i == runs-1
		for _, img := range []*machine.RootImage{nil, root} {
			d, fig, err := timeImageBoot(ctx, boot, bf, img, r.ioCommand(), last)
			if err != nil {
				return err
			}
			if img == nil {
				hostBoots, r.hostIO = append(hostBoots, d), fig
			} else {
				imageBoots, r.imageIO = append(imageBoots, d), fig
			}
		}
	}
	r.hostBootS, r.imageBootS = median(hostBoots).Seconds(), median(imageBoots).Seconds()
	r.ImageBootRatio = r.imageBootS / r.hostBootS
	r.ImageIORatio = (r.imageIO.s / float64(r.imageIO.files)) / (r.hostIO.s / float64(r.hostIO.files))
	return nil
}

// timeImageBoot returns the time from Start of a fresh machine on img
// (nil: the host's root) to its first Succeed("true"); withIO, it then
// runs io, benchImageIO or a smaller count, and returns its figure.
func timeImageBoot(ctx context.Context, boot *machine.Boot, bf bootFlags, img *machine.RootImage, io string, withIO bool) (time.Duration, ioFigure, error) {
	sm := spec.Machine{Name: "bench", MemoryMiB: bf.memory, CPUs: bf.cpus}
	if img != nil {
		sm.Image = img.Name
	}
	m, err := machine.New(machine.Config{Machine: sm, Boot: boot, RootImage: img})
	if err != nil {
		return 0, ioFigure{}, err
	}
	defer m.Close()
	start := time.Now()
	if _, err := m.Succeed(ctx, "true"); err != nil {
		return 0, ioFigure{}, err
	}
	took := time.Since(start)
	if !withIO {
		return took, ioFigure{}, nil
	}
	start = time.Now()
	out, err := m.Succeed(ctx, io)
	if err != nil {
		return 0, ioFigure{}, err
	}
	fig := ioFigure{s: time.Since(start).Seconds()}
	if fig.files, err = strconv.Atoi(strings.TrimSpace(out)); err != nil || fig.files == 0 {
		return 0, ioFigure{}, fmt.Errorf("run %q on machine bench: got %q, want a number of files", io, out)
	}
	return took, fig, nil
}

func (r *imageBench) print(tw io.Writer) {
	if r.ImageBuildS == 0 {
		return
	}
	fmt.Fprintf(tw, "image: first build of %s + %s (%s, %.0f MB)\t%.1f s\tbaseline\t\n",
		r.imageRef, benchImagePackage, r.imageFSType, r.imageSizeMB, r.ImageBuildS)
	fmt.Fprintf(tw, "image: Start to Succeed(\"true\"), image / host root\t%.2f / %.2f s (%.2fx)\t<= %.1fx\t%s\n",
		r.imageBootS, r.hostBootS, r.ImageBootRatio, imageBootTarget, verdict(r.ImageBootRatio <= imageBootTarget))
	fmt.Fprintf(tw, "image: %s cold, image / host root, per file\t%d files %.2f s / %d files %.2f s (%.2fx)\t< 1x\t%s\n",
		r.ioCommand(), r.imageIO.files, r.imageIO.s, r.hostIO.files, r.hostIO.s, r.ImageIORatio, verdict(r.ImageIORatio < 1))
}
