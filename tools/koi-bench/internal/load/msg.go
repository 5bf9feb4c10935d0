package load

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/koi-im/koi/tools/koi-bench/internal/client"
	"github.com/koi-im/koi/tools/koi-bench/internal/measure"
	"github.com/koi-im/koi/tools/koi-bench/internal/scan"
)

// MsgParams shape the message workload: Pairs senders each send to their
// own receiver.
type MsgParams struct {
	Pairs       int
	Concurrency int // logins in flight while setting up
	// Rate is the total rate in messages a second, spread evenly over the
	// pairs; 0 sends as fast as Window allows.
	Rate float64
	// Window bounds the messages in flight per pair when Rate is 0.
	Window int
	// Batch is the most messages one write carries when Rate is 0 (a
	// client with a backlog writes several stanzas at once).
	Batch    int
	Warmup   time.Duration // sending before measuring
	Duration time.Duration // measured time
	Drain    time.Duration // how long to wait for messages in flight at the end
	BodySize int           // bytes of text in each <body/>
	// Bare addresses messages to the receiver's bare JID (the server picks
	// the resource); otherwise to its full JID.
	Bare bool
	// UserOffset shifts the users: pair i is users Offset+2i → Offset+2i+1.
	UserOffset int
	// Nodes, if set, are the dialers of a cluster's nodes (one per node;
	// Env.Dialer is then unused): the sender of pair i logs in to node
	// i mod len(Nodes), its receiver to the same node or, for a Cross
	// share of the pairs spread evenly, to the next one.
	Nodes []*client.Dialer
	// Cross is the share of pairs whose ends are on different nodes, 0 to
	// 1; at least two Nodes for any.
	Cross float64
	// During, if set, runs while the measurement window is open (started
	// with it); the window stays open until it returns, Duration being
	// the least. It is how the storm mode loads the server while the
	// pairs measure latency.
	During func(ctx context.Context)
}

// MsgResult reports message throughput, latency and delivery faults.
type MsgResult struct {
	Common
	Pairs    int     `json:"pairs"`
	Rate     float64 `json:"rate"` // requested; 0 for unbounded
	Window   int     `json:"window,omitempty"`
	Batch    int     `json:"batch,omitempty"`
	Bare     bool    `json:"bare_jid"`
	BodySize int     `json:"body_size"`
	// Archive names what the server archived the messages with, as the
	// caller said (-archive); empty: the archive was off.
	Archive string `json:"archive,omitempty"`
	// Sent and Received (distinct) cover the whole run, warm-up included.
	Sent     uint64 `json:"sent"`
	Received uint64 `json:"received"`
	// Delivered is what arrived in the measured time.
	Delivered uint64  `json:"delivered"`
	Seconds   float64 `json:"seconds"`
	PerSecond float64 `json:"per_second"`
	// Faults: never received (after the drain), received twice, received
	// after a later message of the same pair, bounced back with an error.
	Lost       uint64 `json:"lost"`
	Duplicated uint64 `json:"duplicated"`
	OutOfOrder uint64 `json:"out_of_order"`
	Bounced    uint64 `json:"bounced"`
	// Latency from the write to the read, of messages delivered in the
	// measured time.
	Latency measure.Summary `json:"latency"`
	// Cluster runs (MsgParams.Nodes): the nodes, the share of pairs
	// crossing nodes, and the latency of same-node and cross-node pairs
	// (when there are both), whose difference is the hop's cost.
	Nodes     int               `json:"nodes,omitempty"`
	Cross     float64           `json:"cross,omitempty"`
	SameNode  *measure.Summary  `json:"same_node,omitempty"`
	CrossNode *measure.Summary  `json:"cross_node,omitempty"`
	CPU       measure.CPUReport `json:"cpu"`
	// LateSends counts fixed-rate sends more than one interval behind
	// schedule (the tool could not keep the rate).
	LateSends uint64 `json:"late_sends,omitempty"`
	// SendLag (fixed rate) is how late senders woke up against their
	// schedule: the tool's timer resolution and scheduling delay. It does
	// not enter Latency, which starts at the actual write, but a lag near
	// the interval means the tool cannot keep the rate.
	SendLag *measure.Summary `json:"send_lag,omitempty"`
}

