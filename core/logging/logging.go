// Package logging builds koi's hclog logger from the log block.
package logging

import (
	"io"

	"github.com/hashicorp/go-hclog"

	"github.com/koi-im/koi/core/config"
)

// New returns the root logger for cfg, writing to w.
func New(name string, cfg config.Log, w io.Writer) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:       name,
		Level:      hclog.LevelFromString(cfg.Level),
		JSONFormat: cfg.Format == "json",
		Output:     w,
		TimeFormat: "2006-01-02T15:04:05.000Z0700",
	})
}
