package cli

import "os"

// The package's tests run the same files many times, in this process and
// in the vmlab processes they start, and want their VMs to boot each time:
// the result cache is off unless a test turns it on (-cache=on).
func init() { os.Setenv(resultCacheEnv, "off") }
