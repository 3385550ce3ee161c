package lab

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/vmlab/vmlab/internal/image"
	_ "github.com/vmlab/vmlab/internal/image/oci" // oci: and docker-archive: images, for every caller
	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/spec"
)

// PrepareImages checks the machines' declarations, then gives each
// machine declared with an image (spec.Machine.Image) its root image
// (Config.RootImage), built with its packages or taken from store's
// cache: before any machine boots, so a package its archive lacks or an
// archive that cannot be reached fails the run at once, naming the
// machine. Machines of the same image and packages share one file. store
// nil: the default cache. Progress (what is downloaded, how long) goes to
// logf; nil: silent.
func PrepareImages(ctx context.Context, boot *machine.Boot, cfgs []machine.Config, store *image.Store, logf func(string, ...any)) error {
	if err := Check(boot, cfgs); err != nil {
		return err
	}
	if store == nil {
		store = &image.Store{Logf: logf}
	}
	got := make(map[string]*machine.RootImage)
	hasSystemd := make(map[*machine.RootImage]bool)
	for i := range cfgs {
		c := &cfgs[i]
		if c.Image == "" || c.RootImage != nil {
			continue
		}
		pkgs := imagePackages(c.Machine, logf)
		key := c.Image + " " + strings.Join(pkgs, ",")
		if img := got[key]; img != nil {
			if err := checkSystemd(c, hasSystemd[img]); err != nil {
				return err
			}
			c.RootImage = img
			continue
		}
		ref, err := image.ParseRef(c.Image) // Check parsed it: cannot fail
		if err != nil {
			return fmt.Errorf("machine %s: %w", c.Name, err)
		}
		start := time.Now()
		img, err := store.Get(ctx, ref, pkgs)
		if err != nil {
			return fmt.Errorf("machine %s: %w", c.Name, err) // Get's errors name the image
		}
		// Debian images get systemd among their packages (imagePackages).
		systemd := img.Systemd || ref.Scheme == image.SchemeDebian
		if err := checkSystemd(c, systemd); err != nil {
			return err
		}
		if logf != nil {
			logf("image %s for machine %s ready in %s: %s", c.Image, c.Name, time.Since(start).Round(time.Millisecond), img.Path)
		}
		c.RootImage = &machine.RootImage{Name: c.Image, Path: img.Path, FSType: img.FSType, SHA256: img.SHA256}
		got[key] = c.RootImage
		hasSystemd[c.RootImage] = systemd
	}
	return nil
}

// checkSystemd refuses, before it boots, a machine of init = "systemd"
// whose image has no systemd (an OCI image), which would boot, then stop
// at once.
func checkSystemd(c *machine.Config, has bool) error {
	if !c.Systemd() || has {
		return nil
	}
	return fmt.Errorf("machine %s: the image %s has no %s (init = \"systemd\" boots the image's systemd): "+
		"add systemd to the image, or leave init at its default, fast", c.Name, c.Image, spec.SystemdPath)
}

// checkPrepared refuses a machine declared with an image that
// PrepareImages did not give one: it would boot the host's root instead.
func checkPrepared(cfgs []machine.Config) error {
	for _, c := range cfgs {
		if c.Image != "" && c.RootImage == nil {
			return fmt.Errorf("create lab: machine %s: image %s was not prepared (lab.PrepareImages)", c.Name, c.Image)
		}
	}
	return nil
}

// imagePackages returns the packages m's image is built with: those m
// lists, and systemd when m boots it (init = "systemd"), which an image
// built without it lacks (Debian's minbase has no init). Sorted.
func imagePackages(m spec.Machine, logf func(string, ...any)) []string {
	pkgs := slices.Clone(m.Packages)
	if m.Systemd() && strings.HasPrefix(m.Image, image.SchemeDebian+":") && !slices.Contains(pkgs, "systemd") {
		pkgs = append(pkgs, "systemd")
		if logf != nil {
			logf("machine %s: image %s gets systemd among its packages: the machine boots it (init = \"systemd\")", m.Name, m.Image)
		}
	}
	slices.Sort(pkgs)
	return pkgs
}
