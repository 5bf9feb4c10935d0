//go:build !linux

package client

import "syscall"

func bindNoPort(network, address string, c syscall.RawConn) error { return nil }
