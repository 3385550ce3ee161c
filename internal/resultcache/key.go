// Package resultcache owns vmlab's cache of test results (vmlab run's
// "(cached)", docs/cli.md "Cached results"): the key of a test, a hash over
// everything that can change its outcome (Inputs); the entry a passing
// run leaves under that key (Entry), with the host files the run read as
// it went (copy_from_host sources), checked again before the entry is
// trusted; and the stores that keep entries: a local directory, bounded as
// the other caches under ~/.cache/vmlab, and an HTTP server that answers
// GET and PUT on URL/ac/KEY (bazel-remote, a WebDAV nginx).
//
// Only passing tests are stored. A test whose key cannot be computed (a
// share too large to hash, an input that cannot be read) is run, and not
// stored.
package resultcache

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"path/filepath"

	"github.com/vmlab/vmlab/internal/spec"
)

// keyVersion is folded into every key: bump it when what Inputs covers, or
// how it is hashed, changes, so that no older entry matches.
const keyVersion = 1

// Inputs are what a test's outcome depends on, as far as vmlab can know
// before running it. Digests are SHA-256 in hex; an empty one means the
// input does not apply (no host-root machine: no HostPackages).
type Inputs struct {
	// File is the test file's name, Source its bytes. Only its base name
	// counts (the first part of the test id: "nfs" of "nfs.test_x"): the
	// key is the same however the file was named on the command line
	// (suite/a.star, ./a.star from suite/, an absolute path). vmlab files
	// load no other file (load() is refused), so the file is the whole
	// script.
	File   string
	Source []byte
	// Test is the test function's name (test_x).
	Test string
	// Machines are the file's machine declarations.
	Machines []spec.Machine
	// Vmlab is the digest of the running vmlab executable: the guests'
	// agent is vmlab too, and a new build may behave differently.
	Vmlab string
	// Kernel and Initramfs are the digests of the kernel image and the
	// initramfs the machines boot (the initramfs holds the agent and the
	// kernel's modules).
	Kernel, Initramfs string
	// QEMU is the digest of the QEMU binary and its version line.
	QEMU string
	// Images are the content keys of the machines' images (image.Image's
	// Key, which covers the suite, packages, archive date or OCI digest),
	// by machine name.
	Images map[string]string
	// HostPackages is the digest of the host's package database
	// (/var/lib/dpkg/status) when a machine boots the host's root: an
	// upgrade on the host changes what such guests run.
	HostPackages string
	// Shares are the digests of the shared host directories' trees, by
	// host path.
	Shares map[string]string
	// Options are the run's options that change an outcome: the test's
	// timeout, the default memory and CPUs, the accelerator, the guests'
	// file system transport.
	Options map[string]string
}

// Key returns the test's key: the SHA-256, in hex, of a canonical
// encoding of in (JSON, whose maps encoding/json sorts by key).
func (in Inputs) Key() string {
	src := sha256.Sum256(in.Source)
	canon := struct {
		Version      int
		File         string
		Source       string
		Test         string
		Machines     []spec.Machine
		Vmlab        string
		Kernel       string
		Initramfs    string
		QEMU         string
		Images       map[string]string
		HostPackages string
		Shares       map[string]string
		Options      map[string]string
	}{keyVersion, filepath.Base(filepath.Clean(in.File)), hex.EncodeToString(src[:]), in.Test, in.Machines, in.Vmlab,
		in.Kernel, in.Initramfs, in.QEMU, in.Images, in.HostPackages, in.Shares, in.Options}
	b, err := json.Marshal(canon)
	if err != nil {
		// Every field is a string, a map of strings or a declaration
		// that the script package built from Starlark values.
		panic("resultcache: encode the inputs: " + err.Error())
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
