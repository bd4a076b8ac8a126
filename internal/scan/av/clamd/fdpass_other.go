//go:build !linux

package clamd

import (
	"errors"
	"net"
	"os"
)

var errNoMemFile = errors.New("clamd: passing a memory file needs Linux")

// memFile is only available on Linux; elsewhere Scan streams.
func memFile() (*os.File, error) { return nil, errNoMemFile }

func sendFD(*net.UnixConn, *os.File) error { return errNoMemFile }

// connIdle is never reached where memory files are unavailable.
func connIdle(*net.UnixConn) bool { return false }
