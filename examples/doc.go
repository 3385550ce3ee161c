// Package examples holds runnable vmlab tests, one per scenario; `go test
// ./examples` runs them. Each reads like the topology it builds.
package examples
