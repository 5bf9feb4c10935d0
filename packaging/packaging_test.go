// Package packaging holds the files that install koi: the systemd unit,
// the container's config and, at the repository's root, the Dockerfile.
// Its tests keep them in step with the code and the Makefile.
package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/koi-im/koi/core/config"
	"github.com/koi-im/koi/internal/testsvc"
)

// TestDockerfileBuildsEveryBinary: a program added to `make build` must
// reach the image too (the load tool and the example service excepted).
func TestDockerfileBuildsEveryBinary(t *testing.T) {
	mk, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	df, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	// A `go build … -o OUT ./pkg` line, in either file.
	pkg := regexp.MustCompile(`build .*-o \S+ (\./[\w./-]+)`)
	var want, got []string
	for _, m := range pkg.FindAllStringSubmatch(string(mk), -1) {
		if !strings.HasPrefix(m[1], "./tools/") && !strings.HasPrefix(m[1], "./examples/") {
			want = append(want, m[1])
		}
	}
	for _, m := range pkg.FindAllStringSubmatch(string(df), -1) {
		got = append(got, m[1])
	}
	slices.Sort(want)
	slices.Sort(got)
	if len(want) == 0 || !slices.Equal(slices.Compact(want), slices.Compact(got)) {
		t.Errorf("Makefile builds %q, the Dockerfile %q", want, got)
	}
}

// TestConfig: the packaged config is valid as shipped.
func TestConfig(t *testing.T) {
	cfg, err := config.Load("config.hcl", nil)
	if err != nil {
		t.Fatalf("packaging/config.hcl: %v", err)
	}
	if cfg.Server.DataDir != "/var/lib/koi" || len(cfg.Hosts) != 1 {
		t.Errorf("data_dir %q, %d hosts", cfg.Server.DataDir, len(cfg.Hosts))
	}
	for name, p := range cfg.Plugins {
		if !strings.HasPrefix(p.Command, "/usr/lib/koi/plugins/") {
			t.Errorf("plugin %s: command %q is not where the image and the unit install plugins", name, p.Command)
		}
	}
}

// TestSystemdUnit checks the unit with systemd's own verifier, with the
// binaries pointed at the ones `make build` made.
func TestSystemdUnit(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		if err := testsvc.AptInstall(t.Context(), "systemd"); err != nil {
			t.Logf("installing systemd: %v", err)
		}
	}
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("systemd-analyze (Debian package systemd) is missing")
		}
		t.Skip("systemd-analyze (Debian package systemd) is missing")
	}
	unit, err := os.ReadFile("koi.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Type=notify", "WatchdogSec=", "User=koi", "ExecStart=/usr/bin/koi -config /etc/koi/config.hcl"} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("koi.service lacks %q", want)
		}
	}
	bin, err := filepath.Abs("../bin/koi")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s: run make build first: %v", bin, err)
	}
	path := filepath.Join(t.TempDir(), "koi.service")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(unit), "/usr/bin/koi ", bin+" ")), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sa, "verify", path).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
