package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"github.com/koi-im/koi/core/config"
	"github.com/koi-im/koi/core/server"
)

// dbCmd runs "db migrate [PLUGIN]".
//
// The plugin binary does the migration itself ("COMMAND migrate"): the
// schema belongs to the plugin, and only it can say which version it left.
// Starting the plugin through the plugin host would apply the migrations
// too (koi-backend-sql migrates when configured) but could not report the
// version over the plugin protocol.
func dbCmd(ctx context.Context, cfg *config.Config, verb string, args []string, _ io.Reader, stdout, _ io.Writer) error {
	if verb != "migrate" || len(args) > 1 {
		return fmt.Errorf("%w: unknown command db %s", errUsage, verb)
	}
	var only map[string]bool
	if len(args) == 1 {
		if _, ok := cfg.Plugins[args[0]]; !ok {
			return fmt.Errorf("no plugin %q in the config (configured: %s)", args[0], pluginNames(cfg))
		}
		only = map[string]bool{args[0]: true}
	}
	var failed []error
	for _, spec := range server.PluginSpecs(cfg, only) {
		out, err := runMigrate(ctx, spec.Command, spec.SHA256, spec.Config)
		switch {
		case errors.Is(err, errNoMigrate) && only == nil:
			fmt.Fprintf(stdout, "plugin %s: no migrate command, skipped\n", spec.Name)
		case err != nil:
			failed = append(failed, fmt.Errorf("plugin %s: %w", spec.Name, err))
		default:
			fmt.Fprintf(stdout, "plugin %s: %s\n", spec.Name, out)
		}
	}
	return errors.Join(failed...)
}

// errNoMigrate is a plugin binary without a migrate command.
var errNoMigrate = errors.New("the plugin has no migrate command")

// runMigrate runs "command migrate", checking the binary's sha256 first as
// koi does, and returns its report.
func runMigrate(ctx context.Context, command, sum string, cfg map[string]any) (string, error) {
	if sum != "" {
		b, err := os.ReadFile(command)
		if err != nil {
			return "", err
		}
		got := sha256.Sum256(b)
		if !strings.EqualFold(hex.EncodeToString(got[:]), sum) {
			return "", fmt.Errorf("%s: sha256 is %x, the config expects %s", command, got, sum)
		}
	}
	if cfg == nil {
		cfg = map[string]any{}
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		return "", err
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, command, "migrate")
	cmd.Stdin = bytes.NewReader(raw) // not an argument: a dsn may hold a password
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		// go-plugin's answer when a plugin is run by hand.
		if strings.Contains(msg, "This binary is a plugin") {
			return "", errNoMigrate
		}
		if msg == "" {
			return "", fmt.Errorf("%s migrate: %w", command, err)
		}
		return "", fmt.Errorf("%s migrate: %w: %s", command, err, msg)
	}
	return strings.TrimSpace(stdout.String()), nil
}

func pluginNames(cfg *config.Config) string {
	var n []string
	for _, s := range server.PluginSpecs(cfg, nil) {
		n = append(n, s.Name)
	}
	return strings.Join(n, ", ")
}
