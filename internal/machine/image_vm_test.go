package machine_test

import (
	"strings"
	"testing"

	"github.com/vmlab/vmlab/internal/agentproto"
	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/spec"
	"github.com/vmlab/vmlab/internal/vmtest"
)

// TestImageWithoutShell boots an image that has no /bin/sh: the machine
// comes up, a service whose command line is plain words runs without a
// shell (its output says so), and a command fails with a message naming
// the image and the missing shell instead of exec's "no such file".
func TestImageWithoutShell(t *testing.T) {
	img := vmtest.NoShellImage(t)
	m := vmtest.Machine(t, machine.Config{RootImage: img, Machine: spec.Machine{Name: "bare",
		Services: []agentproto.Service{{Name: "lister", Command: "ls /usr/bin", ReadyLog: "busybox"}}}})
	ctx := t.Context()
	if err := m.Start(ctx); err != nil {
		t.Fatalf("start: %v", err)
	}
	_, err := m.Execute(ctx, "echo hello")
	if err == nil || !strings.Contains(err.Error(), "the image test:noshell has no /bin/sh") || !strings.Contains(err.Error(), "add a shell to the image") {
		t.Errorf("command in an image without a shell: got %v, want an error naming the image and /bin/sh", err)
	}
}
