package server

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/koi-im/koi/core/config"
	"github.com/koi-im/koi/sdk"
)

// testPlugin is the sdk's testbackend plugin, built once by TestMain: it
// serves everything but the archive, read-only with mode = "readonly".
var testPlugin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "koi-server-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	testPlugin = filepath.Join(dir, "koi-testbackend")
	build := exec.Command("go", "build", "-o", testPlugin, "github.com/koi-im/koi/sdk/internal/testbackend/cmd")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the test plugin:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// checkConfig parses a config whose plugin command is testPlugin unless the
// plugin block says otherwise, with TLS files in an empty directory.
func checkConfig(t *testing.T, tlsBlock, pluginBody, hostBody string) (problems, warnings config.Errors) {
	t.Helper()
	dir := t.TempDir()
	if tlsBlock == "" {
		tlsBlock = fmt.Sprintf("tls { cert_file = %q  key_file = %q }",
			filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	}
	if !strings.Contains(pluginBody, "command") {
		pluginBody = fmt.Sprintf("command = %q\n", testPlugin) + pluginBody
	}
	src := fmt.Sprintf(`
listen "c2s" { address = "127.0.0.1:5222" }
%s
plugin "store" {
%s
}
host "localhost" {
%s
}
`, tlsBlock, pluginBody, hostBody)
	cfg, err := config.Parse([]byte(src), nil)
	if err != nil {
		t.Fatalf("config:\n%v\n%s", err, src)
	}
	return Check(context.Background(), cfg)
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		tls      string
		plugin   string
		host     string
		problems []string // whole lines, or prefixes ending in "…"
	}{
		{name: "good", host: `auth = "store"  roster = "store"  vcard = "store"`},
		{name: "archive not served", host: `auth = "store"  archive = "store"`,
			problems: []string{`host "localhost".archive: plugin "store" (koi-testbackend) does not serve archive`}},
		{name: "unknown plugin key", plugin: `config = { mood = "x" }`, host: `auth = "store"`,
			problems: []string{`plugin "store".config.mood: unknown key`}},
		{name: "missing binary", plugin: `command = "/nonexistent/koi-backend-x"`, host: `auth = "store"`,
			problems: []string{`plugin "store".command: command "/nonexistent/koi-backend-x": …`}},
		{name: "sha256 mismatch", plugin: fmt.Sprintf("sha256 = %q", strings.Repeat("ab", 32)), host: `auth = "store"`,
			problems: []string{`plugin "store".sha256: checksum mismatch: …`}},
		{name: "garbage tls", tls: fmt.Sprintf("tls { cert_file = %q  key_file = %q }", garbage, garbage),
			host:     `auth = "store"`,
			problems: []string{`tls.cert_file/tls.key_file: …`}},
		{name: "unreadable tls", tls: fmt.Sprintf("tls { cert_file = %q  key_file = %q }", dir, garbage),
			host:     `auth = "store"`,
			problems: []string{`tls.cert_file: read ` + dir + `: is a directory`}},
		{name: "everything at once",
			tls:    fmt.Sprintf("tls { cert_file = %q  key_file = %q }", garbage, garbage),
			plugin: `config = { mood = "x" }`, host: `auth = "store"`,
			problems: []string{`tls.cert_file/tls.key_file: …`, `plugin "store".config.mood: unknown key`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			problems, warnings := checkConfig(t, tt.tls, tt.plugin, tt.host)
			if len(warnings) > 0 {
				t.Errorf("warnings:\n%v", warnings)
			}
			if len(problems) != len(tt.problems) {
				t.Fatalf("problems:\n%v\nwant %q", problems, tt.problems)
			}
			for i, p := range problems {
				line := p.Key + ": " + p.Msg
				if want, ok := strings.CutSuffix(tt.problems[i], "…"); ok && strings.HasPrefix(line, want) || line == tt.problems[i] {
					continue
				}
				t.Errorf("problem %d is %q, want %q", i, line, tt.problems[i])
			}
		})
	}
}

