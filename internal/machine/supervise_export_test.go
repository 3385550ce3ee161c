package machine

import "sync"

// HoldSupervision makes m's supervisor wait, once QEMU exited, before it
// records the exit, until the machine waits for that record (client,
// NeedsBoot) or release is called: a call that failed with the exit
// returns before the record, and the one after it finds the machine as
// the supervisor left it. Set it before the machine starts.
func (m *Machine) HoldSupervision() (release func()) {
	held := make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(held) }) }
	m.onExited = func() { <-held }
	m.onAwaitSupervise = release
	return release
}
