package pluginhost

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/koi-im/koi/sdk"
)

// validateTimeout bounds a plugin's validate command, which parses a config
// and connects to nothing.
const validateTimeout = 10 * time.Second

// ErrNoValidate is a plugin binary without a validate command (built
// without an sdk.Validator, or with an sdk older than the command).
var ErrNoValidate = errors.New("the plugin has no validate command")

// SpecError is a plugin that could not be asked to validate its config
// because of a field of its spec: Key is "command" or "sha256".
type SpecError struct {
	Key string
	Err error
}

func (e *SpecError) Error() string { return e.Key + ": " + e.Err.Error() }
func (e *SpecError) Unwrap() error { return e.Err }

// Validate checks what Start would check before running the plugin (the
// command is there and executable, its sha256 matches), then runs
// `COMMAND validate -json` with the config on standard input and returns
// the plugin's report. A report with problems is not an error; the
// plugin's failing to give one is. Nothing is started, so nothing is
// connected to.
func Validate(ctx context.Context, s Spec) (sdk.ValidationReport, error) {
	b, err := newBackend(hclog.NewNullLogger(), s)
	if err != nil {
		return sdk.ValidationReport{}, err
	}
	path, err := b.commandPath()
	if err != nil {
		return sdk.ValidationReport{}, &SpecError{Key: "command", Err: err}
	}
	if b.checksum != nil {
		if got := fileSHA256(path); !strings.EqualFold(got, s.SHA256) {
			return sdk.ValidationReport{}, &SpecError{Key: "sha256", Err: b.checksumError(path, got)}
		}
	}
	ctx, cancel := context.WithTimeout(ctx, validateTimeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, path, sdk.ValidateCommand, "-json")
	cmd.Dir = s.Dir // as at start: a relative path in the config resolves the same
	cmd.Env = append(os.Environ(), s.Env...)
	cmd.Stdin = bytes.NewReader(b.config) // not an argument: a dsn may hold a password
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var rep sdk.ValidationReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err == nil && (rep.OK || len(rep.Problems) > 0) {
		return rep, nil
	}
	msg := strings.TrimSpace(stderr.String())
	var exit *exec.ExitError
	switch {
	case errors.As(runErr, &exit) && exit.ExitCode() == sdk.ValidateUnsupported,
		// go-plugin's answer when a plugin that knows no commands is run by hand.
		strings.Contains(msg, "This binary is a plugin"):
		return sdk.ValidationReport{}, ErrNoValidate
	case ctx.Err() != nil:
		return sdk.ValidationReport{}, fmt.Errorf("%s validate: no answer in %s", path, validateTimeout)
	case runErr == nil:
		return sdk.ValidationReport{}, fmt.Errorf("%s validate: no report on standard output", path)
	case msg == "":
		return sdk.ValidationReport{}, fmt.Errorf("%s validate: %w", path, runErr)
	default:
		return sdk.ValidationReport{}, fmt.Errorf("%s validate: %w: %s", path, runErr, msg)
	}
}
