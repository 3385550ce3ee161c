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
// `vmlab image rm KEY|REF... | -all`. Flags may come anywhere.
func runImage(ctx context.Context, e *env, args []string) int {
	fs := newFlagSet(e, "image", "")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: vmlab image ls|build|rm [flags] [args]\n\n"+
			"ls lists the cached images: key, reference, packages, size, when built and last used;\n"+
			"build REF [-p pkg,...] builds an image unless it is cached (REF: debian:SUITE, oci:DIR[:TAG],\n"+
			"  docker-archive:FILE or REGISTRY/REPOSITORY[:TAG|@DIGEST]), to fill a CI cache before the tests run;\n"+
			"rm KEY|REF... | -all removes images by key, every image of a reference, or all of them\n"+
			"  (images a running vmlab uses are kept).\n\n")
		fs.PrintDefaults()
	}
	dir := fs.String("dir", "", "image cache `directory` (default: $XDG_CACHE_HOME/vmlab/images or ~/.cache/vmlab/images)")
	pkgs := fs.String("p", "", "build: comma-separated `packages` to install (debian: images)")
	all := fs.Bool("all", false, "rm: remove every image no running vmlab uses")
	// Checked below, where a line can say what is wrong.
	if ok, code := parseMixed(e, fs, args, func() bool { return true }); !ok {
		return code
	}
	action, rest := "", fs.Args()
	if len(rest) > 0 {
		action, rest = rest[0], rest[1:]
	}
	if problem := imageUsage(action, rest, *pkgs != "", *all); problem != "" {
		e.errorf("image: %s", problem)
		fs.Usage()
		return exitUsage
	}
	s := &image.Store{Dir: *dir, Logf: func(format string, args ...any) {
		fmt.Fprintf(e.stderr, format+"\n", args...)
	}}
	switch action {
	case "ls":
		return imageList(e, s)
	case "build":
		return imageBuild(ctx, e, s, rest[0], *pkgs)
	}
	return imageRemove(ctx, e, s, rest, *all)
}

// imageUsage says what is wrong with a `vmlab image` command line, "" if
// nothing.
func imageUsage(action string, args []string, pkgs, all bool) string {
	switch action {
	case "":
		return "no action: give ls, build or rm"
	case "ls":
		if len(args) > 0 || pkgs || all {
			return "ls takes no arguments, nor -p or -all"
		}
	case "build":
		if len(args) != 1 || all {
			return "build takes one reference (and -p packages), not -all"
		}
	case "rm":
		switch {
		case pkgs:
			return "rm takes no -p"
		case len(args) == 0 && !all:
			return "rm takes keys or references (vmlab image ls lists them), or -all"
		case len(args) > 0 && all:
			return "rm takes keys or references, or -all, not both"
		}
	default:
		return fmt.Sprintf("unknown action %q: give ls, build or rm", action)
	}
	return ""
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
	var problems []string
	for _, img := range imgs {
		pkgs, inUse, ref, built := strings.Join(img.Packages, ","), "", img.Ref, img.Built.Local().Format(time.DateTime)
		if pkgs == "" {
			pkgs = "-"
		}
		if img.InUse {
			inUse = "yes"
		}
		if img.Problem != "" {
			problems = append(problems, img.Key+": "+img.Problem)
			if ref == "" {
				ref, built = "?", "?"
			}
			ref += " (!)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", img.Key, ref, pkgs, size(img.Size),
			built, img.Used.Format(time.DateTime), inUse)
	}
	tw.Flush()
	if len(problems) > 0 {
		fmt.Fprintf(w, "\n(!) %s\n", strings.Join(problems, "\n(!) "))
	}
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

// imageRemove removes by key, by reference (every image built from it;
// an OCI layout or tarball by the key its digest gives) or all; images in
// use are kept and named.
func imageRemove(ctx context.Context, e *env, s *image.Store, args []string, all bool) int {
	imgs, err := s.List()
	if err != nil {
		e.errorf("list images: %v", err)
		return exitFail
	}
	matches := map[string]func(image.Image) bool{}
	for _, arg := range args {
		matches[arg] = imageMatch(ctx, s, arg)
	}
	if all {
		matches[""] = func(image.Image) bool { return true }
	}
	removed, code := map[string]bool{}, exitOK
	for _, arg := range append(slices.Clone(args), "") {
		match := matches[arg]
		if match == nil {
			continue
		}
		found := false
		for _, img := range imgs {
			if !match(img) {
				continue
			}
			found = true
			if removed[img.Key] {
				continue
			}
			if err := s.Remove(img.Key); err != nil {
				e.errorf("%v", err)
				code = exitFail
				continue
			}
			removed[img.Key] = true
			fmt.Fprintf(e.stdout, "removed %s %s (%s)\n", img.Key, img.Ref, size(img.Size))
		}
		if !found && arg != "" {
			e.errorf("remove image %s: no such image (vmlab image ls lists them)", arg)
			code = exitFail
		}
	}
	return code
}

// imageMatch returns what arg names: a key, or the images of a reference
// (as built, as asked, as a registry reference resolved, or an OCI
// layout's or tarball's digest, as Get finds them).
func imageMatch(ctx context.Context, s *image.Store, arg string) func(image.Image) bool {
	ref, err := image.ParseRef(arg)
	if err != nil {
		return func(img image.Image) bool { return img.Key == arg }
	}
	key := ""
	if ref.Scheme == image.SchemeOCI || ref.Scheme == image.SchemeDockerArchive {
		key, _ = s.KeyOf(ctx, ref) // a layout that is gone: by reference only
	}
	return func(img image.Image) bool {
		return img.Key == arg || key != "" && img.Key == key || img.Ref == ref.String() || img.Asked == ref.String() ||
			slices.ContainsFunc(img.Resolved, func(r image.Resolution) bool { return r.Ref == ref.String() })
	}
}
