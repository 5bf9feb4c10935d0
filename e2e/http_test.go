package e2e

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"

	"mellium.im/sasl"
)

// The http plugin end to end: koi keeps rosters and archives, and the
// accounts of one host, in the reference REST service
// (examples/rest-backend), started as its own process with a bearer token
// and HMAC-signed requests.

var httpBins struct {
	once            sync.Once
	plugin, service string
	err             error
}

// httpBinaries builds the http plugin and the reference service, once.
func httpBinaries(t testing.TB) (plugin, service string) {
	t.Helper()
	httpBins.once.Do(func() {
		root, err := filepath.Abs("..")
		if err != nil {
			httpBins.err = err
			return
		}
		httpBins.plugin = filepath.Join(binDir, "plugins", "koi-backend-http")
		httpBins.service = filepath.Join(binDir, "rest-backend")
		for _, b := range [][2]string{
			{httpBins.plugin, "./plugins/http/cmd/koi-backend-http"},
			{httpBins.service, "./examples/rest-backend"},
		} {
			cmd := exec.Command("go", "build", "-o", b[0], b[1])
			cmd.Dir = root
			if out, err := cmd.CombinedOutput(); err != nil {
				httpBins.err = fmt.Errorf("go build %s: %w\n%s", b[1], err, out)
				return
			}
		}
	})
	if httpBins.err != nil {
		t.Fatal(httpBins.err)
	}
	return httpBins.plugin, httpBins.service
}

const (
	restToken  = "e2e-token"
	restSecret = "e2e-secret"
)

// restService is the reference service running for one test.
type restService struct {
	bin, addr, db string
	url           string
	cmd           *exec.Cmd
	exited        chan struct{}
	log           *syncBuffer
}

func startRestService(t *testing.T, bin string) *restService {
	t.Helper()
	s := &restService{bin: bin, addr: freeAddr(t), db: filepath.Join(t.TempDir(), "rest.db"), log: &syncBuffer{}}
	s.url = "http://" + s.addr
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("rest-backend log:\n%s", s.log.String())
		}
	})
	s.start(t)
	return s
}

