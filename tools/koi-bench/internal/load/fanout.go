package load

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/koi-im/koi/tools/koi-bench/internal/client"
	"github.com/koi-im/koi/tools/koi-bench/internal/measure"
	"github.com/koi-im/koi/tools/koi-bench/internal/scan"
)

// FanParams shape a fan-out workload (muc, pep): a few senders whose every
// stanza the server copies to all receivers.
type FanParams struct {
	Receivers   int // occupants of the room, or contacts of the publisher
	Senders     int
	Concurrency int // logins in flight while setting up
	// Rate is the total rate of sent stanzas a second (each fanned out to
	// every receiver), spread over the senders; 0 sends as fast as Window
	// allows.
	Rate float64
	// Window bounds, per sender and when Rate is 0, the stanzas not yet
	// received by every receiver.
	Window   int
	Warmup   time.Duration
	Duration time.Duration
	Drain    time.Duration
	BodySize int
	// UserOffset is the first user number.
	UserOffset int
}

// FanResult reports a fan-out workload: deliveries (one stanza reaching
// one receiver) a second, their latency and faults.
type FanResult struct {
	Common
	Receivers int     `json:"receivers"`
	Senders   int     `json:"senders"`
	Rate      float64 `json:"rate"` // requested sends a second; 0 for unbounded
	Window    int     `json:"window,omitempty"`
	BodySize  int     `json:"body_size"`
	// Sent stanzas and Received deliveries (distinct) over the whole run;
	// each sent stanza is due to every receiver.
	Sent     uint64 `json:"sent"`
	Received uint64 `json:"received"`
	// Delivered is the deliveries in the measured time.
	Delivered uint64  `json:"delivered"`
	Seconds   float64 `json:"seconds"`
	PerSecond float64 `json:"per_second"` // deliveries a second
	// SentPerSecond is the stanzas sent a second in the measured time.
	SentPerSecond float64 `json:"sent_per_second"`
	Lost          uint64  `json:"lost"`
	Duplicated    uint64  `json:"duplicated"`
	OutOfOrder    uint64  `json:"out_of_order"` // within one sender's stanzas
	Bounced       uint64  `json:"bounced"`
	// Latency from the send to each receiver's read, of deliveries in the
	// measured time.
	Latency measure.Summary   `json:"latency"`
	CPU     measure.CPUReport `json:"cpu"`
	// SetupSeconds is how long the logins and the setup (joins,
	// subscriptions, caps) took.
	SetupSeconds float64 `json:"setup_seconds"`
}

// fanSender is one sending session; frame appends one stanza carrying tag.
type fanSender struct {
	conn  *client.Conn
	frame func(b, tag []byte) []byte
	sent  atomic.Uint64
	wake  chan struct{}
	tag   []byte // needle and sender number, "kb<run>.<sender>."
}

// fanReceiver books what one receiving session got from each sender.
type fanReceiver struct {
	conn *client.Conn
	got  []atomic.Uint64 // distinct, per sender
	dup  atomic.Uint64
	ooo  atomic.Uint64
	// handle, if set, sees every stanza first and answers what is not a
	// delivery (room presence, caps disco#info, subscription requests);
	// it reports whether it took the stanza.
	handle func(raw []byte) bool

	// Owned by the receiving goroutine.
	seen    [][]uint64
	highest []int64
	inWin   uint64
	hist    measure.Histogram
}

// fanRun is the shared state of one fan-out run.
type fanRun struct {
	p         FanParams
	e         *Env
	mode      string
	base      time.Time
	needle    []byte
	errs      errorLog
	bounced   atomic.Uint64
	senders   []*fanSender
	receivers []*fanReceiver
	// drains are sessions that only send (a PEP publisher): their
	// streams are read for errors.
	drains  []*client.Conn
	readers sync.WaitGroup

	winStart, winEnd atomic.Int64
	stopSending      chan struct{}
	closing          atomic.Bool
}

