package clients

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// profanity drives Profanity, the terminal client (C, on libstrophe and
// OpenSSL), the way a person does: it runs in a detached tmux session of
// its own (a private socket, removed afterwards), commands are typed with
// send-keys and what it shows is read with capture-pane.
//
// Its HOME and XDG directories are under Target.WorkDir, with an accounts
// file written before start, and -a logs in to that account at once, with
// the connection settings of libstrophe as Profanity sets them (no
// tls.policy: STARTTLS is required; SASL picks the strongest mechanism it
// has, SCRAM-SHA-256 with koi). "tls.policy=legacy" is Profanity's word
// for TLS from the first byte. The certificate is trusted through
// SSL_CERT_FILE, which OpenSSL's default verify paths read, so libstrophe
// verifies it and Profanity never asks "/tls allow"; that prompt, or a
// failed login, ends the run with the screen in the error. OPENSSL_CONF
// with a MaxProtocol holds it to TLS 1.2.
//
// The reply is taken from the screen: the chat window /msg opens shows
// "<time> - <peer's full JID>: <body>". Profanity keeps its own chat
// history in SQLite only, so there is no text log to read instead; its
// debug log (with the stream) is added to errors.
type profanity struct{}

func (profanity) Name() string { return "profanity" }

func (profanity) Caps() Caps {
	return Caps{DirectTLS: true, StartTLS: true, ForceTLS12: true, Receive: true}
}

func (profanity) Setup(ctx context.Context, env *Env) error {
	return aptInstall(ctx, env, "profanity", "tmux")
}

// profStepWait bounds each wait on the screen (login, reply), for contexts
// without a deadline.
const profStepWait = 30 * time.Second

