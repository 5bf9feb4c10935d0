package report

import (
	"crypto/pbkdf2"
	"crypto/sha256"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/koi-im/koi/tools/koi-bench/internal/client"
	"github.com/koi-im/koi/tools/koi-bench/internal/load"
	"github.com/koi-im/koi/tools/koi-bench/internal/measure"
)

// Verdicts of a check.
const (
	Pass = "pass"
	Miss = "MISS"
	Info = "info"
)

// Line is one line of the summary.
type Line struct {
	Check    string `json:"check"`
	Measured string `json:"measured"`
	Target   string `json:"target"`
	Verdict  string `json:"verdict"`
}

// Budget checks results against koi's performance budget (issue #6):
// results are matched by what they measured, not by name, so any set of
// runs can be summarised. It returns one line per matching check and per
// cost worth showing.
func Budget(results []Result) []Line {
	var lines []Line
	iterations := 0
	var scramTLS *load.LoginResult
	for _, res := range results {
		if r, ok := res.(*load.LoginResult); ok {
			if r.Iterations > 0 {
				iterations = r.Iterations
			}
			if r.TLS && strings.HasPrefix(r.Mechanism, "SCRAM") {
				scramTLS = r
			}
		}
	}
	for _, res := range results {
		switch r := res.(type) {
		case *load.RegisterResult:
			lines = append(lines, Line{
				Check:    "users created (" + r.Via + ")",
				Measured: fmt.Sprintf("%d new + %d existing in %.1fs (%.0f/s)", r.Created, r.Existed, r.Seconds, r.PerSecond),
				Verdict:  verdict(r.Errors == 0, false),
			})
		case *load.MsgResult:
			if r.Nodes > 0 {
				lines = append(lines, clusterLines(r)...)
				break
			}
			if r.Archive != "" {
				lines = append(lines, archiveLines(r, results)...)
				break
			}
			lines = append(lines, msgLines(r, results)...)
		case *load.IdleResult:
			// Issue #17: 12 KiB plaintext, 24 KiB over TLS (16 and 32
			// before idle sessions parked without a goroutine).
			limit := 12.0
			if r.TLS {
				limit = 24
			}
			name := fmt.Sprintf("idle memory per session, %s, %d sessions", tlsName(r.TLS), r.Opened)
			if r.Detached {
				// XEP-0198: a session waiting for a resumption must cost
				// no more than an idle one; it has no connection to ping.
				lines = append(lines, Line{
					Check:    fmt.Sprintf("detached session memory (XEP-0198), %d sessions", r.Opened),
					Measured: fmt.Sprintf("%.1f KiB RSS (%.1f KiB heap, %.1f KiB stacks)", r.RSSPerSessionKiB, r.HeapPerSessionKiB, r.StackPerSessionKiB),
					Target:   fmt.Sprintf("≤ %.0f KiB (the idle budget)", limit),
					Verdict:  verdict(r.RSSPerSessionKiB <= limit, r.Opened < r.Sessions*99/100),
				})
				continue
			}
			lines = append(lines, Line{
				Check:    name,
				Measured: fmt.Sprintf("%.1f KiB RSS (%.1f KiB heap, %.1f KiB stacks); plugin %.2f KiB", r.RSSPerSessionKiB, r.HeapPerSessionKiB, r.StackPerSessionKiB, r.PluginPerSessionKiB),
				Target:   fmt.Sprintf("≤ %.0f KiB at 15000", limit),
				// The memory figure stands if nearly all sessions opened;
				// failures get their own line below.
				Verdict: verdict(r.RSSPerSessionKiB <= limit, r.Opened < 14850),
			})
			if r.Alive != r.Opened || r.Opened != r.Sessions {
				lines = append(lines, Line{Check: name + ": sessions alive", Measured: fmt.Sprintf("%d of %d asked, %d alive at the end", r.Opened, r.Sessions, r.Alive), Target: "all", Verdict: Miss})
			}
		case *load.LoginResult:
			lines = append(lines, loginLines(r, iterations, scramTLS)...)
		case *load.StormResult:
			lines = append(lines, stormLines(r)...)
		case *load.FanResult:
			lines = append(lines, fanLine(r))
		}
	}
	return lines
}

