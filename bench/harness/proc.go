package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// userHZ is the unit of the CPU times in /proc/PID/stat. The kernel reports
// them in USER_HZ, which is 100 on every Linux architecture Go supports
// (sysconf(_SC_CLK_TCK) is not reachable without cgo).
const userHZ = 100

// cpuSeconds parses /proc/PID/stat and returns utime+stime in seconds.
func cpuSeconds(stat string) (float64, error) {
	// The command name (field 2) is in parentheses and may hold spaces
	// and parentheses itself: the fields that follow start after the last
	// ')'.
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("stat: no ')' after the command name")
	}
	f := strings.Fields(stat[i+1:])
	// After the name: state is field 3, utime 14 and stime 15 (1-based),
	// so f[11] and f[12].
	if len(f) < 13 {
		return 0, fmt.Errorf("stat: %d fields after the command name, want at least 13", len(f))
	}
	utime, err := strconv.ParseUint(f[11], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("stat utime: %w", err)
	}
	stime, err := strconv.ParseUint(f[12], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("stat stime: %w", err)
	}
	return float64(utime+stime) / userHZ, nil
}

// statusKB returns the value of a "Key:  N kB" line of /proc/PID/status
// (VmHWM, VmRSS) in kB.
func statusKB(status, key string) (uint64, error) {
	for line := range strings.SplitSeq(status, "\n") {
		rest, ok := strings.CutPrefix(line, key+":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("status %s: unexpected %q", key, line)
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("status %s: %w", key, err)
		}
		return n, nil
	}
	return 0, fmt.Errorf("status: no %s line", key)
}

// usage is a process's resource use at one moment.
type usage struct {
	CPUSeconds float64 // user + system since it started
	PeakRSSKB  uint64  // VmHWM: the most resident memory so far
	RSSKB      uint64  // VmRSS: resident now
}

// readUsage reads the usage of pid from /proc.
func readUsage(pid int) (usage, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return usage{}, fmt.Errorf("read stat: %w", err)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return usage{}, fmt.Errorf("read status: %w", err)
	}
	var u usage
	if u.CPUSeconds, err = cpuSeconds(string(stat)); err != nil {
		return usage{}, err
	}
	if u.PeakRSSKB, err = statusKB(string(status), "VmHWM"); err != nil {
		return usage{}, err
	}
	if u.RSSKB, err = statusKB(string(status), "VmRSS"); err != nil {
		return usage{}, err
	}
	return u, nil
}

// readRSS reads only VmRSS, for the sampler that runs every 100 ms.
func readRSS(pid int) (uint64, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read status: %w", err)
	}
	return statusKB(string(status), "VmRSS")
}

// proc is a monitor under measurement: started by the harness, its output
// in a log file, its exit observed once.
type proc struct {
	name    string
	cmd     *exec.Cmd
	started time.Time
	done    chan struct{} // closed when it has exited
	err     error         // Wait's result, once done is closed
}

// startProc starts bin with args, stdout to stdoutPath and stderr to
// stderrPath (both may be the same file).
func startProc(name, dir, stdoutPath, stderrPath, bin string, args ...string) (*proc, error) {
	return startProcEnv(name, dir, stdoutPath, stderrPath, nil, bin, args...)
}

// startProcEnv is startProc with env added to the harness's environment.
func startProcEnv(name, dir, stdoutPath, stderrPath string, env []string, bin string, args ...string) (*proc, error) {
	out, err := os.Create(stdoutPath)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", stdoutPath, err)
	}
	var errW io.WriteCloser = out
	if stderrPath != stdoutPath {
		if errW, err = os.Create(stderrPath); err != nil {
			out.Close()
			return nil, fmt.Errorf("create %s: %w", stderrPath, err)
		}
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.Stdout, cmd.Stderr = out, errW
	// Its own process group: a ^C to the harness must not reach it
	// before the harness has read its figures and stopped it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		out.Close()
		errW.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		out.Close()
		if errW != out {
			errW.Close()
		}
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, waits up to grace, then SIGKILL; it returns the exit
// error of a process that did not stop cleanly.
func (p *proc) stop(grace time.Duration) error {
	if p.exited() {
		return p.err
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(grace):
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	return fmt.Errorf("%s did not stop within %v of SIGTERM; killed", p.name, grace)
}
