package image

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeRegistry stands for a registry through the OCI hooks: tags name
// digests, digests images (their IDs); down makes it unreachable.
type fakeRegistry struct {
	tags     map[string]string // "host/repo:tag" → manifest digest
	ids      map[string]string // manifest digest → image ID
	down     bool
	refuse   error // an answer other than unreachable
	resolves int
	pulls    []string // the references unpacked
}

// use installs r as the OCI hooks for the test.
func (r *fakeRegistry) use(t *testing.T) {
	oldU, oldR := UnpackOCI, ResolveRegistry
	t.Cleanup(func() { UnpackOCI, ResolveRegistry = oldU, oldR })
	ResolveRegistry = func(_ context.Context, ref Ref) (string, string, error) {
		r.resolves++
		if r.down {
			return "", "", &UnreachableError{Err: fmt.Errorf("registry %s unreachable: connection refused", ref.Registry())}
		}
		if r.refuse != nil {
			return "", "", r.refuse
		}
		d := r.tags[ref.Name]
		if _, at, ok := strings.Cut(ref.Name, "@"); ok {
			d = at
		}
		if r.ids[d] == "" {
			return "", "", fmt.Errorf("no manifest %s", ref.Name)
		}
		return d, r.ids[d], nil
	}
	UnpackOCI = func(_ context.Context, ref Ref, dir string) (string, error) {
		r.pulls = append(r.pulls, ref.String())
		_, d, ok := strings.Cut(ref.Name, "@")
		if !ok {
			return "", fmt.Errorf("unpack of %s: want a pinned reference", ref)
		}
		if err := os.WriteFile(filepath.Join(dir, "id"), []byte(r.ids[d]), 0o644); err != nil {
			return "", err
		}
		return r.ids[d], nil
	}
}

func registryStore(t *testing.T) *fakeStore {
	fs := newFakeStore(t, fakeMirror(t))
	return fs
}

const (
	digestA = "sha256:aaaa000000000000000000000000000000000000000000000000000000000000"
	digestB = "sha256:bbbb000000000000000000000000000000000000000000000000000000000000"
	idA     = "sha256:1111000000000000000000000000000000000000000000000000000000000000"
	idB     = "sha256:2222000000000000000000000000000000000000000000000000000000000000"
)

