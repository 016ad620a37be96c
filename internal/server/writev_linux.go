package server

import (
	"net"
	"os"
	"syscall"
	"unsafe"
)

// iovecs is a reusable write vector for writev.
type iovecs []syscall.Iovec

// maxIovecs is Linux's IOV_MAX.
const maxIovecs = 1024

// writev writes bufs to rc with one non-blocking writev call (of at most
// maxIovecs buffers) and returns how many bytes went out. A full socket
// buffer is not an error: it returns what was written, maybe nothing.
func (v *iovecs) writev(rc syscall.RawConn, bufs net.Buffers) (int, error) {
	iov := (*v)[:0]
	for _, b := range bufs {
		if len(b) == 0 {
			continue
		}
		if len(iov) == maxIovecs {
			break
		}
		e := syscall.Iovec{Base: &b[0]}
		e.SetLen(len(b))
		iov = append(iov, e)
	}
	if len(iov) == 0 {
		return 0, nil
	}
	var n uintptr
	var errno syscall.Errno
	err := rc.Write(func(fd uintptr) bool {
		n, _, errno = syscall.Syscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
		return true // never wait for the socket here
	})
	clear(iov) // hold no references to the frames
	*v = iov[:0]
	switch {
	case err != nil:
		return 0, err
	case errno == syscall.EAGAIN || errno == syscall.EINTR:
		return 0, nil
	case errno != 0:
		return 0, os.NewSyscallError("writev", errno)
	}
	return int(n), nil
}
