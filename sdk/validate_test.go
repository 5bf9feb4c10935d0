package sdk

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// exampleValidator accepts {"db": "…"} and warns about db "x".
func exampleValidator(cfg Config) (Validation, error) {
	var c struct {
		DB string `json:"db"`
	}
	if err := cfg.Decode(&c); err != nil {
		return Validation{}, err
	}
	errs := &ConfigErrors{Prefix: "example config"}
	if c.DB == "" {
		errs.Add("db", "missing")
	}
	if err := errs.Err(); err != nil {
		return Validation{}, err
	}
	v := Validation{Capabilities: Capabilities{Auth: AuthCapabilities{Access: AccessRead}, Roster: AccessReadWrite}}
	if c.DB == "x" {
		v.Warnings = append(v.Warnings, ConfigProblem{Key: "db", Msg: "x is a poor name"})
	}
	return v, nil
}

func TestRunValidate(t *testing.T) {
	tests := []struct {
		name       string
		v          Validator
		args       []string
		stdin      string
		code       int
		stdout     []string // lines, in order
		stderr     []string
		wantReport *ValidationReport
	}{
		{name: "good", v: exampleValidator, stdin: `{"db":"a"}`, code: 0,
			stdout: []string{"auth: read-only", "roster: read-write"}},
		{name: "warning", v: exampleValidator, stdin: `{"db":"x"}`, code: 0,
			stdout: []string{"auth: read-only", "roster: read-write", "warning: db: x is a poor name"}},
		{name: "unknown key", v: exampleValidator, stdin: `{"dbb":"a"}`, code: 1, stderr: []string{"dbb: unknown key"}},
		{name: "missing key", v: exampleValidator, stdin: `{}`, code: 1, stderr: []string{"db: missing"}},
		{name: "plain error", v: func(Config) (Validation, error) { return Validation{}, errors.New("boom") }, code: 1, stderr: []string{"boom"}},
		{name: "no validator", code: ValidateUnsupported, stderr: []string{"this plugin has no validate command"}},
		{name: "bad flag", v: exampleValidator, args: []string{"-nope"}, code: 2},
		{name: "json good", v: exampleValidator, args: []string{"-json"}, stdin: `{"db":"x"}`, code: 0,
			wantReport: &ValidationReport{OK: true,
				Capabilities: Capabilities{Auth: AuthCapabilities{Access: AccessRead}, Roster: AccessReadWrite},
				Warnings:     []ConfigProblem{{Key: "db", Msg: "x is a poor name"}}}},
		{name: "json problems", v: exampleValidator, args: []string{"-json"}, stdin: `{"dbb":1}`, code: 1,
			wantReport: &ValidationReport{Problems: []ConfigProblem{{Key: "dbb", Msg: "unknown key"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := runValidate(tt.v, tt.args, strings.NewReader(tt.stdin), &stdout, &stderr)
			if code != tt.code {
				t.Errorf("exit code %d, want %d (stderr %q)", code, tt.code, stderr.String())
			}
			if tt.wantReport != nil {
				var got ValidationReport
				if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
					t.Fatalf("report %q: %v", stdout.String(), err)
				}
				gj, _ := json.Marshal(got)
				wj, _ := json.Marshal(tt.wantReport)
				if !bytes.Equal(gj, wj) {
					t.Errorf("report %s, want %s", gj, wj)
				}
				return
			}
			if got := lines(stdout.String()); tt.stdout != nil && strings.Join(got, "\n") != strings.Join(tt.stdout, "\n") {
				t.Errorf("stdout %q, want %q", got, tt.stdout)
			}
			if got := lines(stderr.String()); tt.stderr != nil && strings.Join(got, "\n") != strings.Join(tt.stderr, "\n") {
				t.Errorf("stderr %q, want %q", got, tt.stderr)
			}
		})
	}
}

func lines(s string) []string {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func TestConfigErrorsMessage(t *testing.T) {
	e := &ConfigErrors{Prefix: "sql backend config"}
	if e.Err() != nil {
		t.Fatal("Err of no problems is not nil")
	}
	e.Add("dsn", "missing")
	e.Add("", "whole block %s", "wrong")
	err := e.Err()
	if want := "invalid request: sql backend config: dsn: missing; whole block wrong"; err.Error() != want {
		t.Errorf("Error() = %q, want %q", err.Error(), want)
	}
	if !errors.Is(err, ErrInvalid) {
		t.Error("ConfigErrors does not wrap ErrInvalid")
	}
}