func newFanRun(e *Env, mode string, p FanParams) *fanRun {
	var id [4]byte
	rand.Read(id[:])
	f := &fanRun{p: p, e: e, mode: mode, base: time.Now(), stopSending: make(chan struct{})}
	f.needle = []byte("kb" + hex.EncodeToString(id[:]) + ".")
	f.winStart.Store(math.MaxInt64)
	f.winEnd.Store(math.MaxInt64)
	return f
}

func (f *fanRun) now() int64 { return int64(time.Since(f.base)) }

func (f *fanRun) addSender(c *client.Conn, frame func(b, tag []byte) []byte) {
	i := len(f.senders)
	tag := append([]byte(nil), f.needle...)
	tag = appendHex16(tag, uint64(i))
	f.senders = append(f.senders, &fanSender{conn: c, frame: frame, wake: make(chan struct{}, 1), tag: append(tag, '.')})
}

// addReceiver starts reading c's stream, which from now on is the
// reader's: handle sees every stanza first. Senders must all be known.
func (f *fanRun) addReceiver(c *client.Conn, handle func(raw []byte) bool) {
	rc := &fanReceiver{conn: c, handle: handle}
	rc.got = make([]atomic.Uint64, f.p.Senders)
	rc.seen = make([][]uint64, f.p.Senders)
	rc.highest = make([]int64, f.p.Senders)
	for i := range rc.highest {
		rc.highest[i] = -1
	}
	f.receivers = append(f.receivers, rc)
	f.readers.Add(1)
	go func() { defer f.readers.Done(); f.read(c, rc, handle) }()
}

// addDrain starts reading the stream of a session that only sends.
func (f *fanRun) addDrain(c *client.Conn, handle func(raw []byte) bool) {
	f.drains = append(f.drains, c)
	f.readers.Add(1)
	go func() { defer f.readers.Done(); f.read(c, nil, handle) }()
}

// stopReaders ends every reader (at the end of a run or a failed setup).
func (f *fanRun) stopReaders() {
	f.closing.Store(true)
	for _, rc := range f.receivers {
		rc.conn.NetConn().SetReadDeadline(time.Now())
	}
	for _, c := range f.drains {
		c.NetConn().SetReadDeadline(time.Now())
	}
	f.readers.Wait()
}

// parse finds this run's tag in a stanza: sender, sequence number and
// send time.
func (f *fanRun) parse(raw []byte) (sender int, seq uint64, ts int64, ok bool) {
	i := bytes.Index(raw, f.needle)
	if i < 0 {
		return 0, 0, 0, false
	}
	rest := raw[i+len(f.needle):]
	if len(rest) < 16*3+2 || rest[16] != '.' || rest[33] != '.' {
		return 0, 0, 0, false
	}
	s, ok1 := parseHex16(rest)
	q, ok2 := parseHex16(rest[17:])
	t, ok3 := parseHex16(rest[34:])
	if !ok1 || !ok2 || !ok3 || s >= uint64(len(f.senders)) {
		return 0, 0, 0, false
	}
	return int(s), q, int64(t), true
}

func (r *fanReceiver) book(sender int, seq uint64, ts, rt, ws, we int64) {
	w, bit := seq>>6, uint64(1)<<(seq&63)
	if w > 1<<26 {
		return
	}
	seen := r.seen[sender]
	if w >= uint64(len(seen)) {
		seen = append(seen, make([]uint64, int(w)+1-len(seen))...)
		r.seen[sender] = seen
	}
	if seen[w]&bit != 0 {
		r.dup.Add(1)
		return
	}
	seen[w] |= bit
	if int64(seq) < r.highest[sender] {
		r.ooo.Add(1)
	} else {
		r.highest[sender] = int64(seq)
	}
	r.got[sender].Add(1)
	if rt >= ws && rt < we {
		r.inWin++
		r.hist.Record(time.Duration(rt - ts))
	}
}

