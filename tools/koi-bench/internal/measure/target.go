package measure

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// Target is the server process under test and its children (for koi, the
// plugin processes), found once at start. A zero PID means the server is
// not on this machine: CPU and memory are then not reported.
type Target struct {
	PID      int
	Children []int
	// CPUs are those the server and this tool may run on: any other work
	// on them disturbs the measurement.
	CPUs []int
}

// NewTarget finds pid's children. pid 0 gives an empty Target.
func NewTarget(pid int) (*Target, error) {
	t := &Target{}
	cpus, _ := AllowedCPUs(0)
	if pid != 0 {
		if _, err := CPUTime(pid); err != nil {
			return nil, err
		}
		t.PID, t.Children = pid, Children(pid)
		srv, _ := AllowedCPUs(pid)
		cpus = append(cpus, srv...)
	}
	seen := map[int]bool{}
	for _, c := range cpus {
		if !seen[c] {
			seen[c] = true
			t.CPUs = append(t.CPUs, c)
		}
	}
	return t, nil
}

// Known reports whether the server's process is known.
func (t *Target) Known() bool { return t.PID != 0 }

// CPU returns the CPU time used so far by the server and by its children
// together. Children that have exited count as zero.
func (t *Target) CPU() (server, children time.Duration) {
	if t.PID == 0 {
		return 0, 0
	}
	server, _ = CPUTime(t.PID)
	for _, c := range t.Children {
		d, _ := CPUTime(c)
		children += d
	}
	return server, children
}

// Memory returns the resident memory of the server and of its children
// together.
func (t *Target) Memory() (server, children Memory, err error) {
	if t.PID == 0 {
		return Memory{}, Memory{}, nil
	}
	server, err = ReadMemory(t.PID)
	if err != nil {
		return
	}
	for _, c := range t.Children {
		m, err := ReadMemory(c)
		if err != nil {
			continue
		}
		children.RSS += m.RSS
		children.PSS += m.PSS
	}
	return server, children, nil
}

// Window measures CPU use over an interval: the server's, its children's
// and this process's.
type Window struct {
	t                       *Target
	start                   time.Time
	server, children, local time.Duration
	idle, steal             time.Duration
}

// StartWindow starts measuring.
func (t *Target) StartWindow() *Window {
	w := &Window{t: t, start: time.Now(), local: SelfCPU()}
	w.server, w.children = t.CPU()
	w.idle, w.steal, _ = CPUIdle(t.CPUs)
	return w
}

// Usage is CPU time spent over a window.
type Usage struct {
	Wall     time.Duration
	Server   time.Duration
	Children time.Duration
	Tool     time.Duration
	// Busy is the time the test's CPUs were not idle (tasks, interrupts);
	// Steal, what a hypervisor took from them.
	Busy, Steal time.Duration
	CPUs        int
}

// Stop ends the window.
func (w *Window) Stop() Usage {
	s, c := w.t.CPU()
	idle, steal, _ := CPUIdle(w.t.CPUs)
	wall := time.Since(w.start)
	return Usage{
		Wall:     wall,
		Server:   s - w.server,
		Children: c - w.children,
		Tool:     SelfCPU() - w.local,
		Busy:     max(0, wall*time.Duration(len(w.t.CPUs))-(idle-w.idle)-(steal-w.steal)),
		Steal:    steal - w.steal,
		CPUs:     len(w.t.CPUs),
	}
}

// CPUReport is Usage as reported: cores busy and microseconds per
// operation (message, login, session).
type CPUReport struct {
	ServerCores   float64 `json:"server_cores"`
	PluginCores   float64 `json:"plugin_cores"`
	ToolCores     float64 `json:"tool_cores"`
	ToolCPUs      int     `json:"tool_cpus"` // CPUs the tool may use
	ServerUsPerOp float64 `json:"server_us_per_op"`
	PluginUsPerOp float64 `json:"plugin_us_per_op"`
	ToolUsPerOp   float64 `json:"tool_us_per_op"`
	// ToolBound is set when the tool used nearly all the CPU it may use:
	// the measurement is then a lower bound of what the server can do.
	ToolBound bool `json:"tool_bound"`
	// OtherCores is CPU that other processes used on the CPUs of the test
	// (the server's and the tool's), StealCores what a hypervisor took.
	// Either above 0.15 of a core makes the figures unreliable. The
	// kernel's network work for the test's own traffic that is not charged
	// to its processes counts here too: about 0.1 core in a login storm.
	OtherCores float64 `json:"other_cores"`
	StealCores float64 `json:"steal_cores"`
}

