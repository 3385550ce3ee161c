module github.com/vmlab/vmlab

go 1.26.8

require (
	github.com/klauspost/compress v1.20.3
	github.com/ulikunitz/xz v0.5.17
	golang.org/x/sys v0.49.0
)

require (
	github.com/peterh/liner v1.2.2
	go.starlark.net v0.0.0-20260908191801-89a6a09411d5
)

require github.com/mattn/go-runewidth v0.0.3 // indirect
