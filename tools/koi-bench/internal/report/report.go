// Package report renders koi-bench results: a table per result, JSON
// files, and the summary of a suite checked against koi's budget.
package report

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/koi-im/koi/tools/koi-bench/internal/load"
	"github.com/koi-im/koi/tools/koi-bench/internal/measure"
)

// Row is one line of a table.
type Row struct {
	Test, Metric, Value string
}

// Result is any workload's result.
type Result interface{}

// Rows lists what a result shows in a table.
func Rows(res Result) []Row {
	switch r := res.(type) {
	case *load.RegisterResult:
		t := label(r.Common, "register")
		return []Row{
			{t, "users created / existing", fmt.Sprintf("%d / %d of %d", r.Created, r.Existed, r.Users)},
			{t, "rate (" + r.Via + ")", fmt.Sprintf("%.0f users/s", r.PerSecond)},
			errorsRow(t, r.Common),
		}
	case *load.IdleResult:
		t := label(r.Common, fmt.Sprintf("idle %d %s", r.Sessions, tlsName(r.TLS)))
		rows := []Row{
			{t, "sessions open / alive at end", fmt.Sprintf("%d / %d", r.Opened, r.Alive)},
			{t, "server RSS per session", fmt.Sprintf("%.1f KiB (%.1f → %.1f MiB)", r.RSSPerSessionKiB, mib(r.ServerBefore.RSS), mib(r.ServerAfter.RSS))},
		}
		if r.ServerAfter.PSS > 0 {
			rows = append(rows, Row{t, "server PSS per session", fmt.Sprintf("%.1f KiB", r.PSSPerSessionKiB)})
		}
		if r.HeapPerSessionKiB != 0 || r.StackPerSessionKiB != 0 {
			rows = append(rows, Row{t, "  of which live heap / stacks", fmt.Sprintf("%.1f / %.1f KiB (after a forced GC)", r.HeapPerSessionKiB, r.StackPerSessionKiB)})
		}
		if r.RSSAfterGCPerSessionKiB != 0 {
			rows = append(rows, Row{t, "server RSS per session after GC", fmt.Sprintf("%.1f KiB (%.0f s after a forced GC)", r.RSSAfterGCPerSessionKiB, load.GCSettle.Seconds())})
		}
		if r.GoroutinesPerSession != 0 {
			rows = append(rows, Row{t, "server goroutines per session", fmt.Sprintf("%.2f", r.GoroutinesPerSession)})
		}
		if r.KernelPerConnKiB != 0 {
			rows = append(rows, Row{t, "kernel memory per connection end", fmt.Sprintf("%.1f KiB (slab and TCP buffers, estimate)", r.KernelPerConnKiB)})
		}
		rows = append(rows,
			Row{t, "plugin RSS per session", fmt.Sprintf("%.2f KiB (%.1f → %.1f MiB)", r.PluginPerSessionKiB, mib(r.PluginBefore.RSS), mib(r.PluginAfter.RSS))},
			Row{t, "open rate", fmt.Sprintf("%.0f sessions/s; CPU per session: %s", float64(r.Opened)/r.OpenSeconds, perOp(r.OpenCPU, "session"))},
			errorsRow(t, r.Common),
		)
		return rows
	case *load.LoginResult:
		t := label(r.Common, fmt.Sprintf("login %s %s c=%d", r.Mechanism, tlsName(r.TLS), r.Concurrency))
		return []Row{
			{t, "logins/s", fmt.Sprintf("%.0f (%d in %.1fs)", r.PerSecond, r.Logins, r.Seconds)},
			{t, "latency p50 / p99 / max", fmt.Sprintf("%s / %s / %s", msStr(r.Latency.P50), msStr(r.Latency.P99), msStr(r.Latency.Max))},
			{t, "p50 by step: " + phaseHeader(), phases(r.Phases)},
			{t, "CPU per login", perOp(r.CPU, "login")},
			errorsRow(t, r.Common),
		}
	case *load.MsgResult:
		what := "max"
		if r.Rate > 0 {
			what = fmt.Sprintf("%.0f/s", r.Rate)
		}
		name := fmt.Sprintf("msg %d pairs %s %s", r.Pairs, what, tlsName(r.TLS))
		if r.Nodes > 0 {
			name += fmt.Sprintf(", %d nodes, %.0f%% of pairs across", r.Nodes, 100*r.Cross)
		}
		t := label(r.Common, name)
		rows := []Row{
			{t, "delivered msgs/s", fmt.Sprintf("%.0f (%d in %.1fs)", r.PerSecond, r.Delivered, r.Seconds)},
			{t, "lost / duplicated / out of order / bounced", fmt.Sprintf("%d / %d / %d / %d (of %d sent)", r.Lost, r.Duplicated, r.OutOfOrder, r.Bounced, r.Sent)},
			{t, "latency p50 / p99 / p99.9 / max", fmt.Sprintf("%s / %s / %s / %s", msStr(r.Latency.P50), msStr(r.Latency.P99), msStr(r.Latency.P999), msStr(r.Latency.Max))},
			{t, "CPU per message", perOp(r.CPU, "msg")},
		}
		if r.SameNode != nil && r.CrossNode != nil {
			rows = append(rows,
				Row{t, "same-node latency p50 / p99 / max", fmt.Sprintf("%s / %s / %s", msStr(r.SameNode.P50), msStr(r.SameNode.P99), msStr(r.SameNode.Max))},
				Row{t, "cross-node latency p50 / p99 / max", fmt.Sprintf("%s / %s / %s", msStr(r.CrossNode.P50), msStr(r.CrossNode.P99), msStr(r.CrossNode.Max))})
		}
		if l := r.SendLag; l != nil {
			rows = append(rows, Row{t, "tool's own send lag p50 / p99 / max", fmt.Sprintf("%s / %s / %s", msStr(l.P50), msStr(l.P99), msStr(l.Max))})
		}
		return append(rows, errorsRow(t, r.Common))
	case *load.FanResult:
		what, unit := "max", "msgs"
		if r.Rate > 0 {
			what = fmt.Sprintf("%.0f/s", r.Rate)
		}
		name := fmt.Sprintf("muc %d occupants, %d senders %s %s", r.Receivers, r.Senders, what, tlsName(r.TLS))
		if r.Mode == "pep" {
			name, unit = fmt.Sprintf("pep %d contacts %s %s", r.Receivers, what, tlsName(r.TLS)), "notifications"
		}
		t := label(r.Common, name)
		return []Row{
			{t, "delivered " + unit + "/s", fmt.Sprintf("%.0f (%d in %.1fs; %.0f sent/s)", r.PerSecond, r.Delivered, r.Seconds, r.SentPerSecond)},
			{t, "lost / duplicated / out of order / bounced", fmt.Sprintf("%d / %d / %d / %d (of %d sent × %d)", r.Lost, r.Duplicated, r.OutOfOrder, r.Bounced, r.Sent, r.Receivers)},
			{t, "latency p50 / p99 / p99.9 / max", fmt.Sprintf("%s / %s / %s / %s", msStr(r.Latency.P50), msStr(r.Latency.P99), msStr(r.Latency.P999), msStr(r.Latency.Max))},
			{t, "CPU per delivery", perOp(r.CPU, "delivery")},
			{t, "setup (logins, joins or subscriptions)", fmt.Sprintf("%.1fs", r.SetupSeconds)},
			errorsRow(t, r.Common),
		}
	case *load.StormResult:
		t := label(r.Common, fmt.Sprintf("storm %d logins c%d, %d pairs %.0f/s %s", r.StormLogins+r.StormFailed, r.StormConcurrency, r.Pairs, r.Rate, tlsName(r.TLS)))
		return []Row{
			{t, "storm logins/s (done / failed)", fmt.Sprintf("%.0f (%d / %d in %.1fs)", r.StormPerSecond, r.StormLogins, r.StormFailed, r.StormSeconds)},
			{t, "storm login latency p50 / p99 / max", fmt.Sprintf("%s / %s / %s", msStr(r.StormLatency.P50), msStr(r.StormLatency.P99), msStr(r.StormLatency.Max))},
			{t, "established msg latency p50 / p99 / p99.9 / max", fmt.Sprintf("%s / %s / %s / %s", msStr(r.Latency.P50), msStr(r.Latency.P99), msStr(r.Latency.P999), msStr(r.Latency.Max))},
			{t, "established msgs lost / delivered", fmt.Sprintf("%d / %d", r.Lost, r.Delivered)},
			{t, "server CPU", perOp(r.CPU, "msg")},
			errorsRow(t, r.Common),
		}
	}
	return nil
}

