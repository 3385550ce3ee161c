package report

import (
	"encoding/json"
	"fmt"
	"io"
)

// NewJSONLines returns a sink that writes each event to w as it comes, one
// JSON object per line, as encoding/json renders an Event (so Duration is
// in nanoseconds). Writing as we go lets a crashed or interrupted run
// still leave its events behind. Close does not close w; it returns the
// first write error, after which nothing more is written.
func NewJSONLines(w io.Writer) Sink {
	return &jsonLines{enc: json.NewEncoder(w)}
}

type jsonLines struct {
	enc *json.Encoder
	err error
}

func (j *jsonLines) Event(e Event) {
	if j.err != nil {
		return
	}
	if err := j.enc.Encode(e); err != nil {
		j.err = fmt.Errorf("write event %s of %s: %w", e.Kind, e.Test, err)
	}
}

func (j *jsonLines) Close() error { return j.err }
