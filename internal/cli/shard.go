package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/vmlab/vmlab/internal/report"
	"github.com/vmlab/vmlab/internal/shard"
	"github.com/vmlab/vmlab/internal/version"
)

// shardFlags are vmlab run's -shard and -timings (docs/cli.md#listing-and-shards).
type shardFlags struct {
	spec    string
	timings string
}

func (f *shardFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.spec, "shard", "", "run only the `I/N`-th part of the selected tests (1 <= I <= N), split by their recorded durations; auto or auto/N: I and N from the CI's environment (docs/cli.md#listing-and-shards)")
	fs.StringVar(&f.timings, "timings", "", "read and update the tests' durations in `file` (default: $XDG_CACHE_HOME/vmlab/timings.json or ~/.cache/vmlab/timings.json); every shard of a run must read the same")
}

// shardPlan is this run's part of the selection, its manifest (run.json)
// and where its tests' durations go.
type shardPlan struct {
	all      []job // the whole selection, in run order
	tests    []shard.Test
	shardOf  []int // 1-based, per test of all
	jobs     []job // this run's part of all
	manifest shard.Manifest
	timings  string            // the timings file; "" when there is none
	keys     map[string]string // TestID -> timings key; a TestID of two tests is absent
}

// plan reads the timings and picks this run's part of jobs.
func (f *shardFlags) plan(jobs []job) (*shardPlan, error) {
	index, total, err := f.place()
	if err != nil {
		return nil, err
	}
	path, durations, err := f.readTimings()
	if err != nil {
		return nil, err
	}
	p := &shardPlan{all: jobs, timings: path, keys: map[string]string{}}
	seen := map[string]int{}
	for _, j := range jobs {
		id, key := j.file.TestID(j.test), shard.Key(j.file.Name, j.test)
		p.tests = append(p.tests, shard.Test{ID: id, Key: key, Duration: durations.Duration(key)})
		if seen[id]++; seen[id] == 1 {
			p.keys[id] = key
		} else {
			delete(p.keys, id) // its test-end names either test
		}
	}
	p.shardOf = shard.Partition(p.tests, total)
	p.manifest = shard.Manifest{Format: shard.ManifestVersion, Vmlab: version.Short(), RunID: shard.RunID(os.Getenv),
		Index: index, Total: total, Selection: shard.Selection(p.tests, total), Tests: []string{}, Keys: p.keys}
	p.manifest.Host, _ = os.Hostname()
	for i, j := range jobs {
		p.manifest.All = append(p.manifest.All, p.tests[i].ID)
		if p.shardOf[i] == index {
			p.jobs = append(p.jobs, j)
			p.manifest.Tests = append(p.manifest.Tests, p.tests[i].ID)
		}
	}
	return p, nil
}

// place is the shard's 1-based index and the shard count: 1 and 1
// without -shard.
func (f *shardFlags) place() (index, total int, err error) {
	if f.spec == "" {
		return 1, 1, nil
	}
	spec, err := shard.ParseSpec(f.spec)
	if err != nil {
		return 0, 0, err
	}
	return spec.Resolve(os.Getenv)
}

// readTimings reads the timings file, -timings or the default one. With
// no home to keep the default in, an unsharded run goes on without
// (path ""); a sharded one needs the durations the other shards read.
func (f *shardFlags) readTimings() (string, shard.Timings, error) {
	path := f.timings
	if path == "" {
		var err error
		if path, err = shard.DefaultTimingsPath(); err != nil {
			if f.spec != "" {
				return "", nil, err
			}
			return "", shard.Timings{}, nil
		}
	}
	durations, err := shard.ReadTimings(path)
	if err != nil {
		return "", nil, fmt.Errorf("-timings: %w", err)
	}
	return path, durations, nil
}

// listEntry is a line of vmlab run -list -json; its keys are a contract
// (docs/cli.md#listing-and-shards).
type listEntry struct {
	ID        string        `json:"id"`
	File      string        `json:"file"`
	Test      string        `json:"test"`
	Machines  []listMachine `json:"machines"`
	MemoryMiB int           `json:"memory_mib"`
	Duration  float64       `json:"duration_s,omitempty"`
	Shard     string        `json:"shard,omitempty"`
}

