package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/koi-im/koi/tools/koi-bench/internal/load"
	"github.com/koi-im/koi/tools/koi-bench/internal/report"
)

// TestAgainstKoi runs every mode of the tool, with tiny numbers, against a
// real koi (built from this tree) so that koi-bench keeps working.
func TestAgainstKoi(t *testing.T) {
	bin := buildAll(t)
	dir := t.TempDir()
	plain, starttls, direct, pprofAddr := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	cfg := filepath.Join(dir, "koi.hcl")
	writeFile(t, cfg, fmt.Sprintf(`
log { level = "debug" }
listen "plain"    { type = "c2s"      address = %q  starttls = "disabled" }
listen "starttls" { type = "c2s"      address = %q  starttls = "required" }
listen "direct"   { type = "c2s_tls"  address = %q }
tls { cert_file = "%[5]s/tls/cert.pem"  key_file = "%[5]s/tls/key.pem" }
plugin "store" {
  command = %[4]q
  config  = { driver = "sqlite"  dsn = "%[5]s/koi.db" }
}
host "localhost" {
  auth = "store"  roster = "store"  offline = "store"  tokens = "store"  pubsub = "store"
  registration = true
}
# A long keepalive interval keeps whitespace out of this short test.
limits { auth_failures_per_ip = 0  auth_failures_per_account = 0  connections_per_ip = 0  logins_per_ip = 0  keepalive_interval = "10m" }
server { data_dir = "%[5]s/data"  pprof = %[6]q  shutdown_timeout = "2s" }
`, plain, starttls, direct, filepath.Join(bin, "plugins", "koi-backend-sql"), dir, pprofAddr))
	pid := startKoi(t, bin, cfg, dir, plain)

	kb := filepath.Join(bin, "koi-bench")
	jsonOf := func(name string) string { return filepath.Join(dir, name+".json") }
	run := func(name string, args ...string) report.Result {
		t.Helper()
		args = append(args, "-q", "-domain", "localhost", "-json", jsonOf(name), "-pid", fmt.Sprint(pid))
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, kb, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("koi-bench %s: %v\n%s\nkoi log:\n%s", strings.Join(args, " "), err, out, readFile(t, filepath.Join(dir, "koi.log")))
		}
		res, err := report.ReadJSON(jsonOf(name))
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("koi-bench %s:\n%s", args[0], out)
		return res
	}

	reg := run("register", "register", "-addr", plain, "-users", "12", "-c", "3").(*load.RegisterResult)
	if reg.Created+reg.Existed != 12 || reg.Errors != 0 {
		t.Errorf("register: %+v", reg)
	}
	kc := run("koictl", "register", "-addr", plain, "-from", "12", "-users", "2", "-c", "2",
		"-koictl", filepath.Join(bin, "koictl")+" -config "+cfg).(*load.RegisterResult)
	if kc.Created != 2 || kc.Via != "koictl" {
		t.Errorf("register with koictl: %+v", kc)
	}

	idle := run("idle", "idle", "-addr", direct, "-tls", "direct", "-n", "10", "-c", "4", "-settle", "200ms",
		"-pprof", "http://"+pprofAddr).(*load.IdleResult)
	if idle.Opened != 10 || idle.Alive != 10 || !idle.TLS || idle.ServerAfter.RSS == 0 || idle.HeapPerSessionKiB == 0 {
		t.Errorf("idle: %+v", idle)
	}

	for _, c := range []struct{ name, addr, tls, mech string }{
		{"login-scram", plain, "none", "SCRAM-SHA-1"},
		{"login-starttls", starttls, "starttls", "SCRAM-SHA-256"},
		{"login-plain", direct, "direct", "PLAIN"},
		{"login-fast", direct, "direct", "HT-SHA-256-NONE"},
	} {
		l := run(c.name, "login", "-addr", c.addr, "-tls", c.tls, "-mech", c.mech, "-c", "2", "-users", "4",
			"-warmup", "100ms", "-duration", "700ms").(*load.LoginResult)
		if l.Logins == 0 || l.Errors != 0 || l.Mechanism != c.mech || l.TLS != (c.tls != "none") || l.Latency.P50 <= 0 {
			t.Errorf("%s: %+v", c.name, l)
		}
		if strings.HasPrefix(c.mech, "SCRAM") && l.Iterations < 4096 {
			t.Errorf("%s: SCRAM iterations %d", c.name, l.Iterations)
		}
	}

	for _, c := range []struct {
		name string
		args []string
	}{
		{"msg-max", []string{"-window", "4", "-batch", "2"}},
		{"msg-rate", []string{"-rate", "200", "-bare=false"}},
	} {
		args := append([]string{"msg", "-addr", plain, "-pairs", "3", "-warmup", "200ms", "-duration", "1s", "-drain", "2s"}, c.args...)
		m := run(c.name, args...).(*load.MsgResult)
		if m.Delivered == 0 || m.Lost != 0 || m.Duplicated != 0 || m.OutOfOrder != 0 || m.Bounced != 0 || m.Errors != 0 || m.Received != m.Sent {
			t.Errorf("%s: %+v", c.name, m)
		}
		if m.Rate > 0 && (m.PerSecond < 150 || m.PerSecond > 250) {
			t.Errorf("%s: %.0f msgs/s at a rate of 200", c.name, m.PerSecond)
		}
	}

	// The storm in a generator process (the default) and in this one.
	for _, proc := range []string{"true", "false"} {
		st := run("storm-"+proc, "storm", "-addr", direct, "-tls", "direct", "-pairs", "2", "-rate", "50",
			"-logins", "12", "-storm-c", "3", "-storm-users", "4", "-storm-proc="+proc,
			"-warmup", "100ms", "-duration", "1s", "-drain", "2s").(*load.StormResult)
		if st.StormLogins != 12 || st.StormFailed != 0 || st.StormLatency.Count != 12 || st.Lost != 0 || st.Delivered == 0 {
			t.Errorf("storm with -storm-proc=%s: %+v", proc, st)
		}
	}

	// Fan-out: a room of 6 (2 sending) and a publisher with 5 contacts,
	// unbounded and at a rate. The pep runs twice: the second finds the
	// subscriptions made by the first.
	for _, c := range []struct {
		name string
		args []string
		want uint64 // receivers
	}{
		{"muc-max", []string{"muc", "-occupants", "6", "-senders", "2"}, 6},
		{"muc-rate", []string{"muc", "-occupants", "6", "-senders", "2", "-rate", "100"}, 6},
		{"pep-max", []string{"pep", "-offset", "6", "-contacts", "5"}, 5},
		{"pep-rate", []string{"pep", "-offset", "6", "-contacts", "5", "-rate", "50"}, 5},
	} {
		args := append(c.args, "-addr", plain, "-c", "3", "-warmup", "200ms", "-duration", "1s", "-drain", "2s")
		f := run(c.name, args...).(*load.FanResult)
		if f.Delivered == 0 || f.Lost != 0 || f.Duplicated != 0 || f.OutOfOrder != 0 || f.Bounced != 0 || f.Errors != 0 ||
			f.Received != f.Sent*c.want || f.Latency.P99 <= 0 {
			t.Errorf("%s: %+v", c.name, f)
		}
		if f.Rate > 0 && (f.SentPerSecond < 0.75*f.Rate || f.SentPerSecond > 1.25*f.Rate) {
			t.Errorf("%s: sent %.0f/s at a rate of %.0f", c.name, f.SentPerSecond, f.Rate)
		}
	}

	var files []string
	for _, n := range []string{"register", "idle", "login-scram", "login-plain", "msg-max", "msg-rate", "muc-max", "pep-max"} {
		files = append(files, jsonOf(n))
	}
	out, err := exec.Command(kb, append([]string{"report"}, files...)...).CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("verdict")) || !bytes.Contains(out, []byte("PBKDF2 ceiling")) {
		t.Errorf("report: %v\n%s", err, out)
	}
}

