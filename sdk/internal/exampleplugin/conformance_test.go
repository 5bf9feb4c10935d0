package main

import (
	"testing"

	"github.com/koi-im/koi/sdk/sdktest"
)

// TestConformance runs the SDK's conformance kit against the backend: every
// check of every feature it declares, first in process, then through the
// plugin binary, started and configured as koi does it.
func TestConformance(t *testing.T) {
	sdktest.Run(t, newBackend, sdktest.Options{
		// The plugin block's config, as JSON; each subtest gets a new backend.
		Config: []byte(`{"host": "sdktest.example", "admin": "root", "password": "s3cret"}`),
		// Builds this package for the run over the wire ("" skips that run).
		PluginCommand: sdktest.BuildPlugin(t, "."),
		// Auth is read-only: the kit cannot create an account, so name one.
		ExistingUser:     "root",
		ExistingPassword: "s3cret",
	})
}
