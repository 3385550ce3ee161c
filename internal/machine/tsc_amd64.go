package machine

// rdtsc reads the host CPU's time-stamp counter.
func rdtsc() uint64

const haveTSC = true
