package redistest

import "syscall"

// sysProcAttr makes the kernel kill a harness-owned redis-server if the
// test binary dies without running its cleanups (a -timeout panic, a
// SIGKILL), so no server outlives its test run. Pdeathsig fires when the
// thread that started the child exits; Go keeps its threads for the life
// of the process unless a goroutine exits while locked to one, which the
// harness never does.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