type listMachine struct {
	Name      string `json:"name"`
	MemoryMiB int    `json:"memory_mib"`
	CPUs      int    `json:"cpus"`
	Image     string `json:"image"`
}

// list prints this run's tests: their ids, or with asJSON a listEntry
// each. Machines without a declared memory or CPU count get bf's.
func (p *shardPlan) list(e *env, asJSON, sharded bool, bf bootFlags) int {
	enc := json.NewEncoder(e.stdout)
	for i, j := range p.all {
		if p.shardOf[i] != p.manifest.Index {
			continue
		}
		if !asJSON {
			fmt.Fprintln(e.stdout, p.tests[i].ID)
			continue
		}
		le := listEntry{ID: p.tests[i].ID, File: j.file.Name, Test: j.test, Machines: []listMachine{},
			Duration: p.tests[i].Duration.Seconds()}
		for _, s := range j.file.Specs {
			m := listMachine{Name: s.Name, MemoryMiB: s.MemoryMiB, CPUs: s.CPUs, Image: s.Image}
			if m.MemoryMiB == 0 {
				m.MemoryMiB = bf.memory
			}
			if m.CPUs == 0 {
				m.CPUs = bf.cpus
			}
			le.Machines = append(le.Machines, m)
			le.MemoryMiB += m.MemoryMiB
		}
		if sharded {
			le.Shard = p.manifest.ShardName()
		}
		enc.Encode(le)
	}
	return exitOK
}

// start writes the manifest, not yet complete, in dir and says when this
// shard has no test (more shards than tests): the run then goes on with
// none, so its reports and manifest are there for the merge.
func (p *shardPlan) start(e *env, dir string) error {
	if len(p.jobs) == 0 {
		fmt.Fprintf(e.stderr, "vmlab: shard %s has no test (%d tests between %d shards): nothing to run\n",
			p.manifest.ShardName(), len(p.all), p.manifest.Total)
	}
	p.manifest.Started = time.Now()
	return p.manifest.Write(dir)
}

// finish rewrites the manifest, complete with the run's exit code.
func (p *shardPlan) finish(e *env, dir string, code int) {
	p.manifest.Ended, p.manifest.Complete, p.manifest.Exit = time.Now(), true, code
	if err := p.manifest.Write(dir); err != nil {
		e.errorf("%v", err)
	}
}

// record returns rep behind a sink that writes the duration of each test
// that passed or failed into the timings file: not one skipped, cached or
// ended by the run's interruption (ctx), whose time says nothing of the
// test's. With -i (interactive), a test's time includes the REPL's: none
// is recorded.
func (p *shardPlan) record(ctx context.Context, e *env, rep *report.Reporter, interactive bool) *report.Reporter {
	if interactive || p.timings == "" {
		return rep
	}
	return report.New(reporterSink{rep}, timingSink{ctx: ctx, e: e, p: p})
}

// reporterSink passes events on to a Reporter.
type reporterSink struct{ r *report.Reporter }

func (s reporterSink) Event(ev report.Event) { s.r.Emit(ev) }
func (s reporterSink) Close() error          { return s.r.Close() }

type timingSink struct {
	ctx context.Context
	e   *env
	p   *shardPlan
}

func (s timingSink) Event(ev report.Event) {
	if ev.Kind != report.TestEnd || len(ev.Path) > 0 || ev.Skipped || ev.Cached || ev.Duration <= 0 || s.ctx.Err() != nil {
		return
	}
	key, ok := s.p.keys[ev.Test]
	if !ok {
		return
	}
	t := shard.Timing{ID: ev.Test, Duration: ev.Duration.Seconds(), Seen: ev.Time}
	if err := shard.Record(s.p.timings, map[string]shard.Timing{key: t}, time.Now()); err != nil {
		s.e.errorf("%v (the test's duration is not kept)", err)
	}
}

func (timingSink) Close() error { return nil }
