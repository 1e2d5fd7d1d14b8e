//go:build !linux

package redistest

import "syscall"

// sysProcAttr is nil where the kernel cannot kill the child with its
// parent: a server outlives a test binary that dies without cleaning up.
func sysProcAttr() *syscall.SysProcAttr { return nil }