func msgLines(r *load.MsgResult, results []Result) []Line {
	var lines []Line
	cost := fmt.Sprintf("server %.1fµs, tool %.1fµs per msg", r.CPU.ServerUsPerOp, r.CPU.ToolUsPerOp)
	if r.CPU.ToolBound {
		cost += " (TOOL-BOUND: a lower bound)"
	}
	over := ""
	if r.TLS {
		over = ", TLS"
	}
	faults := Line{
		Check:    fmt.Sprintf("messages %d pairs%s: lost / duplicated", r.Pairs, over),
		Measured: fmt.Sprintf("%d / %d (out of order %d, bounced %d) of %d", r.Lost, r.Duplicated, r.OutOfOrder, r.Bounced, r.Sent),
		Target:   "0 / 0",
		Verdict:  verdict(r.Lost == 0 && r.Duplicated == 0 && r.Sent > 0, false),
	}
	// A TLS run is shown beside the same run in plaintext (issue #17:
	// "side by side"); it has no budget of its own.
	var plain *load.MsgResult
	if r.TLS {
		for _, res := range results {
			if m, ok := res.(*load.MsgResult); ok && !m.TLS && m.Archive == "" && m.Rate == r.Rate && m.Pairs == r.Pairs {
				plain = m
			}
		}
	}
	if r.Rate == 0 {
		l := Line{
			Check:    fmt.Sprintf("messages %d pairs, unbounded%s: throughput", r.Pairs, over),
			Measured: fmt.Sprintf("%.0f msgs/s (%s)%s", r.PerSecond, cost, disturbed(r.CPU)),
			Target:   "≥ 90000/s at 500 pairs",
			Verdict:  verdict(r.PerSecond >= 90000 && r.Pairs >= 500, r.Pairs < 500),
		}
		if r.TLS {
			l.Target, l.Verdict = "(no budget)", Info
			if plain != nil && plain.PerSecond > 0 {
				l.Target = fmt.Sprintf("(no budget; plaintext %.0f/s, %.1fµs per msg)", plain.PerSecond, plain.CPU.ServerUsPerOp)
				l.Measured = fmt.Sprintf("%.0f msgs/s = %.0f%% of plaintext (%s)%s", r.PerSecond, 100*r.PerSecond/plain.PerSecond, cost, disturbed(r.CPU))
			}
		}
		return append(lines, l, faults)
	}
	l := Line{
		Check:    fmt.Sprintf("messages %d pairs at %.0f/s%s: p99 latency", r.Pairs, r.Rate, over),
		Measured: fmt.Sprintf("p99 %s (p50 %s, p99.9 %s, max %s; %.0f msgs/s)%s", msStr(r.Latency.P99), msStr(r.Latency.P50), msStr(r.Latency.P999), msStr(r.Latency.Max), r.PerSecond, disturbed(r.CPU)),
		Target:   "≤ 0.3ms at 5000/s",
		Verdict:  verdict(r.Latency.P99 <= 0.3 && r.PerSecond >= 0.95*r.Rate && r.Rate >= 5000, r.Rate < 5000),
	}
	if r.TLS {
		l.Target, l.Verdict = "(no budget)", Info
		if plain != nil {
			l.Target = fmt.Sprintf("(no budget; plaintext p99 %s)", msStr(plain.Latency.P99))
		}
	}
	return append(lines, l, faults)
}