func phases(m map[string]measure.Summary) string {
	var parts []string
	for _, n := range load.PhaseNames() {
		parts = append(parts, msStr(m[n].P50))
	}
	return strings.Join(parts, " / ")
}

func label(c load.Common, def string) string {
	if c.Label != "" {
		return c.Label
	}
	return def
}

func tlsName(on bool) string {
	if on {
		return "TLS"
	}
	return "plaintext"
}

func errorsRow(t string, c load.Common) Row {
	if c.Errors == 0 {
		return Row{t, "errors", "0"}
	}
	return Row{t, "errors", fmt.Sprintf("%d, first: %s", c.Errors, c.FirstError)}
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func msStr(ms float64) string {
	switch {
	case ms < 1:
		return fmt.Sprintf("%.3fms", ms)
	case ms < 100:
		return fmt.Sprintf("%.2fms", ms)
	}
	return fmt.Sprintf("%.0fms", ms)
}

func perOp(c measure.CPUReport, op string) string {
	s := ""
	if c.ServerCores > 0 || c.ServerUsPerOp > 0 {
		s = fmt.Sprintf("server %.1fµs + plugins %.1fµs (%.0f%% + %.0f%% of a core); ",
			c.ServerUsPerOp, c.PluginUsPerOp, 100*c.ServerCores, 100*c.PluginCores)
	}
	s += fmt.Sprintf("tool %.1fµs (%.0f%% of %d CPU)", c.ToolUsPerOp, 100*c.ToolCores, c.ToolCPUs)
	if c.ToolBound {
		s += " TOOL-BOUND"
	}
	if c.Disturbed() != "" {
		s += fmt.Sprintf("; DISTURBED: other load %.2f cores", c.OtherCores+c.StealCores)
	}
	return s
}

// Notes lists a result's notes, prefixed with its test name.
func Notes(res Result) []string {
	c := common(res)
	if c == nil {
		return nil
	}
	rows := Rows(res)
	name := c.Mode
	if len(rows) > 0 {
		name = rows[0].Test
	}
	var out []string
	for _, n := range c.Notes {
		out = append(out, name+": "+n)
	}
	return out
}

func common(res Result) *load.Common {
	switch r := res.(type) {
	case *load.RegisterResult:
		return &r.Common
	case *load.IdleResult:
		return &r.Common
	case *load.LoginResult:
		return &r.Common
	case *load.MsgResult:
		return &r.Common
	case *load.StormResult:
		return &r.Common
	case *load.FanResult:
		return &r.Common
	}
	return nil
}

// Table writes rows as an aligned text table with the given headers.
func Table(w io.Writer, headers []string, rows [][]string) {
	width := make([]int, len(headers))
	for i, h := range headers {
		width[i] = len([]rune(h))
	}
	for _, r := range rows {
		for i, c := range r {
			width[i] = max(width[i], len([]rune(c)))
		}
	}
	line := func(cells []string) {
		var sb strings.Builder
		for i, c := range cells {
			if i > 0 {
				sb.WriteString("  ")
			}
			sb.WriteString(c)
			if i < len(cells)-1 {
				sb.WriteString(strings.Repeat(" ", width[i]-len([]rune(c))))
			}
		}
		fmt.Fprintln(w, strings.TrimRight(sb.String(), " "))
	}
	line(headers)
	sep := make([]string, len(headers))
	for i := range sep {
		sep[i] = strings.Repeat("-", width[i])
	}
	line(sep)
	for _, r := range rows {
		line(r)
	}
}

// Print writes the table of one or more results.
func Print(w io.Writer, results ...Result) {
	var rows [][]string
	var notes []string
	for _, res := range results {
		for _, r := range Rows(res) {
			rows = append(rows, []string{r.Test, r.Metric, r.Value})
		}
		notes = append(notes, Notes(res)...)
	}
	Table(w, []string{"test", "metric", "value"}, rows)
	for _, n := range notes {
		fmt.Fprintln(w, "note: "+n)
	}
}

// WriteJSON writes res to file as indented JSON.
func WriteJSON(file string, res Result) error {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(file, append(b, '\n'), 0o644)
}

// ReadJSON reads a result written by WriteJSON.
func ReadJSON(file string) (Result, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var probe struct {
		Mode string `json:"mode"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	var res Result
	switch probe.Mode {
	case "register":
		res = &load.RegisterResult{}
	case "idle":
		res = &load.IdleResult{}
	case "login":
		res = &load.LoginResult{}
	case "msg":
		res = &load.MsgResult{}
	case "storm":
		res = &load.StormResult{}
	case "muc", "pep":
		res = &load.FanResult{}
	default:
		return nil, fmt.Errorf("%s: not a koi-bench result (mode %q)", file, probe.Mode)
	}
	if err := json.Unmarshal(b, res); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return res, nil
}

// WriteJSONValue writes any value to file as indented JSON.
func WriteJSONValue(file string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(file, append(b, '\n'), 0o644)
}

func phaseHeader() string {
	n := load.PhaseNames()
	return strings.Join(n[:], " / ")
}
