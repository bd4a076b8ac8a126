package clamd

import (
	"fmt"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// memFile returns an anonymous memory file: nothing reaches a disk, and it
// disappears with its last descriptor (ours and clamd's).
func memFile() (*os.File, error) {
	fd, err := unix.MemfdCreate("mailgate-scan", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	return os.NewFile(uintptr(fd), "memfd:mailgate-scan"), nil
}

// sendFD passes f's descriptor over uc (SCM_RIGHTS) with one byte of data.
func sendFD(uc *net.UnixConn, f *os.File) error {
	raw, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var werr error
	if err := raw.Control(func(fd uintptr) {
		_, _, werr = uc.WriteMsgUnix([]byte{0}, syscall.UnixRights(int(fd)), nil)
	}); err != nil {
		return err
	}
	return werr
}

// connIdle reports whether uc is open with nothing to read, as an idle
// IDSESSION connection must be: clamd has not closed it nor written to it.
// It peeks without blocking.
func connIdle(uc *net.UnixConn) bool {
	raw, err := uc.SyscallConn()
	if err != nil {
		return false
	}
	idle := false
	err = raw.Read(func(fd uintptr) bool {
		var b [1]byte
		_, _, rerr := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		idle = rerr == unix.EAGAIN
		return true
	})
	return err == nil && idle
}