// A plugin without a validate command is a warning: check-config cannot
// tell, koi's start will.
func TestCheckPluginWithoutValidate(t *testing.T) {
	old := filepath.Join(t.TempDir(), "koi-backend-old")
	script := "#!/bin/sh\necho 'This binary is a plugin. These are not meant to be executed directly.' >&2\nexit 1\n"
	if err := os.WriteFile(old, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	problems, warnings := checkConfig(t, "", fmt.Sprintf("command = %q", old), `auth = "store"  archive = "store"`)
	if len(problems) > 0 {
		t.Errorf("problems:\n%v", problems)
	}
	if len(warnings) != 1 || warnings[0].Key != `plugin "store"` || !strings.Contains(warnings[0].Msg, "no validate command") {
		t.Errorf("warnings %v, want one saying the plugin has no validate command", warnings)
	}
}

func TestHostProblems(t *testing.T) {
	caps := map[string]sdk.Capabilities{
		"store": {Auth: sdk.AuthCapabilities{Access: sdk.AccessReadWrite}, Roster: sdk.AccessReadWrite,
			Archive: sdk.ArchiveCapabilities{Access: sdk.AccessReadWrite}, PubSub: sdk.AccessReadWrite},
		"dir":    {Auth: sdk.AuthCapabilities{Access: sdk.AccessRead}, Roster: sdk.AccessRead, VCard: sdk.AccessRead},
		"ro-arc": {Archive: sdk.ArchiveCapabilities{Access: sdk.AccessRead}},
		"ro-ps":  {PubSub: sdk.AccessRead},
	}
	cfg := &config.Config{
		Plugins: map[string]config.Plugin{"dir": {Command: "bin/plugins/koi-backend-ldap"}},
		Hosts: []config.Host{
			{Name: "good", Auth: []string{"dir", "store"}, Roster: "store", SharedRoster: "dir", VCard: "dir", Archive: "store", PubSub: "store"},
			{Name: "bad", Auth: []string{"dir", "ro-arc"}, Offline: "dir", Archive: "ro-arc", Private: "unknown", PubSub: "dir"},
			{Name: "ro-pubsub", Auth: []string{"store"}, PubSub: "ro-ps"},
		},
	}
	got := HostProblems(cfg, func(n string) (sdk.Capabilities, bool) { c, ok := caps[n]; return c, ok })
	want := []string{
		`host "bad".auth: plugin "ro-arc" does not serve auth`,
		`host "bad".offline: plugin "dir" (koi-backend-ldap) does not serve offline`,
		`host "bad".archive: plugin "ro-arc" serves archive read-only; archiving needs writes`,
		`host "bad".pubsub: plugin "dir" (koi-backend-ldap) does not serve pubsub`,
		`host "ro-pubsub".pubsub: plugin "ro-ps" serves pubsub read-only; PEP and pubsub publish, subscribe and configure nodes`,
	}
	if got.Error() != strings.Join(want, "\n") {
		t.Errorf("problems:\n%v\nwant:\n%s", got, strings.Join(want, "\n"))
	}
}

// check-config starts nothing for a plugin koi attaches to, and says so.
func TestCheckReattachedPlugin(t *testing.T) {
	problems, warnings := checkConfig(t, "", `command = "/nonexistent/koi-backend-x"
		reattach = { pid = 4242, network = "unix", address = "/tmp/plugin123", protocol_version = 1 }`, `auth = "store"`)
	if len(problems) > 0 {
		t.Errorf("problems:\n%v", problems)
	}
	if len(warnings) != 1 || warnings[0].Key != `plugin "store".reattach` || !strings.Contains(warnings[0].Msg, "pid 4242, unix:/tmp/plugin123") {
		t.Errorf("warnings %v, want one saying koi attaches to pid 4242", warnings)
	}
}
