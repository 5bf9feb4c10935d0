package client

import "syscall"

// ipBindAddressNoPort is IP_BIND_ADDRESS_NO_PORT (Linux 4.2+): with a
// source address set, the port is chosen at connect time by the 4-tuple,
// like an unbound socket's, instead of at bind time among ports no socket
// on that address holds. Without it, tens of thousands of connections in
// TIME_WAIT make every bind search long and eventually fail.
const ipBindAddressNoPort = 24

func bindNoPort(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, ipBindAddressNoPort, 1)
	})
	if err != nil {
		return err
	}
	// An old kernel without the option still works, just slower.
	_ = serr
	return nil
}
