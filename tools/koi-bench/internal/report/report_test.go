package report

import (
	"bytes"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/koi-im/koi/tools/koi-bench/internal/load"
	"github.com/koi-im/koi/tools/koi-bench/internal/measure"
)

func TestBudgetVerdicts(t *testing.T) {
	results := []Result{
		&load.MsgResult{Common: load.Common{Mode: "msg"}, Pairs: 500, PerSecond: 95000, Sent: 1000},
		&load.MsgResult{Common: load.Common{Mode: "msg"}, Pairs: 500, Rate: 5000, PerSecond: 5000, Sent: 1000, Lost: 1,
			Latency: measure.Summary{P99: 0.7}},
		&load.IdleResult{Common: load.Common{Mode: "idle"}, Sessions: 15000, Opened: 15000, Alive: 15000, RSSPerSessionKiB: 11.5},
		&load.IdleResult{Common: load.Common{Mode: "idle", TLS: true}, Sessions: 15000, Opened: 15000, Alive: 14000, RSSPerSessionKiB: 20},
		&load.IdleResult{Common: load.Common{Mode: "idle"}, Sessions: 100, Opened: 100, Alive: 100, RSSPerSessionKiB: 10},
		&load.LoginResult{Common: load.Common{Mode: "login", Mechanism: "SCRAM-SHA-1"}, Concurrency: 50, PerSecond: 3999, Iterations: 4096},
		&load.LoginResult{Common: load.Common{Mode: "login", Mechanism: "PLAIN", TLS: true}, Concurrency: 50, PerSecond: 900},
		&load.LoginResult{Common: load.Common{Mode: "login", Mechanism: "SCRAM-SHA-1", TLS: true}, Concurrency: 50, PerSecond: 1000,
			CPU: measure.CPUReport{ServerUsPerOp: 1e6, PluginUsPerOp: 0}},
	}
	var got []string
	for _, l := range Budget(results) {
		got = append(got, l.Verdict)
	}
	want := []string{
		Pass, Pass, // throughput; no loss
		Miss, Miss, // p99 over 0.5ms; one lost
		Pass,       // 11.5 KiB plaintext
		Pass, Miss, // TLS: 20 KiB, but sessions died
		Info, // 100 sessions: not comparable with the 15000 budget
		Miss, // 3999 logins/s
		Pass, // PLAIN: 900/s ≥ 90% of one core / (PBKDF2 + 1s of the rest)
		Info, // SCRAM over TLS: no budget
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("verdicts %v, want %v", got, want)
	}
}

func TestJSONRoundTrip(t *testing.T) {
	dir := t.TempDir()
	in := &load.LoginResult{Common: load.Common{Mode: "login", Label: "x", Mechanism: "PLAIN"}, Logins: 42,
		Latency: measure.Summary{P99: 1.5}, Phases: map[string]measure.Summary{"auth": {P50: 0.2}}}
	f := filepath.Join(dir, "r.json")
	if err := WriteJSON(f, in); err != nil {
		t.Fatal(err)
	}
	out, err := ReadJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out, Result(in)) {
		t.Errorf("read back %+v, want %+v", out, in)
	}
	if err := WriteJSONValue(f, map[string]string{"mode": "nonsense"}); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadJSON(f); err == nil || !strings.Contains(err.Error(), "not a koi-bench result") {
		t.Errorf("reading a foreign file: %v", err)
	}
}

func TestTableAligns(t *testing.T) {
	var b bytes.Buffer
	Table(&b, []string{"a", "long header"}, [][]string{{"µµµ", "x"}, {"b", "yy"}})
	want := "a    long header\n---  -----------\nµµµ  x\nb    yy\n"
	if b.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", b.String(), want)
	}
}

