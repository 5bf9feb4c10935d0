package e2e

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/koi-im/koi/e2e/internal/koiproc"
)

// directoryBlock is an ldap plugin block that validates but points at a
// directory that is not there (koi starts anyway: logins would fail).
func directoryBlock(t *testing.T, extra string) string {
	return `
plugin "directory" {
  command = "` + ldapPluginBin(t) + `"
  config  = { url = "ldaps://127.0.0.1:1"  base_dn = "dc=corp,dc=example"  connect_timeout = "200ms"
              ` + extra + ` }
}
`
}

// TestCheckConfigCatchesStartFailures runs koi check-config on configs that
// koi itself would refuse at start, each for a reason the file alone does
// not show, and checks that every problem is named with its key.
func TestCheckConfigCatchesStartFailures(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	goodPath, _, _ := writeConfig(t, dir, defaultOptions())
	good, err := os.ReadFile(goodPath)
	if err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("-----BEGIN NOTHING-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tlsLine := `tls { cert_file = "` + dir + `/tls/cert.pem"  key_file = "` + dir + `/tls/key.pem" }`
	garbageTLS := `tls { cert_file = "` + garbage + `"  key_file = "` + garbage + `" }`
	archiveOnLDAP := func(src string) string {
		src = strings.Replace(src, "  registration =", "  archive = \"directory\"\n  registration =", 1)
		return src + directoryBlock(t, `user_filter = "(uid={user})"`)
	}

	tests := []struct {
		name  string
		edit  func(string) string
		env   []string
		code  int
		lines []string // each must appear in the output
	}{
		{name: "good", edit: func(s string) string { return s }, code: 0, lines: []string{"OK (2 listeners, 1 plugins, 2 hosts)"}},
		{name: "missing plugin binary",
			edit: func(s string) string {
				return strings.Replace(s, pluginBin(), filepath.Join(dir, "nope", "koi-backend-sql"), 1)
			},
			code: 1, lines: []string{`plugin "store".command: command "` + filepath.Join(dir, "nope", "koi-backend-sql") + `": `}},
		{name: "garbage tls", edit: func(s string) string { return strings.Replace(s, tlsLine, garbageTLS, 1) },
			code: 1, lines: []string{"tls.cert_file/tls.key_file: " + garbage}},
		{name: "archive on ldap", edit: archiveOnLDAP, code: 1,
			lines: []string{`host "localhost".archive: plugin "directory" (koi-backend-ldap) does not serve archive`}},
		{name: "unknown plugin config key", edit: func(s string) string { return strings.Replace(s, "dsn =", "dsnn =", 1) },
			code: 1, lines: []string{`plugin "store".config.dsnn: unknown key`}},
		{name: "override of a missing block", edit: func(s string) string { return s },
			env:  []string{"KOI_LISTEN__NOPE__ADDRESS=127.0.0.1:5999"},
			code: 1, lines: []string{`KOI_LISTEN__NOPE__ADDRESS: there is no listen "nope" block in the config file; an override can only change an existing block`}},
		{name: "everything at once", code: 1,
			edit: func(s string) string {
				s = strings.Replace(s, tlsLine, garbageTLS, 1)
				s = strings.Replace(s, "dsn =", "dsnn =", 1)
				return archiveOnLDAP(s)
			},
			lines: []string{
				"tls.cert_file/tls.key_file: ",
				`plugin "store".config.dsnn: unknown key`,
				`host "localhost".archive: plugin "directory" (koi-backend-ldap) does not serve archive`,
			}},
		{name: "active directory pitfalls are warnings", code: 0,
			edit: func(s string) string {
				return s + directoryBlock(t, `group_membership = "ad"  user_filter = "(&(objectClass=user)(sAMAccountName={user}))"`)
			},
			lines: []string{
				`warning: plugin "directory".config.username_attribute: is "uid" (the default)`,
				`warning: plugin "directory".config.user_filter: matches computer accounts too`,
				"OK (2 listeners, 2 plugins, 2 hosts, 2 warnings)",
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-")+".hcl")
			if err := os.WriteFile(path, []byte(tt.edit(string(good))), 0o600); err != nil {
				t.Fatal(err)
			}
			out, code := runKoiEnv(t, tt.env, "check-config", "-config", path)
			if code != tt.code {
				t.Errorf("exit %d, want %d; output:\n%s", code, tt.code, out)
			}
			for _, l := range tt.lines {
				if !strings.Contains(out, l) {
					t.Errorf("output does not say %q:\n%s", l, out)
				}
			}
			if tt.code != 0 && strings.Contains(out, "OK") {
				t.Errorf("check-config says OK for a bad config:\n%s", out)
			}
		})
	}

	// What check-config reports is what koi refuses at start, printed as
	// plainly (it used to come out as ["{…}"]).
	t.Run("koi refuses the same", func(t *testing.T) {
		path := filepath.Join(dir, "start-archive-on-ldap.hcl")
		if err := os.WriteFile(path, []byte(archiveOnLDAP(string(good))), 0o600); err != nil {
			t.Fatal(err)
		}
		out, code := runKoiEnv(t, nil, "-config", path)
		want := `host "localhost".archive: plugin "directory" (koi-backend-ldap) does not serve archive`
		if code != 1 || !strings.Contains(out, want) || strings.Contains(out, `["{`) {
			t.Errorf("koi start: exit %d, want 1 and a line %q; output:\n%s", code, want, out)
		}
	})
}

// TestKoiHelp: koi -h lists the commands and exits 0.
func TestKoiHelp(t *testing.T) {
	t.Parallel()
	for _, flag := range []string{"-h", "--help"} {
		out, code := runKoiEnv(t, nil, flag)
		if code != 0 || !strings.Contains(out, "check-config") || !strings.Contains(out, "run the server") {
			t.Errorf("koi %s: exit %d, output:\n%s", flag, code, out)
		}
	}
}

// runKoiEnv is runKoi with env added to koi's environment, and a time limit
// for a koi that would start after all.
func runKoiEnv(t *testing.T, env []string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, koiBin(), args...)
	cmd.Env = append(koiproc.ChildEnv(), env...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	}
	t.Fatalf("running koi %v: %v", args, err)
	return "", 0
}
