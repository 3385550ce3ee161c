package shard

import (
	"strings"
	"testing"
)

func TestParseSpec(t *testing.T) {
	tests := []struct {
		in   string
		want Spec
		err  string
	}{
		{"1/1", Spec{Index: 1, Total: 1}, ""},
		{"2/4", Spec{Index: 2, Total: 4}, ""},
		{"auto", Spec{Auto: true}, ""},
		{"auto/3", Spec{Auto: true, Total: 3}, ""},
		{"3/2", Spec{}, `-shard "3/2": the index must be from 1 to 2 (shards are numbered from 1)`},
		{"0/2", Spec{}, `-shard "0/2": the index must be from 1 to 2`},
		{"0/0", Spec{}, `-shard "0/0": the shard count "0" is not a whole number of at least 1`},
		{"1/0", Spec{}, `-shard "1/0": the shard count "0" is not a whole number of at least 1`},
		{"a/b", Spec{}, `-shard "a/b": the shard count "b" is not a whole number of at least 1`},
		{"a/2", Spec{}, `-shard "a/2": the index "a" is not a number`},
		{"auto/0", Spec{}, `-shard "auto/0": the shard count "0" is not a whole number of at least 1`},
		{"-1/2", Spec{}, `-shard "-1/2": the index must be from 1 to 2`},
		{"10000/10000", Spec{Index: 10000, Total: 10000}, ""},
		{"1/10001", Spec{}, `-shard "1/10001": at most 10000 shards`},
		{"1/4000000000", Spec{}, `-shard "1/4000000000": at most 10000 shards`},
		{"auto/4000000000", Spec{}, `-shard "auto/4000000000": at most 10000 shards`},
		{"2", Spec{}, `-shard "2": want I/N`},
		{"", Spec{}, `-shard "": want I/N`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSpec(tt.in)
			switch {
			case tt.err == "" && (err != nil || got != tt.want):
				t.Errorf("got %+v, %v; want %+v", got, err, tt.want)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Errorf("got %+v, error %v; want an error with %q", got, err, tt.err)
			}
		})
	}
}

// TestFromEnv: each engine's variables, 0- or 1-based as it numbers its
// jobs, and the mistakes: none set, half set, not numbers, out of range,
// a Kubernetes index without -shard auto/N, an N the environment's total
// contradicts.
func TestFromEnv(t *testing.T) {
	tests := []struct {
		name         string
		env          map[string]string
		total        int // of auto/N
		index, count int
		err          string
	}{
		{"github via vmlab's variables", map[string]string{"VMLAB_SHARD_INDEX": "0", "VMLAB_SHARD_TOTAL": "4"}, 0, 1, 4, ""},
		{"vmlab's last", map[string]string{"VMLAB_SHARD_INDEX": "3", "VMLAB_SHARD_TOTAL": "4"}, 0, 4, 4, ""},
		{"gitlab is 1-based", map[string]string{"CI_NODE_INDEX": "1", "CI_NODE_TOTAL": "3"}, 0, 1, 3, ""},
		{"gitlab last", map[string]string{"CI_NODE_INDEX": "3", "CI_NODE_TOTAL": "3"}, 0, 3, 3, ""},
		{"buildkite", map[string]string{"BUILDKITE_PARALLEL_JOB": "2", "BUILDKITE_PARALLEL_JOB_COUNT": "5"}, 0, 3, 5, ""},
		{"kubernetes with auto/N", map[string]string{"JOB_COMPLETION_INDEX": "0"}, 2, 1, 2, ""},
		{"kubernetes last", map[string]string{"JOB_COMPLETION_INDEX": "7"}, 8, 8, 8, ""},
		{"auto/N agrees", map[string]string{"CI_NODE_INDEX": "2", "CI_NODE_TOTAL": "2"}, 2, 2, 2, ""},
		{"vmlab's before a CI's", map[string]string{"VMLAB_SHARD_INDEX": "1", "VMLAB_SHARD_TOTAL": "2", "CI_NODE_INDEX": "1", "CI_NODE_TOTAL": "5"}, 0, 2, 2, ""},

		{"none", map[string]string{}, 0, 0, 0, "-shard auto: none of VMLAB_SHARD_INDEX, CI_NODE_INDEX, BUILDKITE_PARALLEL_JOB, JOB_COMPLETION_INDEX is set"},
		{"kubernetes without N", map[string]string{"JOB_COMPLETION_INDEX": "1"}, 0, 0, 0, "gives the index but not the total: use -shard auto/N"},
		{"kubernetes out of range", map[string]string{"JOB_COMPLETION_INDEX": "2"}, 2, 0, 0, "JOB_COMPLETION_INDEX=2 (a Kubernetes Indexed Job) is out of range for 2 shards (want 0 to 1)"},
		{"gitlab 0", map[string]string{"CI_NODE_INDEX": "0", "CI_NODE_TOTAL": "3"}, 0, 0, 0, "CI_NODE_INDEX=0 (GitLab CI parallel:) is out of range for 3 shards (want 1 to 3)"},
		{"index without total", map[string]string{"VMLAB_SHARD_INDEX": "0"}, 0, 0, 0, "VMLAB_SHARD_INDEX is set but VMLAB_SHARD_TOTAL is not"},
		{"not a number", map[string]string{"BUILDKITE_PARALLEL_JOB": "x", "BUILDKITE_PARALLEL_JOB_COUNT": "2"}, 0, 0, 0, `BUILDKITE_PARALLEL_JOB="x" (Buildkite parallelism) is not a number`},
		{"total 0", map[string]string{"CI_NODE_INDEX": "1", "CI_NODE_TOTAL": "0"}, 0, 0, 0, `CI_NODE_TOTAL="0" (GitLab CI parallel:) is not a whole number of at least 1`},
		{"too many", map[string]string{"CI_NODE_INDEX": "1", "CI_NODE_TOTAL": "4000000000"}, 0, 0, 0, "CI_NODE_TOTAL=4000000000 (GitLab CI parallel:): at most 10000 shards"},
		{"auto/N disagrees", map[string]string{"CI_NODE_INDEX": "1", "CI_NODE_TOTAL": "3"}, 4, 0, 0, "-shard auto/4: CI_NODE_TOTAL=3 says 3 shards"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			index, count, err := FromEnv(func(k string) string { return tt.env[k] }, tt.total)
			switch {
			case tt.err == "" && (err != nil || index != tt.index || count != tt.count):
				t.Errorf("got %d/%d, %v; want %d/%d", index, count, err, tt.index, tt.count)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Errorf("got %d/%d, error %v; want an error with %q", index, count, err, tt.err)
			}
		})
	}
}

func TestRunID(t *testing.T) {
	tests := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{}, ""},
		{map[string]string{"VMLAB_RUN_ID": "mine", "GITHUB_RUN_ID": "9"}, "mine"},
		{map[string]string{"GITHUB_RUN_ID": "9", "GITHUB_RUN_ATTEMPT": "2"}, "9-2"},
		{map[string]string{"CI_PIPELINE_ID": "77"}, "77"},
		{map[string]string{"BUILDKITE_BUILD_ID": "0190-ab"}, "0190-ab"},
	}
	for _, tt := range tests {
		if got := RunID(func(k string) string { return tt.env[k] }); got != tt.want {
			t.Errorf("RunID(%v) = %q, want %q", tt.env, got, tt.want)
		}
	}
}
