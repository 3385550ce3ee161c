package image

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestComponents: the components the host's sources enable for the
// mirror (one-line and deb822) are those searched and given to
// mmdebstrap; the security archive gets its own.
func TestComponents(t *testing.T) {
	etc := t.TempDir()
	os.MkdirAll(filepath.Join(etc, "sources.list.d"), 0o755)
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(etc, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("sources.list", "deb http://mirror.example/debian bookworm contrib main\n"+
		"deb http://other.example/debian bookworm non-free\n"+ // another mirror: not ours
		"deb http://security.example/debian-security bookworm-security main\n")
	write("sources.list.d/debian.sources", `Types: deb
URIs: http://mirror.example/debian/
Suites: bookworm-updates
Components: main non-free-firmware

Types: deb
URIs: http://mirror.example/debian
Suites: bookworm
Components: non-free
Enabled: no

Types: deb
URIs: http://security.example/debian-security
Suites: bookworm-security
Components: main non-free-firmware
`)
	a := hostArchive(etc)
	if a.Mirror != "http://mirror.example/debian" || strings.Join(a.Components, " ") != "main contrib non-free-firmware" {
		t.Errorf("hostArchive: mirror %s components %q; want mirror.example's main contrib non-free-firmware", a.Mirror, a.Components)
	}
	if strings.Join(a.SecurityComponents, " ") != "main non-free-firmware" {
		t.Errorf("hostArchive: security components %q; want main non-free-firmware", a.SecurityComponents)
	}
	p := plan{codename: "bookworm", arch: "amd64", archive: a, security: true}
	args := mmdebstrapArgs(p, "/root")
	for _, want := range []string{
		"deb http://mirror.example/debian bookworm main contrib non-free-firmware",
		"deb http://security.example/debian-security bookworm-security main non-free-firmware",
	} {
		if !slices.Contains(args, want) {
			t.Errorf("mmdebstrap arguments %q; want %q", args, want)
		}
	}
	if a := pickArchive(nil); strings.Join(a.Components, " ") != "main" || strings.Join(a.SecurityComponents, " ") != "main" {
		t.Errorf("pickArchive(nothing): components %q and %q; want main", a.Components, a.SecurityComponents)
	}
}

// componentMirror serves bookworm with a Packages index per component
// (none for non-free-firmware, as a suite lacking it).
func componentMirror(t *testing.T, comps map[string][]string) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("/debian/dists/bookworm/InRelease", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, "Codename: bookworm\nDate: Sat, 28 Nov 2026 09:12:34 UTC\n")
	})
	for comp, pkgs := range comps {
		var idx bytes.Buffer
		zw := gzip.NewWriter(&idx)
		for _, p := range pkgs {
			fmt.Fprintf(zw, "Package: %s\nVersion: 1\n\n", p)
		}
		zw.Close()
		mux.HandleFunc("/debian/dists/bookworm/"+comp+"/binary-amd64/Packages.gz", func(w http.ResponseWriter, _ *http.Request) {
			w.Write(idx.Bytes())
		})
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestMissingPackagesComponents(t *testing.T) {
	srv := componentMirror(t, map[string][]string{
		"main":     {"curl", "kmod"},
		"contrib":  {"b43-fwcutter"},
		"non-free": {"unrar"},
	})
	ctx := context.Background()
	a := archive{Mirror: srv.URL + "/debian", Components: []string{"main", "contrib", "non-free", "non-free-firmware"}}
	missing, err := a.missingPackages(ctx, "bookworm", "amd64", []string{"curl", "b43-fwcutter", "unrar", "nosuchpkg"})
	if err != nil || strings.Join(missing, ",") != "nosuchpkg" {
		t.Errorf("missingPackages with contrib and non-free = %q, %v; want only nosuchpkg missing", missing, err)
	}
	// The host enables main only: contrib's package is missing, and the
	// error names what was searched.
	s := newFakeStore(t, srv)
	s.archive = &archive{Mirror: srv.URL + "/debian", Security: srv.URL + "/debian-security"}
	_, err = s.Get(ctx, mustRef(t, "debian:bookworm"), []string{"b43-fwcutter"})
	if want := "no package b43-fwcutter in bookworm (" + srv.URL + "/debian main)"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Get of a contrib package, main enabled: %v; want %q", err, want)
	}
	s.archive.Components = []string{"main", "contrib"}
	if _, err := s.Get(ctx, mustRef(t, "debian:bookworm"), []string{"b43-fwcutter", "curl"}); err != nil || s.nbuilds() != 1 {
		t.Fatalf("Get of a contrib package, contrib enabled: %v after %d builds; want one build", err, s.nbuilds())
	}
	if got := s.builds[0].archive.Components; strings.Join(got, " ") != "main contrib" {
		t.Errorf("build plan components %q; want main contrib", got)
	}
}
