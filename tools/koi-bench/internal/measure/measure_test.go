package measure

import (
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"
)

func TestHistogramQuantiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var h Histogram
	var all []time.Duration
	for range 100000 {
		// Log-uniform from 1µs to 1s, like latencies.
		d := time.Duration(1e3 * math.Pow(10, rng.Float64()*6))
		all = append(all, d)
		h.Record(d)
	}
	slices.Sort(all)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999, 1} {
		exact := all[int(q*float64(len(all)))-1]
		got := h.Quantile(q)
		if rel := float64(got-exact) / float64(exact); rel < 0 || rel > 1.0/64 {
			t.Errorf("q%.3f = %v, exact %v: off by %.2f%%", q, got, exact, 100*rel)
		}
	}
	if h.Count() != 100000 || h.Min() != all[0] || h.Max() != all[len(all)-1] {
		t.Errorf("count %d min %v max %v; want 100000 %v %v", h.Count(), h.Min(), h.Max(), all[0], all[len(all)-1])
	}
}

func TestHistogramMergeAndBuckets(t *testing.T) {
	var a, b Histogram
	a.Record(5 * time.Microsecond)
	b.Record(-time.Second) // counts as zero
	b.Record(time.Hour)
	a.Merge(&b)
	if a.Count() != 3 || a.Min() != 0 || a.Max() != time.Hour {
		t.Fatalf("merged: count %d min %v max %v", a.Count(), a.Min(), a.Max())
	}
	// Buckets are contiguous and increasing: every value lands in a bucket
	// whose upper bound is at least the value and below the next bucket's.
	for _, v := range []uint64{0, 1, 63, 64, 65, 127, 128, 1000, 1 << 20, 1<<40 + 12345, 1<<63 + 1} {
		i := bucket(v)
		if bucketHigh(i) < v || (i > 0 && bucketHigh(i-1) >= v) {
			t.Errorf("value %d: bucket %d covers up to %d, previous up to %d", v, i, bucketHigh(i), bucketHigh(i-1))
		}
	}
	var empty Histogram
	if empty.Quantile(0.99) != 0 || empty.Mean() != 0 {
		t.Error("an empty histogram reports non-zero figures")
	}
}

func TestProcReadings(t *testing.T) {
	pid := os.Getpid()
	m, err := ReadMemory(pid)
	if err != nil || m.RSS <= 0 {
		t.Fatalf("ReadMemory(self) = %+v, %v", m, err)
	}
	// Burn some CPU and see the counter move.
	before, err := CPUTime(pid)
	if err != nil {
		t.Fatal(err)
	}
	selfBefore := SelfCPU()
	for start := time.Now(); time.Since(start) < 50*time.Millisecond; {
	}
	after, _ := CPUTime(pid)
	if after <= before || SelfCPU() <= selfBefore {
		t.Errorf("CPU time did not grow: /proc %v → %v, rusage %v → %v", before, after, selfBefore, SelfCPU())
	}
	if _, err := ReadMemory(1 << 30); err == nil {
		t.Error("ReadMemory of a missing process gave no error")
	}
	if _, err := NewTarget(1 << 30); err == nil {
		t.Error("NewTarget of a missing process gave no error")
	}
	tg, err := NewTarget(0)
	if err != nil || tg.Known() {
		t.Errorf("NewTarget(0) = %+v, %v", tg, err)
	}
}

func TestKBField(t *testing.T) {
	status := []byte("Name:\tkoi\nVmPeak:\t  100 kB\nVmRSS:\t   2048 kB\n")
	if v := kbField(status, "VmRSS:"); v != 2048*1024 {
		t.Errorf("VmRSS = %d", v)
	}
	if v := kbField(status, "Pss:"); v != -1 {
		t.Errorf("missing field = %d, want -1", v)
	}
}

func TestParseCPUList(t *testing.T) {
	for in, want := range map[string][]int{"0": {0}, "0-1": {0, 1}, "0,2-4,7": {0, 2, 3, 4, 7}} {
		got, err := parseCPUList(in)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("parseCPUList(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "a", "3-1", "1-x"} {
		if _, err := parseCPUList(bad); err == nil {
			t.Errorf("parseCPUList(%q) gave no error", bad)
		}
	}
	cpus, err := AllowedCPUs(0)
	if err != nil || len(cpus) == 0 {
		t.Fatalf("AllowedCPUs(self) = %v, %v", cpus, err)
	}
	idle, _, err := CPUIdle(cpus)
	if err != nil || idle <= 0 {
		t.Errorf("CPUIdle(%v) = %v, %v", cpus, idle, err)
	}
}