// start runs the service on its address and database and waits until it
// listens: the first time, or again after stop.
func (s *restService) start(t *testing.T) {
	t.Helper()
	cmd := exec.Command(s.bin, "-listen", s.addr, "-db", s.db, "-token", restToken, "-hmac-secret", restSecret)
	cmd.Stdout, cmd.Stderr = s.log, s.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	s.cmd, s.exited = cmd, exited
	go func() {
		cmd.Wait()
		close(exited)
	}()
	deadline := time.Now().Add(startTimeout)
	for {
		c, err := net.DialTimeout("tcp", s.addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("rest-backend does not listen on %s: %v", s.addr, err)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// stop ends the service (SIGTERM, then SIGKILL after 5 s); it may be
// called again.
func (s *restService) stop() {
	select {
	case <-s.exited:
		return
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
	}
}

// restConfig is the koi config of every test of the http plugin: the
// sql plugin "store" and the http plugin "api" (auth, roster and archive
// in the reference service, bearer token and HMAC), with what each test
// adds in a restSetup.
var restConfig = template.Must(template.New("rest").Parse(`# koi e2e http plugin config
log { level = "debug"  format = "text" }
listen "c2s"     { address = "{{.C2S}}"  starttls = "required" }
listen "c2s_tls" { address = "{{.C2STLS}}" }
tls { cert_file = "{{.Dir}}/tls/cert.pem"  key_file = "{{.Dir}}/tls/key.pem" }

plugin "store" {
  command = "{{.SQL}}"
  config  = { driver = "sqlite"  dsn = "{{.Dir}}/koi.db" }
}

plugin "api" {
  command = "{{.HTTP}}"
  config  = {
    base_url = "{{.URL}}"
    features = ["auth", "roster", "archive"]
    token = "{{.Token}}"
    hmac_secret = "{{.Secret}}"
{{.Setup.API}}
  }
}
{{.Setup.Hosts}}
# The fault tests log in many times a second from one address.
limits {
  auth_failures_per_ip = 0
  auth_failures_per_account = 0
  connections_per_ip = 0
  logins_per_ip = 0
}

server { shutdown_timeout = "10s"  data_dir = "{{.Dir}}/data" }
`))

// restSetup is what one test puts into restConfig: more keys of the api
// plugin's config block, and the host blocks.
type restSetup struct{ API, Hosts string }

// pluginSetup: the accounts of localhost stay in SQLite (the MAM checks
// log in with SCRAM, which the HTTP auth contract cannot serve);
// example.test has its accounts in the service too.
var pluginSetup = restSetup{
	API: `    archive_full_text = true
    retries = 1
    breaker_failures = 3`,
	Hosts: `
host "localhost" {
  auth    = "store"
  roster  = "api"
  archive = "api"
  offline = "store"
  vcard   = "store"
  private = "store"
  registration = true
}

host "example.test" {
  auth    = "api"
  roster  = "api"
  offline = "store"
}
`,
}

// restKoi starts a reference service and a koi on restConfig with setup.
func restKoi(t *testing.T, setup restSetup) (*server, *restService) {
	t.Helper()
	plugin, service := httpBinaries(t)
	rest := startRestService(t, service)
	dir := t.TempDir()
	c2s, c2sTLS := freeAddr(t), freeAddr(t)
	var b bytes.Buffer
	err := restConfig.Execute(&b, map[string]any{
		"C2S": c2s, "C2STLS": c2sTLS, "Dir": dir, "SQL": pluginBin(), "HTTP": plugin,
		"URL": rest.url, "Token": restToken, "Secret": restSecret, "Setup": setup,
	})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "koi.hcl")
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return launch(t, dir, path, c2s, c2sTLS, options{}, nil), rest
}

func TestHTTPPlugin(t *testing.T) {
	t.Parallel()
	s, rest := restKoi(t, pluginSetup)

	t.Run("archive and roster in the service", func(t *testing.T) { testMAM(t, s) })

	const host = "example.test"
	plain := dialOpts{addr: s.c2s, tls: s.tlsConfig(t, host), mechs: []sasl.Mechanism{sasl.Plain}}
	saslResult := func(t *testing.T, user, password string) string {
		t.Helper()
		r := dialRaw(t, s.c2s, nil)
		r.open(host)
		r.startTLS(host, s.tlsConfig(t, host))
		if el := r.auth(sasl.Plain, user, password); !el.is(nsSASL, "success") {
			return saslCondition(el)
		}
		return "success"
	}

	t.Run("accounts in the service", func(t *testing.T) {
		s.addUser(t, "romeo@"+host, "montague")
		s.addUser(t, "juliet@"+host, "capulet")
		if out, err := s.koictl("user", "add", "romeo@"+host, "again"); err == nil {
			t.Errorf("koictl user add of an existing user succeeded: %s", out)
		}
		if got := saslResult(t, "romeo", "capulet"); got != "not-authorized" {
			t.Errorf("a wrong password: %s, want not-authorized", got)
		}
		if got := saslResult(t, "nobody", "x"); got != "not-authorized" {
			t.Errorf("an unknown user: %s, want not-authorized", got)
		}
		romeo := login(t, plain, "romeo@"+host+"/pc", "montague")
		r := romeo.iq("<iq type='set'><query xmlns='jabber:iq:roster'><item jid='juliet@" + host + "' name='Juliet'><group>Verona</group></item></query></iq>")
		if r.attr("type") != "result" {
			t.Fatalf("roster set: %s", r)
		}
		romeo.close()
		romeo = login(t, plain, "romeo@"+host+"/phone", "montague")
		want := []string{"juliet@" + host + "|Juliet|none|Verona"}
		if got := rosterItems(t, romeo); !slices.Equal(got, want) {
			t.Errorf("roster after a new login: %q, want %q", got, want)
		}
		if out, err := s.koictl("user", "passwd", "romeo@"+host, "verona"); err != nil {
			t.Fatalf("koictl user passwd: %v\n%s", err, out)
		}
		login(t, plain, "romeo@"+host+"/new", "verona")
	})

	t.Run("service down", func(t *testing.T) {
		rest.stop()
		for range 4 { // through the breaker opening, and after it
			if got := saslResult(t, "romeo", "verona"); got != "temporary-auth-failure" {
				t.Errorf("login with the service down: %s, want temporary-auth-failure", got)
			}
		}
	})
}
