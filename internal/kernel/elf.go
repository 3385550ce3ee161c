package kernel

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ErrNoPVH is wrapped by Prepare's error when the vmlinux has no PVH entry
// point, so callers can fall back to booting the bzImage the slow way.
var ErrNoPVH = errors.New("no PVH entry point (ELF note Xen/XEN_ELFNOTE_PHYS32_ENTRY): the kernel was built without CONFIG_PVH=y; use one built with it, as Debian's, Ubuntu's and Fedora's are")

// xenElfnotePhys32Entry is the note type QEMU looks for to boot an ELF
// kernel through PVH (xen/include/public/elfnote.h).
const xenElfnotePhys32Entry = 18

func isELF(data []byte) bool { return bytes.HasPrefix(data, []byte(elf.ELFMAG)) }

// checkVmlinux checks that data is an x86-64 ELF executable carrying the PVH
// entry note.
func checkVmlinux(data []byte) error {
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("parse ELF: %w", err)
	}
	if f.Class != elf.ELFCLASS64 || f.Machine != elf.EM_X86_64 {
		return fmt.Errorf("ELF is %v %v, want ELFCLASS64 EM_X86_64", f.Class, f.Machine)
	}
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		notes, err := io.ReadAll(p.Open())
		if err != nil {
			return fmt.Errorf("read ELF notes: %w", err)
		}
		if hasNote(notes, f.ByteOrder, "Xen", xenElfnotePhys32Entry) {
			return nil
		}
	}
	return ErrNoPVH
}

// hasNote reports whether a PT_NOTE segment holds a note with this owner name
// and type. Each note is namesz, descsz and type as 4-byte words, then the
// name and the descriptor, each padded to 4 bytes.
func hasNote(b []byte, order binary.ByteOrder, name string, typ uint32) bool {
	for len(b) >= 12 {
		namesz, descsz := uint64(order.Uint32(b)), uint64(order.Uint32(b[4:]))
		t := order.Uint32(b[8:])
		b = b[12:]
		nameEnd := (namesz + 3) &^ 3
		descEnd := nameEnd + (descsz+3)&^3
		if descEnd > uint64(len(b)) {
			return false
		}
		if t == typ && string(bytes.TrimRight(b[:namesz], "\x00")) == name {
			return true
		}
		b = b[descEnd:]
	}
	return false
}

// bannerRelease finds the release in the "Linux version <release> (" banner
// that every vmlinux carries for /proc/version.
func bannerRelease(data []byte) (string, error) {
	const banner = "Linux version "
	for rest := data; ; {
		i := bytes.Index(rest, []byte(banner))
		if i < 0 {
			return "", errors.New(`no "Linux version" banner`)
		}
		rest = rest[i+len(banner):]
		end := bytes.IndexAny(rest[:min(len(rest), 128)], " \x00")
		if end > 0 && isDigit(rest[0]) {
			return string(rest[:end]), nil
		}
	}
}