// clusterLines reports a run over a cluster's nodes (issue #16): no
// budget yet, but nothing may be lost, and the cross-node hop's cost is
// the difference between the pairs across nodes and those on one.
func clusterLines(r *load.MsgResult) []Line {
	name := fmt.Sprintf("cluster %d node", r.Nodes)
	if r.Nodes > 1 {
		name += fmt.Sprintf("s, %.0f%% of %d pairs across", 100*r.Cross, r.Pairs)
	} else {
		name += fmt.Sprintf(", %d pairs", r.Pairs)
	}
	rate := "unbounded"
	if r.Rate > 0 {
		rate = fmt.Sprintf("at %.0f/s", r.Rate)
	}
	cost := ""
	if r.CPU.ServerUsPerOp > 0 { // the nodes are several processes: -pid names one at most
		cost = fmt.Sprintf("; server %.1fµs per msg", r.CPU.ServerUsPerOp)
	}
	lines := []Line{{
		Check: fmt.Sprintf("%s, %s: msgs/s, p99", name, rate),
		Measured: fmt.Sprintf("%.0f msgs/s, p99 %s (p50 %s%s)%s",
			r.PerSecond, msStr(r.Latency.P99), msStr(r.Latency.P50), cost, disturbed(r.CPU)),
		Target:  "(no budget)",
		Verdict: Info,
	}}
	if s, c := r.SameNode, r.CrossNode; s != nil && c != nil {
		lines = append(lines, Line{
			Check: fmt.Sprintf("%s, %s: cross-node hop", name, rate),
			Measured: fmt.Sprintf("%s p50, %s p99 (same node %s / %s, across %s / %s)",
				signedMs(c.P50-s.P50), signedMs(c.P99-s.P99), msStr(s.P50), msStr(s.P99), msStr(c.P50), msStr(c.P99)),
			Target:  "(no budget)",
			Verdict: Info,
		})
	}
	return append(lines, Line{
		Check:    name + ": lost / duplicated",
		Measured: fmt.Sprintf("%d / %d (out of order %d, bounced %d) of %d", r.Lost, r.Duplicated, r.OutOfOrder, r.Bounced, r.Sent),
		Target:   "0 / 0",
		Verdict:  verdict(r.Lost == 0 && r.Duplicated == 0 && r.Sent > 0, false),
	})
}

// signedMs is msStr with a sign: a difference of latencies.
func signedMs(ms float64) string {
	if ms < 0 {
		return "-" + msStr(-ms)
	}
	return "+" + msStr(ms)
}

// archiveReference is the archive every other is judged against: the
// sql plugin, the one koi ships for every feature.
const archiveReference = "sql"

// archiveLines judges an unbounded run with the archive on. There is no
// absolute figure for it (see README, Message archive: performance):
// it is shown as a share of the same run with the archive off, and any
// archive but the reference must keep up with the reference, within 10 %
// (the issue: "stays within the budget of the sql plugin").
func archiveLines(r *load.MsgResult, results []Result) []Line {
	var off, ref *load.MsgResult
	for _, res := range results {
		m, ok := res.(*load.MsgResult)
		if !ok || m.Rate != 0 || m.Pairs != r.Pairs || m.TLS != r.TLS || m == r {
			continue
		}
		switch m.Archive {
		case "":
			off = m
		case archiveReference:
			ref = m
		}
	}
	cost := fmt.Sprintf("server %.1fµs + plugins %.1fµs per msg", r.CPU.ServerUsPerOp, r.CPU.PluginUsPerOp)
	measured := fmt.Sprintf("%.0f msgs/s", r.PerSecond)
	if off != nil && off.PerSecond > 0 {
		measured += fmt.Sprintf(" = %.0f%% of archive off", 100*r.PerSecond/off.PerSecond)
	}
	measured += " (" + cost + ")" + disturbed(r.CPU)
	l := Line{Check: fmt.Sprintf("messages %d pairs, unbounded, archive %s: throughput", r.Pairs, r.Archive), Measured: measured, Verdict: Info}
	switch {
	case r.Rate != 0:
		l.Check = fmt.Sprintf("messages %d pairs at %.0f/s, archive %s: throughput", r.Pairs, r.Rate, r.Archive)
		l.Target = "(no budget)"
	case r.Archive == archiveReference && off == nil:
		l.Target = "≥ 80% of archive off (not measured)"
	case r.Archive == archiveReference:
		// Issue #17: the reference archive keeps 80% of the rate.
		l.Target = fmt.Sprintf("≥ 80%% of archive off: %.0f/s", 0.8*off.PerSecond)
		l.Verdict = verdict(r.PerSecond >= 0.8*off.PerSecond, false)
	case ref == nil:
		l.Target = "≥ 90% of the " + archiveReference + " archive (not measured)"
	default:
		l.Target = fmt.Sprintf("≥ 90%% of the %s archive: %.0f/s", archiveReference, 0.9*ref.PerSecond)
		l.Verdict = verdict(r.PerSecond >= 0.9*ref.PerSecond, false)
	}
	faults := Line{
		Check:    fmt.Sprintf("messages %d pairs, archive %s: lost / duplicated", r.Pairs, r.Archive),
		Measured: fmt.Sprintf("%d / %d (out of order %d, bounced %d) of %d", r.Lost, r.Duplicated, r.OutOfOrder, r.Bounced, r.Sent),
		Target:   "0 / 0 (bounced: refused with an error, when the archive cannot keep up)",
		// A message the archive could not take is bounced to its
		// sender with <resource-constraint/>, by design: a bounce is
		// not a loss, a silent disappearance is.
		Verdict: verdict(r.Lost <= r.Bounced && r.Duplicated == 0 && r.Sent > 0, false),
	}
	return []Line{l, faults}
}

