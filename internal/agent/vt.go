package agent

// The text of the guest's virtual terminals (get_tty_text,
// wait_until_tty_matches), read from the kernel's screen buffers rather
// than from a screenshot: exact, and cheap (a read of /dev/vcsaN took
// 0.1-0.9 ms under TCG). Every kernel built with CONFIG_VT keeps them,
// whether the console is drawn on a display (fbcon) or on none
// (dummycon, 80x25, what a machine without a display has).
//
//   - /dev/vcsaN starts with a 4-byte header: rows, columns, the cursor's
//     column and row; then one char byte and one attribute byte a cell.
//     Its char bytes are glyph numbers of the console font (CP437 for
//     the kernel's own: "é" is 0x82).
//   - /dev/vcsuN (Linux 4.19) is the same cells as 32-bit Unicode code
//     points, native byte order, no header: "é" is U+00E9. A character
//     the font has no glyph for reads as the glyph drawn instead (U+25A0
//     for "✓" on the kernel's font), as on the screen.
//
// The kernel creates both device nodes when the terminal is allocated:
// the first open of /dev/ttyN, which is what the agent does for a
// terminal nothing has opened yet (its screen is then blank).
//
// A vcs file wakes poll(2) with POLLPRI whenever its terminal's screen is
// updated, and the next read clears it (drivers/tty/vt/vc_screen.c,
// measured on 6.1: the wake came 1-4 ms after a write to /dev/tty2 under
// TCG, for the foreground terminal and for others alike). So a wait reads
// the text again only when it changed.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/vmlab/vmlab/internal/agentproto"
)

// vcsaHeader is the size of /dev/vcsaN's header.
const vcsaHeader = 4

// decodeVCSA turns a terminal's screen into text as NixOS's driver reads
// it (`fold -w COLS /dev/vcsN`): every row at the terminal's full width,
// trailing blanks kept, rows joined by newlines, no newline after the
// last. So `login: ` matches a login prompt, and a blank 80x25 screen is
// 25 rows of 80 blanks. vcsa is /dev/vcsaN's content, vcsu /dev/vcsuN's
// read right after it, or nil where there is none (the char bytes of vcsa
// are used then, those outside ASCII shown as '?'). A vcsu of another
// size than vcsa's cells (the terminal resized between the two reads) is
// not used either.
func decodeVCSA(vcsa, vcsu []byte) (string, error) {
	if len(vcsa) < vcsaHeader {
		return "", fmt.Errorf("decode the screen: %d bytes, shorter than the %d-byte header", len(vcsa), vcsaHeader)
	}
	rows, cols := int(vcsa[0]), int(vcsa[1])
	cells := rows * cols
	if len(vcsa)-vcsaHeader < 2*cells {
		return "", fmt.Errorf("decode the screen: %d bytes for %dx%d cells, want %d", len(vcsa), rows, cols, vcsaHeader+2*cells)
	}
	unicode := len(vcsu) == 4*cells
	var text strings.Builder
	text.Grow(cells + rows)
	for i := range cells {
		if i > 0 && i%cols == 0 {
			text.WriteByte('\n')
		}
		ch := rune(vcsa[vcsaHeader+2*i])
		if unicode {
			ch = rune(binary.NativeEndian.Uint32(vcsu[4*i:]))
		} else if ch >= 0x80 {
			ch = '?'
		}
		if ch == 0 {
			ch = ' '
		}
		text.WriteRune(ch)
	}
	return text.String(), nil
}

// vt is an open virtual terminal's screen.
type vt struct {
	n    int
	vcsa int // file descriptors: an *os.File would be polled (see open)
	vcsu int // -1 where the kernel has no /dev/vcsuN
	buf  []byte
}

