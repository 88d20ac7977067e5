package testenv

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// process is a started server process whose exit is observed by a
// background goroutine, so callers can both wait with a timeout and notice a
// server that died during start-up.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error // exit status; valid once done is closed
}

// startProcess starts cmd in its own process group (so a terminal's Ctrl-C
// reaches only the test process, which then shuts servers down in order)
// and with a parent-death signal, so the server never outlives us.
// credential, when non-nil, runs the process as another OS user.
func startProcess(cmd *exec.Cmd, credential *syscall.Credential, deathSignal syscall.Signal) (*process, error) {
	cmd.SysProcAttr = sysProcAttr(credential, deathSignal)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has terminated.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signal sends sig to the process; a process that already exited is not an error.
func (p *process) signal(sig syscall.Signal) {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(sig)
}

// waitFor waits up to d for the process to exit and reports whether it did.
func (p *process) waitFor(d time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(d):
		return false
	}
}

// stop escalates through the given signals, waiting the paired duration
// after each, and finally kills the whole process group.
func (p *process) stop(steps ...stopStep) error {
	for _, s := range steps {
		p.signal(s.sig)
		if p.waitFor(s.wait) {
			return nil
		}
	}
	// Kill the group too: a server's helper processes must not survive it.
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	p.signal(syscall.SIGKILL)
	if !p.waitFor(10 * time.Second) {
		return fmt.Errorf("process %d did not exit after SIGKILL", p.cmd.Process.Pid)
	}
	return fmt.Errorf("process %d ignored %s and was killed", p.cmd.Process.Pid, describeSteps(steps))
}

type stopStep struct {
	sig  syscall.Signal
	wait time.Duration
}

func describeSteps(steps []stopStep) string {
	names := make([]string, len(steps))
	for i, s := range steps {
		names[i] = s.sig.String()
	}
	return strings.Join(names, ", ")
}

// logTail returns the last lines of a server log, for error messages that
// must explain why a server did not come up.
func logTail(path string, lines int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	defer f.Close()
	const maxBytes = 16 << 10
	if st, err := f.Stat(); err == nil && st.Size() > maxBytes {
		_, _ = f.Seek(st.Size()-maxBytes, io.SeekStart)
	}
	data, _ := io.ReadAll(f)
	data = bytes.TrimRight(data, "\n")
	all := strings.Split(string(data), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return "--- last lines of " + path + " ---\n" + strings.Join(all, "\n")
}
