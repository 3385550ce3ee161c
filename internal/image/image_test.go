package image

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseRef(t *testing.T) {
	abs := func(p string) string {
		a, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	tests := []struct {
		in      string
		want    Ref
		wantErr string
	}{
		{in: "debian:bookworm", want: Ref{Scheme: "debian", Suite: "bookworm"}},
		{in: "debian:stable", want: Ref{Scheme: "debian", Suite: "stable"}},
		{in: "debian:sid", want: Ref{Scheme: "debian", Suite: "sid"}},
		{in: "oci:/srv/layout", want: Ref{Scheme: "oci", Path: "/srv/layout"}},
		{in: "oci:/srv/layout:v1.2", want: Ref{Scheme: "oci", Path: "/srv/layout", Tag: "v1.2"}},
		{in: "oci:layout", want: Ref{Scheme: "oci", Path: abs("layout")}},
		{in: "docker-archive:pg.tar", want: Ref{Scheme: "docker-archive", Path: abs("pg.tar")}},
		{in: "debian:", wantErr: "empty suite"},
		{in: "debian:Bookworm", wantErr: "not a suite name"},
		{in: "debian:../x", wantErr: "not a suite name"},
		{in: "bookworm", wantErr: "no scheme"},
		{in: "ubuntu:noble", wantErr: `unknown scheme "ubuntu"`},
		{in: "docker.io/library/postgres:16", want: Ref{Scheme: "registry", Name: "docker.io/library/postgres:16"}},
		{in: "127.0.0.1:5000/busybox:v1", want: Ref{Scheme: "registry", Name: "127.0.0.1:5000/busybox:v1"}},
		{in: "[::1]:5000/busybox:v1", want: Ref{Scheme: "registry", Name: "[::1]:5000/busybox:v1"}},
		{in: "localhost/app", want: Ref{Scheme: "registry", Name: "localhost/app"}},
		{in: "localhost:5000/team/app", want: Ref{Scheme: "registry", Name: "localhost:5000/team/app"}},
		{in: "ghcr.io/org/app@sha256:" + strings.Repeat("ab", 32), want: Ref{Scheme: "registry", Name: "ghcr.io/org/app@sha256:" + strings.Repeat("ab", 32)}},
		{in: "docker://quay.io/org/app:1", want: Ref{Scheme: "registry", Name: "quay.io/org/app:1"}},
		// Without a registry host: refused, not taken as Docker Hub's.
		{in: "debain:trixie", wantErr: `unknown scheme "debain" and no registry host`},
		{in: "postgres:16", wantErr: "docker.io/library/postgres:16"},
		{in: "postgres", wantErr: "docker.io/library/postgres"},
		{in: "library/postgres:16", wantErr: "docker.io/library/postgres:16"},
		{in: "docker://postgres:16", wantErr: "no registry host"},
		{in: "docker.io/library/Postgres:16", wantErr: "not a registry reference"},
		{in: "docker.io/library/postgres@sha256:abc", wantErr: "not a registry reference"},
		{in: "docker.io/library/postgres:1 6", wantErr: "not a registry reference"},
		{in: "quay.io/", wantErr: "not a registry reference"},
		{in: "oci:", wantErr: "empty directory"},
		{in: "oci:/srv/layout:", wantErr: "bad tag"},
		{in: "docker-archive:", wantErr: "empty file"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseRef(tt.in)
			// An unknown form is answered with the forms there are.
			if err != nil && strings.Contains(err.Error(), "scheme") && !strings.Contains(err.Error(), "debian:SUITE (debian:bookworm), oci:DIR[:TAG], docker-archive:FILE or REGISTRY/REPOSITORY") {
				t.Errorf("ParseRef(%q): error %q does not list the accepted forms", tt.in, err)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseRef(%q) = %+v, %v; want an error with %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseRef(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			}
			if again, err := ParseRef(got.String()); err != nil || again != got {
				t.Errorf("ParseRef(%q.String() = %q) = %+v, %v; want it back", tt.in, got.String(), again, err)
			}
		})
	}
}

func TestDebianKey(t *testing.T) {
	date := time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)
	sec := date.Add(-time.Hour)
	base := debianKey("bookworm", "amd64", date, sec, []string{"curl", "redis-server"})
	if !strings.HasPrefix(base, "debian-bookworm-") {
		t.Errorf("key %q: want the prefix debian-bookworm-", base)
	}
	if again := debianKey("bookworm", "amd64", date.In(time.FixedZone("x", 3600)), sec, []string{"curl", "redis-server"}); again != base {
		t.Errorf("same content in another time zone: key %q, want %q", again, base)
	}
	differ := map[string]string{
		"suite":       debianKey("trixie", "amd64", date, sec, []string{"curl", "redis-server"}),
		"arch":        debianKey("bookworm", "arm64", date, sec, []string{"curl", "redis-server"}),
		"release":     debianKey("bookworm", "amd64", date.Add(time.Hour), sec, []string{"curl", "redis-server"}),
		"security":    debianKey("bookworm", "amd64", date, sec.Add(time.Hour), []string{"curl", "redis-server"}),
		"no security": debianKey("bookworm", "amd64", date, time.Time{}, []string{"curl", "redis-server"}),
		"packages":    debianKey("bookworm", "amd64", date, sec, []string{"curl"}),
	}
	for what, k := range differ {
		if k == base {
			t.Errorf("another %s gives the same key %q", what, k)
		}
	}
	a, err := cleanPackages([]string{"redis-server", "curl", "curl"})
	if err != nil || strings.Join(a, ",") != "curl,redis-server" {
		t.Errorf("cleanPackages = %q, %v; want curl,redis-server sorted and deduplicated", a, err)
	}
	for _, bad := range []string{"Curl", "a", "curl;rm", "-x", ""} {
		if _, err := cleanPackages([]string{bad}); err == nil {
			t.Errorf("cleanPackages(%q): no error, want one", bad)
		}
	}
}

