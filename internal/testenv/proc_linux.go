package testenv

import "syscall"

// sysProcAttr puts the child in its own process group and asks the kernel to
// send deathSignal when we die, even on SIGKILL, so no server is orphaned.
// Pdeathsig is tied to the OS thread that forked the child; Go only retires
// threads whose goroutine exits while locked to it, which testenv never does.
func sysProcAttr(credential *syscall.Credential, deathSignal syscall.Signal) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{
		Setpgid:    true,
		Pdeathsig:  deathSignal,
		Credential: credential,
	}
}
