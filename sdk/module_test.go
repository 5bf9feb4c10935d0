package sdk

import (
	"bufio"
	"os"
	"slices"
	"strings"
	"testing"
)

// directDependencies are the modules the SDK may require directly. Every
// plugin builds against all of them, so a new one is a decision, not a
// side effect of a convenient import.
var directDependencies = []string{
	"github.com/hashicorp/go-hclog",  // the log format go-plugin's host reads
	"github.com/hashicorp/go-plugin", // the process and handshake protocol
	"github.com/xdg-go/stringprep",   // SCRAM's SASLprep
	"google.golang.org/grpc",         // the wire
	"google.golang.org/protobuf",     // the messages
}

// TestModuleDependencies keeps the SDK module small and free of koi's own
// module: a plugin requires the SDK, not the server.
func TestModuleDependencies(t *testing.T) {
	f, err := os.Open("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var direct []string
	inRequire := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "require (":
			inRequire = true
			continue
		case inRequire && line == ")":
			inRequire = false
			continue
		case strings.HasPrefix(line, "require "):
			line = strings.TrimPrefix(line, "require ")
		case !inRequire:
			if strings.HasPrefix(line, "replace ") {
				t.Errorf("sdk/go.mod has %q: a replace in a library is ignored by the modules that require it", line)
			}
			continue
		}
		fields := strings.Fields(line)
		if len(fields) == 0 || strings.HasSuffix(line, "// indirect") {
			continue
		}
		direct = append(direct, fields[0])
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	for _, mod := range direct {
		if mod == "github.com/koi-im/koi" || !slices.Contains(directDependencies, mod) {
			t.Errorf("sdk/go.mod requires %s: every plugin would depend on it; add it to directDependencies only if the SDK cannot do without", mod)
		}
	}
	if len(direct) == 0 {
		t.Error("found no requirement in sdk/go.mod; is the parser out of date?")
	}
}
