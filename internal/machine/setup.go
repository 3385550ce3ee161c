package machine

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vmlab/vmlab/internal/agentclient"
	"github.com/vmlab/vmlab/internal/agentproto"
	"github.com/vmlab/vmlab/internal/spec"
)

// Setup, Account and File are the declaration's (package spec): users and
// groups, files, kernel modules and sysctls the guest gets at every boot. The
// agent applies it in one request (a few for thousands of files): files and
// sysctls it writes itself, groups, users and modules it makes with the
// host's own tools (groupadd, useradd, modprobe), since the guest's root is
// the host's.
type (
	Setup   = spec.Setup
	Account = spec.Account
	File    = spec.File
)

// setupBatchBytes bounds the JSON of one setup request, well under a
// frame's MaxPayload (1 MiB): ~6,000 files of 40-byte paths.
const setupBatchBytes = 512 << 10

// setupRequest is one setup request and the files' contents that follow it.
type setupRequest struct {
	req     agentproto.Setup
	content []string
}

// setupRequests turns the setup into the agent's requests: groups, users,
// modules and sysctls in the first, the files in as many as their list
// needs to fit a frame. An empty setup makes none.
func setupRequests(s Setup) []setupRequest {
	first := agentproto.Setup{Groups: setupGroups(s), Modules: s.Modules, Sysctls: setupSysctls(s)}
	for _, u := range s.Users {
		first.Users = append(first.Users, agentproto.Account{Name: u.Name, Groups: u.Groups, Shell: u.Shell})
	}
	var reqs []setupRequest
	// The files' key and brackets add 11 bytes to a request's JSON.
	const filesKey = len(`,"files":[]`)
	cur := setupRequest{req: first}
	size := len(agentproto.Encode(first)) + filesKey
	for _, f := range s.Files {
		sf := agentproto.SetupFile{Path: f.Path, Mode: agentproto.UnixMode(f.Mode), Size: int64(len(f.Content))}
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

// setupGroups lists the declared groups and the users' supplementary groups,
// sorted, each once: they must exist before the users.
func setupGroups(s Setup) []string {
	groups := slices.Clone(s.Groups)
	for _, u := range s.Users {
		groups = append(groups, u.Groups...)
	}
	slices.Sort(groups)
	return slices.Compact(groups)
}

// setupSysctls lists the sysctls sorted by key, so every boot writes them in the
// same order.
func setupSysctls(s Setup) []agentproto.Sysctl {
	var out []agentproto.Sysctl
	for _, k := range slices.Sorted(maps.Keys(s.Sysctls)) {
		out = append(out, agentproto.Sysctl{Key: k, Value: s.Sysctls[k]})
	}
	return out
}

// applySetup sends the setup to the agent. The agent stops at the first item
// that fails and names it: the boot fails with that error at once.
func (m *Machine) applySetup(ctx context.Context, agent *agentclient.Client) error {
	for _, r := range setupRequests(m.cfg.Setup) {
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
