package x11

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Authorization: an X server started with "-auth FILE" accepts only the
// clients that send a cookie from FILE (MIT-MAGIC-COOKIE-1). The agent
// runs as root in the guest, so it reads the running server's own file,
// named on the server's command line; clients of the user's session
// find theirs through $XAUTHORITY.

// CookieName is the one authorization protocol vmlab sends.
const CookieName = "MIT-MAGIC-COOKIE-1"

// ServerAuthFile returns the file named by "-auth FILE" on the command
// line of the process that listens on display n's socket, or "" when
// there is none. procDir is "/proc". The listener is found by its socket
// (the server's arguments need not name the display: Xvfb -displayfd
// picks one).
func ServerAuthFile(procDir string, n int) string {
	inodes := listeners(procDir, n)
	if len(inodes) == 0 {
		return ""
	}
	fds, _ := filepath.Glob(filepath.Join(procDir, "[0-9]*", "fd", "*"))
	for _, fd := range fds {
		link, err := os.Readlink(fd)
		if err != nil || !inodes[link] {
			continue
		}
		b, err := os.ReadFile(filepath.Join(filepath.Dir(filepath.Dir(fd)), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if i := slices.Index(args, "-auth"); i >= 0 && i+1 < len(args) {
			return args[i+1]
		}
		return ""
	}
	return ""
}

// listeners returns the fd link targets ("socket:[123]") of the sockets
// listening for display n, from procDir/net/unix: its lines are "Num
// RefCount Protocol Flags Type St Inode Path", a listening socket has the
// flag __SO_ACCEPTCON (00010000).
func listeners(procDir string, n int) map[string]bool {
	b, err := os.ReadFile(filepath.Join(procDir, "net", "unix"))
	if err != nil {
		return nil
	}
	paths := SocketPaths(n)
	found := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 8 && slices.Contains(paths, f[7]) && f[3] == "00010000" {
			found["socket:["+f[6]+"]"] = true
		}
	}
	return found
}

// ReadCookie returns the MIT-MAGIC-COOKIE-1 of display n in the Xauthority
// file path: the first entry for display n, or for any display. It reads
// the entries without looking at their address: the agent asks a server
// on the same machine, whatever host name the file was written under.
func ReadCookie(path string, n int) (Auth, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Auth{}, fmt.Errorf("x11: read authorization: %w", err)
	}
	want := strconv.Itoa(n)
	var any Auth
	r := bytes.NewReader(b)
	for r.Len() > 0 {
		var family uint16
		if err := binary.Read(r, binary.BigEndian, &family); err != nil {
			return Auth{}, fmt.Errorf("x11: read authorization %s: %w", path, err)
		}
		var fields [4][]byte // address, display number, name, data
		for i := range fields {
			var l uint16
			if err := binary.Read(r, binary.BigEndian, &l); err != nil {
				return Auth{}, fmt.Errorf("x11: read authorization %s: %w", path, err)
			}
			fields[i] = make([]byte, l)
			if _, err := io.ReadFull(r, fields[i]); err != nil {
				return Auth{}, fmt.Errorf("x11: read authorization %s: %w", path, err)
			}
		}
		if string(fields[2]) != CookieName {
			continue
		}
		a := Auth{Name: CookieName, Data: fields[3]}
		switch string(fields[1]) {
		case want:
			return a, nil
		case "":
			if any.Name == "" {
				any = a
			}
		}
	}
	if any.Name != "" {
		return any, nil
	}
	return Auth{}, fmt.Errorf("x11: read authorization %s: no %s for display :%d", path, CookieName, n)
}

// FindAuth returns the cookie a client of display n sends: from the
// running server's own file (ServerAuthFile), else from $XAUTHORITY, else
// from ~/.Xauthority; the zero Auth when none has one (a server started
// without -auth needs none).
func FindAuth(n int) Auth {
	files := []string{ServerAuthFile("/proc", n), os.Getenv("XAUTHORITY")}
	if home, err := os.UserHomeDir(); err == nil {
		files = append(files, filepath.Join(home, ".Xauthority"))
	}
	for _, f := range files {
		if f == "" {
			continue
		}
		if a, err := ReadCookie(f, n); err == nil {
			return a
		}
	}
	return Auth{}
}
