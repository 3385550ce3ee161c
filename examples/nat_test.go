package examples

import (
	"testing"

	"github.com/vmlab/vmlab"
)

// TestNAT: a client on a private network (VLAN 2) reaches a server on the
// public one (VLAN 1) through a router that masquerades with nftables; the
// server cannot reach the client. Machines are numbered by sorted name:
// client 1, router 2, server 3.
func TestNAT(t *testing.T) {
	bootsVMs(t)
	lab := vmlab.New(t)
	client := lab.Machine("client", vmlab.VLANs(2))
	router := lab.Machine("router", vmlab.VLANs(1, 2))
	server := lab.Machine("server", vmlab.VLANs(1))

	router.Succeed(t, "echo 1 > /proc/sys/net/ipv4/ip_forward")
	router.Succeed(t, `nft add table ip nat && `+
		`nft add chain ip nat post '{ type nat hook postrouting priority 100; }' && `+
		`nft add rule ip nat post oifname eth1 masquerade`)
	client.Succeed(t, "ip route add default via 192.168.2.2")

	server.Succeed(t, "mkdir -p /srv/www && echo hi > /srv/www/index.html && busybox httpd -p 80 -h /srv/www")
	server.WaitForOpenPort(t, 80, 0)

	client.Succeed(t, "curl -sf --max-time 5 http://192.168.1.3/ >/dev/null")
	// The server saw the router's address, not the client's.
	server.Succeed(t, "ss -tn state time-wait | grep -q 192.168.1.2")
	server.Fail(t, "ping -c 1 -W 1 192.168.2.1")
	server.Fail(t, "ping -c 1 -W 1 client")
}
