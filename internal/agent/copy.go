package agent

import (
	"fmt"
	"io"

	"github.com/vmlab/vmlab/internal/agentproto"
	"github.com/vmlab/vmlab/internal/treecopy"
)

// copyIn unpacks the tar stream the host sends in Data frames at dst.
func copyIn(dst string, in *agentproto.Queue) agentproto.Result {
	err := treecopy.Unpack(in, dst)
	// Drain what the host still sends so its DataEOF is consumed either way.
	io.Copy(io.Discard, in)
	if err != nil {
		return agentproto.Result{Error: err.Error()}
	}
	return agentproto.Result{}
}

// copyOut sends src to the host as a tar stream in Data frames, as the
// host's acknowledgements make room in win, then DataEOF. A failure midway
// still ends with DataEOF; the Result carries the error.
func (s *server) copyOut(id uint32, src string, win *agentproto.Window) agentproto.Result {
	err := treecopy.Pack(s.w.WindowedStream(agentproto.TData, id, win), src)
	if eofErr := s.w.WriteFrame(agentproto.TDataEOF, id, nil); err == nil && eofErr != nil {
		err = fmt.Errorf("copy %s: %w", src, eofErr)
	}
	if err != nil {
		return agentproto.Result{Error: err.Error()}
	}
	return agentproto.Result{}
}