func TestSources(t *testing.T) {
	oneLine := `# comment
deb http://mirror.example/debian/ bookworm main contrib
deb-src http://src.example/debian bookworm main
deb [arch=amd64 signed-by=/k.gpg] http://security.example/debian-security bookworm-security main
deb https://packages.cloud.google.com/apt cloud-sdk-bookworm main
`
	got := parseOneLine([]byte(oneLine))
	want := []source{
		{URI: "http://mirror.example/debian", Suites: []string{"bookworm"}},
		{URI: "http://security.example/debian-security", Suites: []string{"bookworm-security"}},
		{URI: "https://packages.cloud.google.com/apt", Suites: []string{"cloud-sdk-bookworm"}},
	}
	if !equalSources(got, want) {
		t.Errorf("parseOneLine = %+v, want %+v", got, want)
	}
	deb822 := `Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://src.example/debian
Suites: bookworm

Types: deb
URIs: http://off.example/debian
Suites: bookworm
Enabled: no

Types: deb
URIs: http://deb.example/debian-security
Suites: bookworm-security
Components: main
`
	got = parseDeb822([]byte(deb822))
	want = []source{
		{URI: "http://deb.example/debian", Suites: []string{"bookworm", "bookworm-updates"}},
		{URI: "http://deb.example/debian-security", Suites: []string{"bookworm-security"}},
	}
	if !equalSources(got, want) {
		t.Errorf("parseDeb822 = %+v, want %+v", got, want)
	}
	a := pickArchive(append(parseOneLine([]byte("deb http://ppa.example/ubuntu noble main\n")), got...))
	if a.Mirror != "http://deb.example/debian" || a.Security != "http://deb.example/debian-security" {
		t.Errorf("pickArchive = %+v, want deb.example's debian and debian-security", a)
	}
	if a := pickArchive(nil); a.Mirror != defaultMirror || a.Security != defaultSecurity {
		t.Errorf("pickArchive(nothing) = %+v, want deb.debian.org", a)
	}
}

func equalSources(a, b []source) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].URI != b[i].URI || strings.Join(a[i].Suites, " ") != strings.Join(b[i].Suites, " ") {
			return false
		}
	}
	return true
}
