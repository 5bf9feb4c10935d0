package clients

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/koi-im/koi/internal/testsvc"
)

// aptInstall installs the Debian packages that are not installed yet
// (testsvc.AptInstall). It needs root (env.Root); without it, or when apt
// fails, the error wraps ErrMissing and names the packages.
func aptInstall(ctx context.Context, env *Env, pkgs ...string) error {
	if !env.Root {
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
		return fmt.Errorf("%w: Debian packages %s (not root, cannot apt-get install)", ErrMissing, strings.Join(missing, " "))
	}
	if err := testsvc.AptInstall(ctx, pkgs...); err != nil {
		return fmt.Errorf("%w: %v", ErrMissing, err)
	}
	return nil
}

// npmInstall installs the npm packages (name@version) into a directory of
// their own under env.CacheDir, named by dir, once; it returns the
// directory, whose node_modules a script run from it will find.
func npmInstall(ctx context.Context, env *Env, dir string, pkgs ...string) (string, error) {
	d := filepath.Join(env.CacheDir, "npm", dir)
	stamp := filepath.Join(d, ".installed-"+strings.NewReplacer("/", "_", "@", "_").Replace(strings.Join(pkgs, "+")))
	if _, err := os.Stat(stamp); err == nil {
		return d, nil
	}
	if _, err := exec.LookPath("npm"); err != nil {
		if err := aptInstall(ctx, env, "nodejs", "npm"); err != nil {
			return "", err
		}
	}
	if err := os.MkdirAll(d, 0o755); err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(d, "package.json")); err != nil {
		if err := os.WriteFile(filepath.Join(d, "package.json"), []byte(`{"private":true}`+"\n"), 0o644); err != nil {
			return "", err
		}
	}
	cmd := exec.CommandContext(ctx, "npm", append([]string{"install", "--no-audit", "--no-fund", "--loglevel=error"}, pkgs...)...)
	cmd.Dir = d
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%w: npm install %s: %v\n%s", ErrMissing, strings.Join(pkgs, " "), err, out)
	}
	if err := os.WriteFile(stamp, nil, 0o644); err != nil {
		return "", err
	}
	return d, nil
}
