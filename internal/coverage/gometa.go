package coverage

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
)

// Go's coverage meta-data file (covmeta.HASH, one per program, written by
// the program when it starts) lists the program's instrumented packages,
// each with a hash of its own meta-data: function names, files and the
// positions of every counted block. Two programs holding the same package
// from the same source carry the same package hash; a different one means
// a different build, whose counters must not be added to the other's.
// `go tool covdata` keeps such packages apart without a word, so the merge
// reads the hashes itself. The layout is Go's internal/coverage/defs.go,
// version 1 (Go 1.20 to today), little-endian:
//
//	file header   magic "\x00cvm", version u32, length u64, packages u64,
//	              hash [16], string table offset u32 and length u32,
//	              counter mode u8, granularity u8, padding [6]  (56 bytes)
//	then          packages × offset u64, packages × length u64
//	package blob  length u32, name u32, path u32, module u32 (string
//	              indexes), hash [16], padding [4], files u32, funcs u32
//	              (44 bytes), funcs × offset u32, then the blob's string
//	              table: a uleb128 count, each string a uleb128 length
//	              and its bytes.
const (
	metaFileHeaderSize = 56
	metaPkgHeaderSize  = 44
)

var metaMagic = []byte{0x00, 'c', 'v', 'm'}

// goPackageMeta is one package of a meta-data file.
type goPackageMeta struct {
	Path  string // with its files for command-line-arguments
	Name  string // the package's name: main for a program
	Hash  string // hex
	Funcs []goFuncMeta
}

// goFuncMeta is one instrumented function of a package as the build saw
// it: its name as cmd/cover gives it (F, T.M, *T.M; func.L3.C9 for a
// function literal outside any function), its file as the profile names
// it, and the positions of its counted units.
type goFuncMeta struct {
	Name, File string
	Lit        bool
	Units      []goUnit
}

// goUnit is a counted unit's start and end, line and column (byte, from
// 1), as go/token's Position gives them.
type goUnit struct{ StartLine, StartCol, EndLine, EndCol int }

// readGoMeta reads the packages of the meta-data file at path.
func readGoMeta(path string) ([]goPackageMeta, error) {
	data, err := ReadNoFollow(path, maxGuestFile)
	if err != nil {
		return nil, err
	}
	pkgs, err := parseGoMeta(data)
	if err != nil {
		return nil, fmt.Errorf("reading Go coverage meta-data %s: %w", path, err)
	}
	return pkgs, nil
}

