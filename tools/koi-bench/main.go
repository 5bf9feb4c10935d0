// Command koi-bench is a load generator for XMPP servers: it holds idle
// sessions and reports the server's memory per session, measures login
// rate and latency, and message throughput and latency between pairs of
// online users, counting lost, duplicated and out-of-order messages. It
// speaks plain RFC 6120 over TCP (STARTTLS or direct TLS optional, SASL
// PLAIN or SCRAM), so it works against any XMPP server, not only koi.
//
//	koi-bench register -addr 127.0.0.1:5222 -domain localhost -users 1000
//	koi-bench idle     -addr 127.0.0.1:5222 -domain localhost -pid 1234 -n 15000
//	koi-bench login    -addr 127.0.0.1:5222 -domain localhost -mech SCRAM-SHA-1 -c 50
//	koi-bench msg      -addr 127.0.0.1:5222 -domain localhost -pairs 500 [-rate 5000]
//	koi-bench muc      -addr 127.0.0.1:5222 -domain localhost -occupants 500 -senders 5
//	koi-bench pep      -addr 127.0.0.1:5222 -domain localhost -contacts 500
//	koi-bench storm    -addr 127.0.0.1:5223 -tls direct -pairs 50 -rate 1000 -logins 2000 -storm-c 500
//	koi-bench report   results/*.json
//	koi-bench relay    -listen 127.0.0.1:5299 & koi-bench floor -addr 127.0.0.1:5299 -pairs 500 -rate 5000
//
// Run "koi-bench MODE -h" for the flags of a mode.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
	"runtime/trace"
	"strings"
	"syscall"
	"time"

	"github.com/koi-im/koi/tools/koi-bench/internal/client"
	"github.com/koi-im/koi/tools/koi-bench/internal/load"
	"github.com/koi-im/koi/tools/koi-bench/internal/measure"
	"github.com/koi-im/koi/tools/koi-bench/internal/report"
)

const usage = `usage: koi-bench MODE [flags]

modes:
  register  create the benchmark users (in-band registration or koictl)
  idle      hold N idle sessions; report the server's memory per session (-pid)
  login     login rate and latency at a given concurrency
  msg       message throughput (unbounded) or latency at a fixed -rate between pairs
  muc       groupchat fan-out: N occupants of one room, a few of them sending
  pep       PEP fan-out: one publisher, N contacts notified through caps +notify
  storm     message latency between established pairs during a storm of logins
  storm-gen the storm's logins, as storm runs them in a second process (internal)
  report    summarise result files (-json of the other modes) against koi's budget
  relay     copy bytes between paired connections: the server side of floor
  floor     msg's fixed-rate latency through relay, with no XMPP: the machine's floor

Run "koi-bench MODE -h" for the flags of a mode.`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "koi-bench:", err)
		}
		os.Exit(1)
	}
}

// common holds the flags every load mode takes.
type common struct {
	addr, domain, tlsMode, mech string
	verify                      bool
	caFile                      string
	prefix, password            string
	pid                         int
	pprof, profileDir           string
	jsonFile, label             string
	quiet                       bool
	src                         string
	timeout                     time.Duration
	cpuProfile, traceFile       string
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.addr, "addr", "127.0.0.1:5222", "server `host:port`")
	fs.StringVar(&c.domain, "domain", "localhost", "XMPP domain of the users")
	fs.StringVar(&c.tlsMode, "tls", client.TLSAuto, "auto (STARTTLS when offered), none, starttls or direct (TLS from the first byte)")
	fs.StringVar(&c.mech, "mech", "", "SASL mechanism: PLAIN, SCRAM-SHA-1, SCRAM-SHA-256 or HT-SHA-256-NONE (FAST: SASL2 and Bind 2 with a token got by one SCRAM-SHA-256 login per user; needs TLS and host tokens) (default: the best offered)")
	fs.BoolVar(&c.verify, "verify", false, "verify the server's certificate (default: accept any, benchmarks run on self-signed ones)")
	fs.StringVar(&c.caFile, "ca", "", "PEM `file` of CA certificates to verify the server with (implies -verify)")
	fs.StringVar(&c.prefix, "user-prefix", "kb", "users are PREFIX0, PREFIX1, ...")
	fs.StringVar(&c.password, "password", "koi-bench-secret", "password of every benchmark user")
	fs.IntVar(&c.pid, "pid", 0, "`PID` of the server, to read its CPU time and memory (and its children's, e.g. koi's plugins)")
	fs.StringVar(&c.pprof, "pprof", "", "`URL` of the server's Go profiler (koi: server.pprof), e.g. http://127.0.0.1:6060")
	fs.StringVar(&c.profileDir, "profile-dir", "", "save server profiles taken with -pprof in `dir`")
	fs.StringVar(&c.jsonFile, "json", "", "also write the result as JSON to `file`")
	fs.StringVar(&c.label, "label", "", "name of this run in tables")
	fs.BoolVar(&c.quiet, "q", false, "no progress lines on stderr")
	fs.StringVar(&c.src, "src", "auto", "local addresses to connect from, to get past one address's ephemeral ports: auto (127.0.0.1-127.0.0.16 for a loopback server), none, a list a,b,c or a range 127.0.0.1-127.0.0.8")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "limit of one login")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write koi-bench's own CPU profile to `file` (to see what the tool costs)")
	fs.StringVar(&c.traceFile, "trace", "", "write koi-bench's own execution trace to `file`")
}

