//go:build !linux

package server

import (
	"net"
	"syscall"
)

// parker returns nil: outside Linux a connection keeps its reader
// goroutine while it is quiet.
func parker(net.Conn) syscall.RawConn { return nil }

func readable(syscall.RawConn) bool { return true }

func waitReadable(syscall.RawConn) error { return nil }