// TestArchiveBudget: runs with the archive on are shown as a share of the
// archive-off run, and an archive other than sql is judged against the
// sql archive's rate, measured in the same suite.
func TestArchiveBudget(t *testing.T) {
	msg := func(archive string, perSecond float64, lost, bounced uint64) *load.MsgResult {
		return &load.MsgResult{Common: load.Common{Mode: "msg"}, Pairs: 500, Archive: archive,
			PerSecond: perSecond, Sent: 1000, Lost: lost, Bounced: bounced}
	}
	check := func(results []Result, archive string) []Line {
		t.Helper()
		var out []Line
		for _, l := range Budget(results) {
			if strings.Contains(l.Check, "archive "+archive+":") {
				out = append(out, l)
			}
		}
		if len(out) != 2 {
			t.Fatalf("archive %s: lines %+v, want throughput and faults", archive, out)
		}
		return out
	}
	off, sql := msg("", 80000, 0, 0), msg("sql", 16000, 10, 10)

	lines := check([]Result{off, sql, msg("http", 15000, 0, 0)}, "http")
	if lines[0].Verdict != Pass || !strings.Contains(lines[0].Measured, "19% of archive off") || !strings.Contains(lines[0].Target, "14400/s") {
		t.Errorf("http at 94%% of sql: %+v", lines[0])
	}
	if lines[1].Verdict != Pass {
		t.Errorf("http without faults: %+v", lines[1])
	}
	if l := check([]Result{off, sql, msg("http", 8000, 0, 0)}, "http")[0]; l.Verdict != Miss {
		t.Errorf("http at half of sql: %+v, want MISS", l)
	}
	if l := check([]Result{off, msg("http", 8000, 0, 0)}, "http")[0]; l.Verdict != Info {
		t.Errorf("http without a sql run: %+v, want info", l)
	}
	lines = check([]Result{off, sql}, "sql")
	if lines[0].Verdict != Miss || !strings.Contains(lines[0].Target, "64000/s") || lines[1].Verdict != Pass {
		t.Errorf("sql at 20%% of archive off, bounced but not lost: %+v", lines)
	}
	if l := check([]Result{off, msg("sql", 70000, 0, 0)}, "sql")[0]; l.Verdict != Pass {
		t.Errorf("sql at 88%% of archive off: %+v, want pass", l)
	}
	if l := check([]Result{msg("sql", 70000, 0, 0)}, "sql")[0]; l.Verdict != Info {
		t.Errorf("sql without an archive-off run: %+v, want info", l)
	}
	if l := check([]Result{off, msg("sql", 16000, 11, 10)}, "sql")[1]; l.Verdict != Miss {
		t.Errorf("sql, a message lost without a bounce: %+v, want MISS", l)
	}
}

// TestTLSBudget: a TLS run is shown beside the plaintext one, and an
// archive run over TLS is compared with TLS archive-off, not plaintext.
func TestTLSBudget(t *testing.T) {
	msg := func(tls bool, archive string, perSecond float64) *load.MsgResult {
		return &load.MsgResult{Common: load.Common{Mode: "msg", TLS: tls}, Pairs: 500, Archive: archive, PerSecond: perSecond, Sent: 1000}
	}
	lines := Budget([]Result{msg(false, "", 80000), msg(true, "", 60000), msg(true, "sql", 54000)})
	var tlsLine, archLine *Line
	for i, l := range lines {
		switch {
		case strings.HasSuffix(l.Check, "unbounded, TLS: throughput"):
			tlsLine = &lines[i]
		case strings.Contains(l.Check, "archive sql: throughput"):
			archLine = &lines[i]
		}
	}
	if tlsLine == nil || tlsLine.Verdict != Info || !strings.Contains(tlsLine.Measured, "75% of plaintext") {
		t.Errorf("TLS throughput line: %+v (all: %+v)", tlsLine, lines)
	}
	if archLine == nil || !strings.Contains(archLine.Measured, "90% of archive off") || archLine.Verdict != Pass {
		t.Errorf("TLS archive line: %+v", archLine)
	}
}

// TestClusterBudget: a cluster run is reported apart from the one-server
// budget, with the cross-node hop as the difference of the two kinds of
// pairs, and a loss is a miss.
func TestClusterBudget(t *testing.T) {
	results := []Result{
		&load.MsgResult{Common: load.Common{Mode: "msg"}, Pairs: 200, Nodes: 1, PerSecond: 20000, Sent: 1000,
			Latency: measure.Summary{P50: 0.5, P99: 2}},
		&load.MsgResult{Common: load.Common{Mode: "msg"}, Pairs: 200, Nodes: 3, Cross: 2.0 / 3, PerSecond: 15000, Sent: 1000, Lost: 2,
			Latency:  measure.Summary{P50: 0.8, P99: 3},
			SameNode: &measure.Summary{P50: 0.5, P99: 2}, CrossNode: &measure.Summary{P50: 0.9, P99: 1.5}},
	}
	lines := Budget(results)
	var got []string
	for _, l := range lines {
		got = append(got, l.Verdict)
	}
	if want := []string{Info, Pass, Info, Info, Miss}; !reflect.DeepEqual(got, want) {
		t.Fatalf("verdicts %v, want %v: %+v", got, want, lines)
	}
	hop := lines[3]
	if !strings.Contains(hop.Check, "cross-node hop") || !strings.HasPrefix(hop.Measured, "+0.400ms p50, -0.500ms p99") {
		t.Errorf("hop line %+v", hop)
	}
	var b bytes.Buffer
	Print(&b, results[1])
	if out := b.String(); !strings.Contains(out, "3 nodes, 67% of pairs across") || !strings.Contains(out, "cross-node latency p50 / p99 / max") {
		t.Errorf("table:\n%s", out)
	}
}
