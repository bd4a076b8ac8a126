package s3test

import "syscall"

// sysProcAttr has the kernel kill the server if the program that started
// it dies without stopping it.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
