package agentproto

import "testing"

func TestElideBootParam(t *testing.T) {
	blob := BootConfig{Hostname: "gui"}.Param()[len(BootParam)+1:]
	tests := []struct{ name, in, want string }{
		{"kernel line", "[    0.000000] Kernel command line: console=ttyS0 quiet vmlab=" + blob + " panic=-1",
			"[    0.000000] Kernel command line: console=ttyS0 quiet vmlab=… panic=-1"},
		{"xorg banner", "service x: Kernel command line: console=ttyS0 vmlab=" + blob,
			"service x: Kernel command line: console=ttyS0 vmlab=…"},
		{"twice", "vmlab=" + blob + " vmlab=" + blob, "vmlab=… vmlab=…"},
		{"short value", "vmlab=1 is fine", "vmlab=1 is fine"},
		{"longer name", "myvmlab=" + blob, "myvmlab=" + blob},
		{"none", "Welcome to Debian", "Welcome to Debian"},
	}
	for _, tt := range tests {
		if got := ElideBootParam(tt.in); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
}
