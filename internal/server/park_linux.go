package server

import (
	"net"
	"syscall"
	"unsafe"
)

// parker returns what a quiet connection parks on: its socket, when it
// is a plain TCP socket (a TLS connection buffers decrypted bytes above
// the socket, so it never parks). Nil: the connection keeps its reader.
func parker(c net.Conn) syscall.RawConn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// peekSocket looks for a byte to read, an end of stream or an error on
// fd without consuming anything or blocking. It reports false only when
// there is nothing yet.
func peekSocket(fd uintptr) bool {
	var b [1]byte
	_, _, errno := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	return errno != syscall.EAGAIN && errno != syscall.EWOULDBLOCK
}

// readable reports whether reading rc now would not block. A deadline
// that has passed counts as readable: the read finds the timeout.
func readable(rc syscall.RawConn) bool {
	ready := true
	rc.Read(func(fd uintptr) bool {
		ready = peekSocket(fd)
		return true
	})
	return ready
}

// waitReadable blocks until reading rc would not block, or rc's read
// deadline passes, or it is closed. It reads nothing.
func waitReadable(rc syscall.RawConn) error {
	return rc.Read(peekSocket)
}
