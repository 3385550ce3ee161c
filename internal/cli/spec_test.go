package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/vmlab/vmlab/internal/spec"
)

// TestNameEscapesOut runs a file that names a machine "../../x": it is
// refused at load, with its place, and nothing is created anywhere, in
// -out or beside it.
func TestNameEscapesOut(t *testing.T) {
	top := t.TempDir()
	dir := filepath.Join(top, "a", "b")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "escape.star")
	src := "server = machine(name = \"../../x\")\ndef test():\n    server.succeed(\"true\")\n"
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := run("run", "-out", filepath.Join(dir, "out"), file)
	want := file + `:1:18: machine name "../../x": a machine name is a host name`
	if code != exitUsage || !strings.Contains(stderr, want) {
		t.Errorf("got exit %d, stderr %q; want 2 and %s", code, stderr, want)
	}
	var made []string
	filepath.WalkDir(top, func(path string, d os.DirEntry, err error) error {
		if path != top && path != filepath.Join(top, "a") && path != dir && path != file {
			made = append(made, path)
		}
		return nil
	})
	if len(made) > 0 {
		t.Errorf("vmlab run made %v for a refused file", made)
	}
}

// TestExecFlagProblems gives vmlab exec bad flags: every problem is
// reported before anything boots, each naming its flag.
func TestExecFlagProblems(t *testing.T) {
	code, _, stderr := run("exec", "-name", "a/b", "-memory", "16", "-cpus", "0", "-init", "sytemd", "true")
	want := []string{
		`-name: machine name "a/b": a machine name is a host name`,
		"-memory: machine a/b: memory 16 MiB: a guest needs at least 128 MiB to boot",
		"-cpus: machine a/b: cpus 0: want at least 1",
		`-init: machine a/b: init "sytemd": want "systemd", or "fast" (the default) (did you mean systemd?)`,
	}
	if code != exitUsage {
		t.Errorf("got exit %d, want %d", code, exitUsage)
	}
	for _, w := range want {
		if !strings.Contains(stderr, w) {
			t.Errorf("stderr lacks %q:\n%s", w, stderr)
		}
	}
	if strings.Contains(stderr, "kernel") {
		t.Errorf("exec prepared the boot before refusing its flags:\n%s", stderr)
	}
}

// TestExecFlagFields proves that each flag of vmlab exec that declares the
// machine reaches its field of spec.Machine.
func TestExecFlagFields(t *testing.T) {
	samples := map[string]string{"-name": "b", "-memory": "256", "-cpus": "2", "-disk-size": "64", "-forward": "8080:80", "-init": "systemd"}
	for kw, flag := range execFlags {
		t.Run(flag, func(t *testing.T) {
			if !slices.Contains(spec.Keywords(), kw) {
				t.Fatalf("execFlags maps %q, which is no field of spec.Machine", kw)
			}
			fs, ef := newExecFlags(&env{stderr: os.Stderr})
			if err := fs.Parse([]string{flag, samples[flag]}); err != nil {
				t.Fatal(err)
			}
			got, def := ef.spec(), spec.New("machine")
			if reflect.DeepEqual(got.Field(kw).Interface(), def.Field(kw).Interface()) {
				t.Errorf("%s %s left %s at %v", flag, samples[flag], kw, got.Field(kw))
			}
		})
	}
}

// TestExecForwardFlag: -forward takes HOST:GUEST, repeated; anything else
// is a usage error naming the form, and ports out of range are the
// declaration's problems, named by the flag.
func TestExecForwardFlag(t *testing.T) {
	fs, ef := newExecFlags(&env{stderr: os.Stderr})
	if err := fs.Parse([]string{"-forward", "8080:80", "-forward", "0:443", "true"}); err != nil {
		t.Fatal(err)
	}
	want := []spec.Forward{{HostPort: 8080, GuestPort: 80}, {HostPort: 0, GuestPort: 443}}
	if got := ef.spec().ForwardPorts; !slices.Equal(got, want) {
		t.Errorf("got forwards %v, want %v", got, want)
	}
	for _, bad := range []string{"80", "8080:80:1", "x:80", "8080:"} {
		code, _, stderr := run("exec", "-forward", bad, "true")
		want := fmt.Sprintf("invalid value %q for flag -forward: want HOST:GUEST, two port numbers such as 8080:80", bad)
		if code != exitUsage || !strings.Contains(stderr, want) {
			t.Errorf("-forward %s: got exit %d, stderr %q; want %d and %s", bad, code, stderr, exitUsage, want)
		}
	}
	code, _, stderr := run("exec", "-forward", "70000:80", "true")
	want2 := "-forward: machine machine: forward 70000 -> 80: host port 70000: want 1 to 65535, or 0 for a free one"
	if code != exitUsage || !strings.Contains(stderr, want2) {
		t.Errorf("-forward 70000:80: got exit %d, stderr %q; want %d and %s", code, stderr, exitUsage, want2)
	}
}
