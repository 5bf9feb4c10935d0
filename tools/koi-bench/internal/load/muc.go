package load

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/koi-im/koi/tools/koi-bench/internal/scan"
)

// MUCParams shape the room workload: Receivers occupants join one new room
// on Service (e.g. conference.localhost); the first Senders of them send
// groupchat messages, each of which the room gives every occupant, its
// sender included (XEP-0045 §7.4).
type MUCParams struct {
	FanParams
	Service string
}

// MUC runs the room workload.
func MUC(ctx context.Context, e *Env, p MUCParams) (*FanResult, error) {
	if err := p.check("muc"); err != nil {
		return nil, err
	}
	if p.Senders > p.Receivers {
		return nil, fmt.Errorf("muc: %d senders but %d occupants: senders are occupants", p.Senders, p.Receivers)
	}
	if p.Service == "" {
		p.Service = "conference." + e.Dialer.Options().Domain
	}
	f := newFanRun(e, "muc", p.FanParams)
	r := &FanResult{Common: e.common("muc"), Receivers: p.Receivers, Senders: p.Senders, Rate: p.Rate, Window: p.Window, BodySize: p.BodySize}
	setup := time.Now()
	conns, err := f.login(ctx, p.UserOffset, p.Receivers)
	if err != nil {
		return nil, err
	}
	defer closeAll(conns)
	defer f.stopReaders()
	r.Mechanism, r.TLS = conns[0].Mechanism(), conns[0].TLS()

	room := "kb-" + string(bytes.TrimSuffix(f.needle[2:], []byte("."))) + "@" + p.Service
	text := body(p.BodySize)
	for i := range p.Senders {
		prefix := append(scan.Escape([]byte("<message type='groupchat' to='"), room), "'><body>"...)
		suffix := append([]byte(" "), scan.Escape(nil, text)...)
		suffix = append(suffix, "</body></message>"...)
		f.addSender(conns[i], func(b, tag []byte) []byte {
			return append(append(append(b, prefix...), tag...), suffix...)
		})
	}

	// Occupants join one after the other's self-presence, the first
	// creating the room and taking the defaults (an instant room).
	joined := make([]chan struct{}, p.Receivers)
	refused := make([]atomic.Pointer[string], p.Receivers)
	var unlocked = make(chan bool, 1)
	for i, c := range conns {
		joined[i] = make(chan struct{})
		self := []byte(room + "/o" + strconv.Itoa(i))
		var done atomic.Bool
		f.addReceiver(c, func(raw []byte) bool {
			switch {
			case scan.IsNamed(raw, "presence"):
				if from, _ := scan.Attr(raw, "from"); bytes.Equal(from, self) && !done.Swap(true) {
					if t, _ := scan.Attr(raw, "type"); string(t) == "error" {
						e, _ := scan.Child(raw, "error")
						cond := scan.Condition(e)
						refused[i].Store(&cond)
					}
					close(joined[i])
				}
				return true
			case i == 0 && scan.IsNamed(raw, "iq"):
				if id, _ := scan.Attr(raw, "id"); string(id) == "kb-instant" {
					t, _ := scan.Attr(raw, "type")
					unlocked <- string(t) == "result"
					return true
				}
			}
			return false
		})
	}
	join := func(i int) error {
		c := conns[i]
		pres := append(scan.Escape([]byte("<presence to='"), room+"/o"+strconv.Itoa(i)), "'><x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/></x></presence>"...)
		if _, err := c.NetConn().Write(pres); err != nil {
			return err
		}
		select {
		case <-joined[i]:
			if cond := refused[i].Load(); cond != nil {
				return fmt.Errorf("%s cannot join %s: %s", c.JID(), room, *cond)
			}
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(e.Dialer.Options().Timeout):
			return fmt.Errorf("%s: no self-presence from %s (%d errors, first: %v)", c.JID(), room, f.errs.n.Load(), f.errs.first)
		}
	}
	if err := join(0); err != nil {
		return nil, fmt.Errorf("muc: %w", err)
	}
	conns[0].NetConn().Write(append(scan.Escape([]byte("<iq type='set' id='kb-instant' to='"), room),
		"'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query></iq>"...))
	select {
	case ok := <-unlocked:
		if !ok {
			return nil, fmt.Errorf("muc: %s refused the instant room configuration", room)
		}
	case <-time.After(e.Dialer.Options().Timeout):
		return nil, fmt.Errorf("muc: no answer to the configuration of %s", room)
	}
	var joins atomic.Int64
	stop := e.progress("muc", func() string { return fmt.Sprintf("joined %d/%d", joins.Load()+1, p.Receivers) })
	var failed errorLog
	forEach(ctx, p.Receivers-1, p.Concurrency, func(i int) {
		if err := join(i + 1); err != nil {
			failed.add(err)
			return
		}
		joins.Add(1)
	})
	stop()
	if failed.first != nil {
		return nil, fmt.Errorf("muc: %d occupants failed to join: %w", failed.n.Load(), failed.first)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.SetupSeconds = time.Since(setup).Seconds()
	if err := f.measure(ctx, r); err != nil {
		return nil, err
	}
	return r, nil
}
