package agent

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
)

// TestNameNICs checks the renames that give NICs their names: none for a
// NIC already named so, one for a free name (also one another NIC frees),
// and a temporary name only for NICs that hold each other's names; every
// NIC ends with its name and no two links ever share one.
func TestNameNICs(t *testing.T) {
	for _, c := range []struct {
		name          string
		current, want []string
		others        []string // links that are no NIC of the test's
		renames       int
	}{
		{"named already", []string{"eth0", "eth1"}, []string{"eth0", "eth1"}, []string{"lo"}, 0},
		{"a free name", []string{"eth0"}, []string{"eth1"}, []string{"lo", "sit0"}, 1},
		{"a chain", []string{"eth0", "eth1"}, []string{"eth1", "eth2"}, nil, 2},
		{"a swap", []string{"eth0", "eth1"}, []string{"eth1", "eth0"}, nil, 4},
		{"a swap and a free name", []string{"eth0", "eth1", "eth2"}, []string{"eth1", "eth0", "eth5"}, nil, 5},
	} {
		t.Run(c.name, func(t *testing.T) {
			links := map[string]bool{}
			for _, n := range append(slices.Clone(c.current), c.others...) {
				links[n] = true
			}
			n := 0
			rename := func(from, to string) error {
				if !links[from] || links[to] {
					return fmt.Errorf("rename %s to %s: links %v", from, to, slices.Sorted(maps.Keys(links)))
				}
				delete(links, from)
				links[to] = true
				n++
				return nil
			}
			cur := slices.Clone(c.current)
			if err := nameNICs(cur, c.want, maps.Clone(links), rename); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(cur, c.want) || n != c.renames {
				t.Errorf("got names %v after %d renames, want %v after %d", cur, n, c.want, c.renames)
			}
			for _, w := range append(slices.Clone(c.want), c.others...) {
				if !links[w] {
					t.Errorf("no link %s after the renames: %v", w, slices.Sorted(maps.Keys(links)))
				}
			}
		})
	}
	t.Run("a name another link holds", func(t *testing.T) {
		links := map[string]bool{"eth0": true, "eth1": true}
		errTaken := errors.New("taken")
		err := nameNICs([]string{"eth0"}, []string{"eth1"}, links, func(from, to string) error {
			if to == "eth1" {
				return errTaken
			}
			return nil
		})
		if !errors.Is(err, errTaken) {
			t.Errorf("got %v, want the rename's error", err)
		}
	})
}
