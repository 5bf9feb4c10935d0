package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// binDir holds the binaries built once by TestMain: koi, koictl and
// plugins/koi-backend-sql.
var binDir string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "koi-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := buildBinaries(dir); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	binDir = dir
	return m.Run()
}

// buildBinaries builds the server, the admin tool and the SQL plugin into
// dir, laid out as the Makefile lays out bin/.
func buildBinaries(dir string) error {
	root, err := filepath.Abs("..")
	if err != nil {
		return err
	}
	builds := [][]string{
		{"build", "-o", filepath.Join(dir, "koi"), "./core/cmd/koi"},
		{"build", "-o", filepath.Join(dir, "koictl"), "./core/cmd/koictl"},
		{"build", "-o", filepath.Join(dir, "plugins", "koi-backend-sql"), "./plugins/sql/cmd/koi-backend-sql"},
		{"build", "-o", filepath.Join(dir, "plugins", "koi-backend-extauth"), "./plugins/extauth/cmd/koi-backend-extauth"},
	}
	for _, args := range builds {
		if os.Getenv("E2E_RACE") != "" {
			// Race-checks the server itself, not only the test process.
			args = append([]string{args[0], "-race"}, args[1:]...)
		}
		cmd := exec.Command("go", args...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go %v: %w\n%s", args, err, out)
		}
	}
	return nil
}

func koiBin() string    { return filepath.Join(binDir, "koi") }
func koictlBin() string { return filepath.Join(binDir, "koictl") }
func pluginBin() string { return filepath.Join(binDir, "plugins", "koi-backend-sql") }
