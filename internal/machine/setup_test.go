package machine

import (
	"fmt"
	"os"
	"reflect"
	"strconv"
	"testing"

	"github.com/vmlab/vmlab/internal/agentproto"
)

func TestSetupRequests(t *testing.T) {
	many := make([]File, 20000) // ~45 bytes of JSON each: 900 KB, two requests
	for i := range many {
		many[i] = File{Path: fmt.Sprintf("/etc/many/%05d.conf", i), Content: strconv.Itoa(i)}
	}
	tests := []struct {
		name  string
		setup Setup
		want  []agentproto.Setup // files' contents are checked apart
	}{
		{"empty", Setup{}, nil},
		{"all kinds", Setup{
			Groups:  []string{"wheel"},
			Users:   []Account{{Name: "alice", Groups: []string{"wheel", "audio"}, Shell: "/bin/bash"}},
			Files:   []File{{Path: "/etc/motd.d/x", Content: "hi", Mode: 0o600}, {Path: "/usr/local/bin/s", Mode: 0o755 | os.ModeSetuid}},
			Modules: []string{"dummy"},
			Sysctls: map[string]string{"net.ipv4.ip_forward": "1", "kernel.pid_max": "4096"},
		}, []agentproto.Setup{{
			Groups:  []string{"audio", "wheel"},
			Users:   []agentproto.Account{{Name: "alice", Groups: []string{"wheel", "audio"}, Shell: "/bin/bash"}},
			Modules: []string{"dummy"},
			Sysctls: []agentproto.Sysctl{{Key: "kernel.pid_max", Value: "4096"}, {Key: "net.ipv4.ip_forward", Value: "1"}},
			Files:   []agentproto.SetupFile{{Path: "/etc/motd.d/x", Mode: 0o600, Size: 2}, {Path: "/usr/local/bin/s", Mode: 0o4755}},
		}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []agentproto.Setup
			for _, r := range setupRequests(tt.setup) {
				got = append(got, r.req)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
	t.Run("split to fit frames", func(t *testing.T) {
		reqs := setupRequests(Setup{Files: many, Groups: []string{"g"}})
		if len(reqs) < 2 {
			t.Fatalf("got %d requests, want at least 2 for %d files", len(reqs), len(many))
		}
		var paths, contents []string
		for i, r := range reqs {
			if n := len(agentproto.Encode(r.req)); n > setupBatchBytes {
				t.Errorf("request %d: %d bytes of JSON, want at most %d", i, n, setupBatchBytes)
			}
			if (len(r.req.Groups) > 0) != (i == 0) {
				t.Errorf("request %d: groups %v, want them in the first request only", i, r.req.Groups)
			}
			for j, f := range r.req.Files {
				paths = append(paths, f.Path)
				if f.Size != int64(len(r.content[j])) {
					t.Errorf("%s: size %d, content of %d bytes", f.Path, f.Size, len(r.content[j]))
				}
			}
			contents = append(contents, r.content...)
		}
		for i, f := range many {
			if i >= len(paths) || paths[i] != f.Path || contents[i] != f.Content {
				t.Fatalf("file %d: got %d files, want %s in order with its content", i, len(paths), f.Path)
			}
		}
		if len(paths) != len(many) {
			t.Errorf("got %d files, want %d", len(paths), len(many))
		}
	})
}
