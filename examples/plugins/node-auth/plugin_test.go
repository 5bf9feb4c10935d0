package nodeauth_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/koi-im/koi/internal/testsvc"
	"github.com/koi-im/koi/sdk"
	"github.com/koi-im/koi/sdk/sdktest"
)

// The plugin is JavaScript: these tests install its npm dependencies and
// run the SDK's conformance kit against plugin.js as a real plugin
// process, started through go-plugin exactly as koi starts it.

const (
	existingUser     = "alice"
	existingPassword = "p\u00e4ss:w\u00f6rd"
)

// needNode returns the plugin's directory with its node_modules
// installed, or skips (fails under CI=true) when node or npm is missing.
func needNode(t *testing.T) string {
	t.Helper()
	dir, err := testsvc.NPMInstall(t.Context(), filepath.Join("examples", "plugins", "node-auth"))
	testsvc.Require(t, err)
	return dir
}

// hash runs `plugin.js hash`, the operator's tool for the user file. The
// low cost keeps the test fast; the default is ln=15.
func hash(t *testing.T, plugin, password string) string {
	t.Helper()
	cmd := exec.Command(plugin, "hash", "-ln", "10")
	cmd.Stdin = strings.NewReader(password + "\n")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("plugin.js hash: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// writeUsers writes a user file and returns the plugin config naming it.
func writeUsers(t *testing.T, users map[string]string) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "users.json")
	writeJSON(t, path, users)
	return config(t, path)
}

func TestConformance(t *testing.T) {
	dir := needNode(t)
	plugin := filepath.Join(dir, "plugin.js")
	cfg := writeUsers(t, map[string]string{
		existingUser: hash(t, plugin, existingPassword),
		"bob":        hash(t, plugin, "hunter2"),
	})
	sdktest.RunBackend(t, func(t *testing.T) sdk.Backend {
		return sdktest.StartPlugin(t, plugin, nil, cfg)
	}, sdktest.Options{
		Remote:           true,
		ExistingUser:     existingUser,
		ExistingPassword: existingPassword,
	})
}

// TestHandshakeInSync keeps plugin.js's copy of the handshake and of the
// protocol in step with the SDK's.
func TestHandshakeInSync(t *testing.T) {
	js, err := os.ReadFile("plugin.js")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"magicCookieKey: '" + sdk.Handshake.MagicCookieKey + "'",
		"magicCookieValue: '" + sdk.Handshake.MagicCookieValue + "'",
		"protocolVersion: " + strconv.FormatUint(uint64(sdk.Handshake.ProtocolVersion), 10) + ",",
	} {
		if !bytes.Contains(js, []byte(want)) {
			t.Errorf("plugin.js does not say %s: update HANDSHAKE from sdk.Handshake", want)
		}
	}
	ours, err := os.ReadFile(filepath.Join("proto", "koi_backend.proto"))
	if err != nil {
		t.Fatal(err)
	}
	sdks, err := os.ReadFile(filepath.Join("..", "..", "..", "sdk", "pb", "koi_backend.proto"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ours, sdks) {
		t.Error("proto/koi_backend.proto differs from sdk/pb/koi_backend.proto: copy it again")
	}
}
