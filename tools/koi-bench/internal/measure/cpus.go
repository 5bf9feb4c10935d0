package measure

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// AllowedCPUs returns the CPUs pid may run on (its affinity), from
// /proc/PID/status; pid 0 means this process.
func AllowedCPUs(pid int) ([]int, error) {
	p := "self"
	if pid != 0 {
		p = strconv.Itoa(pid)
	}
	b, err := os.ReadFile("/proc/" + p + "/status")
	if err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Cpus_allowed_list:"); ok {
			return parseCPUList(strings.TrimSpace(v))
		}
	}
	return nil, fmt.Errorf("/proc/%s/status: no Cpus_allowed_list", p)
}

// parseCPUList parses "0-2,5".
func parseCPUList(s string) ([]int, error) {
	var out []int
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return nil, fmt.Errorf("CPU list %q: %w", s, err)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, fmt.Errorf("CPU list %q: bad range %q", s, part)
			}
		}
		for c := a; c <= b; c++ {
			out = append(out, c)
		}
	}
	return out, nil
}

// CPUIdle is the time the given CPUs spent idle (idle and iowait from
// /proc/stat) and the time a hypervisor stole from them. Idle time is
// measured precisely on tickless kernels, unlike the user and system
// columns, which are sampled at timer ticks and go wrong for processes
// that run in short bursts: busy time is better had as wall time minus
// idle time.
func CPUIdle(cpus []int) (idle, steal time.Duration, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	want := map[string]bool{}
	for _, c := range cpus {
		want["cpu"+strconv.Itoa(c)] = true
	}
	var idleTicks, stolen int64
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 9 || !want[f[0]] {
			continue
		}
		var v [8]int64
		for i := range v {
			v[i], _ = strconv.ParseInt(f[i+1], 10, 64)
		}
		// user nice system idle iowait irq softirq steal
		idleTicks += v[3] + v[4]
		stolen += v[7]
	}
	return time.Duration(idleTicks) * time.Second / clockTicks, time.Duration(stolen) * time.Second / clockTicks, nil
}
