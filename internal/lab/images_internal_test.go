package lab

import (
	"slices"
	"testing"

	"github.com/vmlab/vmlab/internal/spec"
)

func TestImagePackages(t *testing.T) {
	for _, tt := range []struct {
		name string
		m    spec.Machine
		want []string
	}{
		{"fast", spec.Machine{Image: "debian:trixie", Packages: []string{"redis", "curl"}}, []string{"curl", "redis"}},
		{"systemd", spec.Machine{Image: "debian:trixie", Init: spec.InitSystemd, Packages: []string{"redis"}}, []string{"redis", "systemd"}},
		{"systemd listed", spec.Machine{Image: "debian:trixie", Init: spec.InitSystemd, Packages: []string{"systemd"}}, []string{"systemd"}},
		{"oci", spec.Machine{Image: "oci:/x", Init: spec.InitSystemd}, nil},
	} {
		var told []string
		got := imagePackages(tt.m, func(f string, a ...any) { told = append(told, f) })
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
		if added := tt.name == "systemd"; added != (len(told) == 1) {
			t.Errorf("%s: told %q; want a line only when systemd is added", tt.name, told)
		}
	}
}