func loginLines(r *load.LoginResult, iterations int, tlsLogin *load.LoginResult) []Line {
	name := fmt.Sprintf("logins %s %s c=%d", r.Mechanism, tlsName(r.TLS), r.Concurrency)
	cost := fmt.Sprintf("server %.0fµs + plugin %.0fµs CPU per login; p99 %s", r.CPU.ServerUsPerOp, r.CPU.PluginUsPerOp, msStr(r.Latency.P99)) + disturbed(r.CPU)
	if r.CPU.ToolBound {
		cost += " (TOOL-BOUND)"
	}
	switch {
	case r.Mechanism == "SCRAM-SHA-1" && !r.TLS:
		return []Line{{
			Check:    name,
			Measured: fmt.Sprintf("%.0f/s (%s)", r.PerSecond, cost),
			Target:   "≥ 4000/s at c=50",
			Verdict:  verdict(r.PerSecond >= 4000 && r.Concurrency >= 50, r.Concurrency < 50),
		}}
	case r.Mechanism == "PLAIN":
		if iterations == 0 {
			iterations = 4096
		}
		hash := pbkdf2Cost(iterations)
		l := Line{Check: name, Verdict: Info}
		if tlsLogin != nil && tlsLogin.TLS == r.TLS && tlsLogin.CPU.ServerUsPerOp > 0 {
			// The same login without the hashing: a SCRAM login over the
			// same transport. One core does both halves.
			rest := tlsLogin.CPU.ServerUsPerOp + tlsLogin.CPU.PluginUsPerOp
			ceiling := 1e6 / (float64(hash.Microseconds()) + rest)
			l.Measured = fmt.Sprintf("%.0f/s = %.0f%% of the ceiling (%s)", r.PerSecond, 100*r.PerSecond/ceiling, cost)
			l.Target = fmt.Sprintf("ceiling %.0f/s = one core / (PBKDF2-SHA-256 × %d %.0fµs + rest of a %s login %.0fµs)",
				ceiling, iterations, float64(hash)/1e3, tlsLogin.Mechanism, rest)
			l.Verdict = verdict(r.PerSecond >= 0.9*ceiling, false)
			return []Line{l}
		}
		ceiling := float64(time.Second) / float64(hash)
		l.Measured = fmt.Sprintf("%.0f/s = %.0f%% of the PBKDF2 ceiling (%s)", r.PerSecond, 100*r.PerSecond/ceiling, cost)
		l.Target = fmt.Sprintf("ceiling %.0f/s: one core / PBKDF2-SHA-256 × %d = %.0fµs", ceiling, iterations, float64(hash)/1e3)
		return []Line{l}
	}
	if r.Mechanism == client.MechFAST && tlsLogin != nil && tlsLogin.TLS == r.TLS && tlsLogin.PerSecond > 0 {
		// What FAST is for: a reconnect without PBKDF2 on either side
		// and without the stream restart and bind round trips.
		return []Line{{
			Check:    name + " (SASL2 + Bind 2, token)",
			Measured: fmt.Sprintf("%.0f/s = %.1f× %s over the same TLS (%.0f/s) (%s)", r.PerSecond, r.PerSecond/tlsLogin.PerSecond, tlsLogin.Mechanism, tlsLogin.PerSecond, cost),
			Target:   "(no budget)",
			Verdict:  Info,
		}}
	}
	return []Line{{Check: name, Measured: fmt.Sprintf("%.0f/s (%s)", r.PerSecond, cost), Target: "(no budget)", Verdict: Info}}
}

