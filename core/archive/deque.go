package archive

// deque is the writer's queue: a ring buffer that grows by doubling and is
// then reused, so that a busy writer neither reallocates nor copies its
// queue as it takes batches from the front.
type deque struct {
	buf  []item
	head int // index of the first item
	n    int
}

func (d *deque) len() int { return d.n }

// at returns the i-th item from the front.
func (d *deque) at(i int) *item { return &d.buf[(d.head+i)%len(d.buf)] }

func (d *deque) grow(need int) {
	if need <= len(d.buf) {
		return
	}
	size := max(64, 2*len(d.buf))
	for size < need {
		size *= 2
	}
	buf := make([]item, size)
	for i := range d.n {
		buf[i] = *d.at(i)
	}
	d.buf, d.head = buf, 0
}

// pushBack appends it.
func (d *deque) pushBack(it item) {
	d.grow(d.n + 1)
	d.buf[(d.head+d.n)%len(d.buf)] = it
	d.n++
}

// pushFront puts items, in order, before the first item.
func (d *deque) pushFront(items []item) {
	d.grow(d.n + len(items))
	for i := len(items) - 1; i >= 0; i-- {
		d.head = (d.head - 1 + len(d.buf)) % len(d.buf)
		d.buf[d.head] = items[i]
		d.n++
	}
}

// popFront removes the first n items and returns them in a new slice.
func (d *deque) popFront(n int) []item {
	out := make([]item, n)
	for i := range n {
		slot := d.at(i)
		out[i] = *slot
		*slot = item{} // let the message's strings go
	}
	d.head = (d.head + n) % len(d.buf)
	d.n -= n
	if d.n == 0 {
		d.head = 0
	}
	return out
}