func TestBadUse(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"nonsense"},
		{"msg", "-tls", "sometimes"},
		{"login", "-mech", "DIGEST-MD5"},
		{"idle", "-c", "0"},
		{"msg", "-src", "10.0.0.9-10.0.0.1"},
		{"report"},
		{"report", "/does/not/exist.json"},
		{"login", "extra"},
		{"muc", "-senders", "0"},
		{"muc", "-occupants", "2", "-senders", "3"},
		{"pep", "-contacts", "0"},
		{"pep", "-rate", "-1"},
	} {
		var out bytes.Buffer
		if err := run(t.Context(), args, &out, &out); err == nil {
			t.Errorf("koi-bench %q: no error", args)
		}
	}
	// Nothing listens: a clear error, quickly.
	var out bytes.Buffer
	err := run(t.Context(), []string{"login", "-q", "-addr", freeAddr(t), "-users", "1", "-c", "1", "-duration", "100ms"}, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "connect") {
		t.Errorf("login against nothing: %v", err)
	}
}

func buildAll(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	for _, b := range [][2]string{
		{"koi", "./core/cmd/koi"},
		{"koictl", "./core/cmd/koictl"},
		{"plugins/koi-backend-sql", "./plugins/sql/cmd/koi-backend-sql"},
		{"koi-bench", "./tools/koi-bench"},
	} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(bin, b[0]), b[1])
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", b[1], err, out)
		}
	}
	return bin
}

func startKoi(t *testing.T, bin, cfg, dir, addr string) int {
	t.Helper()
	logf, err := os.Create(filepath.Join(dir, "koi.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(bin, "koi"), "-config", cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if bytes.Contains([]byte(readFile(t, filepath.Join(dir, "koi.log"))), []byte("koi is ready")) {
			if c, err := net.Dial("tcp", addr); err == nil {
				c.Close()
				return cmd.Process.Pid
			}
		}
		select {
		case <-exited:
			t.Fatalf("koi exited at start:\n%s", readFile(t, filepath.Join(dir, "koi.log")))
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("koi did not start:\n%s", readFile(t, filepath.Join(dir, "koi.log")))
	return 0
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func writeFile(t *testing.T, name, s string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, _ := os.ReadFile(name)
	return string(b)
}

func TestSources(t *testing.T) {
	for _, c := range []struct {
		spec, addr string
		want       int
		bad        bool
	}{
		{"auto", "127.0.0.1:5222", 16, false},
		{"auto", "192.0.2.1:5222", 0, false},
		{"none", "127.0.0.1:5222", 0, false},
		{"127.0.0.1-127.0.0.4", "x:1", 4, false},
		{"10.0.0.1,10.0.0.2", "x:1", 2, false},
		{"127.0.0.4-127.0.0.1", "x:1", 0, true},
		{"127.0.0.1-127.0.1.1", "x:1", 0, true},
		{"nonsense", "x:1", 0, true},
	} {
		got, err := sources(c.spec, c.addr)
		if (err != nil) != c.bad || len(got) != c.want {
			t.Errorf("sources(%q, %q) = %v, %v", c.spec, c.addr, got, err)
		}
	}
}
