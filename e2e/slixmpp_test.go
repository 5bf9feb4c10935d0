package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/koi-im/koi/internal/testsvc"
)

// debianPython is the interpreter that has Debian's python3-slixmpp (the
// pyenv python3 on PATH does not).
const debianPython = "/usr/bin/python3"

// needSlixmpp skips the test, or fails it under CI, unless the slixmpp
// modules (like "slixmpp.plugins.xep_0045") can be imported; when they
// cannot, it first installs python3-slixmpp with apt (as root).
func needSlixmpp(t *testing.T, modules ...string) {
	t.Helper()
	needPython(t, "python3-slixmpp", modules...)
}

// needPython is needSlixmpp for the modules of Debian package pkg.
func needPython(t *testing.T, pkg string, modules ...string) {
	t.Helper()
	imp := exec.Command(debianPython, "-c", "import "+strings.Join(modules, ", "))
	out, err := imp.CombinedOutput()
	if err != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if testsvc.AptInstall(ctx, pkg) == nil {
			out, err = exec.Command(debianPython, "-c", "import "+strings.Join(modules, ", ")).CombinedOutput()
		}
	}
	if err != nil {
		testsvc.Require(t, fmt.Errorf("%w: %s with %s not importable by %s (apt-get install %s): %v %s",
			testsvc.ErrMissing, pkg, strings.Join(modules, ", "), debianPython, pkg, err, out))
	}
}

// runSlixmpp runs testdata/SCRIPT with args as JSON, after adding the
// server's c2s host, port and CA file, and calls onLine with each line it
// prints. It returns the lines joined by " | ", the script's log (stderr)
// and how the script exited.
func runSlixmpp(t *testing.T, srv *server, script string, args map[string]any, onLine func(line string)) (out, log string, err error) {
	t.Helper()
	host, port, _ := net.SplitHostPort(srv.c2s)
	args["host"] = host
	args["port"], _ = strconv.Atoi(port)
	args["ca_file"] = filepath.Join(srv.dir, "tls", "cert.pem")
	js, _ := json.Marshal(args)
	cmd := exec.Command(debianPython, filepath.Join("testdata", script), string(js))
	var stderr syncBuffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var lines []string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		onLine(sc.Text())
	}
	err = cmd.Wait()
	return strings.Join(lines, " | "), stderr.String(), err
}
