package e2e

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/koi-im/koi/e2e/internal/koiproc"
)

// Timeouts of the harness. Generous: the machine may be busy with other
// tests running in parallel.
const (
	startTimeout = 30 * time.Second // koi up and listening
	stopTimeout  = 8 * time.Second  // koi gone after SIGTERM
	waitTimeout  = 5 * time.Second  // one expected stanza
)

// options shape the config of one test server.
type options struct {
	StartTLS               string // c2s listener: required (default), optional, disabled
	C2SExtra               string // more keys of the c2s listener, e.g. keepalive = "ping"
	MaxStanzaSize          int    // limits.max_stanza_size
	AuthFailuresPerIP      int    // limits.auth_failures_per_ip
	AuthFailuresPerAccount int    // limits.auth_failures_per_account
	ConnectionsPerIP       int    // limits.connections_per_ip
	LoginsPerIP            int    // limits.logins_per_ip
	HandshakeConcurrency   int    // limits.handshake_concurrency (0: koi's default)
	HandshakeQueue         string // limits.handshake_queue ("": koi's default)
	IdleTimeout            string // limits.idle_timeout ("": koi's default)
	RegistrationLocalhost  bool   // host "localhost".registration
	RegistrationSecond     bool   // host "example.test".registration
	PluginCommand          string // plugin "store".command; default the built plugin
	PluginReattach         string // a reattach = { … } line for plugin "store"
	// WebSocket, when set, adds listen "websocket" on this address (the
	// test picks it with freeAddr and waits for it with waitListening).
	WebSocket    string
	WebSocketTLS bool // the websocket listener serves wss
	// WebSocketExtra is more keys of the websocket listener.
	WebSocketExtra string
	// Push is the body of a push { } block (XEP-0357 settings); "" leaves
	// the block out, so the defaults hold.
	Push string
	// ResumeTimeout, when set, is stream_management.resume_timeout.
	ResumeTimeout string
	// TokenLifetime is host "localhost".token_lifetime; "" keeps the
	// default. localhost stores FAST tokens, example.test does not.
	TokenLifetime string
	// Metrics, when set, is metrics.address (Prometheus /metrics).
	Metrics string
	// Upload, when set, is the body of host "localhost"'s upload { }
	// block (XEP-0363).
	Upload string
	// Extra is more config, added verbatim at the end (component blocks
	// and their listener, say).
	Extra string
	// MUCStore keeps host "localhost"'s persistent chat rooms in plugin
	// "store" (muc = "store").
	MUCStore bool
	// Archive keeps host "localhost"'s message archives (and its rooms')
	// in plugin "store".
	Archive bool
	// MUC is the body of a muc { } block; "" leaves the block out.
	MUC string
}

func defaultOptions() options {
	return options{
		StartTLS:               "required",
		MaxStanzaSize:          8192,
		AuthFailuresPerIP:      1000,
		AuthFailuresPerAccount: 1000,
		ConnectionsPerIP:       1000,
		LoginsPerIP:            1000,
		RegistrationSecond:     true,
	}
}

// The second virtual host every test server serves.
const secondHost = "example.test"

