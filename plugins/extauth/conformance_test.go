package extauth

import (
	"context"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/koi-im/koi/sdk"
	"github.com/koi-im/koi/sdk/sdktest"
)

// TestConformance runs the SDK's conformance kit, in process and through
// the plugin binary, on the example program as koi would run it: read-only
// (the kit checks an account the test created) and, below, writable.
func TestConformance(t *testing.T) {
	python, path := script(t)
	sdktest.Run(t, New, sdktest.Options{
		NewConfig: func(t *testing.T) []byte {
			users := usersFile(t, map[string]string{"alice@" + sdktest.DefaultHost: "alice:pw\u2713"})
			return kitConfig(t, python, path, users, 1, false)
		},
		PluginCommand:    sdktest.BuildPlugin(t, "./cmd/koi-backend-extauth"),
		ExistingUser:     "alice",
		ExistingPassword: "alice:pw\u2713",
	})
}

// TestConformanceWritable runs the kit's read-write auth checks (accounts,
// unicode names, one winner among concurrent registrations) on a writable
// pool of four copies sharing one accounts file. The protocol cannot list
// users, so the test answers ListUsers itself, from the file, for the
// kit's list check; every other call goes to the program.
func TestConformanceWritable(t *testing.T) {
	python, path := script(t)
	bin := sdktest.BuildPlugin(t, "./cmd/koi-backend-extauth")
	fresh := func(t *testing.T) (cfg []byte, users string) {
		users = usersFile(t, nil)
		return kitConfig(t, python, path, users, 4, true), users
	}
	t.Run("inprocess", func(t *testing.T) {
		sdktest.RunBackend(t, func(t *testing.T) sdk.Backend {
			cfg, users := fresh(t)
			b, err := New(t.Context(), sdk.Config{Raw: cfg}, nil)
			if err != nil {
				t.Fatal(err)
			}
			return listFromFile{b.(*Backend), users}
		}, sdktest.Options{})
	})
	t.Run("plugin", func(t *testing.T) {
		sdktest.RunBackend(t, func(t *testing.T) sdk.Backend {
			cfg, users := fresh(t)
			return listFromFile{sdktest.StartPlugin(t, bin, nil, cfg), users}
		}, sdktest.Options{Remote: true})
	})
}

func kitConfig(t *testing.T, python, path, users string, instances int, writable bool) []byte {
	t.Helper()
	cfg, err := json.Marshal(map[string]any{
		"program": python, "args": []string{path, users}, "instances": instances, "writable": writable,
	})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// accounts is what listFromFile needs of a backend.
type accounts interface {
	sdk.Backend
	sdk.Auth
	sdk.AuthAdmin
}

// listFromFile is a backend whose ListUsers reads the example program's
// accounts file.
type listFromFile struct {
	accounts
	users string
}

func (l listFromFile) ListUsers(_ context.Context, host string) ([]string, error) {
	b, err := os.ReadFile(l.users)
	if err != nil {
		return nil, err
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	var out []string
	for jid := range m {
		if u, ok := strings.CutSuffix(jid, "@"+host); ok {
			out = append(out, u)
		}
	}
	slices.Sort(out)
	return out, nil
}
