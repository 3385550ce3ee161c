// Package examples holds runnable vmlab tests, one per scenario; `go test
// ./examples` runs them. Each reads like the topology it builds, and uses
// only what a user's module can import: package vmlab, and `vmlab run` for
// the .star files.
package examples
