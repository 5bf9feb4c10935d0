package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/koi-im/koi/sdk/sdktest"
)

// The example plugin of sdk/README.md passes the kit, in process and as a
// plugin, as a newcomer's copy of it should.
func TestConformance(t *testing.T) {
	sdktest.Run(t, newBackend, sdktest.Options{
		Config:           []byte(`{"host": "sdktest.example", "admin": "root", "password": "s3cret"}`),
		PluginCommand:    sdktest.BuildPlugin(t, "."),
		ExistingUser:     "root",
		ExistingPassword: "s3cret",
	})
}

// TestReadmeShowsThisFile keeps sdk/README.md's "complete plugin" the code
// that is compiled and tested here.
func TestReadmeShowsThisFile(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	block := append(append([]byte("```go\n"), src...), "```\n"...)
	if !bytes.Contains(readme, block) {
		t.Error("sdk/README.md does not show sdk/internal/exampleplugin/main.go as it is; copy the file into its \"A complete plugin\" code block")
	}
}
