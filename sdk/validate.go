package sdk

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// ValidateCommand is the first argument that makes a plugin check a config
// block instead of serving: `COMMAND validate [-json]` with the block as
// JSON on standard input. `koi check-config` runs it for every plugin block,
// so that a config koi would refuse at start is refused before, without
// connecting to anything.
const ValidateCommand = "validate"

// Validator checks a plugin's config block without connecting to anything
// and returns what a backend built from it would declare. Problems are
// returned as the error, best a *ConfigErrors so that each names its key.
type Validator func(cfg Config) (Validation, error)

// Validation is what a Validator found in a config that a backend can be
// built from.
type Validation struct {
	Capabilities Capabilities
	// Warnings are settings that work but are likely mistakes.
	Warnings []ConfigProblem
}

// ConfigProblem is one problem in a plugin's config block.
type ConfigProblem struct {
	// Key is the key inside the config block ("dsn", "vcard.fn"); empty
	// for a problem with the block as a whole.
	Key string `json:"key,omitempty"`
	Msg string `json:"msg"`
}

func (p ConfigProblem) String() string {
	if p.Key == "" {
		return p.Msg
	}
	return p.Key + ": " + p.Msg
}

// ConfigErrors is every problem found in a plugin's config block. It wraps
// ErrInvalid, so a Factory can return it as it is.
type ConfigErrors struct {
	// Prefix names the config in the one-line message, like "sql backend config".
	Prefix   string
	Problems []ConfigProblem
}

// Error is the one-line form: "invalid request: PREFIX: key: msg; key: msg".
func (e *ConfigErrors) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.String()
	}
	return ErrInvalid.Error() + ": " + e.Prefix + ": " + strings.Join(parts, "; ")
}

// Unwrap makes errors.Is(err, ErrInvalid) hold.
func (e *ConfigErrors) Unwrap() error { return ErrInvalid }

// Add records a problem with key.
func (e *ConfigErrors) Add(key, format string, a ...any) {
	e.Problems = append(e.Problems, ConfigProblem{Key: key, Msg: fmt.Sprintf(format, a...)})
}

// Err returns e when it holds a problem, and nil otherwise.
func (e *ConfigErrors) Err() error {
	if len(e.Problems) == 0 {
		return nil
	}
	return e
}

// ValidationReport is what `COMMAND validate -json` prints on standard
// output, whether the config is good or not.
type ValidationReport struct {
	// OK is false when Problems is not empty.
	OK           bool            `json:"ok"`
	Capabilities Capabilities    `json:"capabilities"`
	Problems     []ConfigProblem `json:"problems,omitempty"`
	Warnings     []ConfigProblem `json:"warnings,omitempty"`
}

// Exit codes of the validate command.
const (
	validateOK       = 0
	validateProblems = 1
	validateUsage    = 2
	// ValidateUnsupported is the exit code of a plugin built without a
	// Validator: it cannot say what a config would do without starting.
	ValidateUnsupported = 3
)

// maxConfigBytes bounds the config read from standard input.
const maxConfigBytes = 1 << 20

// runValidate is the validate command. Without -json it prints the
// capabilities and warnings, one a line, on stdout, and the problems, one a
// line, on stderr; with -json the report goes to stdout.
func runValidate(v Validator, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print a JSON report on standard output")
	if err := fs.Parse(args); err != nil {
		return validateUsage
	}
	if v == nil {
		fmt.Fprintln(stderr, "this plugin has no validate command")
		return ValidateUnsupported
	}
	raw, err := io.ReadAll(io.LimitReader(stdin, maxConfigBytes+1))
	switch {
	case err != nil:
		fmt.Fprintf(stderr, "reading the config from standard input: %v\n", err)
		return validateUsage
	case len(raw) > maxConfigBytes:
		fmt.Fprintf(stderr, "the config on standard input is over %d bytes\n", maxConfigBytes)
		return validateUsage
	}
	rep := Validate(v, Config{Raw: raw})
	if *asJSON {
		if err := json.NewEncoder(stdout).Encode(rep); err != nil {
			fmt.Fprintf(stderr, "writing the report: %v\n", err)
			return validateUsage
		}
	} else {
		for _, p := range rep.Problems {
			fmt.Fprintln(stderr, p)
		}
		if rep.OK {
			for _, line := range describeCapabilities(rep.Capabilities) {
				fmt.Fprintln(stdout, line)
			}
		}
		for _, w := range rep.Warnings {
			fmt.Fprintln(stdout, "warning: "+w.String())
		}
	}
	if !rep.OK {
		return validateProblems
	}
	return validateOK
}

// Validate runs v on cfg and reports the result, splitting a *ConfigErrors
// into its problems.
func Validate(v Validator, cfg Config) ValidationReport {
	val, err := v(cfg)
	if err == nil {
		return ValidationReport{OK: true, Capabilities: val.Capabilities, Warnings: val.Warnings}
	}
	rep := ValidationReport{Warnings: val.Warnings}
	var ce *ConfigErrors
	if errors.As(err, &ce) && len(ce.Problems) > 0 {
		rep.Problems = ce.Problems
	} else {
		rep.Problems = []ConfigProblem{{Msg: err.Error()}}
	}
	return rep
}

// describeCapabilities is one line per feature served: "roster: read-write".
func describeCapabilities(c Capabilities) []string {
	var lines []string
	add := func(name string, a Access, extra string) {
		if a.Readable() {
			lines = append(lines, name+": "+a.String()+extra)
		}
	}
	scram := ""
	if c.Auth.SCRAM {
		scram = ", SCRAM"
	}
	add("auth", c.Auth.Access, scram)
	batch := ""
	if c.RosterBatch {
		batch = ", batches"
	}
	add("roster", c.Roster, batch)
	add("offline", c.Offline, "")
	add("vcard", c.VCard, "")
	add("private", c.Private, "")
	fullText := ""
	if c.Archive.FullText {
		fullText = ", full-text search"
	}
	add("archive", c.Archive.Access, fullText)
	add("blocklist", c.Blocklist, "")
	add("tokens", c.Tokens, "")
	add("muc", c.MUC, "")
	add("pubsub", c.PubSub, "")
	if len(lines) == 0 {
		lines = append(lines, "serves nothing")
	}
	return lines
}
