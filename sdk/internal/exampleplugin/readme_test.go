package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestReadmeShowsTheseFiles keeps the code of sdk/README.md the code that
// is compiled and tested here: the README shows each file whole, as one
// ```go block.
func TestReadmeShowsTheseFiles(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for file, section := range map[string]string{
		"main.go":             "A complete plugin",
		"conformance_test.go": "Testing a backend",
	} {
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		block := append(append([]byte("```go\n"), src...), "```\n"...)
		if !bytes.Contains(readme, block) {
			t.Errorf("sdk/README.md does not show sdk/internal/exampleplugin/%s as it is; copy the file into the code block of its section %q", file, section)
		}
	}
}