// selfProfile starts the tool's own CPU profile and trace, if asked for.
func (c *common) selfProfile() (stop func(), err error) {
	var stops []func()
	stop = func() {
		for _, s := range stops {
			s()
		}
	}
	if c.cpuProfile != "" {
		f, err := os.Create(c.cpuProfile)
		if err != nil {
			return stop, err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return stop, err
		}
		stops = append(stops, func() { pprof.StopCPUProfile(); f.Close() })
	}
	if c.traceFile != "" {
		f, err := os.Create(c.traceFile)
		if err != nil {
			return stop, err
		}
		if err := trace.Start(f); err != nil {
			f.Close()
			return stop, err
		}
		stops = append(stops, func() { trace.Stop(); f.Close() })
	}
	return stop, nil
}

func (c *common) env(stderr io.Writer, readBuffer int) (*load.Env, error) {
	var tc *tls.Config
	if c.verify || c.caFile != "" {
		tc = &tls.Config{}
		if c.caFile != "" {
			pem, err := os.ReadFile(c.caFile)
			if err != nil {
				return nil, err
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("-ca %s: no certificate found", c.caFile)
			}
			tc.RootCAs = pool
		}
	}
	srcs, err := sources(c.src, c.addr)
	if err != nil {
		return nil, err
	}
	d, err := client.NewDialer(client.Options{
		Addr: c.addr, Domain: c.domain, TLS: c.tlsMode, TLSConfig: tc, Mechanism: c.mech,
		Timeout: c.timeout, Sources: srcs, ReadBuffer: readBuffer,
	})
	if err != nil {
		return nil, err
	}
	t, err := measure.NewTarget(c.pid)
	if err != nil {
		return nil, fmt.Errorf("-pid: %w", err)
	}
	e := &load.Env{Dialer: d, Users: load.Users{Prefix: c.prefix, Password: c.password}, Target: t}
	if !c.quiet {
		e.Progress = stderr
	}
	if c.pprof != "" {
		e.Pprof = &measure.Pprof{Base: c.pprof, Dir: c.profileDir}
	}
	return e, nil
}

