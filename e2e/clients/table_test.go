package clients

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// The README section between these markers is the table of the last
// `go test ./e2e/clients -run TestClients -update`.
const (
	beginMarker = "<!-- clients:begin -->"
	endMarker   = "<!-- clients:end -->"
)

// renderTable is the matrix as a markdown table.
func renderTable(rows []*row) string {
	var b strings.Builder
	b.WriteString("| client | transport | TLS | mechanism (channel binding) | refused attempts per run | result |\n")
	b.WriteString("|---|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n",
			cell(r.client), r.transport, cell(tlsCell(r)), cell(mechCell(r)), refusedCell(r), cell(resultCell(r)))
	}
	return b.String()
}

// tlsCell is the setting and, when koi logged it, the version negotiated.
func tlsCell(r *row) string {
	seen := distinct(r, func(l runLog) string { return l.TLS })
	if seen == "" {
		return r.tls.String()
	}
	return r.tls.String() + ": " + seen
}

// mechCell is the SASL mechanism koi logged for the runs, "?" when koi
// did not say (runs that never authenticated show nothing).
func mechCell(r *row) string {
	if r.skip != "" {
		return ""
	}
	m := distinct(r, func(l runLog) string {
		if l.Mechanism == "" {
			return ""
		}
		if l.Binding != "" {
			return l.Mechanism + " (" + l.Binding + ")"
		}
		return l.Mechanism
	})
	if m == "" {
		return "?"
	}
	return m
}

func refusedCell(r *row) string {
	var n []string
	for _, run := range r.runs {
		n = append(n, fmt.Sprint(run.log.Refused))
	}
	return strings.Join(n, ", ")
}

func resultCell(r *row) string {
	if r.skip != "" {
		return r.skip
	}
	ok, bug := 0, 0
	for _, run := range r.runs {
		switch {
		case run.err == nil:
			ok++
		case errors.Is(run.err, errClientBug):
			bug++
		}
	}
	note := ""
	if bug > 0 {
		note = fmt.Sprintf(" (%d client bug)", bug)
	}
	if ok+bug == len(r.runs) && ok > 0 {
		return fmt.Sprintf("ok %d/%d%s", ok, len(r.runs), note)
	}
	return fmt.Sprintf("FAIL %d/%d ok%s", ok, len(r.runs), note)
}

// distinct joins the different non-empty values f gives for the runs.
func distinct(r *row, f func(runLog) string) string {
	var vals []string
	for _, run := range r.runs {
		v := f(run.log)
		if v == "" {
			continue
		}
		dup := false
		for _, w := range vals {
			dup = dup || w == v
		}
		if !dup {
			vals = append(vals, v)
		}
	}
	return strings.Join(vals, ", ")
}

// cell escapes what would break a table cell.
func cell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}

// updateReadme replaces the text between the markers in path with table.
func updateReadme(path, table string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	s := string(b)
	i, j := strings.Index(s, beginMarker), strings.Index(s, endMarker)
	if i < 0 || j < i {
		return fmt.Errorf("%s: no %s ... %s section", path, beginMarker, endMarker)
	}
	s = s[:i+len(beginMarker)] + "\n" + table + s[j:]
	return os.WriteFile(path, []byte(s), 0o644)
}
