package report

import (
	"bufio"
	"bytes"
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

// ReadEvents reads events as NewJSONLines wrote them, one JSON object per
// line, in order. A last line without its newline that does not decode is
// what a killed run left half written: it is left out, and truncated says
// so. Any other line that does not decode is an error naming its line.
func ReadEvents(r io.Reader) (events []Event, truncated bool, err error) {
	br := bufio.NewReader(r)
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			var e Event
			if jerr := json.Unmarshal(line, &e); jerr != nil {
				if err == io.EOF { // no newline: the last line, cut short
					return events, true, nil
				}
				return events, false, fmt.Errorf("line %d: %w", n, jerr)
			}
			events = append(events, e)
		}
		if err == io.EOF {
			return events, false, nil
		}
		if err != nil {
			return events, false, err
		}
	}
}