var configTemplate = template.Must(template.New("config").Parse(`# koi e2e test config
log { level = "debug"  format = "text" }

listen "c2s"     { address = "{{.C2S}}"  starttls = "{{.Opt.StartTLS}}"  {{.Opt.C2SExtra}} }
listen "c2s_tls" { address = "{{.C2STLS}}" }
{{- if .Opt.WebSocket}}
listen "websocket" { address = "{{.Opt.WebSocket}}"  tls = {{.Opt.WebSocketTLS}}  {{.Opt.WebSocketExtra}} }
{{- end}}

tls { cert_file = "{{.Dir}}/tls/cert.pem"  key_file = "{{.Dir}}/tls/key.pem" }

plugin "store" {
  command = "{{.Plugin}}"
  config  = { driver = "sqlite"  dsn = "{{.Dir}}/koi.db" }
{{- if .Opt.PluginReattach}}
  {{.Opt.PluginReattach}}
{{- end}}
}

host "localhost" {
  auth    = "store"
  roster  = "store"
  offline = "store"
  vcard   = "store"
  private = "store"
  blocklist = "store"
  tokens  = "store"
{{- if .Opt.MUCStore}}
  muc     = "store"
{{- end}}
{{- if .Opt.Archive}}
  archive = "store"
{{- end}}
  pubsub  = "store"
{{- if .Opt.TokenLifetime}}
  token_lifetime = "{{.Opt.TokenLifetime}}"
{{- end}}
  registration = {{.Opt.RegistrationLocalhost}}
  admins = ["admin@localhost"]
{{- if .Opt.Upload}}
  upload { {{.Opt.Upload}} }
{{- end}}
}

host "example.test" {
  auth    = "store"
  roster  = "store"
  offline = "store"
  vcard   = "store"
  private = "store"
  blocklist = "store"
  registration = {{.Opt.RegistrationSecond}}
}

limits {
  max_stanza_size = {{.Opt.MaxStanzaSize}}
  auth_failures_per_ip = {{.Opt.AuthFailuresPerIP}}
  auth_failures_per_account = {{.Opt.AuthFailuresPerAccount}}
  connections_per_ip = {{.Opt.ConnectionsPerIP}}
  logins_per_ip = {{.Opt.LoginsPerIP}}
  {{- if .Opt.HandshakeConcurrency}}
  handshake_concurrency = {{.Opt.HandshakeConcurrency}}
  {{- end}}
  {{- if .Opt.HandshakeQueue}}
  handshake_queue = {{.Opt.HandshakeQueue}}
  {{- end}}
  {{- if .Opt.IdleTimeout}}
  idle_timeout = "{{.Opt.IdleTimeout}}"
  {{- end}}
}

{{- if .Opt.ResumeTimeout}}
stream_management { resume_timeout = "{{.Opt.ResumeTimeout}}" }
{{- end}}

server { shutdown_timeout = "5s"  data_dir = "{{.Dir}}/data" }
{{- if .Opt.Push}}

push { {{.Opt.Push}} }
{{- end}}
{{- if .Opt.Metrics}}

metrics { address = "{{.Opt.Metrics}}" }
{{- end}}
{{- if .Opt.Extra}}

{{.Opt.Extra}}
{{- end}}
{{- if .Opt.MUC}}

muc { {{.Opt.MUC}} }
{{- end}}
`))

// server is one koi process started for a test.
type server struct {
	t       testing.TB
	dir     string
	config  string // path of the config file
	c2s     string // STARTTLS listener address
	c2sTLS  string // direct TLS listener address
	opt     options
	cmd     *exec.Cmd
	log     *syncBuffer // koi's stderr and stdout
	exited  chan struct{}
	waitErr error // valid once exited is closed
	stopped bool
}

// syncBuffer is a bytes.Buffer safe for a writer and concurrent readers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// freeAddr returns a 127.0.0.1 address with a port that was free a moment
// ago and not handed out before.
func freeAddr(t testing.TB) string {
	t.Helper()
	addr, err := koiproc.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// writeConfig renders the config for opt into dir and returns its path and
// the two listener addresses.
func writeConfig(t testing.TB, dir string, opt options) (path, c2s, c2sTLS string) {
	t.Helper()
	c2s, c2sTLS = freeAddr(t), freeAddr(t)
	plugin := opt.PluginCommand
	if plugin == "" {
		plugin = pluginBin()
	}
	var b bytes.Buffer
	err := configTemplate.Execute(&b, map[string]any{
		"C2S": c2s, "C2STLS": c2sTLS, "Dir": dir, "Plugin": plugin, "Opt": opt,
	})
	if err != nil {
		t.Fatalf("rendering the config: %v", err)
	}
	path = filepath.Join(dir, "koi.hcl")
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, c2s, c2sTLS
}

// startServer writes a config, starts koi and waits until both listeners
// accept connections. At cleanup koi is stopped with SIGTERM and must exit
// with status 0; if the test failed, koi's log is printed.
func startServer(t *testing.T, opt options) *server {
	t.Helper()
	dir := t.TempDir()
	path, c2s, c2sTLS := writeConfig(t, dir, opt)
	return launch(t, dir, path, c2s, c2sTLS, opt, nil)
}

// launch starts koi on the config at path, with env added to its
// environment, and waits until both listeners accept connections. At
// cleanup koi is stopped with SIGTERM and must exit with status 0; if the
// test failed (or E2E_KOI_LOG is set), koi's log is printed.
func launch(tb testing.TB, dir, path, c2s, c2sTLS string, opt options, env []string) *server {
	tb.Helper()
	s := &server{
		t: tb, dir: dir, config: path, c2s: c2s, c2sTLS: c2sTLS, opt: opt,
		log: &syncBuffer{}, exited: make(chan struct{}),
	}
	s.cmd = exec.Command(koiBin(), "-config", path)
	s.cmd.Env = append(koiproc.ChildEnv(), env...)
	s.cmd.Stderr = s.log
	s.cmd.Stdout = s.log
	if err := s.cmd.Start(); err != nil {
		tb.Fatalf("starting koi: %v", err)
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.exited)
	}()
	tb.Cleanup(func() {
		if !s.stopped {
			s.stop(tb)
		}
		select {
		case <-s.exited:
		default:
			s.cmd.Process.Kill()
			<-s.exited
		}
		if tb.Failed() || os.Getenv("E2E_KOI_LOG") != "" {
			tb.Logf("koi log:\n%s", s.log.String())
		}
	})
	for _, addr := range []string{c2s, c2sTLS} {
		s.waitListening(tb, addr)
	}
	return s
}

