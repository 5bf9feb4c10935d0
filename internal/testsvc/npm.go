package testsvc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// npmTimeout bounds one npm install: a first install downloads a few MB.
const npmTimeout = 3 * time.Minute

// NPMInstall installs the locked dependencies of the Node.js package in
// dir (a path relative to the module root, such as
// "examples/plugins/node-auth") into its node_modules, which git ignores,
// with npm's cache under the module's .cache/npm, and returns the
// package's absolute directory. Without node or npm it returns an error
// wrapping ErrMissing, for Require.
//
// Test binaries run in parallel (the example's own tests and e2e), so the
// install holds a lock; one that finds node_modules newer than
// package-lock.json does nothing, which keeps a warm run at no cost.
func NPMInstall(ctx context.Context, dir string) (string, error) {
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			return "", fmt.Errorf("%w: %s is not installed (the Node.js plugin example needs node and npm)", ErrMissing, tool)
		}
	}
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	pkg := filepath.Join(root, dir)
	cache := filepath.Join(root, ".cache")
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", err
	}
	lock, err := os.OpenFile(filepath.Join(cache, "npm-install.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close() // releases the lock
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("lock for npm install: %w", err)
	}
	if upToDate(pkg) {
		return pkg, nil
	}
	ctx, cancel := context.WithTimeout(ctx, npmTimeout)
	defer cancel()
	// --ignore-scripts: no dependency gets to run code at install time.
	cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts",
		"--cache", filepath.Join(cache, "npm"))
	cmd.Dir = pkg
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("npm ci in %s: %v\n%s", pkg, err, out)
	}
	return pkg, nil
}

// upToDate reports whether npm's record of what it installed
// (node_modules/.package-lock.json) is newer than the lock file.
func upToDate(pkg string) bool {
	lock, err := os.Stat(filepath.Join(pkg, "package-lock.json"))
	if err != nil {
		return false
	}
	installed, err := os.Stat(filepath.Join(pkg, "node_modules", ".package-lock.json"))
	return err == nil && installed.ModTime().After(lock.ModTime())
}

// moduleRoot walks up from the working directory (go test runs in the
// package directory) to the directory holding go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("testsvc: no go.mod above the working directory")
		}
		dir = parent
	}
}