// openVT opens terminal n's screen files, allocating the terminal first if
// nothing has opened it.
func openVT(n int) (*vt, error) {
	if n < 1 || n > agentproto.MaxVT {
		return nil, fmt.Errorf("read tty %d: no such virtual terminal (1..%d)", n, agentproto.MaxVT)
	}
	name := fmt.Sprintf("/dev/vcsa%d", n)
	vcsa, err := open(name)
	if errors.Is(err, unix.ENOENT) {
		if err = allocateVT(n); err == nil {
			vcsa, err = open(name)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("read tty %d: open %s: %w", n, name, err)
	}
	v := &vt{n: n, vcsa: vcsa, vcsu: -1, buf: make([]byte, 64<<10)}
	if fd, err := open(fmt.Sprintf("/dev/vcsu%d", n)); err == nil {
		v.vcsu = fd
	}
	return v, nil
}

// open opens a vcs file for reading, as a plain descriptor: os.Open would
// add it to Go's poller, whose epoll_ctl polls it, which makes closing it
// cost 23 ms under TCG (see watch).
func open(name string) (int, error) {
	return unix.Open(name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
}

// allocateVT opens /dev/ttyN, which allocates terminal n (and makes its
// vcs device nodes), without making it the agent's controlling terminal.
func allocateVT(n int) error {
	fd, err := unix.Open(fmt.Sprintf("/dev/tty%d", n), unix.O_RDONLY|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENXIO) {
			return fmt.Errorf("open /dev/tty%d: %w (the guest's kernel has no virtual terminals: CONFIG_VT)", n, err)
		}
		return fmt.Errorf("open /dev/tty%d: %w", n, err)
	}
	return unix.Close(fd)
}

// watch makes the kernel report changes of the screen: it does from a
// file's first poll on, so this one comes before the first read, and no
// change after that read is missed. A file that was polled costs 23 ms
// to close under TCG (the kernel unregisters its notifier, which waits
// for an RCU grace period), so a plain read does not watch.
func (v *vt) watch() {
	unix.Poll([]unix.PollFd{{Fd: int32(v.vcsa), Events: unix.POLLPRI}}, 0)
}

func (v *vt) Close() {
	unix.Close(v.vcsa)
	if v.vcsu >= 0 {
		unix.Close(v.vcsu)
	}
}

// text reads the screen. The read clears the pending POLLPRI.
func (v *vt) text() (string, error) {
	n, err := unix.Pread(v.vcsa, v.buf, 0)
	if err != nil {
		return "", fmt.Errorf("read tty %d: %w", v.n, err)
	}
	vcsa := v.buf[:n]
	var vcsu []byte
	if v.vcsu >= 0 && n >= vcsaHeader {
		u := make([]byte, 4*int(vcsa[0])*int(vcsa[1])+4) // one more to see a resize
		if k, err := unix.Pread(v.vcsu, u, 0); err == nil {
			vcsu = u[:k]
		}
	}
	return decodeVCSA(vcsa, vcsu)
}

// changed waits until the screen changes (POLLPRI on vcsa), or ctx ends
// (wake is readable then). A terminal deallocated meanwhile (POLLHUP) is
// opened again, which allocates it anew.
func (v *vt) changed(ctx context.Context, wake int) error {
	fds := []unix.PollFd{{Fd: int32(v.vcsa), Events: unix.POLLPRI}, {Fd: int32(wake), Events: unix.POLLIN}}
	for {
		_, err := unix.Poll(fds, -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("wait for tty %d: %w", v.n, err)
		}
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case fds[0].Revents&(unix.POLLHUP|unix.POLLERR) != 0:
			nv, err := openVT(v.n)
			if err != nil {
				return err
			}
			nv.watch()
			v.Close()
			*v = *nv
			return nil
		case fds[0].Revents&unix.POLLPRI != 0:
			return nil
		}
	}
}

// ttyText answers OpTTYText.
func ttyText(n int) agentproto.Result {
	v, err := openVT(n)
	if err != nil {
		return agentproto.Result{Error: err.Error()}
	}
	defer v.Close()
	text, err := v.text()
	if err != nil {
		return agentproto.Result{Error: err.Error()}
	}
	return agentproto.Result{Output: text}
}

// waitTTY answers a WaitTTY: it reads the screen, and again at each
// change, until its text matches. Output is the last text read.
func waitTTY(ctx context.Context, w agentproto.Wait) agentproto.Result {
	re, err := regexp.Compile(w.Regex)
	if err != nil {
		return agentproto.Result{Error: fmt.Sprintf("wait for tty %d: %v", w.VT, err)}
	}
	if w.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, w.Timeout)
		defer cancel()
	}
	v, err := openVT(w.VT)
	if err != nil {
		return agentproto.Result{Error: err.Error()}
	}
	v.watch()
	// Closed in the background: the result need not wait the 23 ms the
	// close of a watched file takes (see watch).
	defer func() { go v.Close() }()
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return agentproto.Result{Error: fmt.Sprintf("wait for tty %d: eventfd: %v", w.VT, err)}
	}
	defer unix.Close(wake)
	stop := context.AfterFunc(ctx, func() { unix.Write(wake, []byte{1, 0, 0, 0, 0, 0, 0, 0}) })
	defer stop()
	var res agentproto.Result
	for {
		res.Tries++
		text, err := v.text()
		if err != nil {
			res.Error = err.Error()
			return res
		}
		res.Output = text
		if re.MatchString(text) {
			return res
		}
		if err := v.changed(ctx, wake); err != nil {
			if ctx.Err() != nil {
				return ended(ctx, res)
			}
			res.Error = err.Error()
			return res
		}
	}
}
