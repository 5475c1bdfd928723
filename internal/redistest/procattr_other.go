//go:build !linux

package redistest

import "syscall"

// sysProcAttr is nil where the kernel cannot tie a child's life to ours:
// a test binary killed without its cleanups leaves its redis-server behind.
func sysProcAttr() *syscall.SysProcAttr { return nil }
