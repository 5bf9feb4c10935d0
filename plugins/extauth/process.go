package extauth

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync/atomic"
	"time"

	"github.com/koi-im/koi/sdk"
)

// stopGrace is how long a program gets to exit on its own once its stdin
// is closed (ejabberd's programs loop until EOF) before it is killed.
const stopGrace = time.Second

// maxLogLine bounds one line of the program's stderr in the log.
const maxLogLine = 4096

// process is one running copy of the program, with its stdin and stdout.
// Only one request may be in flight at a time: the caller owns it.
//
// The pipes are made here rather than by exec.Cmd, so that none of them
// is closed behind our back when the program exits (a reply written just
// before exiting is still read) and so that a child of the program that
// keeps stderr open does not hold up reaping it.
type process struct {
	cmd    *exec.Cmd
	stdin  *os.File
	stdout *os.File
	log    sdk.Logger

	exited   chan struct{} // closed once the program has exited and been reaped
	stopping atomic.Bool   // set when we stop or kill it: its exit is expected
}

// startProcess starts the program of s and the goroutines that log its
// stderr and reap it.
func startProcess(s Settings, log sdk.Logger) (*process, error) {
	var files []*os.File
	closeAll := func() {
		for _, f := range files {
			f.Close()
		}
	}
	pipe := func() (r, w *os.File, err error) {
		r, w, err = os.Pipe()
		if err == nil {
			files = append(files, r, w)
		}
		return r, w, err
	}
	inR, inW, err := pipe()
	if err != nil {
		return nil, fmt.Errorf("stdin pipe: %w", err)
	}
	outR, outW, err := pipe()
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("stdout pipe: %w", err)
	}
	errR, errW, err := pipe()
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("stderr pipe: %w", err)
	}
	// Deadlines are how a hung program is noticed; without them (a
	// platform whose pipes the poller does not handle) a call could block
	// for ever.
	if err := outR.SetReadDeadline(time.Time{}); err != nil {
		closeAll()
		return nil, fmt.Errorf("pipes without deadlines on this platform: %w", err)
	}

	cmd := exec.Command(s.Program, s.Args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, errW
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		closeAll()
		return nil, fmt.Errorf("start %s: %w", s.Program, err)
	}
	// The child has its copies; ours would keep the pipes open after it
	// exits and hide its death.
	inR.Close()
	outW.Close()
	errW.Close()

	p := &process{
		cmd: cmd, stdin: inW, stdout: outR,
		log:    withArgs(log, "pid", cmd.Process.Pid),
		exited: make(chan struct{}),
	}
	go p.logStderr(errR)
	go p.reap()
	p.log.Debug("extauth program started")
	return p, nil
}

// logStderr folds the program's stderr into the plugin's log, line by
// line, until every writer of the pipe is gone.
func (p *process) logStderr(r *os.File) {
	defer r.Close()
	br := bufio.NewReaderSize(r, maxLogLine)
	for {
		line, _, err := br.ReadLine() // an over-long line comes in pieces
		if len(line) > 0 {
			p.log.Warn("extauth program: " + string(line))
		}
		if err != nil {
			return
		}
	}
}

// reap waits for the program to exit and says how it ended: a warning
// if nobody asked it to.
func (p *process) reap() {
	err := p.cmd.Wait()
	close(p.exited)
	// A failure exit is news even when we were about to kill the program
	// (it died in the middle of a request); our kill and a clean exit at
	// EOF are not.
	var exit *exec.ExitError
	failed := errors.As(err, &exit) && exit.ExitCode() > 0
	if err == nil {
		err = errors.New("exit status 0")
	}
	if p.stopping.Load() && !failed {
		p.log.Debug("extauth program ended", "status", err.Error())
		return
	}
	p.log.Warn("extauth program exited", "status", err.Error())
}

// alive reports whether the program has not exited yet.
func (p *process) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// exchange sends one request frame and reads the answer, giving up at
// deadline or when ctx ends. After an error the program is out of step
// (a reply may still come) and must be killed.
func (p *process) exchange(ctx context.Context, frame []byte, deadline time.Time) (bool, error) {
	if err := p.stdin.SetWriteDeadline(deadline); err != nil {
		return false, err
	}
	if err := p.stdout.SetReadDeadline(deadline); err != nil {
		return false, err
	}
	// A caller that gives up before the deadline ends the wait at once.
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(fired)
		p.stdin.SetWriteDeadline(time.Now())
		p.stdout.SetReadDeadline(time.Now())
	})
	defer func() {
		// Let a late firing finish now, not during the next exchange,
		// whose deadlines it would overwrite.
		if !stop() {
			<-fired
		}
	}()
	if _, err := p.stdin.Write(frame); err != nil {
		return false, p.describe(ctx, "writing the request", err)
	}
	ok, err := readReply(p.stdout)
	if err != nil {
		return false, p.describe(ctx, "reading the answer", err)
	}
	return ok, nil
}

// describe turns a pipe error into what happened to the program.
func (p *process) describe(ctx context.Context, doing string, err error) error {
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("%s: the call was abandoned: %w", doing, ctx.Err())
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("%s: the program did not answer in time", doing)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%s: the program closed its stdout (did it exit?)", doing)
	}
	return fmt.Errorf("%s: %w", doing, err)
}

// kill ends the program at once, with any children in its process group.
func (p *process) kill() {
	p.stopping.Store(true)
	killProcess(p.cmd.Process)
	p.closePipes()
}

// stop closes the program's stdin, which tells an ejabberd extauth
// program to exit, and kills it if it has not exited after stopGrace.
func (p *process) stop() {
	p.stopping.Store(true)
	p.stdin.Close()
	select {
	case <-p.exited:
	case <-time.After(stopGrace):
		p.log.Warn("extauth program did not exit when its stdin closed; killing it")
		killProcess(p.cmd.Process)
	}
	p.closePipes()
}

func (p *process) closePipes() {
	p.stdin.Close()
	p.stdout.Close()
}
