//go:build !linux

package testenv

import "syscall"

// sysProcAttr puts the child in its own process group. Without Linux's
// parent-death signal, a crashed test process can leave a server behind; the
// stale-directory sweep removes its data on the next run.
func sysProcAttr(credential *syscall.Credential, _ syscall.Signal) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{
		Setpgid:    true,
		Credential: credential,
	}
}
