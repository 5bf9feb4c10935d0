package server

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/koi-im/koi/core/config"
	"github.com/koi-im/koi/core/pluginhost"
	"github.com/koi-im/koi/sdk"
)

// Check finds what would make koi refuse to start with cfg (a config that
// config.Load accepted) without starting it: TLS files that cannot be
// loaded, plugin binaries that are missing, not executable or do not
// match their sha256, plugin config blocks their plugin rejects, and
// features given to plugins that cannot serve them. It runs each plugin's
// validate command, which connects to nothing. Problems are what koi would
// refuse; warnings are what it would accept but is likely a mistake.
func Check(ctx context.Context, cfg *config.Config) (problems, warnings config.Errors) {
	// Absent files are no problem: koi makes a self-signed pair at start.
	if !selfSignedDue(cfg.TLS.CertFile, cfg.TLS.KeyFile) {
		if _, p := loadCert(cfg.TLS.CertFile, cfg.TLS.KeyFile); p != nil {
			problems = append(problems, *p)
		}
	}

	caps := map[string]sdk.Capabilities{}
	for _, spec := range PluginSpecs(cfg, nil) {
		block := fmt.Sprintf("plugin %q", spec.Name)
		inConfig := func(p sdk.ConfigProblem) config.Problem {
			if p.Key == "" {
				return config.Problem{Key: block + ".config", Msg: p.Msg}
			}
			return config.Problem{Key: block + ".config." + p.Key, Msg: p.Msg}
		}
		if r := spec.Reattach; r != nil {
			// The process is the author's, under a debugger: koi starts
			// nothing, not even its validate command.
			warnings = append(warnings, config.Problem{Key: block + ".reattach", Msg: fmt.Sprintf(
				"koi attaches to the plugin running in debug mode (pid %d, %s:%s) instead of starting command; its config is checked when koi starts",
				r.Pid, r.Network, r.Address)})
			continue
		}
		rep, err := pluginhost.Validate(ctx, spec)
		var se *pluginhost.SpecError
		switch {
		case errors.As(err, &se):
			problems = append(problems, config.Problem{Key: block + "." + se.Key, Msg: se.Err.Error()})
			continue
		case errors.Is(err, pluginhost.ErrNoValidate):
			warnings = append(warnings, config.Problem{Key: block, Msg: fmt.Sprintf(
				"%s has no validate command: its config and the features hosts give it are checked only when koi starts",
				filepath.Base(spec.Command))})
			continue
		case err != nil:
			problems = append(problems, config.Problem{Key: block, Msg: err.Error()})
			continue
		}
		for _, p := range rep.Problems {
			problems = append(problems, inConfig(p))
		}
		for _, w := range rep.Warnings {
			warnings = append(warnings, inConfig(w))
		}
		if rep.OK {
			caps[spec.Name] = rep.Capabilities
		}
	}
	for _, lc := range cfg.Listeners {
		if exposedPlaintext(lc) {
			warnings = append(warnings, config.Problem{Key: fmt.Sprintf("listen %q.address", lc.Name), Msg: exposedWarning})
		}
	}
	problems = append(problems, uploadCertProblems(cfg)...)
	warnings = append(warnings, uploadWarnings(cfg)...)
	warnings = append(warnings, clusterWarnings(cfg)...)
	problems = append(problems, HostProblems(cfg, func(name string) (sdk.Capabilities, bool) {
		c, ok := caps[name]
		return c, ok
	})...)
	return problems, warnings
}
