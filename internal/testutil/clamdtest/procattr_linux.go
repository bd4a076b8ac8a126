package clamdtest

import "syscall"

// sysProcAttr runs clamd with cred (if any) and has the kernel kill it if
// the test binary dies without running its cleanups, so no daemon outlives
// a crashed or killed test run. Credentials are set before the death signal
// when the child starts, so dropping to clamav does not clear it.
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
}