// stormLines check issue #12's storm budget: established sessions keep a
// message p99 of 10 ms while thousands of clients reconnect.
func stormLines(r *load.StormResult) []Line {
	name := fmt.Sprintf("storm of %d logins (c=%d): established p99", r.StormLogins+r.StormFailed, r.StormConcurrency)
	return []Line{{
		Check: name,
		Measured: fmt.Sprintf("p99 %.2fms (p50 %.3fms, p99.9 %.2fms, max %.2fms); %.0f logins/s, %d failed; %d msgs lost%s",
			r.Latency.P99, r.Latency.P50, r.Latency.P999, r.Latency.Max, r.StormPerSecond, r.StormFailed, r.Lost, disturbed(r.CPU)),
		Target:  "≤ 10ms, none lost",
		Verdict: verdict(r.Latency.P99 <= 10 && r.Lost == 0, r.StormLogins == 0),
	}}
}

// fanLine reports a fan-out run (issues #13, #14 give no budget yet).
func fanLine(r *load.FanResult) Line {
	what := fmt.Sprintf("room of %d occupants, %d sending", r.Receivers, r.Senders)
	unit := "msgs"
	if r.Mode == "pep" {
		what, unit = fmt.Sprintf("PEP publish to %d contacts (caps +notify)", r.Receivers), "notifications"
	}
	if r.Rate > 0 {
		what += fmt.Sprintf(" at %.0f/s", r.Rate)
	}
	return Line{
		Check: what + ": deliveries",
		Measured: fmt.Sprintf("%.0f %s/s (%.0f sent/s), p99 %.2fms (p50 %.3fms, max %.2fms); %d lost, %d duplicated%s",
			r.PerSecond, unit, r.SentPerSecond, r.Latency.P99, r.Latency.P50, r.Latency.Max, r.Lost, r.Duplicated, disturbed(r.CPU)),
		Target:  "— (reported)",
		Verdict: Info,
	}
}

// disturbed marks a measurement taken while other processes used the
// test's CPUs.
func disturbed(c measure.CPUReport) string {
	if c.Disturbed() == "" {
		return ""
	}
	return fmt.Sprintf(" [DISTURBED: %.2f cores of other load]", c.OtherCores+c.StealCores)
}

func verdict(ok, notComparable bool) string {
	switch {
	case notComparable:
		return Info
	case ok:
		return Pass
	}
	return Miss
}

// pbkdf2Cost is how long one PBKDF2-HMAC-SHA-256 takes on this machine:
// the hashing koi's sql plugin does to check a PLAIN password.
func pbkdf2Cost(iterations int) time.Duration {
	const runs = 20
	best := time.Duration(1<<63 - 1)
	for range runs {
		t := time.Now()
		pbkdf2.Key(sha256.New, "koi-bench password", []byte("0123456789abcdef"), iterations, 32)
		best = min(best, time.Since(t))
	}
	return best
}

// PrintBudget writes the summary table.
func PrintBudget(w io.Writer, lines []Line) {
	rows := make([][]string, len(lines))
	for i, l := range lines {
		rows[i] = []string{l.Check, l.Measured, l.Target, l.Verdict}
	}
	Table(w, []string{"check", "measured", "target", "verdict"}, rows)
}
