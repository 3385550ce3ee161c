package qmp

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Event is an asynchronous QMP event, such as SHUTDOWN, STOP, RESUME,
// GUEST_PANICKED or VSERPORT_CHANGE.
type Event struct {
	Name string
	// Data is the event's "data" member, nil when it has none.
	Data json.RawMessage
	// Time is when QEMU emitted the event, from its "timestamp" member.
	Time time.Time
}

// Subscription receives the events a Client reads after Subscribe returns,
// in the order QEMU sent them. Its queue is unbounded: the Client's reader
// never waits for a slow subscriber and never drops an event. QEMU emits a
// handful of events per VM state change, so the queue stays small in
// practice, but a subscription nobody reads holds its events until Close.
type Subscription struct {
	c     *Client
	names []string // nil means every event
	ch    chan Event

	mu    sync.Mutex
	queue []Event
	ended bool // the connection ended: deliver what is queued, then close ch

	wake     chan struct{} // capacity 1: "queue or ended changed"
	stop     chan struct{} // closed by Close
	stopOnce sync.Once
	done     chan struct{} // closed when the delivery goroutine exits
}

// Subscribe starts a subscription to events with the given names, or to all
// events when no names are given. Subscribe before executing a command whose
// event you want to see, so that the event cannot slip by in between.
// The Client owns the subscription's delivery goroutine; Close the
// subscription when done with it (Client.Close closes all of them).
func (c *Client) Subscribe(names ...string) *Subscription {
	s := &Subscription{
		c:     c,
		names: names,
		ch:    make(chan Event),
		wake:  make(chan struct{}, 1),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended {
		close(s.ch)
		close(s.done)
		return s
	}
	c.subs[s] = struct{}{}
	go s.run()
	return s
}

// WaitEvent waits for the next event with one of the given names (any event
// when none are given) that arrives after the call. To catch an event caused
// by a command, Subscribe before Execute and use Subscription.Wait instead.
func (c *Client) WaitEvent(ctx context.Context, names ...string) (Event, error) {
	s := c.Subscribe(names...)
	defer s.Close()
	return s.Wait(ctx)
}

// Events returns the channel the events arrive on. It is closed after the
// last event once the connection has ended, or at once when the
// subscription or the Client is closed.
func (s *Subscription) Events() <-chan Event {
	return s.ch
}

// Wait returns the next event with one of the given names (any event when
// none are given), discarding the others. It fails with ctx.Err() when ctx
// ends first, and with an error wrapping ErrClosed when no more events can
// come.
func (s *Subscription) Wait(ctx context.Context, names ...string) (Event, error) {
	for {
		select {
		case ev, ok := <-s.ch:
			if !ok {
				return Event{}, fmt.Errorf("wait for event %v: %w", names, s.closedErr())
			}
			if matches(names, ev.Name) {
				return ev, nil
			}
		case <-ctx.Done():
			return Event{}, fmt.Errorf("wait for event %v: %w", names, ctx.Err())
		}
	}
}

// Close ends the subscription and waits for its delivery goroutine; events
// not yet received are discarded. It is idempotent.
func (s *Subscription) Close() {
	s.c.mu.Lock()
	delete(s.c.subs, s)
	s.c.mu.Unlock()
	s.halt()
}

func (s *Subscription) closedErr() error {
	if err := s.c.Err(); err != nil {
		return err
	}
	return ErrClosed
}

func (s *Subscription) halt() {
	s.stopOnce.Do(func() { close(s.stop) })
	<-s.done
}

// push queues ev without blocking; it runs on the Client's reader goroutine.
func (s *Subscription) push(ev Event) {
	if !matches(s.names, ev.Name) {
		return
	}
	s.mu.Lock()
	s.queue = append(s.queue, ev)
	s.mu.Unlock()
	s.signal()
}

// end marks that no more events will come.
func (s *Subscription) end() {
	s.mu.Lock()
	s.ended = true
	s.mu.Unlock()
	s.signal()
}

func (s *Subscription) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// run is the delivery goroutine: it moves events from the queue to ch until
// the subscription is closed, or until the connection has ended and the
// queue is drained.
func (s *Subscription) run() {
	defer close(s.done)
	defer close(s.ch)
	for {
		ev, ok, ended := s.next()
		if ended {
			return
		}
		if !ok {
			select {
			case <-s.wake:
				continue
			case <-s.stop:
				return
			}
		}
		select {
		case s.ch <- ev:
		case <-s.stop:
			return
		}
	}
}

// next pops the oldest queued event. ended is true when the queue is empty
// and no more events will come.
func (s *Subscription) next() (ev Event, ok, ended bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) == 0 {
		return Event{}, false, s.ended
	}
	ev = s.queue[0]
	s.queue[0] = Event{}
	s.queue = s.queue[1:]
	return ev, true, false
}

// publish hands ev to every subscription; it runs on the reader goroutine.
func (c *Client) publish(ev Event) {
	c.mu.Lock()
	subs := c.subscriptionsLocked()
	c.mu.Unlock()
	for _, s := range subs {
		s.push(ev)
	}
}

// subscriptionsLocked returns the live subscriptions, in no particular
// order. c.mu must be held.
func (c *Client) subscriptionsLocked() []*Subscription {
	subs := make([]*Subscription, 0, len(c.subs))
	for s := range c.subs {
		subs = append(subs, s)
	}
	return subs
}

// closeSubscriptions halts every subscription; it runs from Client.Close
// after the reader has stopped.
func (c *Client) closeSubscriptions() {
	c.mu.Lock()
	subs := c.subscriptionsLocked()
	clear(c.subs)
	c.mu.Unlock()
	for _, s := range subs {
		s.halt()
	}
}

func matches(names []string, name string) bool {
	return len(names) == 0 || slices.Contains(names, name)
}