// read runs a session's stream: deliveries are booked on r (nil for a
// send-only session), bounces and stream errors counted.
func (f *fanRun) read(c *client.Conn, r *fanReceiver, handle func(raw []byte) bool) {
	tr := &timedReader{r: c.NetConn(), base: f.base}
	sc := c.Scanner()
	sc.SetReader(tr)
	for {
		t, err := sc.Next()
		if err == nil && t.Kind == scan.End {
			err = errors.New("the server closed the stream")
		}
		if err != nil {
			if !f.closing.Load() {
				f.errs.add(fmt.Errorf("%s: %w", c.JID(), err))
			}
			return
		}
		if t.Kind != scan.Element {
			continue
		}
		raw := t.Raw
		switch {
		case scan.IsNamed(raw, "error"):
			if !f.closing.Load() {
				f.errs.add(fmt.Errorf("%s: %w", c.JID(), client.StreamError(raw)))
			}
			return
		case handle != nil && handle(raw):
			continue
		}
		if v, _ := scan.Attr(raw, "type"); string(v) == "error" {
			if bytes.Contains(raw, f.needle) || scan.IsNamed(raw, "iq") {
				if f.bounced.Add(1) == 1 {
					e, _ := scan.Child(raw, "error")
					f.errs.add(fmt.Errorf("%s got an error: %s", c.JID(), scan.Condition(e)))
				}
			}
			continue
		}
		if r == nil || !scan.IsNamed(raw, "message") {
			continue
		}
		if s, seq, ts, ok := f.parse(raw); ok {
			r.book(s, seq, ts, tr.last, f.winStart.Load(), f.winEnd.Load())
			if sc.Buffered() == 0 {
				select {
				case f.senders[s].wake <- struct{}{}:
				default:
				}
			}
		}
	}
}

// delivered is how many of s's stanzas every receiver has got.
func (f *fanRun) delivered(s int) uint64 {
	low := uint64(math.MaxUint64)
	for _, r := range f.receivers {
		low = min(low, r.got[s].Load())
	}
	return low
}

func (f *fanRun) send(s int, start, interval, offset time.Duration) {
	snd := f.senders[s]
	nc := snd.conn.NetConn()
	var buf, tag []byte
	next := int64(start + offset)
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	var seq uint64
	for {
		select {
		case <-f.stopSending:
			return
		default:
		}
		if interval == 0 {
			if seq-min(f.delivered(s), seq) >= uint64(f.p.Window) {
				select {
				case <-snd.wake:
				case <-f.stopSending:
					return
				case <-time.After(100 * time.Millisecond): // a lost wake-up
				}
				continue
			}
		} else if d := next - f.now(); d > 0 {
			t.Reset(time.Duration(d))
			select {
			case <-t.C:
			case <-f.stopSending:
				return
			}
		}
		ts := f.now()
		tag = appendHex16(append(tag[:0], snd.tag...), seq)
		tag = appendHex16(append(tag, '.'), uint64(ts))
		buf = snd.frame(buf[:0], tag)
		if _, err := nc.Write(buf); err != nil {
			f.errs.add(fmt.Errorf("sender %s: %w", snd.conn.JID(), err))
			return
		}
		seq++
		snd.sent.Store(seq)
		next += int64(interval)
	}
}

// login opens n sessions of users first..first+n-1.
func (f *fanRun) login(ctx context.Context, first, n int) ([]*client.Conn, error) {
	conns := make([]*client.Conn, n)
	var opened atomic.Int64
	stop := f.e.progress(f.mode, func() string {
		return fmt.Sprintf("logging in %d/%d, errors %d", opened.Load(), n, f.errs.n.Load())
	})
	defer stop()
	var errs errorLog
	forEach(ctx, n, f.p.Concurrency, func(i int) {
		c, err := f.e.Dialer.Session(ctx, f.e.Users.Name(first+i), f.e.Users.Password, "kb", false)
		if err != nil {
			errs.add(fmt.Errorf("user %d: %w", first+i, err))
			return
		}
		conns[i] = c
		opened.Add(1)
	})
	if err := ctx.Err(); err != nil {
		closeAll(conns)
		return nil, err
	}
	if errs.first != nil {
		closeAll(conns)
		return nil, fmt.Errorf("%s: %d of %d sessions failed to open: %w", f.mode, errs.n.Load(), n, errs.first)
	}
	return conns, nil
}

