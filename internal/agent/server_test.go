package agent

import (
	"strings"
	"testing"

	"github.com/vmlab/vmlab/internal/agentproto"
)

// TestEncodeResult checks that every Result fits in a frame: one whose
// output is too large (a failed service's last 20 lines of up to 1 MiB
// each) loses the output and says so, instead of failing to send and
// leaving the host waiting until its deadline.
func TestEncodeResult(t *testing.T) {
	tests := []struct {
		name       string
		res        agentproto.Result
		wantOutput bool
		wantError  string
	}{
		{"small", agentproto.Result{Output: "ok\n"}, true, ""},
		{"large service tail", agentproto.Result{Exit: 1, Output: strings.Repeat("x", 2<<20),
			Error: "service loud exited with status 3 and will not be restarted"}, false,
			"service loud exited with status 3 and will not be restarted (the 2097152 bytes of output were dropped: over the 1048576-byte frame limit)"},
		{"escapes double it", agentproto.Result{Output: strings.Repeat("\x01", 200<<10)}, false,
			"(the 204800 bytes of output were dropped: over the 1048576-byte frame limit)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := encodeResult(tt.res)
			if len(b) > agentproto.MaxPayload {
				t.Fatalf("got %d bytes, over the frame limit %d", len(b), agentproto.MaxPayload)
			}
			var got agentproto.Result
			if err := agentproto.Decode(agentproto.Frame{Type: agentproto.TResult, Payload: b}, &got); err != nil {
				t.Fatal(err)
			}
			if got.Error != tt.wantError || (got.Output == tt.res.Output) != tt.wantOutput {
				t.Errorf("got error %q, %d bytes of output; want error %q, output kept %v",
					got.Error, len(got.Output), tt.wantError, tt.wantOutput)
			}
		})
	}
}
