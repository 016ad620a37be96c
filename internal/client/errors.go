package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"

	"github.com/coder/websocket"

	"parley/internal/protocol"
)

// Sentinel errors. Test for them with errors.Is; the errors returned carry
// more detail (the URL, the server's message).
var (
	// ErrRefused: nothing listens at the address (TCP connection refused).
	ErrRefused = errors.New("connection refused")
	// ErrNickTaken: the nick is in use on the server. Returned by Dial (the
	// requested Nick) and Nick, as a *ServerError or wrapped.
	ErrNickTaken = errors.New("nick is taken")
	// ErrBadNick: the nick is not 1-32 letters, digits, '-' and '_'.
	ErrBadNick = errors.New("invalid nick")
	// ErrBadRoom: a room name is not 1-32 letters, digits, '-' and '_'.
	ErrBadRoom = errors.New("invalid room name")
	// ErrNotParley: the server speaks WebSocket but not parley's JSON
	// protocol (no parley.v1 subprotocol, or no welcome).
	ErrNotParley = errors.New("not a parley server")
	// ErrClosed: the client was closed (by Close, or for good after the
	// connection ended without reconnecting).
	ErrClosed = errors.New("client is closed")
	// ErrTooLong: a message whose frame would exceed the server's
	// max_message_bytes; it was not sent.
	ErrTooLong = errors.New("message too long")
	// ErrUnsupported: the command does not exist in the text format.
	ErrUnsupported = errors.New("not supported in the text format")
	// ErrIdle: nothing (not even a ping) came from the server for
	// Options.IdleTimeout.
	ErrIdle = errors.New("no data or ping from the server")
)

// nameError is a nick or room name refused before sending; Is matches its
// sentinel (ErrBadNick or ErrBadRoom).
type nameError struct {
	what, name string
	err        error
	sentinel   error
}

func (e *nameError) Error() string {
	return fmt.Sprintf("%s %q is invalid: it %v", e.what, e.name, e.err)
}

func (e *nameError) Is(target error) bool { return target == e.sentinel }

func badNick(nick string, err error) error {
	return &nameError{what: "nick", name: nick, err: err, sentinel: ErrBadNick}
}

func badRoom(room string, err error) error {
	return &nameError{what: "room name", name: room, err: err, sentinel: ErrBadRoom}
}

// ConnectError is a failure to reach the server: TCP, DNS, TLS or a
// timeout. Unwrap gives the cause (ErrRefused, a *net.DNSError, a TLS
// error, context.DeadlineExceeded, ...).
type ConnectError struct {
	URL string
	Err error
}

func (e *ConnectError) Error() string {
	switch {
	case errors.Is(e.Err, ErrRefused):
		return fmt.Sprintf("cannot connect to %s: connection refused (is \"parley serve\" running?)", e.URL)
	case errors.Is(e.Err, context.DeadlineExceeded):
		return fmt.Sprintf("cannot connect to %s: timed out", e.URL)
	}
	var dns *net.DNSError
	if errors.As(e.Err, &dns) {
		if dns.IsNotFound {
			return fmt.Sprintf("cannot connect to %s: no such host %q", e.URL, dns.Name)
		}
		return fmt.Sprintf("cannot connect to %s: cannot resolve %q: %v", e.URL, dns.Name, dns.Err)
	}
	if isTLS(e.Err) {
		return fmt.Sprintf("cannot connect to %s: TLS handshake failed: %s", e.URL, tlsReason(e.Err))
	}
	return fmt.Sprintf("cannot connect to %s: %v", e.URL, e.Err)
}

func (e *ConnectError) Unwrap() error { return e.Err }

// HandshakeError: the server answered the WebSocket upgrade with an HTTP
// status other than 101 Switching Protocols.
type HandshakeError struct {
	URL        string
	StatusCode int
}

func (e *HandshakeError) Error() string {
	return fmt.Sprintf("the server at %s answered HTTP %d instead of upgrading to WebSocket: it is not a parley server, or the path or port is wrong", e.URL, e.StatusCode)
}

// NotParleyError: the server upgraded but does not speak parley.v1.
type NotParleyError struct {
	URL    string
	Reason string
}

func (e *NotParleyError) Error() string {
	return fmt.Sprintf("the server at %s speaks WebSocket but not parley: %s (use --raw or --format text for other servers)", e.URL, e.Reason)
}

func (e *NotParleyError) Unwrap() error { return ErrNotParley }

// CloseError: the server closed the connection with a close frame.
type CloseError struct {
	Code   int
	Reason string
}

