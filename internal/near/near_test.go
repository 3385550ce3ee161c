package near

import (
	"slices"
	"testing"
)

func TestDistance(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"abc", "", 3},
		{"", "abc", 3},
		{"memory", "memroy", 2},
		{"nfs-servr.service", "nfs-server.service", 1},
		{"kitten", "sitting", 3},
		{"systemd", "sytemd", 1},
	}
	for _, tt := range tests {
		if got := Distance(tt.a, tt.b); got != tt.want {
			t.Errorf("Distance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := Distance(tt.b, tt.a); got != tt.want {
			t.Errorf("Distance(%q, %q) = %d, want %d (symmetric)", tt.b, tt.a, got, tt.want)
		}
	}
}

func TestNames(t *testing.T) {
	names := []string{"cpus", "memory", "memorx", "name", "vlans"}
	tests := []struct {
		name string
		max  int
		want []string
	}{
		{"memroy", 3, []string{"memory"}},
		{"memor", 3, []string{"memory", "memorx"}},
		{"memor", 1, []string{"memory"}}, // a tie keeps the order given
		{"name", 3, nil},                 // the name itself is no suggestion
		{"disk", 3, nil},
	}
	for _, tt := range tests {
		if got := Names(tt.name, names, tt.max); !slices.Equal(got, tt.want) {
			t.Errorf("Names(%q, %d) = %q, want %q", tt.name, tt.max, got, tt.want)
		}
	}
}

func TestMean(t *testing.T) {
	tests := []struct {
		names []string
		want  string
	}{
		{nil, ""},
		{[]string{"a"}, " (did you mean a?)"},
		{[]string{"a", "b"}, " (did you mean a or b?)"},
		{[]string{"a", "b", "c"}, " (did you mean a, b or c?)"},
	}
	for _, tt := range tests {
		if got := Mean(tt.names); got != tt.want {
			t.Errorf("Mean(%q) = %q, want %q", tt.names, got, tt.want)
		}
	}
	if got, want := Hint("sytemd", []string{"fast", "systemd"}), " (did you mean systemd?)"; got != want {
		t.Errorf("Hint = %q, want %q", got, want)
	}
}
