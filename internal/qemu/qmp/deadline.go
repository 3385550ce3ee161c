package qmp

import (
	"context"
	"time"
)

// aLongTimeAgo is a deadline in the past: setting it makes a blocked read or
// write on a net.Conn return at once.
var aLongTimeAgo = time.Unix(1, 0)

// bindDeadline ties a connection deadline (set is SetReadDeadline or
// SetWriteDeadline) to ctx: when ctx ends, a blocked operation returns with a
// timeout error. The returned stop unbinds and clears the deadline; it waits
// for a callback already running, so no stale deadline lands on a later
// operation.
func bindDeadline(ctx context.Context, set func(time.Time) error) (stop func()) {
	fired := make(chan struct{})
	stopFunc := context.AfterFunc(ctx, func() {
		set(aLongTimeAgo)
		close(fired)
	})
	return func() {
		if !stopFunc() {
			<-fired
		}
		set(time.Time{})
	}
}

// ctxOr returns ctx's error when ctx has ended, since that, not the deadline
// error it caused, is the reason an operation failed; otherwise err.
func ctxOr(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	return err
}
