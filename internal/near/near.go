// Package near finds the names closest to a mistyped one, for the "did you
// mean" of error messages: a misspelled keyword, method or unit name.
package near

import (
	"cmp"
	"slices"
	"strings"
)

// MaxDistance is the most edits a name may be from the one typed to be
// offered: two catches a dropped, doubled or swapped letter ("nfs-servr",
// "memroy") without offering unrelated short names.
const MaxDistance = 2

// Distance is the Levenshtein distance between a and b: the fewest
// single-byte insertions, deletions and substitutions that turn a into b.
func Distance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	cur := make([]int, len(b)+1)
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Names returns the names at most MaxDistance edits from name, nearest
// first (ties in the order given), at most max of them; name itself is
// never among them.
func Names(name string, names []string, max int) []string {
	type scored struct {
		name string
		d    int
	}
	var found []scored
	for _, n := range names {
		if d := Distance(name, n); d > 0 && d <= MaxDistance {
			found = append(found, scored{n, d})
		}
	}
	slices.SortStableFunc(found, func(a, b scored) int { return cmp.Compare(a.d, b.d) })
	var out []string
	for _, f := range found[:min(len(found), max)] {
		out = append(out, f.name)
	}
	return out
}

// Hint returns " (did you mean X?)" naming the nearest of names, or ""
// when none is near.
func Hint(name string, names []string) string {
	return Mean(Names(name, names, 1))
}

// Mean returns " (did you mean X?)", " (did you mean X or Y?)", " (did you
// mean X, Y or Z?)" for the names given, "" for none.
func Mean(names []string) string {
	switch len(names) {
	case 0:
		return ""
	case 1:
		return " (did you mean " + names[0] + "?)"
	}
	last := len(names) - 1
	return " (did you mean " + strings.Join(names[:last], ", ") + " or " + names[last] + "?)"
}
