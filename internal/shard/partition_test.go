package shard

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// exampleTests are the tests of examples/*.star, by the loader's rule (a
// top-level function named test or test_*), each with a duration of the
// order its example takes under TCG: a machine's boot is ~2 s, a
// test's work 5 to 60 s. The files are read, not loaded: coverage.star
// shares a directory its build.sh makes, which a fresh checkout lacks.
func exampleTests(t *testing.T) []Test {
	t.Helper()
	files, err := filepath.Glob("../../examples/*.star")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples/*.star: %v", err)
	}
	def := regexp.MustCompile(`(?m)^def (test|test_\w+)\(`)
	var tests []Test
	for i, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		base := strings.TrimSuffix(filepath.Base(f), ".star")
		for j, m := range def.FindAllStringSubmatch(string(src), -1) {
			d := time.Duration(5+(i*17+j*7)%55) * time.Second
			tests = append(tests, Test{ID: base + "." + m[1], Key: "examples/" + base + ".star:" + m[1], Duration: d})
		}
	}
	if len(tests) < len(files) {
		t.Fatalf("found %d tests in %d example files, want one at least in each", len(tests), len(files))
	}
	return tests
}

// syntheticTests is a suite of n tests of 1 to 120 s, from seed.
func syntheticTests(n int, seed uint64) []Test {
	r := rand.New(rand.NewPCG(seed, 1))
	tests := make([]Test, n)
	for i := range tests {
		id := fmt.Sprintf("suite%02d.test_%03d", i%7, i)
		tests[i] = Test{ID: id, Key: "suite/" + id, Duration: time.Duration(1+r.IntN(120)) * time.Second}
	}
	return tests
}

// shuffled is a copy of tests in another order.
func shuffled(tests []Test, seed uint64) []Test {
	c := slices.Clone(tests)
	rand.New(rand.NewPCG(seed, 2)).Shuffle(len(c), func(i, j int) { c[i], c[j] = c[j], c[i] })
	return c
}

// TestPartitionEveryTestOnce: N runners, each splitting the selection
// itself from its own order of the tests (as runners given the files in
// another order would), together run every test exactly once, N = 1..8,
// with durations known, partly known and unknown.
func TestPartitionEveryTestOnce(t *testing.T) {
	partly := syntheticTests(40, 7)
	for i := range partly {
		if i%3 == 0 {
			partly[i].Duration = 0
		}
	}
	unknown := syntheticTests(23, 8)
	for i := range unknown {
		unknown[i].Duration = 0
	}
	suites := map[string][]Test{"examples": exampleTests(t), "synthetic": syntheticTests(100, 1),
		"partly known": partly, "unknown": unknown, "fewer than shards": syntheticTests(3, 9)}
	for name, tests := range suites {
		for n := 1; n <= 8; n++ {
			ran := map[string]int{}
			for index := 1; index <= n; index++ {
				mine := shuffled(tests, uint64(index))
				for i, s := range Partition(mine, n) {
					if s < 1 || s > n {
						t.Fatalf("%s, %d shards: test %s in shard %d", name, n, mine[i].ID, s)
					}
					if s == index {
						ran[mine[i].Key]++
					}
				}
			}
			for _, tt := range tests {
				if ran[tt.Key] != 1 {
					t.Errorf("%s, %d shards: %s ran %d times, want 1", name, n, tt.ID, ran[tt.Key])
				}
			}
			if len(ran) != len(tests) {
				t.Errorf("%s, %d shards: %d tests ran, want %d", name, n, len(ran), len(tests))
			}
		}
	}
}

// TestPartitionBalance: with every duration known, the most loaded
// shard's load is within 20% of the ideal (the total over N), or, when
// one test alone is longer than that, no more than that test: no split
// finishes before its longest test. That bound on the most loaded shard
// is what decides when the last shard ends; the figures are logged.
// The least loaded is asserted where it is achievable by any split of
// these tests: where the longest test is at most a fifth of the ideal,
// every shard is within 20% of it both ways. And in every case the
// spread between the most and least loaded is at most the longest test
// (a greedy split's invariant: the last test onto the fullest shard
// went onto the emptiest at the time).
func TestPartitionBalance(t *testing.T) {
	suites := map[string][]Test{"examples": exampleTests(t), "synthetic 100": syntheticTests(100, 1),
		"synthetic 30": syntheticTests(30, 3), "synthetic 300": syntheticTests(300, 4)}
	for name, tests := range suites {
		var total, longest time.Duration
		for _, tt := range tests {
			total += tt.Duration
			longest = max(longest, tt.Duration)
		}
		for n := 1; n <= 8; n++ {
			load := make([]time.Duration, n)
			for i, s := range Partition(tests, n) {
				load[s-1] += tests[i].Duration
			}
			ideal := total / time.Duration(n)
			bound := max(ideal*12/10, longest)
			worst, least := slices.Max(load), slices.Min(load)
			t.Logf("%s, %d shards: most loaded %v, least %v, ideal %v, longest test %v", name, n, worst, least, ideal, longest)
			if worst > bound {
				t.Errorf("%s, %d shards: a shard's load is %v, over %v (ideal %v +20%%, longest test %v); loads %v",
					name, n, worst, bound, ideal, longest, load)
			}
			if longest*5 <= ideal && least < ideal*8/10 {
				t.Errorf("%s, %d shards: a shard's load is %v, under %v (ideal %v -20%%); loads %v", name, n, least, ideal*8/10, ideal, load)
			}
			if worst-least > longest {
				t.Errorf("%s, %d shards: loads from %v to %v, apart by more than the longest test %v", name, n, least, worst, longest)
			}
		}
	}
}

// TestPartitionRule: heaviest first onto the least loaded shard (the
// lowest index among equals), equal weights in ID order, unknown
// durations weighing the median of the known, none known: by count.
func TestPartitionRule(t *testing.T) {
	s := time.Second
	tests := []struct {
		name  string
		tests []Test
		n     int
		want  []int
	}{
		{"equal weights in id order", []Test{{ID: "d"}, {ID: "b"}, {ID: "a"}, {ID: "c"}}, 2, []int{2, 2, 1, 1}},
		{"longest first", []Test{{ID: "a", Duration: 1 * s}, {ID: "b", Duration: 5 * s}, {ID: "c", Duration: 3 * s}, {ID: "d", Duration: 3 * s}}, 2,
			[]int{1, 1, 2, 2}}, // b 5 | c 3, d 3 | a 1 onto 5 < 6
		// known 2, 4, 10: u weighs 4 (the median): c 10 | b 4, u 4, a 2
		{"unknown weighs the median", []Test{{ID: "a", Duration: 2 * s}, {ID: "b", Duration: 4 * s}, {ID: "c", Duration: 10 * s}, {ID: "u"}}, 2,
			[]int{2, 2, 1, 2}},
		{"by count when none known", []Test{{ID: "a"}, {ID: "b"}, {ID: "c"}, {ID: "d"}, {ID: "e"}}, 3, []int{1, 2, 3, 1, 2}},
		{"more shards than tests", []Test{{ID: "a"}, {ID: "b"}}, 4, []int{1, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Partition(tt.tests, tt.n); !slices.Equal(got, tt.want) {
				t.Errorf("got shards %v, want %v", got, tt.want)
			}
		})
	}
}

// TestPartitionDeterministic: the same tests in any order get the same
// shards and the same Selection.
func TestPartitionDeterministic(t *testing.T) {
	tests := syntheticTests(60, 5)
	tests[3].Duration, tests[9].Duration = 0, 0
	tests[10].Duration = tests[11].Duration // equal weights: decided by id
	want := map[string]int{}
	for i, s := range Partition(tests, 5) {
		want[tests[i].Key] = s
	}
	sel := Selection(tests, 5)
	for seed := range uint64(20) {
		mine := shuffled(tests, seed)
		for i, s := range Partition(mine, 5) {
			if want[mine[i].Key] != s {
				t.Fatalf("order %d: %s in shard %d, in %d from the first order", seed, mine[i].ID, s, want[mine[i].Key])
			}
		}
		if got := Selection(mine, 5); got != sel {
			t.Fatalf("order %d: selection %s, want %s", seed, got, sel)
		}
	}
}

// TestSelectionChanges: another shard count, another duration, one test
// more or fewer is another Selection.
func TestSelectionChanges(t *testing.T) {
	tests := syntheticTests(10, 6)
	base := Selection(tests, 3)
	longer := slices.Clone(tests)
	longer[4].Duration += time.Second
	unknown := slices.Clone(tests)
	unknown[4].Duration = 0
	renamed := slices.Clone(tests)
	renamed[0].ID += "x"
	for name, got := range map[string]string{
		"4 shards":       Selection(tests, 4),
		"a longer test":  Selection(longer, 3),
		"an unknown":     Selection(unknown, 3),
		"one test fewer": Selection(tests[1:], 3),
		"a renamed test": Selection(renamed, 3),
		"one test more":  Selection(append(slices.Clone(tests), Test{ID: "new.test"}), 3),
	} {
		if got == base {
			t.Errorf("%s: same selection %s as before", name, got)
		}
	}
}

// TestPartitionManyShards: the split of a few tests between the most
// shards allowed puts each test alone in the lowest shards, allocating for
// the tests, not the shards. Before, the split allocated per shard (a
// typo's 4,000,000,000 ran the machine out of memory).
func TestPartitionManyShards(t *testing.T) {
	tests := []Test{{ID: "a.t", Duration: time.Second}, {ID: "b.t", Duration: 3 * time.Second}, {ID: "c.t"}}
	// c.t weighs the median, 2 s: b.t, c.t, a.t go to shards 1, 2, 3.
	if got, want := Partition(tests, MaxShards), []int{3, 1, 2}; !slices.Equal(got, want) {
		t.Errorf("Partition into %d shards: got %v, want %v", MaxShards, got, want)
	}
	res := testing.Benchmark(func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			Partition(tests, MaxShards)
		}
	})
	if bytes := res.AllocedBytesPerOp(); bytes > 4096 {
		t.Errorf("Partition of 3 tests into %d shards: %d bytes allocated, want under 4 KiB", MaxShards, bytes)
	}
}
