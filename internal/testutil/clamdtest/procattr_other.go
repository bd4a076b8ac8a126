//go:build unix && !linux

package clamdtest

import "syscall"

// sysProcAttr runs clamd with cred, if any.
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred}
}
