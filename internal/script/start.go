package script

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
)

// starts are the boots start() left running, by machine name. NixOS's
// start() returns at once and the machine's first command waits for it, so
// `a.start(); b.start()` boots both at the same time; the Go API's Start
// stays blocking (Go callers have goroutines).
type starts struct {
	mu      sync.Mutex
	pending map[string]*pendingStart
	wg      sync.WaitGroup
}

type pendingStart struct {
	done chan struct{} // closed when the boot ended
	err  error         // the boot's error, set before done closes
	test string        // the test (or session label) that called start()
}

// startInBackground boots m in a goroutine unless it runs, died or is
// booting already; awaitStart collects the outcome. The boot runs under
// the session's context, not the call's: in a REPL the chunk that called
// start() returns at once and the boot goes on.
func (r *run) startInBackground(m *machineValue) error {
	r.starts.mu.Lock()
	defer r.starts.mu.Unlock()
	if r.starts.pending[m.name] != nil || !r.machine(m).NeedsBoot() {
		return nil
	}
	if r.starts.pending == nil {
		r.starts.pending = map[string]*pendingStart{}
	}
	p := &pendingStart{done: make(chan struct{}), test: r.testID()}
	r.starts.pending[m.name] = p
	r.starts.wg.Go(func() {
		defer close(p.done)
		defer recoverInto(&p.err)
		p.err = r.machine(m).Start(r.life)
	})
	return nil
}

// awaitStart waits for the boot start() left running on m, if any, and
// returns its error to the call that waited: the first one after start(),
// as NixOS's first command reports a failed boot.
func (r *run) awaitStart(m *machineValue) error {
	r.starts.mu.Lock()
	p := r.starts.pending[m.name]
	r.starts.mu.Unlock()
	if p == nil {
		return nil
	}
	select {
	case <-p.done:
	case <-r.ctx.Done():
		return context.Cause(r.ctx)
	}
	r.starts.mu.Lock()
	if r.starts.pending[m.name] == p {
		delete(r.starts.pending, m.name)
	}
	r.starts.mu.Unlock()
	return p.err
}

// unobservedStarts waits for the boots the test called test left with
// start() that no call has waited for yet, and returns the failures among
// them: a test whose only word on a machine was start() must not pass
// when that machine never booted. Boots other tests or a REPL's prompt
// started are theirs; ctx's end stops the wait (a REPL's Ctrl-C).
func (r *run) unobservedStarts(ctx context.Context, test string) error {
	r.starts.mu.Lock()
	var names []string
	for name, p := range r.starts.pending {
		if p != nil && p.test == test {
			names = append(names, name)
		}
	}
	r.starts.mu.Unlock()
	slices.Sort(names)
	var errs []error
	for _, name := range names {
		r.starts.mu.Lock()
		p := r.starts.pending[name]
		r.starts.mu.Unlock()
		if p == nil {
			continue // a call waited for it meanwhile
		}
		select {
		case <-p.done:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		r.starts.mu.Lock()
		if r.starts.pending[name] == p {
			delete(r.starts.pending, name)
		}
		r.starts.mu.Unlock()
		if p.err != nil {
			errs = append(errs, fmt.Errorf("%s.start(): the boot failed, and no later call used the machine: %w", name, p.err))
		}
	}
	return errors.Join(errs...)
}

// waitStarts waits for the boots still running when the test ends, before
// the lab stops the machines.
func (r *run) waitStarts() { r.starts.wg.Wait() }
