package unpack

import (
	"encoding/binary"
	"math/bits"
)

// unfilterX86 reverses xz's x86 branch/call/jump filter in place. start is the
// stream offset of buf[0] (the filter's start-offset property, usually 0).
//
// The encoder turns the 32-bit relative operand of E8 (CALL rel32) and E9
// (JMP rel32) into an absolute address, which makes repeated calls to one
// function identical bytes that LZMA2 compresses well. It converts only
// operands whose top byte is 0x00 or 0xFF (a displacement within ±16 MiB) and
// uses the last three bytes' history of E8/E9 bytes it left alone to guess
// whether the current byte is really an opcode. Decoding must replay exactly
// the same decisions, so this follows the format's reference behaviour bit for
// bit; TestUnfilterX86MatchesXZ checks it against the xz tool.
func unfilterX86(buf []byte, start uint32) {
	// skipped has bit k set when the byte k+1 positions before the current
	// one was an E8/E9 left unconverted; only the last three positions count.
	var skipped uint32
	prev := -1 // position of the last E8/E9 looked at
	for i := 0; i+4 < len(buf); i++ {
		if buf[i]&0xfe != 0xe8 {
			continue
		}
		if d := i - prev; d > 3 {
			skipped = 0
		} else {
			skipped = (skipped << (d - 1)) & 7
		}
		prev = i
		if !x86Convertible(buf, i, skipped) {
			skipped = skipped<<1 | 1
			continue
		}
		operand := buf[i+1 : i+5]
		binary.LittleEndian.PutUint32(operand, x86Relative(le32(operand), start+uint32(i)+5, skipped))
		i += 4 // the operand cannot hold an opcode
	}
}

// x86Convertible reports whether the E8/E9 at buf[i] was converted by the
// encoder: its operand's top byte must be 0x00 or 0xFF, and at most one
// recent unconverted E8/E9 may precede it, and only if that one's own operand
// top byte (which overlaps this operand) is not 0x00 or 0xFF.
func x86Convertible(buf []byte, i int, skipped uint32) bool {
	if skipped != 0 {
		if skipped&(skipped-1) != 0 { // two or more recent candidates
			return false
		}
		back := bits.Len32(skipped) // distance to that candidate
		if x86TopByte(buf[i+4-back]) {
			return false
		}
	}
	return x86TopByte(buf[i+4])
}

// x86Relative turns the stored absolute address back into the operand
// relative to next, the address of the following instruction. When a skipped
// candidate's operand overlaps this one, the encoder may have re-encoded a
// result whose overlapping byte looked like a top byte; undo those rounds too.
func x86Relative(abs, next, skipped uint32) uint32 {
	rel := abs - next
	if skipped != 0 {
		shift := 8 * uint(bits.Len32(skipped))
		for x86TopByte(byte(rel >> (24 - shift))) {
			abs = rel ^ (1<<(32-shift) - 1)
			rel = abs - next
		}
	}
	// Only 25 bits are significant: sign-extend bit 24.
	rel &= 0x01ffffff
	if rel&0x01000000 != 0 {
		rel |= 0xff000000
	}
	return rel
}

// x86TopByte reports whether b is a plausible top byte of a near
// displacement.
func x86TopByte(b byte) bool { return b == 0x00 || b == 0xff }