// sources parses -src.
func sources(spec, addr string) ([]net.IP, error) {
	switch spec {
	case "none", "":
		return nil, nil
	case "auto":
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, nil
		}
		ip := net.ParseIP(host)
		if ip == nil || ip.To4() == nil || !ip.IsLoopback() {
			return nil, nil
		}
		spec = "127.0.0.1-127.0.0.16"
	}
	if a, b, ok := strings.Cut(spec, "-"); ok {
		lo, hi := net.ParseIP(a).To4(), net.ParseIP(b).To4()
		if lo == nil || hi == nil || lo[0] != hi[0] || lo[1] != hi[1] || lo[2] != hi[2] || lo[3] > hi[3] {
			return nil, fmt.Errorf("-src %q: want a range of IPv4 addresses in one /24, like 127.0.0.1-127.0.0.8", spec)
		}
		var out []net.IP
		for i := int(lo[3]); i <= int(hi[3]); i++ {
			out = append(out, net.IPv4(lo[0], lo[1], lo[2], byte(i)))
		}
		return out, nil
	}
	var out []net.IP
	for _, s := range strings.Split(spec, ",") {
		ip := net.ParseIP(strings.TrimSpace(s))
		if ip == nil {
			return nil, fmt.Errorf("-src: %q is not an IP address", s)
		}
		out = append(out, ip)
	}
	return out, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(stderr, usage)
		if len(args) == 0 {
			return errors.New("no mode given")
		}
		return nil
	}
	mode, args := args[0], args[1:]
	fs := flag.NewFlagSet("koi-bench "+mode, flag.ContinueOnError)
	fs.SetOutput(stderr)
	switch mode {
	case "report":
		return runReport(fs, args, stdout)
	case "relay", "floor":
		return runFloor(ctx, mode, fs, args, stdout)
	}
	var c common
	c.register(fs)
	var (
		users, from, conc, n, pool, pairs, window, batch, bodySize, offset int
		settle, hold, warmup, duration, drain                              time.Duration
		presence, bare, detach, keepalive                                  bool
		rate                                                               float64
		koictl, archive, addrs                                             string
		cross                                                              float64
		stormLogins, stormConc, stormUsers                                 int
		stormProc                                                          bool
		fan                                                                load.FanParams
		service                                                            string
	)
	switch mode {
	case "register":
		fs.IntVar(&users, "users", 1000, "create users [from, from+users)")
		fs.IntVar(&from, "from", 0, "first user number")
		fs.IntVar(&conc, "c", 8, "concurrent registrations (connections)")
		fs.StringVar(&koictl, "koictl", "", "create users with this command instead of in-band registration, e.g. \"bin/koictl -config koi.hcl\" (slow: one process per user)")
	case "idle":
		fs.IntVar(&n, "n", 1000, "sessions to hold, users 0..n-1")
		fs.IntVar(&conc, "c", 50, "concurrent logins while opening")
		fs.DurationVar(&settle, "settle", 5*time.Second, "wait this long with all sessions open before reading memory")
		fs.DurationVar(&hold, "hold", 0, "keep the sessions open this much longer before checking they are alive")
		fs.BoolVar(&presence, "presence", true, "send initial presence")
		fs.BoolVar(&detach, "detach", false, "enable resumable stream management (XEP-0198), then reset each connection: measure detached sessions")
		fs.BoolVar(&keepalive, "keepalive", true, "each session sends a whitespace keepalive (spread over 10 s) before the memory is read, as clients do")
	case "login":
		fs.IntVar(&conc, "c", 50, "concurrent logins")
		fs.IntVar(&pool, "users", 1000, "users 0..users-1 log in round robin")
		fs.DurationVar(&warmup, "warmup", 2*time.Second, "logins before measuring")
		fs.DurationVar(&duration, "duration", 10*time.Second, "measured time")
		fs.BoolVar(&presence, "presence", false, "a login includes initial presence (and waiting for the server to process it)")
	case "msg", "storm", "storm-gen":
		if mode != "msg" {
			fs.IntVar(&stormLogins, "logins", 2000, "logins in the storm")
			fs.IntVar(&stormConc, "storm-c", 500, "storm logins in flight")
			fs.IntVar(&stormUsers, "storm-users", 500, "storm users, numbered after the pairs' (logged in once before, to prime the tool's SCRAM cache)")
			fs.BoolVar(&stormProc, "storm-proc", true, "run the storm's logins in a second, lower-priority koi-bench process, so that the tool's own handshakes do not delay the measured messages")
		}
		fs.IntVar(&pairs, "pairs", 500, "sender→receiver pairs, users offset..offset+2*pairs-1")
		fs.IntVar(&offset, "offset", 0, "first user number")
		fs.IntVar(&conc, "c", 50, "concurrent logins while setting up")
		fs.Float64Var(&rate, "rate", 0, "total messages a second, spread over the pairs; 0 sends as fast as -window allows")
		fs.IntVar(&window, "window", 16, "unbounded mode: messages in flight per pair")
		fs.IntVar(&batch, "batch", 1, "unbounded mode: most messages per write (1: every stanza its own write, as interactive clients send)")
		fs.DurationVar(&warmup, "warmup", 2*time.Second, "sending before measuring")
		fs.DurationVar(&duration, "duration", 10*time.Second, "measured time")
		fs.DurationVar(&drain, "drain", 5*time.Second, "wait up to this long for messages in flight at the end")
		fs.IntVar(&bodySize, "body", 64, "bytes of text per message body")
		fs.BoolVar(&bare, "bare", true, "address the receiver's bare JID (false: its full JID)")
		fs.StringVar(&archive, "archive", "", "what the server archives messages with (e.g. sql, http), recorded for the report; empty: archive off")
		if mode == "msg" {
			fs.StringVar(&addrs, "addrs", "", "a cluster's nodes: their c2s `host:port,...` (-addr is then unused); pair i's sender logs in to node i mod N, its receiver to the same node or, for a -cross share of the pairs, to the next one")
			fs.Float64Var(&cross, "cross", -1, "with -addrs: the share of pairs whose ends are on different nodes, 0 to 1 (default (N-1)/N, as for users spread at random)")
		}
	case "muc", "pep":
		if mode == "muc" {
			fs.IntVar(&fan.Receivers, "occupants", 500, "occupants of the room, users offset..offset+occupants-1")
			fs.IntVar(&fan.Senders, "senders", 5, "occupants that send (the first ones)")
			fs.StringVar(&service, "service", "", "the MUC service (default: conference.DOMAIN)")
		} else {
			fs.IntVar(&fan.Receivers, "contacts", 500, "contacts of the publisher (user offset), users offset+1..offset+contacts")
			fan.Senders = 1
		}
		fs.IntVar(&fan.UserOffset, "offset", 0, "first user number")
		fs.IntVar(&conc, "c", 50, "concurrent logins (and joins) while setting up")
		fs.Float64Var(&fan.Rate, "rate", 0, "stanzas sent a second, over all senders (each reaches every receiver); 0 sends as fast as -window allows")
		fs.IntVar(&fan.Window, "window", 4, "unbounded mode: stanzas per sender not yet received by every receiver")
		fs.DurationVar(&fan.Warmup, "warmup", 2*time.Second, "sending before measuring")
		fs.DurationVar(&fan.Duration, "duration", 10*time.Second, "measured time")
		fs.DurationVar(&fan.Drain, "drain", 5*time.Second, "wait up to this long for deliveries in flight at the end")
		fs.IntVar(&fan.BodySize, "body", 64, "bytes of text per message or item")
	default:
		fmt.Fprintln(stderr, usage)
		return fmt.Errorf("unknown mode %q", mode)
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if conc <= 0 {
		return errors.New("-c must be positive")
	}
	if limit, err := measure.RaiseFileLimit(); err == nil {
		need := uint64(max(n, 2*pairs+stormConc, conc, fan.Receivers+1) + 64)
		if limit < need {
			return fmt.Errorf("the open-file limit is %d but this run needs about %d connections", limit, need)
		}
	}
	readBuffer := 4096
	if mode == "msg" || mode == "storm" || mode == "storm-gen" {
		readBuffer = 16 << 10
	}
	e, err := c.env(stderr, readBuffer)
	if err != nil {
		return err
	}
	if mode == "storm-gen" {
		// The parent's flags, profile files included, are the generator's:
		// it must not write the parent's files.
		c.cpuProfile, c.traceFile = "", ""
	}
	stopProfile, err := c.selfProfile()
	defer stopProfile()
	if err != nil {
		return err
	}
	var res report.Result
	var runErr error
	switch mode {
	case "register":
		var kc []string
		if koictl != "" {
			kc = strings.Fields(koictl)
		}
		r, err := load.Register(ctx, e, load.RegisterParams{From: from, To: from + users, Concurrency: conc, Koictl: kc})
		if r != nil {
			r.Label, res = c.label, r
		}
		runErr = err
	case "idle":
		r, err := load.Idle(ctx, e, load.IdleParams{Sessions: n, Concurrency: conc, Available: presence, Settle: settle, Hold: hold, Detach: detach, Keepalive: keepalive})
		if r != nil {
			r.Label, res = c.label, r
		}
		runErr = err
	case "login":
		r, err := load.Login(ctx, e, load.LoginParams{Concurrency: conc, Pool: pool, Warmup: warmup, Duration: duration, Available: presence})
		if r != nil {
			r.Label, res = c.label, r
		}
		runErr = err
	case "msg":
		nodes, err := clusterDialers(e.Dialer, addrs)
		if err != nil {
			return err
		}
		if cross < 0 {
			cross = float64(max(len(nodes)-1, 0)) / float64(max(len(nodes), 1))
		}
		r, err := load.Msg(ctx, e, load.MsgParams{
			Pairs: pairs, Concurrency: conc, Rate: rate, Window: window, Batch: batch,
			Warmup: warmup, Duration: duration, Drain: drain, BodySize: bodySize, Bare: bare, UserOffset: offset,
			Nodes: nodes, Cross: cross,
		})
		if r != nil {
			r.Label, r.Archive, res = c.label, archive, r
		}
		runErr = err
	case "muc", "pep":
		fan.Concurrency = conc
		var r *load.FanResult
		var err error
		if mode == "muc" {
			r, err = load.MUC(ctx, e, load.MUCParams{FanParams: fan, Service: service})
		} else {
			r, err = load.PEP(ctx, e, fan)
		}
		if r != nil {
			r.Label, res = c.label, r
		}
		runErr = err
	case "storm-gen":
		return load.StormGenerate(ctx, e, load.StormParams{
			Msg:    load.MsgParams{Pairs: pairs, UserOffset: offset},
			Logins: stormLogins, Concurrency: stormConc, Users: stormUsers,
		}, os.Stdin, stdout)
	case "storm":
		if rate <= 0 {
			return errors.New("storm: -rate must be positive: latency is measured at a fixed rate")
		}
		var gen []string
		if stormProc {
			self, err := os.Executable()
			if err != nil {
				return fmt.Errorf("-storm-proc: %w", err)
			}
			gen = append([]string{self, "storm-gen"}, args...)
		}
		r, err := load.Storm(ctx, e, load.StormParams{
			Msg: load.MsgParams{
				Pairs: pairs, Concurrency: conc, Rate: rate,
				Warmup: warmup, Duration: duration, Drain: drain, BodySize: bodySize, Bare: bare, UserOffset: offset,
			},
			Logins: stormLogins, Concurrency: stormConc, Users: stormUsers, Generator: gen,
		})
		if r != nil {
			r.Label, res = c.label, r
		}
		runErr = err
	}
	if res == nil {
		return runErr
	}
	// A partial result is still worth showing (and saving) with the error.
	return errors.Join(runErr, finish(stdout, c.jsonFile, res))
}

