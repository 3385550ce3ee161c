package cli

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vmlab/vmlab/internal/image"
)

// runImage lists, builds or removes machine images (internal/image):
// `vmlab image ls`, `vmlab image build REF [-p pkg,...]`,
// `vmlab image rm KEY|REF|-all`.
func runImage(ctx context.Context, e *env, args []string) int {
	action := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		action, args = args[0], args[1:]
	}
	fs := newFlagSet(e, "image", "")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: vmlab image ls|build|rm [flags] [args]\n\n"+
			"ls lists the cached images: key, reference, packages, size, when built and last used;\n"+
			"build REF [-p pkg,...] builds an image unless it is cached (REF: debian:SUITE, oci:DIR[:TAG],\n"+
			"  docker-archive:FILE or REGISTRY/REPOSITORY[:TAG|@DIGEST]), to fill a CI cache before the tests run;\n"+
			"rm KEY|REF|-all removes an image by key, every image of a reference, or all of them\n"+
			"  (images a running vmlab uses are kept).\n\n")
		fs.PrintDefaults()
	}
	dir := fs.String("dir", "", "image cache `directory` (default: $XDG_CACHE_HOME/vmlab/images or ~/.cache/vmlab/images)")
	pkgs := fs.String("p", "", "build: comma-separated `packages` to install (debian: images)")
	all := fs.Bool("all", false, "rm: remove every image no running vmlab uses")
	valid := func() bool {
		switch action {
		case "ls":
			return fs.NArg() == 0 && *pkgs == "" && !*all
		case "build":
			return fs.NArg() == 1 && !*all
		case "rm":
			return *pkgs == "" && (fs.NArg() == 1) != *all
		}
		return false
	}
	if ok, code := parseMixed(e, fs, args, valid); !ok {
		return code
	}
	s := &image.Store{Dir: *dir, Logf: func(format string, args ...any) {
		fmt.Fprintf(e.stderr, format+"\n", args...)
	}}
	switch action {
	case "ls":
		return imageList(e, s)
	case "build":
		return imageBuild(ctx, e, s, fs.Arg(0), *pkgs)
	}
	return imageRemove(e, s, fs.Arg(0), *all)
}

func imageList(e *env, s *image.Store) int {
	imgs, err := s.List()
	if err != nil {
		e.errorf("list images: %v", err)
		return exitFail
	}
	printImages(e.stdout, imgs)
	return exitOK
}

func printImages(w io.Writer, imgs []image.Image) {
	var total int64
	for _, img := range imgs {
		total += img.Size
	}
	l := image.Limits
	fmt.Fprintf(w, "%d images, %s (bound: %s, and %d days unused; vmlab image rm -all empties it)\n",
		len(imgs), size(total), size(l.MaxBytes), int(l.MaxAge.Hours()/24))
	if len(imgs) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "\nKEY\tREF\tPACKAGES\tSIZE\tBUILT\tLAST USED\tIN USE\n")
	for _, img := range imgs {
		pkgs, inUse := strings.Join(img.Packages, ","), ""
		if pkgs == "" {
			pkgs = "-"
		}
		if img.InUse {
			inUse = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", img.Key, img.Ref, pkgs, size(img.Size),
			img.Built.Local().Format(time.DateTime), img.Used.Format(time.DateTime), inUse)
	}
	tw.Flush()
}

func imageBuild(ctx context.Context, e *env, s *image.Store, refArg, pkgArg string) int {
	ref, err := image.ParseRef(refArg)
	if err != nil {
		e.errorf("%v", err)
		return exitUsage
	}
	var pkgs []string
	for p := range strings.SplitSeq(pkgArg, ",") {
		if p = strings.TrimSpace(p); p != "" {
			pkgs = append(pkgs, p)
		}
	}
	start := time.Now()
	img, err := s.Get(ctx, ref, pkgs)
	if err != nil {
		e.errorf("%v", err)
		return exitFail
	}
	fmt.Fprintf(e.stdout, "%s %s %s (%s, %.1fs)\n", img.Key, img.Ref, img.Path, size(img.Size), time.Since(start).Seconds())
	return exitOK
}

// imageRemove removes by key, by reference (every image built from it)
// or all; images in use are kept and named.
func imageRemove(e *env, s *image.Store, arg string, all bool) int {
	imgs, err := s.List()
	if err != nil {
		e.errorf("list images: %v", err)
		return exitFail
	}
	var match func(image.Image) bool
	switch ref, err := image.ParseRef(arg); {
	case all:
		match = func(image.Image) bool { return true }
	case err == nil:
		match = func(img image.Image) bool {
			return img.Ref == ref.String() || img.Asked == ref.String() ||
				slices.ContainsFunc(img.Resolved, func(r image.Resolution) bool { return r.Ref == ref.String() })
		}
	default:
		match = func(img image.Image) bool { return img.Key == arg }
	}
	removed, code := 0, exitOK
	for _, img := range imgs {
		if !match(img) {
			continue
		}
		if err := s.Remove(img.Key); err != nil {
			e.errorf("%v", err)
			code = exitFail
			continue
		}
		removed++
		fmt.Fprintf(e.stdout, "removed %s %s (%s)\n", img.Key, img.Ref, size(img.Size))
	}
	if removed == 0 && code == exitOK && !all {
		e.errorf("remove image %s: no such image (vmlab image ls lists them)", arg)
		return exitFail
	}
	return code
}