// Disturbed describes interference from outside the test, or "".
func (r CPUReport) Disturbed() string {
	if r.OtherCores < 0.15 && r.StealCores < 0.15 {
		return ""
	}
	return fmt.Sprintf("other processes used %.2f cores (and the hypervisor stole %.2f) of the test's CPUs: the figures are disturbed", r.OtherCores, r.StealCores)
}

// Report turns u into a CPUReport for ops operations; serverKnown says
// whether server figures are meaningful.
func (u Usage) Report(ops uint64, serverKnown bool) CPUReport {
	r := CPUReport{ToolCPUs: UsableCPUs()}
	wall := u.Wall.Seconds()
	if wall <= 0 {
		return r
	}
	r.ToolCores = u.Tool.Seconds() / wall
	r.ToolBound = r.ToolCores >= 0.9*float64(r.ToolCPUs)
	if serverKnown {
		r.ServerCores = u.Server.Seconds() / wall
		r.PluginCores = u.Children.Seconds() / wall
		// Only meaningful when the server's CPU time is known.
		r.OtherCores = max(0, (u.Busy-u.Server-u.Children-u.Tool).Seconds()/wall)
	}
	r.StealCores = u.Steal.Seconds() / wall
	if ops > 0 {
		per := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(ops) }
		r.ToolUsPerOp = per(u.Tool)
		if serverKnown {
			r.ServerUsPerOp = per(u.Server)
			r.PluginUsPerOp = per(u.Children)
		}
	}
	return r
}

// Pprof reads a Go server's net/http/pprof endpoint (koi's server.pprof).
type Pprof struct {
	Base string // e.g. http://127.0.0.1:6060
	Dir  string // where profiles are saved
}

// MemStats returns the runtime.MemStats figures the heap profile's debug
// output lists ("# HeapInuse = 123"), by name. The server collects garbage
// first (gc=1), so that HeapAlloc is what is live and Stack what is left
// after the collection shrank idle goroutines' stacks.
func (p *Pprof) MemStats(ctx context.Context) (map[string]int64, error) {
	body, err := p.get(ctx, "/debug/pprof/heap?debug=1&gc=1")
	if err != nil {
		return nil, err
	}
	defer body.Close()
	out := map[string]int64{}
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "# ") {
			continue
		}
		name, val, ok := strings.Cut(line[2:], " = ")
		if !ok {
			continue
		}
		// "Stack = 123 / 456" is in use / obtained from the OS.
		f := strings.Fields(val)
		if len(f) == 0 {
			continue
		}
		if n, err := strconv.ParseInt(f[0], 10, 64); err == nil {
			out[name] = n
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// Goroutines returns how many goroutines the server runs.
func (p *Pprof) Goroutines(ctx context.Context) (int, error) {
	body, err := p.get(ctx, "/debug/pprof/goroutine?debug=1")
	if err != nil {
		return 0, err
	}
	defer body.Close()
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	if !sc.Scan() {
		return 0, fmt.Errorf("pprof goroutine: empty answer: %v", sc.Err())
	}
	// "goroutine profile: total 15027"
	_, total, ok := strings.Cut(sc.Text(), "total ")
	if !ok {
		return 0, fmt.Errorf("pprof goroutine: unexpected first line %q", sc.Text())
	}
	return strconv.Atoi(strings.TrimSpace(total))
}

// Save fetches path (e.g. "/debug/pprof/profile?seconds=10") into file
// name under Dir and returns the file's path.
func (p *Pprof) Save(ctx context.Context, path, name string) (string, error) {
	body, err := p.get(ctx, path)
	if err != nil {
		return "", err
	}
	defer body.Close()
	if err := os.MkdirAll(p.Dir, 0o755); err != nil {
		return "", err
	}
	file := p.Dir + "/" + name
	f, err := os.Create(file)
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(f, body); err != nil {
		f.Close()
		return "", err
	}
	return file, f.Close()
}

func (p *Pprof) get(ctx context.Context, path string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(p.Base, "/")+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("pprof: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("pprof %s: %s", path, resp.Status)
	}
	return resp.Body, nil
}
