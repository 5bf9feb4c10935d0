package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestUsage(t *testing.T) {
	tests := []struct {
		args   []string
		code   int
		stdout string // contained
		stderr string
	}{
		{args: []string{"-h"}, code: 0, stdout: "check-config  report every problem"},
		{args: []string{"--help"}, code: 0, stdout: "run the server"},
		{args: []string{"check-config", "-h"}, code: 0, stdout: "-config string"},
		{args: []string{"-nope"}, code: 2, stderr: "Usage: koi"},
		{args: []string{"serve"}, code: 2, stderr: `unknown command "serve"`},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		code := run(tt.args, &stdout, &stderr)
		if code != tt.code || !strings.Contains(stdout.String(), tt.stdout) || !strings.Contains(stderr.String(), tt.stderr) {
			t.Errorf("koi %v: exit %d, stdout:\n%s\nstderr:\n%s\nwant exit %d, stdout with %q, stderr with %q",
				tt.args, code, &stdout, &stderr, tt.code, tt.stdout, tt.stderr)
		}
	}
}
