package shard

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"time"
)

// Test is one test of a selection, as the split sees it.
type Test struct {
	// ID names the test in reports ("file.test_x", script.File.TestID).
	ID string
	// Key is the test's key in the timings file (Key): the file's path
	// relative to the working directory and the test's name.
	Key string
	// Duration is its last measured duration; 0 when unknown.
	Duration time.Duration
}

// Weights returns the weight the split gives each test, in the order of
// tests: its duration when known, the median of the known durations when
// not, and 1 for every test when none is known (a split by count).
func Weights(tests []Test) []time.Duration {
	var known []time.Duration
	for _, t := range tests {
		if t.Duration > 0 {
			known = append(known, t.Duration)
		}
	}
	fill := time.Duration(1)
	if len(known) > 0 {
		slices.Sort(known)
		fill = known[len(known)/2]
		if len(known)%2 == 0 {
			fill = (known[len(known)/2-1] + known[len(known)/2]) / 2
		}
	}
	w := make([]time.Duration, len(tests))
	for i, t := range tests {
		w[i] = cmp.Or(t.Duration, fill)
	}
	return w
}

// Partition splits tests between n shards and returns the 1-based shard
// of each test, in the order of tests. The split depends only on the set
// of tests and their weights (Weights), not on their order: the tests,
// heaviest first (equal weights in ID then Key order), each go to the
// least loaded shard so far (the lowest index among equals). Every
// test lands in exactly one shard; with more shards than tests, some get
// none. n must be at least 1.
func Partition(tests []Test, n int) []int {
	w := Weights(tests)
	order := make([]int, len(tests))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		return cmp.Or(cmp.Compare(w[b], w[a]), cmp.Compare(tests[a].ID, tests[b].ID), cmp.Compare(tests[a].Key, tests[b].Key))
	})
	// Shards past the number of tests stay empty: the i-th test at most
	// finds i shards used, and an empty one of lower index comes first.
	used := min(n, len(tests))
	load := make([]time.Duration, used)
	shardOf := make([]int, len(tests))
	for _, i := range order {
		least := 0
		for s := 1; s < used; s++ {
			if load[s] < load[least] {
				least = s
			}
		}
		load[least] += w[i]
		shardOf[i] = least + 1
	}
	return shardOf
}

// Selection fingerprints a split: a SHA-256 over the shard count and
// every test's ID and weight, in ID order. Runners that computed the
// same Selection split the same tests the same way; one that read other
// timings or other files has another.
func Selection(tests []Test, n int) string {
	w := Weights(tests)
	type entry struct {
		id, key string
		w       time.Duration
	}
	es := make([]entry, len(tests))
	for i, t := range tests {
		es[i] = entry{t.ID, t.Key, w[i]}
	}
	slices.SortFunc(es, func(a, b entry) int {
		return cmp.Or(cmp.Compare(a.id, b.id), cmp.Compare(a.key, b.key), cmp.Compare(a.w, b.w))
	})
	h := sha256.New()
	fmt.Fprintf(h, "vmlab selection 1\nshards %d\n", n)
	for _, e := range es {
		fmt.Fprintf(h, "%q %d\n", e.id, e.w)
	}
	return hex.EncodeToString(h.Sum(nil))
}
