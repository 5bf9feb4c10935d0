package clients

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"time"
)

// sendXMPP drives sendxmpp, the Perl command-line sender (Net::XMPP and
// XML::Stream over IO::Socket::SSL). It only sends: it logs in, sends the
// message read from stdin as a chat message and logs out, with no way to
// wait for an answer.
//
// It is pointed at Target.Host:Port with -j and told the XMPP domain with
// -o (the "component" option, which sets the stream's to and the domain of
// the JID it authenticates as); without it the host given to -j would be
// the domain. -t is STARTTLS, -e TLS from the first byte. The certificate
// is verified against Target.CAFile given with -a (IO::Socket::SSL's
// SSL_ca_file); without it the system CAs are used and the login fails,
// so verification is real. It authenticates with PLAIN: Authen::SASL::Perl
// has no SCRAM. OpenSSL reads
// OPENSSL_CONF when
// IO::Socket::SSL creates its context, so a MaxProtocol there holds the
// client to TLS 1.2.
type sendXMPP struct{}

func (sendXMPP) Name() string { return "sendxmpp" }

func (sendXMPP) Caps() Caps {
	return Caps{DirectTLS: true, StartTLS: true, ForceTLS12: true}
}

func (sendXMPP) Setup(ctx context.Context, env *Env) error {
	return aptInstall(ctx, env, "sendxmpp")
}

func (sendXMPP) Run(ctx context.Context, env *Env, t Target, x Exchange) error {
	if t.WebSocketURL != "" {
		return fmt.Errorf("sendxmpp does not speak WebSocket")
	}
	if x.Want != "" {
		return fmt.Errorf("sendxmpp cannot receive messages")
	}
	args := []string{
		"-u", x.Me.User, "-p", x.Me.Password,
		"-j", net.JoinHostPort(t.Host, strconv.Itoa(t.Port)),
		"-o", t.Domain,
		"-a", t.CAFile,
	}
	if t.DirectTLS {
		args = append(args, "-e")
	} else {
		args = append(args, "-t")
	}
	args = append(args, x.Peer)
	// HOME is private so that no ~/.sendxmpprc of the machine is read.
	cmdEnv := append(dropEnv(os.Environ(), "HOME", "OPENSSL_CONF"), "HOME="+t.WorkDir)
	if t.ClientMaxTLS12 {
		conf, err := openSSLMaxTLS12(t.WorkDir)
		if err != nil {
			return err
		}
		cmdEnv = append(cmdEnv, conf)
	}
	cmd := exec.CommandContext(ctx, "sendxmpp", args...)
	cmd.Env = cmdEnv
	cmd.Dir = t.WorkDir
	cmd.Stdin = bytes.NewReader([]byte(x.Send))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 2 * time.Second
	// sendxmpp exits 1 on any error it sees (connect, TLS, SASL).
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("sendxmpp: %w\n%s", err, out.String())
	}
	return nil
}
