package pluginhost

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/koi-im/koi/sdk"
)

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	notExec := filepath.Join(dir, "not-executable")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A plugin built before the validate command: go-plugin's refusal.
	old := filepath.Join(dir, "old-plugin")
	script := "#!/bin/sh\necho 'This binary is a plugin. These are not meant to be executed directly.' >&2\nexit 1\n"
	if err := os.WriteFile(old, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	sum := fileSHA256(pluginPath)
	tests := []struct {
		name    string
		spec    Spec
		caps    sdk.Capabilities
		problem string // a problem in the report
		specKey string // the field of a SpecError
		err     error
	}{
		{name: "good", spec: Spec{Name: "p", Command: pluginPath, SHA256: sum},
			caps: sdk.Capabilities{Auth: sdk.AuthCapabilities{Access: sdk.AccessReadWrite, SCRAM: true},
				Roster: sdk.AccessReadWrite, Offline: sdk.AccessReadWrite, VCard: sdk.AccessReadWrite, Private: sdk.AccessReadWrite,
				Blocklist: sdk.AccessReadWrite, Tokens: sdk.AccessReadWrite, MUC: sdk.AccessReadWrite, PubSub: sdk.AccessReadWrite,
				RosterBatch: true}},
		{name: "readonly", spec: Spec{Name: "p", Command: pluginPath, Config: map[string]any{"mode": "readonly"}},
			caps: sdk.Capabilities{Auth: sdk.AuthCapabilities{Access: sdk.AccessRead, SCRAM: true},
				Roster: sdk.AccessRead, Offline: sdk.AccessRead, VCard: sdk.AccessRead, Private: sdk.AccessRead,
				Blocklist: sdk.AccessRead, Tokens: sdk.AccessRead, MUC: sdk.AccessRead, PubSub: sdk.AccessRead}},
		{name: "unknown key", spec: Spec{Name: "p", Command: pluginPath, Config: map[string]any{"mood": "x"}},
			problem: "mood: unknown key"},
		{name: "missing binary", spec: Spec{Name: "p", Command: filepath.Join(dir, "nope")}, specKey: "command"},
		{name: "not executable", spec: Spec{Name: "p", Command: notExec}, specKey: "command"},
		{name: "checksum", spec: Spec{Name: "p", Command: pluginPath, SHA256: strings.Repeat("0", 64)}, specKey: "sha256"},
		{name: "no validate command", spec: Spec{Name: "p", Command: old}, err: ErrNoValidate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, err := Validate(context.Background(), tt.spec)
			var se *SpecError
			switch {
			case tt.specKey != "":
				if !errors.As(err, &se) || se.Key != tt.specKey {
					t.Fatalf("error %v, want a SpecError for %s", err, tt.specKey)
				}
			case tt.err != nil:
				if !errors.Is(err, tt.err) {
					t.Fatalf("error %v, want %v", err, tt.err)
				}
			case err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.problem != "":
				if rep.OK || len(rep.Problems) != 1 || rep.Problems[0].String() != tt.problem {
					t.Errorf("report %+v, want the problem %q", rep, tt.problem)
				}
			default:
				if !rep.OK || rep.Capabilities != tt.caps {
					t.Errorf("report %+v, want OK with %+v", rep, tt.caps)
				}
			}
		})
	}
}