func closeAll(conns []*client.Conn) {
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
}

// measure starts the readers and senders, measures, drains and fills r.
func (f *fanRun) measure(ctx context.Context, r *FanResult) error {
	p := f.p
	var senders sync.WaitGroup
	totals := func() (sent, due, recv uint64) {
		for _, s := range f.senders {
			sent += s.sent.Load()
		}
		for _, rc := range f.receivers {
			for i := range rc.got {
				recv += rc.got[i].Load()
			}
		}
		return sent, sent * uint64(len(f.receivers)), recv
	}
	cpu := newCPUMeter(f.e.Target)
	var lastRecv uint64
	stop := f.e.progress(f.mode, func() string {
		s, due, rc := totals()
		line := fmt.Sprintf("sent %d delivered %d (%d/s) due %d errors %d | %s", s, rc, rc-lastRecv, due-min(due, rc), f.errs.n.Load(), cpu.line())
		lastRecv = rc
		return line
	})
	start := time.Duration(f.now())
	var interval time.Duration
	if p.Rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(len(f.senders)) / p.Rate)
	}
	for i := range f.senders {
		senders.Add(1)
		offset := interval * time.Duration(i) / time.Duration(len(f.senders))
		go func() { defer senders.Done(); f.send(i, start, interval, offset) }()
	}
	sleep(ctx, p.Warmup)
	profile := f.e.profileCPU(ctx, p.Duration, fmt.Sprintf("cpu-%s-%s.pb.gz", f.mode, rateName(p.Rate)))
	sentAtStart, _, _ := totals()
	f.winStart.Store(f.now())
	win := f.e.Target.StartWindow()
	sleep(ctx, p.Duration)
	f.winEnd.Store(f.now())
	sentAtEnd, _, _ := totals()
	usage := win.Stop()
	close(f.stopSending)
	senders.Wait()
	deadline := time.Now().Add(p.Drain)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if _, due, rc := totals(); rc >= due {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	f.stopReaders()
	if err := ctx.Err(); err != nil {
		return err
	}
	var hist measure.Histogram
	sent, due, recv := totals()
	r.Sent, r.Received = sent, recv
	if due > recv {
		r.Lost = due - recv
	}
	for _, rc := range f.receivers {
		r.Duplicated += rc.dup.Load()
		r.OutOfOrder += rc.ooo.Load()
		r.Delivered += rc.inWin
		hist.Merge(&rc.hist)
	}
	r.Bounced = f.bounced.Load()
	r.Seconds = time.Duration(f.winEnd.Load() - f.winStart.Load()).Seconds()
	r.PerSecond = float64(r.Delivered) / r.Seconds
	r.SentPerSecond = float64(sentAtEnd-sentAtStart) / r.Seconds
	r.Latency = hist.Summarize()
	r.CPU = usage.Report(r.Delivered, f.e.Target.Known())
	f.errs.fill(&r.Common)
	r.Notes = cpuNotes(r.Notes, profile(), r.CPU, "throughput")
	if p.Rate > 0 && r.SentPerSecond < 0.95*p.Rate {
		r.Notes = append(r.Notes, fmt.Sprintf("sent %.0f/s of the %.0f/s asked for", r.SentPerSecond, p.Rate))
	}
	return nil
}

func (p *FanParams) check(mode string) error {
	if p.Receivers <= 0 || p.Senders <= 0 || p.Duration <= 0 {
		return fmt.Errorf("%s: receivers, senders and duration must be positive", mode)
	}
	if p.Rate < 0 || math.IsInf(p.Rate, 0) || math.IsNaN(p.Rate) {
		return fmt.Errorf("%s: bad rate %v", mode, p.Rate)
	}
	if p.Rate == 0 {
		p.Window = max(p.Window, 1)
	} else {
		p.Window = 0
	}
	return nil
}
