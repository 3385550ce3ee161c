package machine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vmlab/vmlab/internal/agentclient"
	"github.com/vmlab/vmlab/internal/agentproto"
)

// Setup is what a machine's guest gets at every boot, before Start returns:
// users and groups, files, kernel modules and sysctls. The agent applies it
// in one request (a few for thousands of files): files and sysctls it
// writes itself, groups, users and modules it makes with the host's own
// tools (groupadd, useradd, modprobe), since the guest's root is the host's.
type Setup struct {
	Groups  []string
	Users   []Account
	Files   []File
	Modules []string          // loaded with modprobe
	Sysctls map[string]string // e.g. "net.ipv4.ip_forward": "1"
}

// Account is a login account, created with a home directory.
type Account struct {
	Name   string
	Groups []string // supplementary groups (created if missing)
	Shell  string   // default /bin/sh
}

// File is a file written into the guest.
type File struct {
	Path    string
	Content string
	Mode    os.FileMode // default 0644
}

// setupBatchBytes bounds the JSON of one setup request, well under a
// frame's MaxPayload (1 MiB): ~6,000 files of 40-byte paths.
const setupBatchBytes = 512 << 10

// setupRequest is one setup request and the files' contents that follow it.
type setupRequest struct {
	req     agentproto.Setup
	content []string
}

// requests turns the setup into the agent's requests: groups, users,
// modules and sysctls in the first, the files in as many as their list
// needs to fit a frame. An empty setup makes none.
func (s Setup) requests() []setupRequest {
	first := agentproto.Setup{Groups: s.groups(), Modules: s.Modules, Sysctls: s.sysctls()}
	for _, u := range s.Users {
		first.Users = append(first.Users, agentproto.Account{Name: u.Name, Groups: u.Groups, Shell: u.Shell})
	}
	var reqs []setupRequest
	// The files' key and brackets add 11 bytes to a request's JSON.
	const filesKey = len(`,"files":[]`)
	cur := setupRequest{req: first}
	size := len(agentproto.Encode(first)) + filesKey
	for _, f := range s.Files {
		sf := agentproto.SetupFile{Path: f.Path, Mode: unixMode(f.Mode), Size: int64(len(f.Content))}
		n := len(agentproto.Encode(sf)) + 1
		if size+n > setupBatchBytes && len(cur.req.Files) > 0 {
			reqs = append(reqs, cur)
			cur, size = setupRequest{}, len(agentproto.Encode(agentproto.Setup{}))+filesKey
		}
		cur.req.Files = append(cur.req.Files, sf)
		cur.content = append(cur.content, f.Content)
		size += n
	}
	if cur.req.Files != nil || cur.req.Groups != nil || cur.req.Users != nil || cur.req.Modules != nil || cur.req.Sysctls != nil {
		reqs = append(reqs, cur)
	}
	return reqs
}

// groups lists the declared groups and the users' supplementary groups,
// sorted, each once: they must exist before the users.
func (s Setup) groups() []string {
	groups := slices.Clone(s.Groups)
	for _, u := range s.Users {
		groups = append(groups, u.Groups...)
	}
	slices.Sort(groups)
	return slices.Compact(groups)
}

// sysctls lists the sysctls sorted by key, so every boot writes them in the
// same order.
func (s Setup) sysctls() []agentproto.Sysctl {
	var out []agentproto.Sysctl
	for _, k := range slices.Sorted(maps.Keys(s.Sysctls)) {
		out = append(out, agentproto.Sysctl{Key: k, Value: s.Sysctls[k]})
	}
	return out
}

// unixMode turns a FileMode into the Unix mode bits the agent sets; zero
// stays zero (the agent's 0644).
func unixMode(m os.FileMode) uint32 {
	u := uint32(m.Perm())
	if m&os.ModeSetuid != 0 {
		u |= 0o4000
	}
	if m&os.ModeSetgid != 0 {
		u |= 0o2000
	}
	if m&os.ModeSticky != 0 {
		u |= 0o1000
	}
	return u
}

// applySetup sends the setup to the agent. The agent stops at the first item
// that fails and names it: the boot fails with that error at once.
func (m *Machine) applySetup(ctx context.Context, agent *agentclient.Client) error {
	for _, r := range m.cfg.Setup.requests() {
		content := make([]io.Reader, len(r.content))
		for i, c := range r.content {
			content[i] = strings.NewReader(c)
		}
		if err := agent.Setup(ctx, r.req, io.MultiReader(content...)); err != nil {
			return fmt.Errorf("set up the machine: %w", err)
		}
	}
	return nil
}

// dpkgInfo is where dpkg records installed packages.
var dpkgInfo = "/var/lib/dpkg/info"

// CheckService reports what is wrong with a service's declaration: no name,
// no command, a restart policy other than "no" (or empty), "on-failure" and
// "always", a port out of range.
func CheckService(s agentproto.Service) error {
	switch {
	case s.Name == "":
		return errors.New("service with no name")
	case strings.TrimSpace(s.Command) == "":
		return fmt.Errorf("service %q: no command", s.Name)
	case s.ReadyPort < 0 || s.ReadyPort > 65535:
		return fmt.Errorf("service %q: ready port %d: want 1 to 65535", s.Name, s.ReadyPort)
	}
	switch s.Restart {
	case "", "no", "on-failure", "always":
		return nil
	}
	return fmt.Errorf("service %q: restart %q: want \"no\", \"on-failure\" or \"always\"", s.Name, s.Restart)
}

// CheckPackages reports the packages that are not installed on the host,
// which is what the guest's root is made of. A name counts as installed when
// dpkg knows it, or when a program of that name is on the standard PATH
// (for hosts without dpkg).
func CheckPackages(pkgs []string) error {
	var missing []string
	for _, p := range pkgs {
		if !installed(p) {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("package %s not installed on the host, and the machine's root is the host's (apt-get install %s)",
			strings.Join(missing, ", "), strings.Join(missing, " "))
	}
	return nil
}

func installed(pkg string) bool {
	for _, f := range []string{pkg + ".list", pkg + ":amd64.list"} {
		if _, err := os.Stat(filepath.Join(dpkgInfo, f)); err == nil {
			return true
		}
	}
	for _, dir := range filepath.SplitList(agentproto.DefaultPath) {
		if _, err := os.Stat(filepath.Join(dir, pkg)); err == nil {
			return true
		}
	}
	return false
}

// diskArgs creates the machine's extra disks (sparse files, once) and
// returns their QEMU arguments. A disk that cannot be created shows up as
// QEMU's error at boot.
func (m *Machine) diskArgs() []string {
	var args []string
	for i, size := range m.cfg.Disks {
		path := filepath.Join(m.dir, fmt.Sprintf("disk%d.img", i))
		if _, err := os.Stat(path); err != nil {
			if f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o600); err == nil {
				f.Truncate(int64(size) << 20)
				f.Close()
			}
		}
		id := fmt.Sprintf("disk%d", i)
		args = append(args, "-drive", "file="+strings.ReplaceAll(path, ",", ",,")+",format=raw,if=none,id="+id,
			"-device", "virtio-blk-pci,drive="+id)
	}
	return args
}