func (e *CloseError) Error() string {
	s := fmt.Sprintf("the server closed the connection: %s (%d)", CloseMeaning(e.Code), e.Code)
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

// Retryable reports whether reconnecting may help: not after a normal close
// nor after a close that says our own frames were wrong (reconnecting would
// send them again).
func (e *CloseError) Retryable() bool {
	switch e.Code {
	case 1000, 1002, 1003, 1007, 1009, 1010:
		return false
	}
	return true
}

// CloseMeaning says in words what a WebSocket close code means.
func CloseMeaning(code int) string {
	switch code {
	case 1000:
		return "normal close"
	case 1001:
		return "the server is shutting down"
	case 1002:
		return "WebSocket protocol error"
	case 1003:
		return "unsupported data"
	case 1005:
		return "no status given"
	case 1006:
		return "abnormal closure"
	case 1007:
		return "invalid UTF-8 in a text frame"
	case 1008:
		return "policy violation"
	case 1009:
		return "message too big"
	case 1010:
		return "a needed extension is missing"
	case 1011:
		return "server error"
	case 1012:
		return "the server is restarting"
	case 1013:
		return "try again later"
	case 1014:
		return "bad gateway"
	}
	return "close code"
}

// LostError: the connection ended without a close frame (reset, EOF,
// timeout).
type LostError struct {
	URL string
	Err error
}

func (e *LostError) Error() string {
	return fmt.Sprintf("the connection to %s was lost: %v", e.URL, e.Err)
}

func (e *LostError) Unwrap() error { return e.Err }

// ServerError is an error event answering one of our commands: the server
// refused it. Is matches ErrNickTaken, ErrBadNick and ErrBadRoom by code.
type ServerError struct {
	Code    string // a protocol.Code* value
	Message string // for people, from the server
	Ref     string
	Room    string
}

func (e *ServerError) Error() string { return e.Message }

// Is lets errors.Is(err, ErrNickTaken) (and ErrBadNick, ErrBadRoom) see
// through the server's codes.
func (e *ServerError) Is(target error) bool {
	switch target {
	case ErrNickTaken:
		return e.Code == protocol.CodeNickTaken
	case ErrBadNick:
		return e.Code == protocol.CodeBadNick
	case ErrBadRoom:
		return e.Code == protocol.CodeBadRoom
	case ErrTooLong:
		return e.Code == protocol.CodeTooLong
	}
	return false
}

func serverError(ev *protocol.Event) *ServerError {
	return &ServerError{Code: ev.Code, Message: ev.Message, Ref: ev.Ref, Room: ev.Room}
}

// connErr turns an error of websocket.Dial into one of ours.
func connErr(url string, err error) error {
	if errors.Is(err, syscall.ECONNREFUSED) {
		return &ConnectError{URL: url, Err: ErrRefused}
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return &ConnectError{URL: url, Err: dns}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &ConnectError{URL: url, Err: context.DeadlineExceeded}
	}
	if isTLS(err) {
		return &ConnectError{URL: url, Err: err}
	}
	var op *net.OpError
	if errors.As(err, &op) {
		return &ConnectError{URL: url, Err: op.Err}
	}
	return &ConnectError{URL: url, Err: err}
}

// readErr turns the error that ended a read loop into one of ours.
func readErr(url string, err error) error {
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		return &CloseError{Code: int(ce.Code), Reason: ce.Reason}
	}
	return &LostError{URL: url, Err: simplify(err)}
}

// simplify drops coder/websocket's "failed to get reader: ..." layers for
// the common causes, so the message reads well.
func simplify(err error) error {
	switch {
	case errors.Is(err, ErrIdle):
		return ErrIdle
	case errors.Is(err, net.ErrClosed):
		return net.ErrClosed
	case errors.Is(err, syscall.ECONNRESET):
		return syscall.ECONNRESET
	case strings.Contains(err.Error(), "EOF"):
		return errors.New("the server went away without closing the connection (EOF)")
	}
	return err
}

func isTLS(err error) bool {
	var (
		rh  tls.RecordHeaderError
		cv  *tls.CertificateVerificationError
		ua  x509.UnknownAuthorityError
		hn  x509.HostnameError
		ci  x509.CertificateInvalidError
		alt tls.AlertError
	)
	if strings.Contains(err.Error(), "server gave HTTP response to HTTPS client") {
		return true
	}
	return errors.As(err, &rh) || errors.As(err, &cv) || errors.As(err, &ua) ||
		errors.As(err, &hn) || errors.As(err, &ci) || errors.As(err, &alt)
}

func tlsReason(err error) string {
	var rh tls.RecordHeaderError
	if errors.As(err, &rh) || strings.Contains(err.Error(), "server gave HTTP response to HTTPS client") {
		return "the server does not speak TLS (try ws:// or http://)"
	}
	var ua x509.UnknownAuthorityError
	if errors.As(err, &ua) {
		return "the certificate is signed by an unknown authority"
	}
	var hn x509.HostnameError
	if errors.As(err, &hn) {
		return hn.Error()
	}
	var cv *tls.CertificateVerificationError
	if errors.As(err, &cv) {
		return cv.Err.Error()
	}
	return err.Error()
}
