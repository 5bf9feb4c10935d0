package measure

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of CPU times in /proc/PID/stat. It is
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// Memory is a process's resident memory.
type Memory struct {
	RSS int64 `json:"rss_bytes"` // VmRSS
	PSS int64 `json:"pss_bytes"` // proportional set size (smaps_rollup), 0 if unavailable
}

// ReadMemory reads the resident memory of pid.
func ReadMemory(pid int) (Memory, error) {
	var m Memory
	rss, err := statusField(pid, "VmRSS:")
	if err != nil {
		return m, err
	}
	m.RSS = rss
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid)); err == nil {
		m.PSS = kbField(b, "Pss:")
	}
	return m, nil
}

func statusField(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("reading the memory of process %d: %w", pid, err)
	}
	v := kbField(b, field)
	if v < 0 {
		return 0, fmt.Errorf("process %d: no %s in /proc/%d/status", pid, field, pid)
	}
	return v, nil
}

// kbField returns a "Name:   123 kB" field in bytes, or -1.
func kbField(b []byte, field string) int64 {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, field) {
			continue
		}
		f := strings.Fields(line[len(field):])
		if len(f) == 0 {
			return -1
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return -1
		}
		return n * 1024
	}
	return -1
}

// CPUTime is the user plus system CPU time pid has used, all its threads
// together.
func CPUTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("reading the CPU time of process %d: %w", pid, err)
	}
	// The command name (field 2) may contain spaces and parentheses: the
	// fields we want come after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// parentOf returns the parent PID of pid.
func parentOf(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("unexpected format")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0, errors.New("too few fields")
	}
	return strconv.Atoi(f[1])
}

// Children lists the processes whose parent is pid (for koi: its plugins).
func Children(pid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil || n == pid {
			continue
		}
		if p, err := parentOf(n); err == nil && p == pid {
			out = append(out, n)
		}
	}
	return out
}

// ProcessName returns the executable name of pid.
func ProcessName(pid int) string {
	if p, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err == nil {
		return filepath.Base(p)
	}
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return strings.TrimSpace(string(b))
}

// SelfCPU is the CPU time (user plus system) this process and its running
// children (a storm generator) have used.
func SelfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	d := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	for _, c := range Children(os.Getpid()) {
		if t, err := CPUTime(c); err == nil {
			d += t
		}
	}
	return d
}

// UsableCPUs is how many CPUs this process may run on (its affinity mask,
// e.g. 1 under `taskset -c 1`).
func UsableCPUs() int {
	return runtime.NumCPU() // the Go runtime reads the affinity mask at start
}

// RaiseFileLimit lifts the soft open-file limit to the hard one and
// returns the new soft limit: every connection is a file descriptor.
func RaiseFileLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return 0, err
		}
	}
	return lim.Cur, nil
}

// KernelMemory is the kernel's slab memory plus the pages TCP sockets
// hold in buffers, machine-wide: what connections cost outside any
// process's RSS.
func KernelMemory() (int64, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	slab := kbField(b, "Slab:")
	if slab < 0 {
		return 0, errors.New("/proc/meminfo: no Slab")
	}
	s, err := os.ReadFile("/proc/net/sockstat")
	if err != nil {
		return slab, nil
	}
	var pages int64
	sc := bufio.NewScanner(bytes.NewReader(s))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || f[0] != "TCP:" {
			continue
		}
		for i := 1; i+1 < len(f); i += 2 {
			if f[i] == "mem" {
				pages, _ = strconv.ParseInt(f[i+1], 10, 64)
			}
		}
	}
	return slab + pages*int64(os.Getpagesize()), nil
}
