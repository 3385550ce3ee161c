//go:build !amd64

package machine

func rdtsc() uint64 { return 0 }

const haveTSC = false
