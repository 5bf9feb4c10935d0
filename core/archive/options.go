package archive

import "time"

// Options tune a Writer. The zero value of each field picks its default.
type Options struct {
	// BatchSize is the most messages in one batch (default 256); a full
	// batch is sent at once.
	BatchSize int
	// BatchBytes bounds a batch's size on the wire (default 1 MiB; a
	// single message larger than that still goes, alone), well under
	// gRPC's 4 MiB message limit whatever the stanzas' size.
	BatchBytes int
	// FlushInterval is how long a message may wait for its batch to fill
	// (default 10ms).
	FlushInterval time.Duration
	// QueueSize bounds the messages the writer holds: reserved, waiting
	// and in flight (default 16384). It is the writer's whole memory.
	QueueSize int
	// MaxInFlight is how many batches may await their acknowledgement
	// (default 64): the next ones travel while one is being committed,
	// and the plugin commits those that wait together, up to 16,384
	// messages: 64 full batches. With a journal, the batches from memory
	// in flight hold at most QueueSize-HighWater messages (see
	// memWindowFullLocked); those replayed from the journal use it all.
	MaxInFlight int
	// BlockTimeout is how long Reserve waits for room in a full queue
	// before it gives up with ErrFull (default 2s).
	BlockTimeout time.Duration
	// AckTimeout is how long a batch may wait for its acknowledgement
	// before the stream is taken for dead and opened again (default 30s).
	AckTimeout time.Duration
	// RetryMin and RetryMax bound the wait between attempts to open a
	// stream (defaults 50ms and 2s).
	RetryMin, RetryMax time.Duration

	// Journal, if set, takes the committed messages the backend cannot
	// take now (see Writer); the Writer closes it. Without one, messages
	// wait in memory and Reserve refuses once QueueSize is reached.
	Journal Journal
	// HighWater is how many queued messages make the writer move them to
	// the journal even while the backend answers, because it is slower
	// than the traffic (default QueueSize/2).
	HighWater int
	// ProbeInterval caps RetryMax while there is a journal (default
	// 250ms), so that a backend that is back is found at once.
	ProbeInterval time.Duration
	// OutageLogInterval is how often an ongoing outage is logged again
	// (default 5s).
	OutageLogInterval time.Duration
}

func (o Options) withDefaults() Options {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defD := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.BatchSize, 256)
	def(&o.BatchBytes, 1<<20)
	def(&o.QueueSize, 16384)
	def(&o.MaxInFlight, 64)
	defD(&o.FlushInterval, 10*time.Millisecond)
	defD(&o.BlockTimeout, 2*time.Second)
	defD(&o.AckTimeout, 30*time.Second)
	defD(&o.RetryMin, 50*time.Millisecond)
	defD(&o.RetryMax, 2*time.Second)
	defD(&o.ProbeInterval, 250*time.Millisecond)
	defD(&o.OutageLogInterval, 5*time.Second)
	if o.HighWater <= 0 || o.HighWater > o.QueueSize {
		o.HighWater = max(o.QueueSize/2, 1)
	}
	if o.Journal != nil {
		o.RetryMax = min(o.RetryMax, o.ProbeInterval)
	}
	if o.RetryMax < o.RetryMin {
		o.RetryMax = o.RetryMin
	}
	return o
}
