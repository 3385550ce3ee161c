package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/vmlab/vmlab/internal/cachefile"
)

// getRegistry resolves a registry reference to the image it names now,
// then returns the cached image of that image's ID or pulls and unpacks
// it. A reference with a digest names one image for good: when cached,
// the registry is not asked. When the registry cannot be reached, the
// image the reference last resolved to is used, if cached.
func (s *Store) getRegistry(ctx context.Context, dir string, ref Ref) (Image, error) {
	if UnpackOCI == nil || ResolveRegistry == nil {
		return Image{}, fmt.Errorf("image %s: %w", ref, errNoOCI)
	}
	if strings.Contains(ref.Name, "@") {
		if img, _, ok := s.lastResolved(dir, ref); ok {
			return img, nil
		}
	}
	digest, id, err := ResolveRegistry(ctx, ref)
	if err != nil {
		if unreachable := (*UnreachableError)(nil); !errors.As(err, &unreachable) {
			return Image{}, fmt.Errorf("image %s: %w", ref, err)
		}
		img, res, ok := s.lastResolved(dir, ref)
		if !ok {
			return Image{}, fmt.Errorf("image %s: reach the registry %s (no image of %s cached to use offline): %w", ref, ref.Registry(), ref, err)
		}
		s.logf("image %s: %v: using the cached image %s, the one it named on %s (%s)",
			ref, err, img.Key, res.At.Local().Format(time.DateTime), res.Digest)
		return img, nil
	}
	img, err := s.cached(dir, ociKey(id))
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			s.logf("image %s: %v: pulling it again", ref, err)
		}
		if img, err = s.pull(ctx, dir, ref, digest, id); err != nil {
			return Image{}, err
		}
	}
	s.recordResolution(dir, &img, Resolution{Ref: ref.String(), Digest: digest, At: time.Now().UTC()})
	return img, nil
}

// pull unpacks the image ref resolved to (by its digest, so that a tag
// moved meanwhile does not change it) and makes it an image file.
func (s *Store) pull(ctx context.Context, dir string, ref Ref, digest, id string) (Image, error) {
	// One pull per image across processes, as for layouts: a waiter
	// finds the image made when the lock is its.
	img, unlock, err := s.lockOCI(ctx, dir, ref, ociKey(id))
	if err != nil || img.Key != "" {
		return img, err
	}
	defer unlock()
	root, release, err := newRoot(dir)
	if err != nil {
		return Image{}, fmt.Errorf("image %s: %w", ref, err)
	}
	defer release()
	defer s.removeRoot(root)
	s.logf("image %s: pulling %s (image %s) from %s", ref, digest, id, ref.Registry())
	start := time.Now()
	got, err := UnpackOCI(ctx, ref.pinned(digest), root)
	if err != nil {
		return Image{}, fmt.Errorf("image %s: pull: %w", ref, err)
	}
	if got != id {
		return Image{}, fmt.Errorf("image %s: the registry %s gave image %s for %s, which it had named as image %s: pull it again", ref, ref.Registry(), got, digest, id)
	}
	s.logf("image %s: pulled and unpacked %s in %.1fs", ref, digest, time.Since(start).Seconds())
	img = Image{FSType: "erofs", Key: ociKey(id), Ref: ref.String(), Digest: id, Arch: s.debArch(), Recipe: Recipe}
	return s.makeImage(ctx, dir, ref, img, root)
}

// pinned returns the registry reference r with its tag replaced by digest.
func (r Ref) pinned(digest string) Ref {
	repo, _, _ := strings.Cut(r.Name, "@")
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo = repo[:i]
	}
	return Ref{Scheme: SchemeRegistry, Name: repo + "@" + digest}
}

// maxResolutions bounds the references an image's record keeps, newest
// first (a test pulling from a registry on a new port each run names it
// anew every time).
const maxResolutions = 16

// recordResolution records in img's record that res.Ref resolved to it,
// replacing that reference's earlier resolution. A record that cannot be
// written costs only the offline fallback: it is logged.
func (s *Store) recordResolution(dir string, img *Image, res Resolution) {
	rec, err := readRecord(dir, img.Key)
	if err != nil {
		s.logf("image %s: record its digest %s: %v", res.Ref, res.Digest, err)
		return
	}
	out := []Resolution{res}
	for _, r := range rec.Resolved {
		if r.Ref != res.Ref && len(out) < maxResolutions {
			out = append(out, r)
		}
	}
	rec.Resolved = out
	data, _ := json.MarshalIndent(rec, "", "  ")
	if err := cachefile.WriteBytes(recordPath(dir, img.Key), append(data, '\n')); err != nil {
		s.logf("image %s: record its digest %s: %v", res.Ref, res.Digest, err)
		return
	}
	img.Resolved = out
}

// lastResolved returns the checked cached image ref last resolved to.
func (s *Store) lastResolved(dir string, ref Ref) (Image, Resolution, bool) {
	imgs, _ := s.list(dir)
	var best Image
	var bestRes Resolution
	for _, img := range imgs {
		if img.Recipe != Recipe || img.Arch != s.debArch() {
			continue
		}
		for _, r := range img.Resolved {
			if r.Ref == ref.String() && r.At.After(bestRes.At) {
				best, bestRes = img, r
			}
		}
	}
	if best.Key == "" {
		return Image{}, Resolution{}, false
	}
	img, err := s.cached(dir, best.Key)
	if err != nil {
		return Image{}, Resolution{}, false
	}
	return img, bestRes, true
}
