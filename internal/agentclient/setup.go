package agentclient

import (
	"bufio"
	"context"
	"errors"
	"io"

	"github.com/vmlab/vmlab/internal/agentproto"
)

// Setup applies s in the guest. content holds the files' contents,
// concatenated in the order of s.Files; it is sent in Data frames. The
// error of a setup the agent refused names the item that failed.
func (c *Client) Setup(ctx context.Context, s agentproto.Setup, content io.Reader) error {
	cl := &call{}
	id, err := c.start(agentproto.Request{Op: agentproto.OpSetup, Setup: &s}, cl)
	if err != nil {
		return err
	}
	go func() {
		// Buffered so that a thousand small files travel in a few 64 KiB
		// frames rather than a frame each; windowed as a copy's data is.
		bw := bufio.NewWriterSize(c.w.WindowedStream(agentproto.TData, id, cl.in), agentproto.ChunkSize)
		if _, err := io.Copy(bw, content); err == nil {
			bw.Flush()
		}
		c.w.WriteFrame(agentproto.TDataEOF, id, nil)
	}()
	res, err := c.await(ctx, id, cl)
	if err != nil {
		return err
	}
	if res.Error != "" {
		return errors.New(res.Error)
	}
	return nil
}
