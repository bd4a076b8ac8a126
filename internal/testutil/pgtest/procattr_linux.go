package pgtest

import "syscall"

// sysProcAttr runs postgres with cred (if any) and has the kernel kill it
// if the test binary dies without stopping it. Go sets the death signal
// after changing credentials, so dropping to postgres does not clear it.
// (Backends notice their postmaster's death and exit by themselves.)
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
}
