package kernel

import (
	"path/filepath"
	"testing"
)

func TestFind(t *testing.T) {
	tests := []struct {
		name        string
		images      []string // releases with /boot/vmlinuz-<release>
		moduleTrees []string
		path        string   // Find's argument, relative to Boot
		want        string   // release of the image found
		wantErr     []string // substrings of the error
	}{
		{name: "newest in version order",
			images:      []string{"6.1.0-9-amd64", "6.1.0-10-amd64", "5.10.0-28-amd64"},
			moduleTrees: []string{"6.1.0-9-amd64", "6.1.0-10-amd64", "5.10.0-28-amd64"},
			want:        "6.1.0-10-amd64"},
		{name: "skips images without modules",
			images:      []string{"6.1.0-9-amd64", "6.12.0-1-amd64"},
			moduleTrees: []string{"6.1.0-9-amd64"},
			want:        "6.1.0-9-amd64"},
		{name: "explicit path", images: []string{"6.1.0-9-amd64"}, path: "vmlinuz-6.1.0-9-amd64", want: "6.1.0-9-amd64"},
		{name: "explicit path missing", path: "vmlinuz-nope", wantErr: []string{"vmlinuz-nope", "no such file"}},
		{name: "nothing installed",
			wantErr: []string{"no kernel found", "vmlinuz-<release>", "lib/modules", "apt-get install linux-image-amd64"}},
		{name: "only images without modules",
			images:  []string{"6.12.0-1-amd64"},
			wantErr: []string{"no kernel found", "vmlinuz-6.12.0-1-amd64 have no module tree"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := fakeHost(t, tt.moduleTrees...)
			for _, rel := range tt.images {
				mustWrite(t, filepath.Join(h.Boot, "vmlinuz-"+rel), nil)
			}
			path := tt.path
			if path != "" {
				path = filepath.Join(h.Boot, path)
			}
			got, err := h.Find(path)
			if tt.wantErr != nil {
				checkErr(t, err, nil, tt.wantErr...)
				return
			}
			if want := filepath.Join(h.Boot, "vmlinuz-"+tt.want); err != nil || got != want {
				t.Errorf("Find(%q) = %q, %v; want %q, nil", path, got, err, want)
			}
		})
	}
}

func TestCompareVersions(t *testing.T) {
	tests := []struct {
		a, b string
		want int // sign of the result
	}{
		{"6.1.0-10-amd64", "6.1.0-9-amd64", 1},
		{"6.1.0-9-amd64", "6.1.0-10-amd64", -1},
		{"5.10.0-28-amd64", "6.1.0-9-amd64", -1},
		{"6.10.0", "6.9.0", 1},
		{"6.1.0", "6.1.0.1", -1},
		{"6.1.0-56-amd64", "6.1.0-56-amd64", 0},
		{"6.1.0-056", "6.1.0-56", 0},
		{"6.8.0-45-generic", "6.8.0-45-lowlatency", -1},
	}
	for _, tt := range tests {
		got := compareVersions(tt.a, tt.b)
		if sign(got) != tt.want {
			t.Errorf("compareVersions(%q, %q) = %d, want sign %d", tt.a, tt.b, got, tt.want)
		}
	}
}

func sign(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}
