package admission

// Why a step yields to the network poller, not just to the scheduler.
//
// koi usually runs on few CPUs; pinned to one, the Go runtime has one P.
// Its scheduler takes runnable goroutines first from the P's own queue,
// then from the global queue, and only when both are empty asks the
// network poller which sockets became readable (sysmon also polls, but
// only once nothing has polled for 10 ms). A storm keeps handshake steps
// queued back to back: each release hands the slot straight to the next
// waiter, so the queues never empty, and an established session whose
// message arrived waits for sysmon. runtime.Gosched does not help: the
// yielding goroutine goes to the global queue, which the scheduler still
// takes before polling.
//
// A Yielder makes the goroutine wait for one turn of the poller itself:
// it writes a byte into a socket pair and waits, through the poller, for
// it to be readable. The poller then hands back every goroutine whose
// socket is ready in the same batch; the yielder finally goes to the back
// of the run queue (Gosched) so that those run before its step. A
// step costs two system calls more, a few microseconds.
//
// It is a strong nudge, not a guarantee: the runtime sometimes leaves a
// thread without a P blocked in the poller, and a wake-up that thread
// takes is queued a moment later, possibly after the yielder has gone on.
// The session then runs at the next scheduling round instead.
