//go:build unix && !linux

package pgtest

import "syscall"

// sysProcAttr runs postgres with cred, if any.
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred}
}
