package qmp

import (
	"context"
	"encoding/json"
	"fmt"
)

// Execute sends command with args (marshalled to JSON; nil sends no
// "arguments") and waits for its reply. It returns the raw "return" value, or
// an error: one wrapping *Error when QEMU refused the command, ctx.Err() when
// ctx ended first (a late reply is then dropped), or one wrapping ErrClosed
// when the connection ended. Any number of Execute calls may run at once.
func (c *Client) Execute(ctx context.Context, command string, args any) (json.RawMessage, error) {
	ret, err := c.execute(ctx, command, args)
	if err != nil {
		return nil, fmt.Errorf("execute %s: %w", command, err)
	}
	return ret, nil
}

func (c *Client) execute(ctx context.Context, command string, args any) (json.RawMessage, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	id, replies, err := c.register()
	if err != nil {
		return nil, err
	}
	defer c.unregister(id)

	line, err := encodeRequest(command, args, id)
	if err != nil {
		return nil, err
	}
	if err := c.write(ctx, line); err != nil {
		return nil, err
	}
	return c.await(ctx, replies)
}

// register reserves an id and the channel its reply will arrive on, before
// the request is written, so the reader can never see an unknown reply.
func (c *Client) register() (uint64, chan reply, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended {
		return 0, nil, c.err
	}
	c.nextID++
	ch := make(chan reply, 1)
	c.pending[c.nextID] = ch
	return c.nextID, ch, nil
}

func (c *Client) unregister(id uint64) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}

// await waits for the reply, preferring a reply that raced with the end of
// the connection over the connection's error.
func (c *Client) await(ctx context.Context, replies <-chan reply) (json.RawMessage, error) {
	select {
	case r := <-replies:
		return r.ret, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.done:
		select {
		case r := <-replies:
			return r.ret, r.err
		default:
			return nil, c.err
		}
	}
}

// write sends one whole request line. A write cut short by ctx after some
// bytes went out leaves half a JSON object on the wire, so it closes the
// connection; one that sent nothing leaves the stream intact.
func (c *Client) write(ctx context.Context, line []byte) error {
	select {
	case c.writeSem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-c.done:
		return c.err
	}
	defer func() { <-c.writeSem }()

	stop := bindDeadline(ctx, c.conn.SetWriteDeadline)
	n, err := c.conn.Write(line)
	stop()
	if err == nil {
		return nil
	}
	err = fmt.Errorf("write request: %w", ctxOr(ctx, err))
	if n > 0 {
		c.abort(err)
	}
	return err
}
