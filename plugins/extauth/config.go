package extauth

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/koi-im/koi/sdk"
)

// Defaults and bounds of the config block.
const (
	defaultInstances = 1
	maxInstances     = 64
	// defaultTimeout stays below the plugin block's default call_timeout
	// (5s), so that a hung program is killed here, with a clear log line,
	// before koi gives up on the call.
	defaultTimeout = 3 * time.Second
)

// Settings configure a Backend. ParseConfig fills in the defaults; a
// Settings built by hand should go through Check.
type Settings struct {
	// Program is the external authentication program, made absolute by
	// Check (see resolveProgram).
	Program string
	Args    []string
	// Instances is how many copies of the program run; each serves one
	// request at a time.
	Instances int
	// Timeout bounds one request: a program that has not answered by then
	// is killed, and restarted when next needed.
	Timeout time.Duration
	// Writable declares that the program serves setpass, tryregister and
	// removeuser, so that koi may create users and change passwords.
	Writable bool
}

// fileConfig is the config block as the operator writes it.
type fileConfig struct {
	Program   string   `json:"program"`
	Args      []string `json:"args"`
	Instances sdk.Int  `json:"instances"`
	Timeout   string   `json:"timeout"`
	Writable  sdk.Bool `json:"writable"`
}

// ParseConfig decodes the plugin's config block into Settings, with
// defaults filled in, and checks it.
func ParseConfig(cfg sdk.Config) (Settings, error) {
	var fc fileConfig
	if err := cfg.Decode(&fc); err != nil {
		return Settings{}, err
	}
	s := Settings{Program: fc.Program, Args: fc.Args, Instances: int(fc.Instances), Writable: bool(fc.Writable)}
	if fc.Timeout != "" {
		d, err := time.ParseDuration(fc.Timeout)
		if err != nil {
			return Settings{}, fmt.Errorf("%w: extauth backend config: timeout: %q is not a duration like \"3s\"", sdk.ErrInvalid, fc.Timeout)
		}
		s.Timeout = d
	}
	if err := s.Check(); err != nil {
		return Settings{}, err
	}
	return s, nil
}

// Check fills in the defaults of s and validates it. Its errors wrap
// sdk.ErrInvalid and name the config keys to fix.
func (s *Settings) Check() error {
	var errs []string
	bad := func(format string, a ...any) { errs = append(errs, fmt.Sprintf(format, a...)) }
	if s.Program == "" {
		bad("program: missing; want the path of an ejabberd extauth program")
	} else if p, err := resolveProgram(s.Program); err != nil {
		bad("program: %v", err)
	} else {
		s.Program = p
	}
	if s.Instances == 0 {
		s.Instances = defaultInstances
	}
	if s.Instances < 1 || s.Instances > maxInstances {
		bad("instances: %d is outside 1..%d", s.Instances, maxInstances)
	}
	if s.Timeout == 0 {
		s.Timeout = defaultTimeout
	}
	if s.Timeout < 0 {
		bad("timeout: must be positive")
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: extauth backend config: %s", sdk.ErrInvalid, strings.Join(errs, "; "))
	}
	return nil
}

// resolveProgram makes p absolute the way the other plugins read their
// paths: relative to the working directory, which koi sets to the config
// file's directory (like the sql plugin's SQLite dsn). A bare name
// without a slash is looked up in PATH, so that program = "python3" with
// the script in args works. Resolving once, at start, means a missing or
// non-executable program stops koi with this message instead of failing
// every login.
func resolveProgram(p string) (string, error) {
	if !strings.ContainsRune(p, filepath.Separator) {
		found, err := exec.LookPath(p)
		if err != nil {
			return "", fmt.Errorf("%q: not found in PATH: %w", p, err)
		}
		p = found
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("%q: %w", p, err)
	}
	// LookPath also checks that a path with a slash is an executable file.
	if _, err := exec.LookPath(abs); err != nil {
		return "", fmt.Errorf("%q: %w", p, err)
	}
	return abs, nil
}
