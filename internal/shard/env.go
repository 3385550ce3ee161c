package shard

import (
	"fmt"
	"strconv"
	"strings"
)

// MaxShards is the most shards a run may be split into: more would be a
// typo (a CI engine runs far fewer jobs at once), and each costs the split
// a little memory.
const MaxShards = 10000

// Spec is a parsed -shard value: "I/N" (1-based, 1 <= I <= N), "auto" or
// "auto/N" (the index, and the total unless given, from the environment:
// FromEnv).
type Spec struct {
	Index, Total int  // 1-based; 0 when not given ("auto")
	Auto         bool // the index comes from the environment
}

// ParseSpec parses a -shard value.
func ParseSpec(s string) (Spec, error) {
	if s == "auto" {
		return Spec{Auto: true}, nil
	}
	i, n, ok := strings.Cut(s, "/")
	if !ok {
		return Spec{}, fmt.Errorf("-shard %q: want I/N (the I-th of N shards, 1-based: 1/4 ... 4/4), auto or auto/N", s)
	}
	total, err := strconv.Atoi(n)
	if err != nil || total < 1 {
		return Spec{}, fmt.Errorf("-shard %q: the shard count %q is not a whole number of at least 1", s, n)
	}
	if total > MaxShards {
		return Spec{}, fmt.Errorf("-shard %q: at most %d shards; give a shard count from 1 to %d", s, MaxShards, MaxShards)
	}
	if i == "auto" {
		return Spec{Auto: true, Total: total}, nil
	}
	index, err := strconv.Atoi(i)
	if err != nil {
		return Spec{}, fmt.Errorf("-shard %q: the index %q is not a number (want I/N, 1 <= I <= N, or auto)", s, i)
	}
	if index < 1 || index > total {
		return Spec{}, fmt.Errorf("-shard %q: the index must be from 1 to %d (shards are numbered from 1)", s, total)
	}
	return Spec{Index: index, Total: total}, nil
}

// Resolve returns the shard's 1-based index and total: the spec's own,
// or for auto, FromEnv's.
func (s Spec) Resolve(getenv func(string) string) (index, total int, err error) {
	if !s.Auto {
		return s.Index, s.Total, nil
	}
	return FromEnv(getenv, s.Total)
}

// ciVars is where each engine puts a job's place in a parallel run.
var ciVars = []struct {
	engine, index, total string
	base                 int // the index of the first job
}{
	// A GitHub Actions matrix sets nothing itself: the workflow sets
	// these from strategy.job-index and strategy.job-total.
	{"vmlab's own, which a GitHub Actions workflow sets from strategy.job-index", "VMLAB_SHARD_INDEX", "VMLAB_SHARD_TOTAL", 0},
	{"GitLab CI parallel:", "CI_NODE_INDEX", "CI_NODE_TOTAL", 1},
	{"Buildkite parallelism", "BUILDKITE_PARALLEL_JOB", "BUILDKITE_PARALLEL_JOB_COUNT", 0},
	{"a Kubernetes Indexed Job", "JOB_COMPLETION_INDEX", "", 0},
}

// FromEnv reads the shard's 1-based index and total from the first of
// these that is set: VMLAB_SHARD_INDEX and VMLAB_SHARD_TOTAL (0-based),
// GitLab's CI_NODE_INDEX and CI_NODE_TOTAL (1-based), Buildkite's
// BUILDKITE_PARALLEL_JOB and BUILDKITE_PARALLEL_JOB_COUNT (0-based), a
// Kubernetes Indexed Job's JOB_COMPLETION_INDEX (0-based). total is the
// N of -shard auto/N, 0 when not given: the Kubernetes index needs it
// (the pod's environment has no total), and when the environment has a
// total too, both must agree.
func FromEnv(getenv func(string) string, total int) (int, int, error) {
	for _, v := range ciVars {
		is := getenv(v.index)
		if is == "" {
			continue
		}
		index, err := strconv.Atoi(is)
		if err != nil {
			return 0, 0, fmt.Errorf("-shard auto: %s=%q (%s) is not a number", v.index, is, v.engine)
		}
		index += 1 - v.base
		n := total
		if v.total != "" {
			ts := getenv(v.total)
			if ts == "" {
				return 0, 0, fmt.Errorf("-shard auto: %s is set but %s is not (%s): set both", v.index, v.total, v.engine)
			}
			n, err = strconv.Atoi(ts)
			if err != nil || n < 1 {
				return 0, 0, fmt.Errorf("-shard auto: %s=%q (%s) is not a whole number of at least 1", v.total, ts, v.engine)
			}
			if n > MaxShards {
				return 0, 0, fmt.Errorf("-shard auto: %s=%d (%s): at most %d shards", v.total, n, v.engine, MaxShards)
			}
			if total != 0 && n != total {
				return 0, 0, fmt.Errorf("-shard auto/%d: %s=%d says %d shards: drop the /%d or make them agree", total, v.total, n, n, total)
			}
		}
		if n == 0 {
			return 0, 0, fmt.Errorf("-shard auto: %s=%s (%s) gives the index but not the total: use -shard auto/N with N the job's completions", v.index, is, v.engine)
		}
		if index < 1 || index > n {
			return 0, 0, fmt.Errorf("-shard auto: %s=%s (%s) is out of range for %d shards (%s)", v.index, is, v.engine, n, rangeText(v.base, n))
		}
		return index, n, nil
	}
	return 0, 0, fmt.Errorf("-shard auto: none of %s is set; set VMLAB_SHARD_INDEX (from 0) and VMLAB_SHARD_TOTAL, or use -shard I/N", envNames())
}

// rangeText is an index variable's valid values.
func rangeText(base, n int) string {
	return fmt.Sprintf("want %d to %d", base, base+n-1)
}

// envNames lists the index variables FromEnv looks for.
func envNames() string {
	var names []string
	for _, v := range ciVars {
		names = append(names, v.index)
	}
	return strings.Join(names, ", ")
}

// RunID names the CI run a shard belongs to, for its manifest:
// VMLAB_RUN_ID, else GitHub's GITHUB_RUN_ID-GITHUB_RUN_ATTEMPT, GitLab's
// CI_PIPELINE_ID, Buildkite's BUILDKITE_BUILD_ID; "" when none is set.
func RunID(getenv func(string) string) string {
	if id := getenv("VMLAB_RUN_ID"); id != "" {
		return id
	}
	if id := getenv("GITHUB_RUN_ID"); id != "" {
		if a := getenv("GITHUB_RUN_ATTEMPT"); a != "" {
			return id + "-" + a
		}
		return id
	}
	for _, name := range []string{"CI_PIPELINE_ID", "BUILDKITE_BUILD_ID"} {
		if id := getenv(name); id != "" {
			return id
		}
	}
	return ""
}
