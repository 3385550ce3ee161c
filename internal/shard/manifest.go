// Package shard splits a run's tests between the runners of a CI matrix
// or a Kubernetes Indexed Job and describes what each runner ran, so that
// `vmlab report merge` can join their outputs into one report.
//
// Every `vmlab run` writes a Manifest as run.json in its output
// directory: once when its tests are chosen (Complete false) and again
// when they have ended (Complete true, with the exit code). A shard
// directory without run.json, or whose run.json never became complete,
// is a shard that did not finish, and the merged report says so.
package shard

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// ManifestFile is the manifest's name in a run's output directory.
const ManifestFile = "run.json"

// ManifestVersion is the version of run.json's format; a reader refuses
// another version rather than guess.
const ManifestVersion = 1

// Manifest says what one run (one shard, or the whole selection when the
// run was not sharded) was asked to run and how it ended.
type Manifest struct {
	Format int    `json:"format"`      // ManifestVersion
	Vmlab  string `json:"vmlab"`       // version.Short() of the vmlab that ran
	RunID  string `json:"run_id"`      // the CI run's id (VMLAB_RUN_ID, GITHUB_RUN_ID-ATTEMPT, ...); "" when none
	Host   string `json:"host"`        // os.Hostname()
	Index  int    `json:"shard_index"` // 1-based; 1 when not sharded
	Total  int    `json:"shard_total"` // 1 when not sharded
	// Selection identifies the whole selection that was split: a SHA-256
	// over every selected test's id, the shard count and the weights the
	// split used. Shards of one run have the same Selection; a shard
	// split from other timings or other files does not.
	Selection string `json:"selection"`
	// All is every test of the selection, in run order, by id
	// ("file.test_x"); Tests is this shard's part of it.
	All   []string `json:"all"`
	Tests []string `json:"tests"`
	// Keys are the selection's tests' keys in the timings file (Key), by
	// id: a merge writes the shards' measured durations under them
	// (OUT/timings.json), the next run's timings. An id two tests share
	// has none.
	Keys map[string]string `json:"keys,omitempty"`

	Started  time.Time `json:"started"`
	Ended    time.Time `json:"ended,omitzero"`
	Complete bool      `json:"complete"` // the run reached its end (not killed)
	Exit     int       `json:"exit"`     // vmlab's exit code, when Complete
}

// ShardName is "I/N", how reports name a shard.
func (m *Manifest) ShardName() string { return fmt.Sprintf("%d/%d", m.Index, m.Total) }

// Write writes m as dir/run.json (0600), replacing it whole.
func (m *Manifest) Write(dir string) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, "."+ManifestFile+".tmp")
	if err := os.WriteFile(tmp, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("writing the run's manifest: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, ManifestFile)); err != nil {
		return fmt.Errorf("writing the run's manifest: %w", err)
	}
	return nil
}

// ReadManifest reads dir/run.json. A missing file is an error wrapping
// os.ErrNotExist; another format version is refused.
func ReadManifest(dir string) (*Manifest, error) {
	data, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		return nil, fmt.Errorf("reading the run's manifest in %s: %w", dir, err)
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("reading the run's manifest %s: %w", filepath.Join(dir, ManifestFile), err)
	}
	if m.Format != ManifestVersion {
		return nil, fmt.Errorf("reading the run's manifest %s: format %d, this vmlab reads %d", filepath.Join(dir, ManifestFile), m.Format, ManifestVersion)
	}
	return &m, nil
}
