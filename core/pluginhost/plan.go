package pluginhost

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"sync"
	"time"
)

// Plan is a change of the running plugins to a new set of specs, made in
// two steps so that a configuration reload is all or nothing: Prepare
// starts and configures every new plugin and every plugin whose spec
// changed as a new process beside the one serving now, and the caller
// looks at what they declare (Plan.Backend) before it decides; Commit then
// makes them the host's plugins, Abort stops them and leaves everything as
// it was. The processes a commit replaces or removes keep serving the
// calls already made to them and are stopped afterwards.
//
// One plan at a time: the caller serializes Prepare, Commit and Abort.
type Plan struct {
	h     *Host
	order []string            // spec order
	next  map[string]*Backend // what the host has after Commit
	fresh []*Backend          // started by Prepare: new or replacing
	old   []*Backend          // replaced or removed by Commit

	started, replaced, removed []string
	done                       bool
}

// Prepare plans the change to specs: a spec equal to that of a running
// plugin keeps it; a new name or a changed spec (command, args, sha256,
// config, call timeout, directory, reattach) gets a new process, started
// and configured now; a running plugin whose name is not in specs is to be
// removed. Any start that fails fails the plan: the processes it started
// are stopped and nothing changed. ctx bounds the starts.
func (h *Host) Prepare(ctx context.Context, specs []Spec) (*Plan, error) {
	h.mu.Lock()
	switch {
	case h.closed:
		h.mu.Unlock()
		return nil, errors.New("pluginhost: closed")
	case !h.started:
		h.mu.Unlock()
		return nil, errors.New("pluginhost: not started")
	}
	cur := make(map[string]*Backend, len(h.byName))
	for n, b := range h.byName {
		cur[n] = b
	}
	log := h.log
	h.mu.Unlock()

	p := &Plan{h: h, next: map[string]*Backend{}}
	var problems []error
	for _, s := range specs {
		if _, dup := p.next[s.Name]; dup {
			problems = append(problems, fmt.Errorf("plugin %q: configured twice", s.Name))
			continue
		}
		b, err := newBackend(log, s)
		if err != nil {
			problems = append(problems, err)
			continue
		}
		p.order = append(p.order, s.Name)
		if old := cur[s.Name]; old != nil && old.sameSpec(b) {
			p.next[s.Name] = old
			continue
		}
		p.next[s.Name] = b
		p.fresh = append(p.fresh, b)
		if old := cur[s.Name]; old != nil {
			p.old = append(p.old, old)
			p.replaced = append(p.replaced, s.Name)
		} else {
			p.started = append(p.started, s.Name)
		}
	}
	if err := errors.Join(problems...); err != nil {
		return nil, err
	}
	for n, b := range cur {
		if _, kept := p.next[n]; !kept {
			p.old = append(p.old, b)
			p.removed = append(p.removed, n)
		}
	}
	sort.Strings(p.removed)

	insts := make([]*instance, len(p.fresh))
	errs := make([]error, len(p.fresh))
	var wg sync.WaitGroup
	for i, b := range p.fresh {
		wg.Go(func() { insts[i], errs[i] = b.start(ctx) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, inst := range insts {
			if inst != nil {
				wg.Go(inst.kill)
			}
		}
		wg.Wait()
		return nil, err
	}
	for i, b := range p.fresh {
		b.up(insts[i], true)
	}
	return p, nil
}

// sameSpec reports whether b would run the same plugin as o.
func (b *Backend) sameSpec(o *Backend) bool {
	a, c := b.spec, o.spec
	a.Config, c.Config = nil, nil
	return reflect.DeepEqual(a, c) && bytes.Equal(b.config, o.config)
}

// Backend returns the handle the named plugin will have after Commit: the
// running one when its spec did not change, the new one (started, with its
// capabilities known) otherwise.
func (p *Plan) Backend(name string) (*Backend, bool) {
	b, ok := p.next[name]
	return b, ok
}

// Started, Replaced and Removed name the plugins the plan adds, restarts
// with a changed spec, and stops.
func (p *Plan) Started() []string  { return p.started }
func (p *Plan) Replaced() []string { return p.replaced }
func (p *Plan) Removed() []string  { return p.removed }

// Changed reports whether the plan changes anything.
func (p *Plan) Changed() bool { return len(p.fresh)+len(p.old) > 0 }

// Abort stops the processes Prepare started; the host is as it was.
func (p *Plan) Abort() {
	if p.done {
		return
	}
	p.done = true
	var wg sync.WaitGroup
	for _, b := range p.fresh {
		if inst := b.down(); inst != nil {
			wg.Go(inst.kill)
		}
	}
	wg.Wait()
	for _, b := range p.fresh {
		b.log.Info("plugin stopped: its change was not applied")
	}
}

// Commit makes the plan's plugins the host's: Backend and Backends answer
// with them from now on and the new ones are supervised. Each replaced or
// removed plugin is retired in the background: for grace it still takes
// new calls (from operations that looked it up just before), then it
// refuses them, its calls in flight get up to drain to finish, and its
// process is stopped. Close stops retirements early. Commit fails only
// when the host was closed meanwhile (the new processes are stopped).
func (p *Plan) Commit(grace, drain time.Duration) error {
	if p.done {
		return errors.New("pluginhost: plan already committed or aborted")
	}
	h := p.h
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		p.Abort()
		return errors.New("pluginhost: closed")
	}
	p.done = true
	h.backends = h.backends[:0:0]
	h.byName = make(map[string]*Backend, len(p.order))
	for _, n := range p.order {
		b := p.next[n]
		h.backends = append(h.backends, b)
		h.byName[n] = b
	}
	for _, b := range p.fresh {
		b.obs = h.obs
		h.superviseLocked(b)
	}
	ctx := h.superCtx
	for _, b := range p.old {
		h.wg.Go(func() { b.retire(ctx, grace, drain) })
	}
	h.mu.Unlock()
	return nil
}

// retire stops a plugin that a plan replaced or removed; see Commit.
func (b *Backend) retire(ctx context.Context, grace, drain time.Duration) {
	b.supervisor()
	t := time.NewTimer(grace)
	select {
	case <-t.C:
	case <-ctx.Done():
		t.Stop()
	}
	b.beginClose()
	dctx, cancel := context.WithTimeout(ctx, drain)
	err := b.drain(dctx)
	cancel()
	inst := b.down()
	if inst == nil {
		b.log.Info("plugin retired")
		return
	}
	if err != nil {
		b.log.Warn("plugin retired with calls still in flight", "pid", inst.pid, "error", err)
		inst.forceKill()
	} else {
		b.log.Info("plugin retired", "pid", inst.pid)
	}
	inst.kill()
}
