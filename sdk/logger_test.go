package sdk

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
)

// The two loggers a Go backend is likely to have at hand fit Logger as
// they are, so existing code and tests pass them unchanged.
var (
	_ Logger = hclog.Logger(nil)
	_ Logger = (*slog.Logger)(nil)
)

// GRPCPlugin hands its Logger, here a standard library one, to the
// Factory, which may keep it: what the backend logs goes where the
// embedder said.
func TestGRPCPluginGivesItsLoggerToTheFactory(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, nil))
	factory := func(_ context.Context, _ Config, log Logger) (Backend, error) {
		log.Info("backend configured", "greeting", "hi")
		return directory{}, nil
	}
	c := dial(t, func(gs *grpc.Server) {
		if err := (&GRPCPlugin{Factory: factory, Logger: logger}).GRPCServer(nil, gs); err != nil {
			t.Fatal(err)
		}
	})
	if _, err := c.Configure(t.Context(), []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if got := buf.String(); !strings.Contains(got, `level=INFO msg="backend configured" greeting=hi`) {
		t.Errorf("the factory's line did not reach the plugin's Logger; it has %q", got)
	}
}