// pair is one sender and its receiver.
type pair struct {
	from, to *client.Conn
	cross    bool   // the ends are on different nodes
	prefix   []byte // the message up to the sequence number
	suffix   []byte // after the timestamp

	sent    atomic.Uint64 // written so far; sequence numbers are 0..sent-1
	recv    atomic.Uint64 // distinct messages received
	dup     atomic.Uint64
	ooo     atomic.Uint64
	bounced atomic.Uint64
	wake    chan struct{} // the receiver made room in the window

	// Owned by the receiving goroutine.
	seen    []uint64 // bit per sequence number
	highest int64
	inWin   uint64
	hist    measure.Histogram

	late uint64            // owned by the sender
	lag  measure.Histogram // fixed rate: how late the sender woke up, owned by the sender
}

// msgRun is the shared state of one run.
type msgRun struct {
	p      MsgParams
	e      *Env
	base   time.Time
	needle []byte // "kb<run id>." opening every id of this run
	errs   errorLog

	winStart, winEnd atomic.Int64 // measured window, ns since base
	stopSending      chan struct{}
	closing          atomic.Bool
}

func (m *msgRun) now() int64 { return int64(time.Since(m.base)) }

const hexDigits = "0123456789abcdef"

func appendHex16(b []byte, v uint64) []byte {
	var d [16]byte
	for i := 15; i >= 0; i-- {
		d[i] = hexDigits[v&15]
		v >>= 4
	}
	return append(b, d[:]...)
}

func parseHex16(b []byte) (uint64, bool) {
	if len(b) < 16 {
		return 0, false
	}
	var v uint64
	for _, c := range b[:16] {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | uint64(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | uint64(c-'a'+10)
		default:
			return 0, false
		}
	}
	return v, true
}

func (p *pair) appendMsg(b []byte, seq uint64, ts int64) []byte {
	b = append(b, p.prefix...)
	b = appendHex16(b, seq)
	b = append(b, '.')
	b = appendHex16(b, uint64(ts))
	return append(b, p.suffix...)
}

// parseID finds this run's id in a message and returns its sequence number
// and send time.
func (m *msgRun) parseID(raw []byte) (seq uint64, ts int64, ok bool) {
	i := bytes.Index(raw, m.needle)
	if i < 0 {
		return 0, 0, false
	}
	rest := raw[i+len(m.needle):]
	seq, ok1 := parseHex16(rest)
	if !ok1 || len(rest) < 34 || rest[16] != '.' {
		return 0, 0, false
	}
	t, ok2 := parseHex16(rest[17:])
	return seq, int64(t), ok2
}

// got books one received message.
func (p *pair) got(seq uint64, ts, rt, ws, we int64) {
	w, bit := seq>>6, uint64(1)<<(seq&63)
	if w >= uint64(len(p.seen)) {
		if w > 1<<26 { // 4 billion messages: a corrupt sequence number
			return
		}
		p.seen = append(p.seen, make([]uint64, int(w)+1-len(p.seen))...)
	}
	if p.seen[w]&bit != 0 {
		p.dup.Add(1)
		return
	}
	p.seen[w] |= bit
	if int64(seq) < p.highest {
		p.ooo.Add(1)
	} else {
		p.highest = int64(seq)
	}
	p.recv.Add(1)
	if rt >= ws && rt < we {
		p.inWin++
		p.hist.Record(time.Duration(rt - ts))
	}
}

// timedReader notes when each read returned data: the arrival time of the
// stanzas in it, taken once per read rather than per stanza.
type timedReader struct {
	r    io.Reader
	base time.Time // the run's clock: last is nanoseconds since base
	last int64
}

func (t *timedReader) Read(b []byte) (int, error) {
	n, err := t.r.Read(b)
	if n > 0 {
		t.last = int64(time.Since(t.base))
	}
	return n, err
}