// A tag is resolved to its digest at every Get; the image is cached by its
// ID, shared by the references naming it, and pulled by digest.
func TestGetRegistryCachesByDigest(t *testing.T) {
	s := registryStore(t)
	reg := &fakeRegistry{
		tags: map[string]string{"127.0.0.1:5000/app:v1": digestA, "127.0.0.1:5000/app:latest": digestA},
		ids:  map[string]string{digestA: idA, digestB: idB},
	}
	reg.use(t)
	ctx := context.Background()
	v1 := mustRef(t, "127.0.0.1:5000/app:v1")
	first, err := s.Get(ctx, v1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if first.Key != ociKey(idA) || first.Digest != idA || first.Ref != v1.String() {
		t.Errorf("image %+v: want key %s of image %s", first, ociKey(idA), idA)
	}
	if len(reg.pulls) != 1 || reg.pulls[0] != "127.0.0.1:5000/app@"+digestA {
		t.Errorf("pulled %q, want 127.0.0.1:5000/app@%s (by digest, not by tag)", reg.pulls, digestA)
	}
	if again, err := s.Get(ctx, v1, nil); err != nil || again.Key != first.Key || len(reg.pulls) != 1 || reg.resolves != 2 {
		t.Errorf("second Get: %+v, %v, %d pulls, %d resolves; want the cached image, resolved again, not pulled", again, err, len(reg.pulls), reg.resolves)
	}
	latest := mustRef(t, "127.0.0.1:5000/app:latest")
	if same, err := s.Get(ctx, latest, nil); err != nil || same.Key != first.Key || len(reg.pulls) != 1 {
		t.Errorf("another tag of the same digest: %+v, %v (%d pulls); want the cached %s", same, err, len(reg.pulls), first.Key)
	}
	rec, err := readRecord(s.Dir, first.Key)
	if err != nil {
		t.Fatal(err)
	}
	var refs []string
	for _, r := range rec.Resolved {
		refs = append(refs, r.Ref+"="+r.Digest)
	}
	if len(refs) != 2 || !strings.Contains(strings.Join(refs, " "), v1.String()+"="+digestA) || !strings.Contains(strings.Join(refs, " "), latest.String()+"="+digestA) {
		t.Errorf("record's resolutions %q, want both tags resolved to %s", refs, digestA)
	}
	// The tag moves: the new image is pulled.
	reg.tags[v1.Name] = digestB
	moved, err := s.Get(ctx, v1, nil)
	if err != nil || moved.Key != ociKey(idB) || len(reg.pulls) != 2 {
		t.Errorf("Get after the tag moved: %+v, %v (%d pulls); want image %s pulled", moved, err, len(reg.pulls), idB)
	}
	if _, err := s.Get(ctx, v1, []string{"curl"}); err == nil || !strings.Contains(err.Error(), "packages apply to debian: images only") {
		t.Errorf("Get with packages: got %v, want them refused", err)
	}
}

// A digest reference of a cached image asks no registry.
func TestGetRegistryDigestCached(t *testing.T) {
	s := registryStore(t)
	reg := &fakeRegistry{ids: map[string]string{digestA: idA}}
	reg.use(t)
	ref := mustRef(t, "registry.example/app@"+digestA)
	first, err := s.Get(context.Background(), ref, nil)
	if err != nil {
		t.Fatal(err)
	}
	reg.down = true
	reg.resolves = 0
	again, err := s.Get(context.Background(), ref, nil)
	if err != nil || again.Key != first.Key || reg.resolves != 0 {
		t.Errorf("Get of a cached digest: %+v, %v, %d resolves; want %s without asking the registry", again, err, reg.resolves, first.Key)
	}
	if s.logged("unreachable") {
		t.Errorf("progress output %q: a cached digest needs no registry, and says nothing of it", s.logs)
	}
}

// Without the registry, a reference is the image it last resolved to,
// and the progress output says so; with nothing cached, an error naming
// the registry.
func TestGetRegistryOffline(t *testing.T) {
	s := registryStore(t)
	reg := &fakeRegistry{
		tags: map[string]string{"127.0.0.1:5000/app:v1": digestA},
		ids:  map[string]string{digestA: idA, digestB: idB},
	}
	reg.use(t)
	ctx := context.Background()
	v1 := mustRef(t, "127.0.0.1:5000/app:v1")
	if _, err := s.Get(ctx, v1, nil); err != nil {
		t.Fatal(err)
	}
	reg.tags[v1.Name] = digestB
	newer, err := s.Get(ctx, v1, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Image A used since (by digest): still, v1 last named B.
	if _, err := s.Get(ctx, mustRef(t, "127.0.0.1:5000/app@"+digestA), nil); err != nil {
		t.Fatal(err)
	}

	reg.down = true
	offline, err := s.Get(ctx, v1, nil)
	if err != nil || offline.Key != newer.Key {
		t.Fatalf("offline Get: %+v, %v; want %s, the image v1 last named", offline, err, newer.Key)
	}
	if !s.logged("registry 127.0.0.1:5000 unreachable") || !s.logged("using the cached image "+newer.Key) || !s.logged(digestB) {
		t.Errorf("progress output %q: want it to say the registry is unreachable and which cached image (digest) is used", s.logs)
	}
	if len(reg.pulls) != 2 {
		t.Errorf("%d pulls, want 2", len(reg.pulls))
	}

	_, err = s.Get(ctx, mustRef(t, "127.0.0.1:5000/other:v1"), nil)
	for _, want := range []string{"reach the registry 127.0.0.1:5000", "no image of 127.0.0.1:5000/other:v1 cached"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("offline Get of an uncached reference: got %v, want an error saying %q", err, want)
		}
	}

	// A corrupt cached image is not used offline.
	if err := os.WriteFile(newer.Path, []byte("corrupt"), 0o644); err != nil {
		t.Fatal(err)
	}
	if img, err := s.Get(ctx, v1, nil); err == nil {
		t.Errorf("offline Get of a corrupt image: %+v, want an error", img)
	}
}

// A registry that answers with an error (credentials refused, another
// architecture) is that error, not the offline path.
func TestGetRegistryRefusedNotOffline(t *testing.T) {
	s := registryStore(t)
	reg := &fakeRegistry{tags: map[string]string{"127.0.0.1:5000/app:v1": digestA}, ids: map[string]string{digestA: idA}}
	reg.use(t)
	ref := mustRef(t, "127.0.0.1:5000/app:v1")
	if _, err := s.Get(context.Background(), ref, nil); err != nil {
		t.Fatal(err)
	}
	reg.refuse = errors.New("registry 127.0.0.1:5000 refused the credentials the docker config gives for it")
	img, err := s.Get(context.Background(), ref, nil)
	if err == nil || !strings.Contains(err.Error(), "refused the credentials") {
		t.Errorf("Get with credentials refused: %+v, %v; want the refusal, not the cached image", img, err)
	}
}

// The image unpacked must be the one the reference resolved to.
func TestGetRegistryPullMismatch(t *testing.T) {
	s := registryStore(t)
	reg := &fakeRegistry{tags: map[string]string{"127.0.0.1:5000/app:v1": digestA}, ids: map[string]string{digestA: idA}}
	reg.use(t)
	unpack := UnpackOCI
	UnpackOCI = func(ctx context.Context, ref Ref, dir string) (string, error) {
		unpack(ctx, ref, dir)
		return idB, nil
	}
	_, err := s.Get(context.Background(), mustRef(t, "127.0.0.1:5000/app:v1"), nil)
	if err == nil || !strings.Contains(err.Error(), "gave image "+idB) {
		t.Errorf("Get: got %v, want an error naming the image the registry gave", err)
	}
	if imgs, _ := s.List(); len(imgs) != 0 {
		t.Errorf("cache holds %d images, want none", len(imgs))
	}
}
