package examples

import (
	"testing"

	"github.com/vmlab/vmlab"
)

// TestPartition splits three machines: the majority side keeps talking, the
// minority is cut off, and heal brings it back.
func TestPartition(t *testing.T) {
	bootsVMs(t)
	lab := vmlab.New(t)
	n1, n2, n3 := lab.Machine("n1"), lab.Machine("n2"), lab.Machine("n3")
	for _, n := range []*vmlab.Machine{n1, n2, n3} {
		n.Succeed(t, "mkdir -p /srv/www && echo hi > /srv/www/index.html && busybox httpd -p 7000 -h /srv/www")
		n.WaitForOpenPort(t, 7000, 0)
	}

	lab.Partition(t, []string{"n1", "n2"}, []string{"n3"})
	n1.Succeed(t, "curl -sf --max-time 10 http://n2:7000/ >/dev/null")
	n2.Succeed(t, "curl -sf --max-time 10 http://n1:7000/ >/dev/null")
	n3.Fail(t, "curl -sf --max-time 2 http://n1:7000/")
	n1.Fail(t, "curl -sf --max-time 2 http://n3:7000/")

	lab.Heal(t)
	n3.WaitUntilSucceeds(t, "curl -sf --max-time 2 http://n1:7000/ >/dev/null", 0)
}