func (m *msgRun) receive(p *pair) {
	tr := &timedReader{r: p.to.NetConn(), base: m.base}
	sc := p.to.Scanner()
	sc.SetReader(tr)
	for {
		t, err := sc.Next()
		if err != nil {
			if !m.closing.Load() {
				m.errs.add(fmt.Errorf("receiver %s: %w", p.to.JID(), err))
			}
			return
		}
		if t.Kind == scan.End {
			if !m.closing.Load() {
				m.errs.add(fmt.Errorf("receiver %s: the server closed the stream", p.to.JID()))
			}
			return
		}
		if t.Kind != scan.Element || !scan.IsNamed(t.Raw, "message") {
			if t.Kind == scan.Element && scan.IsNamed(t.Raw, "error") && !m.closing.Load() {
				m.errs.add(fmt.Errorf("receiver %s: %w", p.to.JID(), client.StreamError(t.Raw)))
				return
			}
			continue
		}
		if seq, ts, ok := m.parseID(t.Raw); ok {
			p.got(seq, ts, tr.last, m.winStart.Load(), m.winEnd.Load())
		}
		if sc.Buffered() == 0 {
			select {
			case p.wake <- struct{}{}:
			default:
			}
		}
	}
}

// watchSender reads the sender's stream: bounces of our messages and
// stream errors.
func (m *msgRun) watchSender(p *pair) {
	sc := p.from.Scanner()
	for {
		t, err := sc.Next()
		if err != nil || t.Kind == scan.End {
			if !m.closing.Load() {
				if err == nil {
					err = errors.New("the server closed the stream")
				}
				m.errs.add(fmt.Errorf("sender %s: %w", p.from.JID(), err))
			}
			return
		}
		if t.Kind != scan.Element {
			continue
		}
		if scan.IsNamed(t.Raw, "error") && !m.closing.Load() {
			m.errs.add(fmt.Errorf("sender %s: %w", p.from.JID(), client.StreamError(t.Raw)))
			return
		}
		if scan.IsNamed(t.Raw, "message") {
			if v, _ := scan.Attr(t.Raw, "type"); string(v) == "error" && bytes.Contains(t.Raw, m.needle) {
				if p.bounced.Add(1) == 1 {
					e, _ := scan.Child(t.Raw, "error")
					m.errs.add(fmt.Errorf("message from %s bounced: %s", p.from.JID(), scan.Condition(e)))
				}
			}
		}
	}
}

// sendWindow sends as fast as the pair's window allows.
func (m *msgRun) sendWindow(p *pair) {
	nc := p.from.NetConn()
	window, batch := uint64(m.p.Window), uint64(m.p.Batch)
	buf := make([]byte, 0, int(batch)*(len(p.prefix)+len(p.suffix)+33))
	var seq uint64
	for {
		select {
		case <-m.stopSending:
			return
		default:
		}
		recv := p.recv.Load()
		inflight := seq - min(recv, seq)
		if inflight >= window {
			select {
			case <-p.wake:
			case <-m.stopSending:
				return
			}
			continue
		}
		n := min(window-inflight, batch)
		buf = buf[:0]
		ts := m.now()
		for range n {
			buf = p.appendMsg(buf, seq, ts)
			seq++
		}
		if _, err := nc.Write(buf); err != nil {
			m.errs.add(fmt.Errorf("sender %s: %w", p.from.JID(), err))
			return
		}
		p.sent.Store(seq)
	}
}

// sendRate sends one message every interval, starting at offset.
func (m *msgRun) sendRate(p *pair, start, interval, offset time.Duration) {
	nc := p.from.NetConn()
	buf := make([]byte, 0, len(p.prefix)+len(p.suffix)+33)
	next := int64(start + offset)
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	var seq uint64
	for {
		if d := next - m.now(); d > 0 {
			t.Reset(time.Duration(d))
			select {
			case <-t.C:
			case <-m.stopSending:
				return
			}
		} else {
			select {
			case <-m.stopSending:
				return
			default:
			}
		}
		ts := m.now()
		if ts-next > int64(interval) {
			p.late++
		}
		if ts >= m.winStart.Load() && ts < m.winEnd.Load() {
			p.lag.Record(time.Duration(ts - next))
		}
		buf = p.appendMsg(buf[:0], seq, ts)
		if _, err := nc.Write(buf); err != nil {
			m.errs.add(fmt.Errorf("sender %s: %w", p.from.JID(), err))
			return
		}
		seq++
		p.sent.Store(seq)
		next += int64(interval)
	}
}

func body(n int) string {
	const text = "The quick brown fox jumps over the lazy dog. "
	return strings.Repeat(text, n/len(text)+1)[:n]
}