func parseGoMeta(data []byte) ([]goPackageMeta, error) {
	le := binary.LittleEndian
	if len(data) < metaFileHeaderSize || !bytes.Equal(data[:4], metaMagic) {
		return nil, errors.New("not a Go coverage meta-data file")
	}
	if v := le.Uint32(data[4:]); v != 1 {
		return nil, fmt.Errorf("meta-data format version %d, this vmlab reads version 1 only: use a vmlab that knows the Go release that built the programs", v)
	}
	n := le.Uint64(data[16:])
	if n > uint64(len(data)) {
		return nil, errors.New("truncated file")
	}
	tables := metaFileHeaderSize + 16*int(n)
	if tables > len(data) {
		return nil, errors.New("truncated file")
	}
	pkgs := make([]goPackageMeta, 0, n)
	for i := range int(n) {
		off := le.Uint64(data[metaFileHeaderSize+8*i:])
		size := le.Uint64(data[metaFileHeaderSize+8*int(n)+8*i:])
		if off > uint64(len(data)) || size > uint64(len(data))-off {
			return nil, fmt.Errorf("package %d lies outside the file", i)
		}
		p, err := parseGoPackageMeta(data[off : off+size])
		if err != nil {
			return nil, fmt.Errorf("package %d: %w", i, err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs, nil
}

func parseGoPackageMeta(blob []byte) (goPackageMeta, error) {
	le := binary.LittleEndian
	if len(blob) < metaPkgHeaderSize {
		return goPackageMeta{}, errors.New("truncated package header")
	}
	nameIndex, pathIndex := le.Uint32(blob[4:]), le.Uint32(blob[8:])
	hash := blob[16:32]
	funcs := uint64(le.Uint32(blob[40:]))
	pos := uint64(metaPkgHeaderSize) + 4*funcs
	if pos > uint64(len(blob)) {
		return goPackageMeta{}, errors.New("truncated function table")
	}
	strs, err := readStringTable(blob[pos:])
	if err != nil {
		return goPackageMeta{}, err
	}
	if uint64(pathIndex) >= uint64(len(strs)) || uint64(nameIndex) >= uint64(len(strs)) {
		return goPackageMeta{}, fmt.Errorf("package path or name is string %d or %d of a table of %d", pathIndex, nameIndex, len(strs))
	}
	p := goPackageMeta{Path: strs[pathIndex], Name: strs[nameIndex], Hash: hex.EncodeToString(hash)}
	for i := range funcs {
		off := uint64(le.Uint32(blob[metaPkgHeaderSize+4*i:]))
		if off < pos || off >= uint64(len(blob)) {
			return goPackageMeta{}, fmt.Errorf("function %d lies outside the package", i)
		}
		fn, err := parseGoFuncMeta(blob[off:], strs)
		if err != nil {
			return goPackageMeta{}, fmt.Errorf("function %d: %w", i, err)
		}
		p.Funcs = append(p.Funcs, fn)
	}
	// Programs built from files named on the command line (go build
	// main.go) all have the package path command-line-arguments: their
	// files, which the table holds by absolute path, tell them apart.
	if p.Path == "command-line-arguments" {
		var files []string
		for _, s := range strs {
			if strings.HasSuffix(s, ".go") && filepath.IsAbs(s) {
				files = append(files, s)
			}
		}
		slices.Sort(files)
		p.Path += " (" + strings.Join(files, ", ") + ")"
	}
	return p, nil
}

// parseGoFuncMeta reads a function descriptor: uleb128 units, name and
// file (string indexes), then per unit start line and column, end line
// and column and statements, and a last uleb128, 1 for a function
// literal (Go's internal/coverage/encodemeta).
func parseGoFuncMeta(b []byte, strs []string) (goFuncMeta, error) {
	next := func() (uint64, error) {
		v, k := binary.Uvarint(b)
		if k <= 0 {
			return 0, errors.New("truncated function")
		}
		b = b[k:]
		return v, nil
	}
	var hdr [3]uint64
	for i := range hdr {
		v, err := next()
		if err != nil {
			return goFuncMeta{}, err
		}
		hdr[i] = v
	}
	units, name, file := hdr[0], hdr[1], hdr[2]
	if name >= uint64(len(strs)) || file >= uint64(len(strs)) || units > uint64(len(b)) {
		return goFuncMeta{}, errors.New("bad function header")
	}
	fn := goFuncMeta{Name: strs[name], File: strs[file]}
	for range units {
		var v [5]uint64
		for i := range v {
			x, err := next()
			if err != nil {
				return goFuncMeta{}, err
			}
			if x > 1<<31 {
				return goFuncMeta{}, errors.New("bad unit position")
			}
			v[i] = x
		}
		fn.Units = append(fn.Units, goUnit{int(v[0]), int(v[1]), int(v[2]), int(v[3])})
	}
	lit, err := next()
	if err != nil {
		return goFuncMeta{}, err
	}
	fn.Lit = lit != 0
	return fn, nil
}

// readStringTable reads a string table: a uleb128 count, then each string
// as a uleb128 length and its bytes.
func readStringTable(b []byte) ([]string, error) {
	count, k := binary.Uvarint(b) // uleb128 is Go's unsigned varint
	if k <= 0 || count > uint64(len(b)) {
		return nil, errors.New("bad string table")
	}
	b = b[k:]
	strs := make([]string, 0, count)
	for range count {
		size, k := binary.Uvarint(b)
		if k <= 0 || size > uint64(len(b)-k) {
			return nil, errors.New("bad string table")
		}
		strs = append(strs, string(b[k:k+int(size)]))
		b = b[k+int(size):]
	}
	return strs, nil
}
