package testbackend_test

import (
	"testing"

	"github.com/koi-im/koi/sdk/internal/testbackend"
	"github.com/koi-im/koi/sdk/sdktest"
)

func TestConformance(t *testing.T) {
	plugin := sdktest.BuildPlugin(t, "github.com/koi-im/koi/sdk/internal/testbackend/cmd")
	t.Run("full", func(t *testing.T) {
		sdktest.Run(t, testbackend.New, sdktest.Options{PluginCommand: plugin})
	})
	// Every feature declared read-only: the kit checks what an empty store
	// answers and, over the wire, that every write is refused.
	t.Run("readonly", func(t *testing.T) {
		sdktest.Run(t, testbackend.New, sdktest.Options{
			Config:        []byte(`{"mode": "readonly"}`),
			PluginCommand: plugin,
		})
	})
}