// Msg runs the message workload.
func Msg(ctx context.Context, e *Env, p MsgParams) (*MsgResult, error) {
	if p.Pairs <= 0 || p.Duration <= 0 {
		return nil, errors.New("msg: pairs and duration must be positive")
	}
	if p.Rate < 0 || math.IsInf(p.Rate, 0) || math.IsNaN(p.Rate) {
		return nil, fmt.Errorf("msg: bad rate %v", p.Rate)
	}
	if !(p.Cross >= 0 && p.Cross <= 1) {
		return nil, fmt.Errorf("msg: the share of cross-node pairs must be 0 to 1, got %v", p.Cross)
	}
	if p.Cross > 0 && len(p.Nodes) < 2 {
		return nil, errors.New("msg: cross-node pairs need the addresses of two or more nodes")
	}
	if p.Rate == 0 {
		p.Window = max(p.Window, 1)
		p.Batch = max(min(p.Batch, p.Window), 1)
	} else {
		p.Window, p.Batch = 0, 0
	}
	var runID [4]byte
	rand.Read(runID[:])
	m := &msgRun{p: p, e: e, base: time.Now(), stopSending: make(chan struct{})}
	m.needle = []byte("kb" + hex.EncodeToString(runID[:]) + ".")
	m.winStart.Store(math.MaxInt64)
	m.winEnd.Store(math.MaxInt64)
	r := &MsgResult{Common: e.common("msg"), Pairs: p.Pairs, Rate: p.Rate, Window: p.Window, Batch: p.Batch, Bare: p.Bare, BodySize: p.BodySize}
	if len(p.Nodes) > 0 {
		r.Nodes, r.Cross = len(p.Nodes), p.Cross
		var addrs []string
		for _, d := range p.Nodes {
			addrs = append(addrs, d.Options().Addr)
		}
		r.Server = strings.Join(addrs, ",")
	}

	// Log in both ends of every pair, receivers available before anyone
	// sends.
	n := 2 * p.Pairs
	conns := make([]*client.Conn, n)
	var opened atomic.Int64
	stop := e.progress("msg", func() string {
		return fmt.Sprintf("logging in %d/%d, errors %d", opened.Load(), n, m.errs.n.Load())
	})
	forEach(ctx, n, p.Concurrency, func(i int) {
		d := e.Dialer
		if len(p.Nodes) > 0 {
			from, to := pairNodes(i/2, len(p.Nodes), p.Cross)
			d = p.Nodes[from]
			if i%2 == 1 {
				d = p.Nodes[to]
			}
		}
		c, err := d.Session(ctx, e.Users.Name(p.UserOffset+i), e.Users.Password, "kb", true)
		if err != nil {
			m.errs.add(fmt.Errorf("user %d: %w", p.UserOffset+i, err))
			return
		}
		conns[i] = c
		opened.Add(1)
	})
	stop()
	defer func() {
		m.closing.Store(true)
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if int(opened.Load()) != n {
		m.errs.fill(&r.Common)
		return r, fmt.Errorf("msg: %d of %d sessions failed to open: %s", n-int(opened.Load()), n, r.FirstError)
	}
	r.Mechanism, r.TLS = conns[0].Mechanism(), conns[0].TLS()

	domain := e.Dialer.Options().Domain
	text := body(p.BodySize)
	pairs := make([]*pair, p.Pairs)
	for i := range pairs {
		from, to := conns[2*i], conns[2*i+1]
		addr := to.JID()
		if p.Bare {
			addr = e.Users.Name(p.UserOffset+2*i+1) + "@" + domain
		}
		pr := &pair{from: from, to: to, wake: make(chan struct{}, 1), highest: -1}
		if len(p.Nodes) > 0 {
			a, b := pairNodes(i, len(p.Nodes), p.Cross)
			pr.cross = a != b
		}
		pr.prefix = append(scan.Escape([]byte("<message to='"), addr), "' type='chat' id='"...)
		pr.prefix = append(pr.prefix, m.needle...)
		pr.suffix = append([]byte("'><body>"), scan.Escape(nil, text)...)
		pr.suffix = append(pr.suffix, "</body></message>"...)
		pairs[i] = pr
	}

	var readers, senders sync.WaitGroup
	for _, pr := range pairs {
		readers.Add(2)
		go func() { defer readers.Done(); m.receive(pr) }()
		go func() { defer readers.Done(); m.watchSender(pr) }()
	}
	totals := func() (sent, recv, dup, ooo uint64) {
		for _, pr := range pairs {
			sent += pr.sent.Load()
			recv += pr.recv.Load()
			dup += pr.dup.Load()
			ooo += pr.ooo.Load()
		}
		return
	}
	cpu := newCPUMeter(e.Target)
	var lastRecv uint64
	stop = e.progress("msg", func() string {
		s, rc, d, o := totals()
		line := fmt.Sprintf("sent %d recv %d (%d/s) in flight %d dup %d ooo %d errors %d | %s",
			s, rc, rc-lastRecv, s-min(s, rc), d, o, m.errs.n.Load(), cpu.line())
		lastRecv = rc
		return line
	})

	start := time.Duration(m.now())
	for i, pr := range pairs {
		senders.Add(1)
		if p.Rate > 0 {
			interval := time.Duration(float64(time.Second) * float64(p.Pairs) / p.Rate)
			offset := interval * time.Duration(i) / time.Duration(p.Pairs)
			go func() { defer senders.Done(); m.sendRate(pr, start, interval, offset) }()
		} else {
			go func() { defer senders.Done(); m.sendWindow(pr) }()
		}
	}
	sleep(ctx, p.Warmup)
	profile := e.profileCPU(ctx, p.Duration, fmt.Sprintf("cpu-msg-%s-%s.pb.gz", rateName(p.Rate), tlsName(r.TLS)))
	m.winStart.Store(m.now())
	win := e.Target.StartWindow()
	during := make(chan struct{})
	if p.During != nil {
		go func() { defer close(during); p.During(ctx) }()
	} else {
		close(during)
	}
	sleep(ctx, p.Duration)
	<-during
	m.winEnd.Store(m.now())
	usage := win.Stop()
	close(m.stopSending)
	senders.Wait()

	// Drain: wait for what is in flight.
	deadline := time.Now().Add(p.Drain)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		s, rc, _, _ := totals()
		if rc >= s {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	m.closing.Store(true)
	for _, c := range conns {
		c.NetConn().SetReadDeadline(time.Now())
	}
	readers.Wait()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}

	var hist, lag, same, cross measure.Histogram
	for _, pr := range pairs {
		lag.Merge(&pr.lag)
		if pr.cross {
			cross.Merge(&pr.hist)
		} else {
			same.Merge(&pr.hist)
		}
		s, rc := pr.sent.Load(), pr.recv.Load()
		r.Sent += s
		r.Received += rc
		if s > rc {
			r.Lost += s - rc
		}
		r.Duplicated += pr.dup.Load()
		r.OutOfOrder += pr.ooo.Load()
		r.Bounced += pr.bounced.Load()
		r.Delivered += pr.inWin
		r.LateSends += pr.late
		hist.Merge(&pr.hist)
	}
	r.Seconds = time.Duration(m.winEnd.Load() - m.winStart.Load()).Seconds()
	r.PerSecond = float64(r.Delivered) / r.Seconds
	r.Latency = hist.Summarize()
	if len(p.Nodes) > 1 && p.Cross > 0 && p.Cross < 1 {
		sl, cl := same.Summarize(), cross.Summarize()
		r.SameNode, r.CrossNode = &sl, &cl
	}
	if p.Rate > 0 {
		l := lag.Summarize()
		r.SendLag = &l
	}
	r.CPU = usage.Report(r.Delivered, e.Target.Known())
	m.errs.fill(&r.Common)
	r.Notes = cpuNotes(r.Notes, profile(), r.CPU, "throughput")
	if r.LateSends > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d sends were over an interval behind schedule", r.LateSends))
	}
	if p.Rate > 0 && r.PerSecond < 0.95*p.Rate {
		r.Notes = append(r.Notes, fmt.Sprintf("delivered %.0f/s of the %.0f/s asked for", r.PerSecond, p.Rate))
	}
	return r, nil
}

func rateName(rate float64) string {
	if rate == 0 {
		return "max"
	}
	return fmt.Sprintf("%.0f", rate)
}

// pairNodes places pair i on a cluster of n nodes: the sender on node
// i mod n, the receiver on the same node or, for a share cross of each
// node's pairs, spread evenly over them, on the next one (so every node
// also receives as much as it sends).
func pairNodes(i, n int, cross float64) (from, to int) {
	from = i % n
	j := i / n // the pair's rank among its node's
	if n > 1 && math.Floor(float64(j+1)*cross) > math.Floor(float64(j)*cross) {
		return from, (from + 1) % n
	}
	return from, from
}