func (s *server) waitListening(t testing.TB, addr string) {
	t.Helper()
	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-s.exited:
			t.Fatalf("koi exited before listening on %s: %v", addr, s.waitErr)
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("koi does not listen on %s after %v: %v", addr, startTimeout, err)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// stop sends SIGTERM and checks that koi exits with status 0 in time.
func (s *server) stop(t testing.TB) {
	t.Helper()
	s.stopped = true
	select {
	case <-s.exited:
		t.Errorf("koi had already exited: %v", s.waitErr)
		return
	default:
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Errorf("SIGTERM: %v", err)
	}
	select {
	case <-s.exited:
		if s.waitErr != nil {
			t.Errorf("koi exited after SIGTERM with %v, want status 0", s.waitErr)
		}
	case <-time.After(stopTimeout):
		t.Errorf("koi still running %v after SIGTERM", stopTimeout)
		s.cmd.Process.Kill()
		<-s.exited
	}
}

// koictl runs koictl against this server's config and returns its output.
func (s *server) koictl(args ...string) (string, error) {
	cmd := exec.Command(koictlBin(), append([]string{"-config", s.config}, args...)...)
	cmd.Env = koiproc.ChildEnv()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// addUser creates an account with koictl.
func (s *server) addUser(t testing.TB, jid, password string) {
	t.Helper()
	out, err := s.koictl("user", "add", jid, password)
	if err != nil {
		t.Fatalf("koictl user add %s: %v\n%s", jid, err, out)
	}
}

// tlsConfig trusts the certificate koi created for itself and checks it
// for serverName.
func (s *server) tlsConfig(t testing.TB, serverName string) *tls.Config {
	t.Helper()
	pemBytes, err := os.ReadFile(filepath.Join(s.dir, "tls", "cert.pem"))
	if err != nil {
		t.Fatalf("reading koi's certificate: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		t.Fatalf("no certificate in %s", filepath.Join(s.dir, "tls", "cert.pem"))
	}
	return &tls.Config{RootCAs: pool, ServerName: serverName, MinVersion: tls.VersionTLS12}
}

// pluginPIDs returns the PIDs of koi's children running the SQL plugin,
// found through /proc: the parent PID in stat, the binary in cmdline.
func (s *server) pluginPIDs(t testing.TB) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatalf("reading /proc: %v", err)
	}
	var pids []int
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil || fmt.Sprint(pid) != e.Name() {
			continue
		}
		ppid, state, err := procStat(pid)
		if err != nil || ppid != s.cmd.Process.Pid || state == "Z" {
			continue
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		if strings.Contains(string(cmdline), "koi-backend-sql") {
			pids = append(pids, pid)
		}
	}
	return pids
}

// procStat reads the parent PID and the state of pid from /proc/PID/stat.
// The command name in parentheses may hold spaces and parentheses, so the
// fields are counted from the last ')'.
func procStat(pid int) (ppid int, state string, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, "", err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, "", errors.New("malformed stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0, "", errors.New("malformed stat")
	}
	_, err = fmt.Sscanf(f[1], "%d", &ppid)
	return ppid, f[0], err
}

// processGone reports whether pid no longer runs (gone or a zombie).
func processGone(pid int) bool {
	_, state, err := procStat(pid)
	return err != nil || state == "Z"
}
