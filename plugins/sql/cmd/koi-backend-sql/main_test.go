package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

func TestMigrateCmd(t *testing.T) {
	dsn := filepath.Join(t.TempDir(), "koi.db")
	cfg := `{"driver":"sqlite","dsn":"` + dsn + `"}`
	run := func(stdin string, args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := migrateCmd(args, strings.NewReader(stdin), &out, &errOut)
		return code, out.String(), errOut.String()
	}

	code, out, errOut := run(cfg)
	if code != 0 || !strings.Contains(out, "migrated from 0") || !strings.Contains(out, "(sqlite)") {
		t.Errorf("first migrate from stdin: %d, %q, %q", code, out, errOut)
	}
	code, out, errOut = run("", "-config-json", cfg)
	if code != 0 || !strings.Contains(out, "up to date") {
		t.Errorf("second migrate from -config-json: %d, %q, %q", code, out, errOut)
	}

	for _, tc := range []struct {
		name, stdin string
		args        []string
		code        int
		want        string
	}{
		{"bad driver", `{"driver":"oracle","dsn":"x"}`, nil, 1, "driver"},
		{"unknown key", `{"driver":"sqlite","dsn":"x","dns":"y"}`, nil, 1, "dns"},
		{"no config", "", nil, 1, "no config"},
		{"extra argument", cfg, []string{"now"}, 2, "unexpected argument"},
		{"bad flag", cfg, []string{"-nope"}, 2, "nope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := run(tc.stdin, tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stderr %q; want %d mentioning %q", code, errOut, tc.code, tc.want)
			}
		})
	}
}
