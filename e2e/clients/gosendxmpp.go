package clients

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/koi-im/koi/e2e/internal/koiproc"
)

// goSendXMPP drives go-sendxmpp (Go, built on go-xmpp), the command-line
// sender written in Go that Debian ships.
//
// Sending is one process: it logs in, sends the message read from stdin
// and closes the stream about 100 ms later. go-sendxmpp has no mode that
// both sends and reports what arrives (-i reads stdin only, -l only
// listens), and the reference peer answers the sender's full JID, so the
// reply reaches the sending process while it is still connected (it
// always does on a quiet machine). go-sendxmpp only shows it in its -d
// dump of the incoming stream, which is where Run reads it. For a reply
// slower than that, a second go-sendxmpp in listen mode (-l) is logged in
// as the same account for the whole run: once the sender's resource is
// gone the server delivers the chat message to the account's other
// resource (RFC 6121 §8.5.3.2.1), and -l prints it.
//
// Certificates are verified against Target.CAFile through SSL_CERT_FILE,
// which Go's crypto/x509 reads on Linux. The client side cannot be held to
// TLS 1.2: --tls-version only sets the minimum, and Go's TLS has no
// environment switch for the maximum.
type goSendXMPP struct{}

func (goSendXMPP) Name() string { return "go-sendxmpp" }

func (goSendXMPP) Caps() Caps {
	return Caps{DirectTLS: true, StartTLS: true, Receive: true}
}

func (goSendXMPP) Setup(ctx context.Context, env *Env) error {
	return aptInstall(ctx, env, "go-sendxmpp")
}

// gsxReplyWait bounds the wait for the reply after the sender has exited,
// for contexts without a deadline.
const gsxReplyWait = 30 * time.Second

func (goSendXMPP) Run(ctx context.Context, env *Env, t Target, x Exchange) error {
	if t.WebSocketURL != "" {
		return fmt.Errorf("go-sendxmpp does not speak WebSocket")
	}
	if t.ClientMaxTLS12 {
		return fmt.Errorf("go-sendxmpp cannot be limited to TLS 1.2 (only a minimum version)")
	}
	// HOME is private so that no sendxmpprc of the machine is read.
	cmdEnv := append(dropEnv(os.Environ(), "SSL_CERT_FILE", "SSL_CERT_DIR", "HOME"),
		"SSL_CERT_FILE="+t.CAFile, "HOME="+t.WorkDir)
	base := []string{
		"-u", x.Me.JID(), "-p", x.Me.Password,
		"-j", net.JoinHostPort(t.Host, strconv.Itoa(t.Port)),
	}
	if t.DirectTLS {
		base = append(base, "-t")
	}

	var listener *exec.Cmd
	var lout, lerr koiproc.Buffer // written by the process while Run reads
	if x.Want != "" {
		listener = exec.CommandContext(ctx, "go-sendxmpp", append(append([]string{}, base...), "-d", "-l")...)
		listener.Env = cmdEnv
		listener.Dir = t.WorkDir
		listener.Stdout, listener.Stderr = &lout, &lerr
		listener.WaitDelay = 2 * time.Second
		if err := listener.Start(); err != nil {
			return fmt.Errorf("go-sendxmpp -l: %w", err)
		}
		exited := make(chan error, 1)
		go func() { exited <- listener.Wait() }()
		defer func() {
			// Kill after exit is harmless; Wait in the goroutine reaps.
			_ = listener.Process.Kill()
			<-exited
		}()
		// Ready once its own presence came back: it is bound and
		// available, so the server can route to it.
		if err := gsxWaitFor(ctx, exited, func() bool {
			s := lerr.String()
			i := strings.Index(s, "</bind>")
			return i >= 0 && strings.Contains(s[i:], "<presence")
		}); err != nil {
			return fmt.Errorf("go-sendxmpp -l did not come online: %w\n%s%s", err, lerr.String(), lout.String())
		}
	}

	sender := exec.CommandContext(ctx, "go-sendxmpp", append(append([]string{}, base...), "-d", x.Peer)...)
	sender.Env = cmdEnv
	sender.Dir = t.WorkDir
	sender.Stdin = strings.NewReader(x.Send)
	var sout bytes.Buffer
	sender.Stdout, sender.Stderr = &sout, &sout
	sender.WaitDelay = 2 * time.Second
	if err := sender.Run(); err != nil {
		return fmt.Errorf("go-sendxmpp: %w\n%s", err, sout.String())
	}
	if x.Want == "" {
		return nil
	}
	if gsxDumpHas(sout.String(), x.Peer, x.Want) {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, gsxReplyWait)
	defer cancel()
	err := gsxWaitFor(wctx, nil, func() bool { return gsxListenHas(lout.String(), x.Peer, x.Want) })
	if err != nil {
		return fmt.Errorf("go-sendxmpp: no reply %q from %s: %w\nsender:\n%s\nlistener:\n%s%s",
			x.Want, x.Peer, err, sout.String(), lerr.String(), lout.String())
	}
	return nil
}

// gsxWaitFor polls ok until it holds, ctx ends or, when exited is not
// nil, the process it watches ends.
func gsxWaitFor(ctx context.Context, exited chan error, ok func() bool) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !ok() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-exited:
			exited <- err // for the deferred reaper
			if ok() {
				return nil
			}
			return fmt.Errorf("exited: %v", err)
		case <-tick.C:
		}
	}
	return nil
}

// gsxMessage matches <message/> elements in go-sendxmpp's -d dump, which
// is the raw incoming stream.
var gsxMessage = regexp.MustCompile(`(?s)<message[\s>].*?</message>`)

// gsxDumpHas reports whether the dump holds a chat message from peer (a
// bare JID) whose body is want.
func gsxDumpHas(dump, peer, want string) bool {
	for _, raw := range gsxMessage.FindAllString(dump, -1) {
		var m struct {
			From string `xml:"from,attr"`
			Type string `xml:"type,attr"`
			Body string `xml:"body"`
		}
		// A carbon or other nested message is cut short by the pattern
		// and fails to parse: it is not the reply anyway.
		if xml.Unmarshal([]byte(raw), &m) != nil {
			continue
		}
		from, _, _ := strings.Cut(m.From, "/")
		if m.Type == "chat" && from == peer && m.Body == want {
			return true
		}
	}
	return false
}

// gsxListenHas reports whether go-sendxmpp -l printed the message: it
// writes "<RFC 3339 time> <bare JID>: <body>" per message.
func gsxListenHas(out, peer, want string) bool {
	for _, line := range strings.Split(out, "\n") {
		_, rest, ok := strings.Cut(line, " ")
		if ok && rest == peer+": "+want {
			return true
		}
	}
	return false
}

// dropEnv returns env without the variables named.
func dropEnv(env []string, names ...string) []string {
	out := make([]string, 0, len(env))
outer:
	for _, kv := range env {
		for _, n := range names {
			if strings.HasPrefix(kv, n+"=") {
				continue outer
			}
		}
		out = append(out, kv)
	}
	return out
}
