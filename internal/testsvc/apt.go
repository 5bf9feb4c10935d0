package testsvc

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
)

// aptMu serialises apt-get within a test binary; across binaries apt's own
// lock (waited for up to DPkg::Lock::Timeout) does it.
var aptMu sync.Mutex

// AptInstall installs the Debian packages that are not installed yet. It
// needs root; without it, or when apt fails, the error wraps ErrMissing and
// names the packages, for Require.
func AptInstall(ctx context.Context, pkgs ...string) error {
	var missing []string
	for _, p := range pkgs {
		out, err := exec.CommandContext(ctx, "dpkg-query", "-W", "-f=${Status}", p).Output()
		if err != nil || !strings.Contains(string(out), "install ok installed") {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: Debian packages %s (not root, cannot apt-get install)", ErrMissing, strings.Join(missing, " "))
	}
	aptMu.Lock()
	defer aptMu.Unlock()
	run := func(args ...string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		return cmd.CombinedOutput()
	}
	args := append([]string{"install", "-y", "-q", "--no-install-recommends", "-o", "DPkg::Lock::Timeout=300"}, missing...)
	if _, err := run(args...); err != nil {
		// The package lists may be missing or stale on a new machine.
		if out, err := run("update", "-q"); err != nil {
			return fmt.Errorf("%w: apt-get update: %v\n%s", ErrMissing, err, out)
		}
		if out, err := run(args...); err != nil {
			return fmt.Errorf("%w: apt-get install %s: %v\n%s", ErrMissing, strings.Join(missing, " "), err, out)
		}
	}
	return nil
}