// clusterDialers returns a dialer per address of -addrs, each like d but
// for its node; none for an empty list.
func clusterDialers(d *client.Dialer, addrs string) ([]*client.Dialer, error) {
	if addrs == "" {
		return nil, nil
	}
	var out []*client.Dialer
	for _, a := range strings.Split(addrs, ",") {
		if _, _, err := net.SplitHostPort(strings.TrimSpace(a)); err != nil {
			return nil, fmt.Errorf("-addrs: %q: %w", a, err)
		}
		o := d.Options()
		o.Addr = strings.TrimSpace(a)
		nd, err := client.NewDialer(o)
		if err != nil {
			return nil, fmt.Errorf("-addrs %s: %w", a, err)
		}
		out = append(out, nd)
	}
	return out, nil
}

func finish(stdout io.Writer, jsonFile string, res report.Result) error {
	report.Print(stdout, res)
	if jsonFile != "" {
		if err := report.WriteJSON(jsonFile, res); err != nil {
			return fmt.Errorf("-json: %w", err)
		}
	}
	return nil
}

func runReport(fs *flag.FlagSet, args []string, stdout io.Writer) error {
	var jsonFile string
	var details bool
	fs.StringVar(&jsonFile, "json", "", "also write the summary as JSON to `file`")
	fs.BoolVar(&details, "details", true, "print every result's table before the summary")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: koi-bench report [-json FILE] RESULT.json...")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errors.New("report: no result files")
	}
	var results []report.Result
	for _, f := range fs.Args() {
		r, err := report.ReadJSON(f)
		if err != nil {
			return err
		}
		results = append(results, r)
	}
	if details {
		report.Print(stdout, results...)
		fmt.Fprintln(stdout)
	}
	lines := report.Budget(results)
	report.PrintBudget(stdout, lines)
	if !details {
		for _, r := range results {
			for _, n := range report.Notes(r) {
				fmt.Fprintln(stdout, "note: "+n)
			}
		}
	}
	if jsonFile != "" {
		return report.WriteJSONValue(jsonFile, map[string]any{"summary": lines, "results": results})
	}
	return nil
}
