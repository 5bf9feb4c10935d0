package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// debianPython is the interpreter that has Debian's python3-slixmpp (the
// pyenv python3 on PATH does not).
const debianPython = "/usr/bin/python3"

// needSlixmpp skips the test, or fails it under CI, unless the slixmpp
// plugin module (like "xep_0045") can be imported.
func needSlixmpp(t *testing.T, plugin string) {
	t.Helper()
	if out, err := exec.Command(debianPython, "-c", "import slixmpp.plugins."+plugin).CombinedOutput(); err != nil {
		msg := fmt.Sprintf("python3-slixmpp with %s not importable by %s (apt-get install python3-slixmpp): %v %s", plugin, debianPython, err, out)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

// runSlixmpp runs testdata/SCRIPT with args as JSON, after adding the
// server's c2s host, port and CA file, and calls onLine with each line it
// prints. It returns the lines joined by " | ", how the script exited,
// and its log (stderr).
func runSlixmpp(t *testing.T, srv *server, script string, args map[string]any, onLine func(line string)) (out string, err error, log string) {
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
	return strings.Join(lines, " | "), err, stderr.String()
}
