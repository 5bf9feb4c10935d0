package extauth

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/koi-im/koi/sdk"
)

// executable writes a script that does nothing into dir.
func executable(t *testing.T, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParseConfig(t *testing.T) {
	prog := executable(t, t.TempDir(), "auth.sh")
	s, err := ParseConfig(sdk.Config{Raw: []byte(`{"program": "` + prog + `", "args": ["-v"]}`)})
	if err != nil {
		t.Fatal(err)
	}
	want := Settings{Program: prog, Args: []string{"-v"}, Instances: 1, Timeout: 3 * time.Second}
	if s.Program != want.Program || len(s.Args) != 1 || s.Instances != want.Instances || s.Timeout != want.Timeout || s.Writable {
		t.Errorf("ParseConfig = %+v, want %+v", s, want)
	}

	// Environment overrides arrive as strings.
	s, err = ParseConfig(sdk.Config{Raw: []byte(`{"program": "` + prog + `", "instances": "4", "timeout": "750ms", "writable": "true"}`)})
	if err != nil {
		t.Fatal(err)
	}
	if s.Instances != 4 || s.Timeout != 750*time.Millisecond || !s.Writable {
		t.Errorf("ParseConfig with strings = %+v", s)
	}
}

func TestParseConfigErrors(t *testing.T) {
	dir := t.TempDir()
	prog := executable(t, dir, "auth.sh")
	notExec := filepath.Join(dir, "plain.txt")
	if err := os.WriteFile(notExec, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ config, want string }{
		{`{}`, "program: missing"},
		{`{"program": "` + filepath.Join(dir, "absent") + `"}`, "program:"},
		{`{"program": "` + notExec + `"}`, "program:"},
		{`{"program": "no-such-extauth-program-in-path"}`, "not found in PATH"},
		{`{"program": "` + prog + `", "instances": 65}`, "instances: 65 is outside 1..64"},
		{`{"program": "` + prog + `", "instances": -1}`, "instances"},
		{`{"program": "` + prog + `", "instances": "many"}`, `instances: want int`},
		{`{"program": "` + prog + `", "timeout": "soon"}`, "timeout"},
		{`{"program": "` + prog + `", "timeout": "-1s"}`, "timeout: must be positive"},
		{`{"program": "` + prog + `", "writable": "yes please"}`, `writable: want bool`},
		{`{"program": "` + prog + `", "progam": "x"}`, `progam: unknown key`},
	} {
		_, err := ParseConfig(sdk.Config{Raw: []byte(c.config)})
		if !errors.Is(err, sdk.ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseConfig(%s) = %v, want sdk.ErrInvalid mentioning %q", c.config, err, c.want)
		}
	}
}

// A relative program is relative to the plugin's working directory, which
// is koi's; a bare name is looked up in PATH.
func TestResolveProgram(t *testing.T) {
	dir := t.TempDir()
	executable(t, dir, "auth.sh")
	t.Chdir(dir)
	got, err := resolveProgram("./auth.sh")
	if err != nil || got != filepath.Join(dir, "auth.sh") {
		t.Errorf("resolveProgram(./auth.sh) = %q, %v; want %q", got, err, filepath.Join(dir, "auth.sh"))
	}
	if _, err := resolveProgram("auth.sh"); err == nil {
		t.Error("resolveProgram(auth.sh) found a program outside PATH")
	}
	t.Setenv("PATH", dir)
	got, err = resolveProgram("auth.sh")
	if err != nil || got != filepath.Join(dir, "auth.sh") {
		t.Errorf("resolveProgram(auth.sh) with PATH=%s = %q, %v", dir, got, err)
	}
}