func (profanity) Run(ctx context.Context, env *Env, t Target, x Exchange) (err error) {
	if t.WebSocketURL != "" {
		return fmt.Errorf("profanity does not speak WebSocket")
	}
	home := filepath.Join(t.WorkDir, "home")
	cfg := filepath.Join(t.WorkDir, "config")
	data := filepath.Join(t.WorkDir, "data")
	for _, d := range []string{home, filepath.Join(cfg, "profanity"), filepath.Join(data, "profanity")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	account := x.Me.JID()
	acc := fmt.Sprintf("[%s]\nenabled=true\njid=%s\npassword=%s\nserver=%s\nport=%d\nresource=profanity\n",
		account, account, profKeyFileValue(x.Me.Password), t.Host, t.Port)
	if t.DirectTLS {
		acc += "tls.policy=legacy\n"
	}
	if err := os.WriteFile(filepath.Join(data, "profanity", "accounts"), []byte(acc), 0o600); err != nil {
		return fmt.Errorf("writing profanity accounts: %w", err)
	}
	// remain-on-exit keeps the screen of a Profanity that quit or
	// crashed readable for the error.
	tmuxConf := filepath.Join(t.WorkDir, "tmux.conf")
	if err := os.WriteFile(tmuxConf, []byte("set -g remain-on-exit on\nset -g status off\nset -g history-limit 10000\n"), 0o644); err != nil {
		return fmt.Errorf("writing tmux.conf: %w", err)
	}
	logFile := filepath.Join(t.WorkDir, "profanity.log")

	// A socket path must fit in sun_path (108 bytes); WorkDir may not.
	sockDir, err := os.MkdirTemp("", "koi-prof-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(sockDir)
	sock := filepath.Join(sockDir, "tmux")
	tmuxEnv := dropEnv(os.Environ(), "TMUX", "TMUX_PANE")
	tmux := func(ctx context.Context, args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "tmux", append([]string{"-S", sock, "-f", tmuxConf}, args...)...)
		cmd.Env = tmuxEnv
		cmd.WaitDelay = 2 * time.Second
		out, err := cmd.CombinedOutput()
		if err != nil {
			return string(out), fmt.Errorf("tmux %s: %w: %s", args[0], err, out)
		}
		return string(out), nil
	}

	prog := []string{"env", "-u", "SSL_CERT_DIR", "-u", "OPENSSL_CONF",
		"HOME=" + home, "XDG_CONFIG_HOME=" + cfg, "XDG_DATA_HOME=" + data, "SSL_CERT_FILE=" + t.CAFile}
	if t.ClientMaxTLS12 {
		conf, err := openSSLMaxTLS12(t.WorkDir)
		if err != nil {
			return err
		}
		prog = append(prog, conf)
	}
	prog = append(prog, "profanity", "-a", account, "-l", "DEBUG", "-f", logFile)
	if _, err := tmux(ctx, append([]string{"new-session", "-d", "-x", "220", "-y", "50", "-s", "koi"}, prog...)...); err != nil {
		return err
	}
	pid := 0
	if out, err := tmux(ctx, "display-message", "-p", "-t", "koi", "#{pane_pid}"); err == nil {
		pid, _ = strconv.Atoi(strings.TrimSpace(out))
	}
	screen := func(ctx context.Context) (text string, dead bool, err error) {
		text, err = tmux(ctx, "capture-pane", "-p", "-J", "-S", "-", "-t", "koi")
		if err != nil {
			return "", false, err
		}
		d, err := tmux(ctx, "display-message", "-p", "-t", "koi", "#{pane_dead}")
		return text, strings.TrimSpace(d) == "1", err
	}
	defer func() {
		// ctx may be over: the clean-up has its own bound.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		last, dead, serr := screen(cctx)
		if serr == nil && !dead {
			_, _ = tmux(cctx, "send-keys", "-t", "koi", "-l", "/quit")
			_, _ = tmux(cctx, "send-keys", "-t", "koi", "Enter")
			// last stays the screen as it was: after /quit it is blank.
			for i := 0; i < 30 && !dead; i++ {
				time.Sleep(100 * time.Millisecond)
				if _, dead, serr = screen(cctx); serr != nil {
					break
				}
			}
		}
		_, _ = tmux(cctx, "kill-server")
		// kill-server hangs the pane up; Profanity gets 2 s to go.
		for i := 0; pid > 0 && syscall.Kill(pid, 0) == nil; i++ {
			if i == 20 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			err = fmt.Errorf("%w\nscreen:\n%s\nprofanity.log (end):\n%s", err, profCompact(last), profLogTail(logFile))
		}
	}()

	// waitScreen polls the screen until done says so or something on it
	// means failure.
	waitScreen := func(what string, done func(string) bool) error {
		wctx, cancel := context.WithTimeout(ctx, profStepWait)
		defer cancel()
		for {
			text, dead, err := screen(wctx)
			if err != nil {
				return fmt.Errorf("profanity: waiting for %s: %w", what, err)
			}
			switch {
			case done(text):
				return nil
			case dead:
				return fmt.Errorf("profanity exited while waiting for %s", what)
			case strings.Contains(text, "Login failed"):
				return errors.New("profanity: login failed")
			case strings.Contains(text, "/tls allow"):
				return errors.New("profanity: the server certificate was not trusted (it asks to /tls allow)")
			}
			select {
			case <-wctx.Done():
				return fmt.Errorf("profanity: waiting for %s: %w", what, wctx.Err())
			case <-time.After(200 * time.Millisecond):
			}
		}
	}

	if err := waitScreen("login", func(s string) bool { return strings.Contains(s, "logged in successfully") }); err != nil {
		return err
	}
	if _, err := tmux(ctx, "send-keys", "-t", "koi", "-l", "/msg "+x.Peer+" "+x.Send); err != nil {
		return err
	}
	if _, err := tmux(ctx, "send-keys", "-t", "koi", "Enter"); err != nil {
		return err
	}
	// The chat window shows our own line once the message has been sent.
	if err := waitScreen("the sent message", func(s string) bool { return profScreenHas(s, "me", x.Send) }); err != nil {
		return err
	}
	if x.Want == "" {
		return nil
	}
	return waitScreen("the reply", func(s string) bool { return profScreenHas(s, x.Peer, x.Want) })
}

// profScreenHas reports whether a line of the screen is a chat line from
// from (a bare JID, or "me") with body: "<time> - <from>[/<resource>]: <body>".
func profScreenHas(screen, from, body string) bool {
	for _, line := range strings.Split(screen, "\n") {
		_, rest, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		who, text, ok := strings.Cut(rest, ": ")
		if !ok {
			continue
		}
		if who != from && !strings.HasPrefix(who, from+"/") {
			continue
		}
		if strings.TrimRight(text, " ") == body {
			return true
		}
	}
	return false
}

// profCompact drops the blank lines of a screen, which are most of it.
func profCompact(screen string) string {
	var b strings.Builder
	for _, line := range strings.Split(screen, "\n") {
		if line = strings.TrimRight(line, " "); line != "" {
			b.WriteString(line)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// profKeyFileValue escapes a GLib key file value: a backslash starts an
// escape, and leading spaces would be dropped.
func profKeyFileValue(s string) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	s = strings.ReplaceAll(s, "\n", `\n`)
	if strings.HasPrefix(s, " ") {
		s = `\s` + s[1:]
	}
	return s
}

// profLogTail returns the end of Profanity's debug log.
func profLogTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > 6000 {
		b = b[len(b)-6000:]
	}
	return string(b)
}
