// Command koictl administers koi's accounts through the configured
// backends.
//
//	koictl [-config FILE] user add JID [PASSWORD|-]
//	koictl [-config FILE] user passwd JID [PASSWORD|-]
//	koictl [-config FILE] user del JID
//	koictl [-config FILE] user list [HOST]
//	koictl [-config FILE] db migrate [PLUGIN]
//	koictl [-config FILE] [-json] stats | session list|kick | plugin list|restart |
//	       roster list|add|del | send | broadcast | config check
//	koictl -h
//
// A password given as "-" or left out is read from standard input (one
// line), which keeps it out of the process list and shell history.
//
// user list prints one JID a line; on a host with several auth backends
// each line also names the plugin the account is in. Accounts that live
// in a read-only backend (a directory) are listed when the backend can
// enumerate them, with a note on standard error; when no backend can,
// koictl says so and exits 1, so that an empty list always means no users.
//
// db migrate applies pending schema migrations of the named plugin, or of
// every plugin block, and prints each schema version. It runs the plugin's
// binary as "COMMAND migrate" with the plugin's config as JSON on standard
// input; plugins without such a command (they fail it) are skipped unless
// named. koi-backend-sql also migrates at every start, so this is for
// doing it ahead of an upgrade.
//
// While koi runs with an admin block (core/admin), the user commands go
// through its admin API, so that the running server stays consistent (a
// deleted account's sessions end); the other commands there need it.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/koi-im/koi/core/config"
	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/logging"
	"github.com/koi-im/koi/core/modules"
	"github.com/koi-im/koi/core/pluginhost"
	"github.com/koi-im/koi/core/server"
	"github.com/koi-im/koi/sdk"
)

// usage goes to standard output for -h and to standard error after a
// wrong command line.
const usage = `usage: koictl [-config FILE] COMMAND

koictl manages koi's accounts through the backends the configuration names;
it works while koi runs.

commands:
  user add JID [PASSWORD|-]     create an account (password from standard input if - or left out)
  user passwd JID [PASSWORD|-]  change an account's password (and revoke its FAST login tokens)
  user del JID                  delete an account with its roster, offline messages, vCard and private data
  user revoke-tokens JID        revoke every FAST login token (XEP-0484) of an account: each client logs in with the password again
  user list [HOST]              list a host's accounts, from every auth backend that can list them
  db migrate [PLUGIN]           apply pending schema migrations of one plugin, or of every plugin

commands that need a running koi with an admin block (its admin API; the user commands above
use it too while koi runs):
  stats                         uptime, online users and sessions per host
  session list [HOST]           online sessions
  session kick JID [REASON]     end a session (its client gets policy-violation and the reason)
  plugin list                   plugins and their health
  plugin restart NAME           replace a plugin's process
  roster list JID               an account's roster
  roster add JID CONTACT [NAME [GROUP...]]  add a contact (pushed to the account's clients)
  roster del JID CONTACT        remove a contact, cancelling subscriptions both ways
  send JID TEXT                 send a message from the server (stored offline if need be)
  broadcast [HOST] TEXT         send a headline to every online session (of HOST)
  config check                  check the configuration file as a restart would read it

options:
  -config FILE  the configuration file (default config.hcl)
  -json         print the admin API's answer as JSON (commands that use it)
  -h, --help    show this help

exit codes: 0 done, 1 failed, 2 wrong command line, 3 koi not running (or no admin block),
4 no such account, session, contact or plugin, 5 the account exists already`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("koictl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {} // the usage is printed below, where it belongs
	path := fs.String("config", "config.hcl", "configuration file")
	jsonOut := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stdout, usage)
			return 0
		}
		fmt.Fprintln(stderr, usage)
		return 2
	}
	a := fs.Args()
	if len(a) > 0 && a[0] == "help" || len(a) > 1 && (a[1] == "-h" || a[1] == "-help" || a[1] == "--help") {
		fmt.Fprintln(stdout, usage)
		return 0
	}
	apiOnly := len(a) > 0 && (a[0] == "stats" || a[0] == "send" || a[0] == "broadcast")
	grouped := len(a) > 0 && (a[0] == "user" || a[0] == "db" || a[0] == "session" || a[0] == "plugin" || a[0] == "roster" || a[0] == "config")
	switch {
	case len(a) == 0:
		fmt.Fprintln(stderr, usage)
		return 2
	case !apiOnly && !grouped:
		fmt.Fprintf(stderr, "koictl: unknown command %q\n%s\n", a[0], usage)
		return 2
	case grouped && len(a) < 2:
		fmt.Fprintf(stderr, "koictl: %s what?\n%s\n", a[0], usage)
		return 2
	}
	cfg, err := config.Load(*path, os.Environ())
	if err != nil {
		fmt.Fprintf(stderr, "koictl: %s: configuration problems:\n%v\n", *path, err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var err2 error
	switch {
	case apiOnly:
		err2 = apiCmd(ctx, newAPIClient(cfg), *jsonOut, a[0], a[1:], stdout)
	case a[0] == "user":
		err2 = userCmd(ctx, cfg, a[1], a[2:], stdin, stdout, stderr)
	case a[0] == "db":
		err2 = dbCmd(ctx, cfg, a[1], a[2:], stdin, stdout, stderr)
	default:
		err2 = apiCmd(ctx, newAPIClient(cfg), *jsonOut, a[0]+" "+a[1], a[2:], stdout)
	}
	if err2 != nil {
		fmt.Fprintf(stderr, "koictl: %v\n", err2)
		if errors.Is(err2, errUsage) {
			fmt.Fprintln(stderr, usage)
		}
	}
	return exitCode(err2)
}

var errUsage = errors.New("wrong arguments")

// errExists and errNotFound mark what the exit code tells apart; their
// text is empty, so that wrapping them changes no message.
var (
	errExists   = errors.New("")
	errNotFound = errors.New("")
)

func userCmd(ctx context.Context, cfg *config.Config, verb string, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var hostName string
	var user string
	switch verb {
	case "list":
		if len(args) > 1 {
			return errUsage
		}
		if len(args) == 1 {
			hostName = strings.ToLower(args[0])
		} else if len(cfg.Hosts) == 1 {
			hostName = cfg.Hosts[0].Name
		} else {
			return fmt.Errorf("%w: name the host to list, one of %s", errUsage, hostNames(cfg))
		}
	case "add", "passwd", "del", "revoke-tokens":
		if len(args) < 1 || len(args) > 2 || ((verb == "del" || verb == "revoke-tokens") && len(args) != 1) {
			return errUsage
		}
		j, err := jid.Parse(args[0])
		if err != nil || j.Local() == "" || j.Resource() != "" {
			return fmt.Errorf("%q is not an account address (user@host)", args[0])
		}
		hostName, user = j.Domain(), j.Local()
	default:
		return fmt.Errorf("%w: unknown command user %s", errUsage, verb)
	}
	if verb != "revoke-tokens" {
		apiArgs := args
		if verb == "list" {
			apiArgs = []string{hostName}
		}
		handled, err := apiUserCmd(ctx, newAPIClient(cfg), verb, apiArgs, func() (string, error) { return password(args, stdin) }, stdout)
		if handled {
			return err
		}
	}
	h, closeHost, err := openHost(ctx, cfg, hostName)
	if err != nil {
		return err
	}
	defer closeHost()
	if verb == "revoke-tokens" {
		if !h.Tokens.On {
			return fmt.Errorf("host %s keeps no FAST tokens (its tokens key is not set)", hostName)
		}
		if err := modules.RevokeTokens(ctx, h, user+"@"+hostName); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "revoked the FAST tokens of %s\n", user+"@"+hostName)
		return nil
	}
	if verb != "list" && !h.Auth.Writable() {
		return fmt.Errorf("the auth backends of host %s are read-only: manage these accounts in the directory itself", hostName)
	}
	account := user + "@" + hostName
	switch verb {
	case "list":
		return listUsers(ctx, h, stdout, stderr)
	case "add", "passwd":
		pw, err := password(args, stdin)
		if err != nil {
			return err
		}
		if verb == "add" {
			err = h.Auth.Create(ctx, user, pw)
		} else {
			err = h.Auth.SetPassword(ctx, user, pw)
		}
		switch {
		case errors.Is(err, sdk.ErrExists):
			return fmt.Errorf("%s already exists%w", account, errExists)
		case errors.Is(err, sdk.ErrNotFound):
			return fmt.Errorf("%s does not exist%w", account, errNotFound)
		case errors.Is(err, sdk.ErrReadOnly):
			return fmt.Errorf("%s lives in a read-only backend: %w", account, err)
		case err != nil:
			return err
		}
		if verb == "add" {
			fmt.Fprintf(stdout, "created %s\n", account)
			return nil
		}
		fmt.Fprintf(stdout, "changed the password of %s\n", account)
		if err := modules.RevokeTokens(ctx, h, account); err != nil {
			return fmt.Errorf("changed the password of %s, but its FAST tokens remain (run user revoke-tokens): %w", account, err)
		}
	case "del":
		err := h.Auth.Delete(ctx, user)
		switch {
		case errors.Is(err, sdk.ErrNotFound):
			return fmt.Errorf("%s does not exist%w", account, errNotFound)
		case err != nil:
			return err
		}
		if err := modules.RemoveAccountData(ctx, h, account); err != nil {
			return fmt.Errorf("deleted %s, but some of its data remains: %w", account, err)
		}
		fmt.Fprintf(stdout, "deleted %s\n", account)
	}
	return nil
}

// listUsers prints the accounts of h, one JID a line; with several auth
// backends each line is labelled with the plugin that decides for the
// account. What a backend cannot list is said on stderr, and a host where
// nothing could be listed is an error: an empty output would read as "no
// users" when the accounts are in a directory.
func listUsers(ctx context.Context, h *modules.Host, stdout, stderr io.Writer) error {
	host := h.Auth.Host()
	ls, err := h.Auth.ListEach(ctx)
	if err != nil {
		return err
	}
	if len(ls) == 0 {
		return fmt.Errorf("host %s has no auth backend", host)
	}
	var unlisted []string
	for _, l := range ls {
		if !l.Listed {
			unlisted = append(unlisted, fmt.Sprintf("%q", l.Backend))
			continue
		}
		if !l.Writable {
			fmt.Fprintf(stderr, "koictl: the accounts in plugin %q live in a directory (read-only): listed here, managed there\n", l.Backend)
		}
		if len(l.Users) == 0 {
			fmt.Fprintf(stderr, "koictl: plugin %q has no accounts of host %s\n", l.Backend, host)
		}
		for _, u := range l.Users {
			if len(ls) > 1 {
				fmt.Fprintf(stdout, "%s@%s\t%s\n", u, host, l.Backend)
			} else {
				fmt.Fprintf(stdout, "%s@%s\n", u, host)
			}
		}
	}
	switch {
	case len(unlisted) == len(ls):
		return fmt.Errorf("the accounts of host %s live in plugin %s (read-only), which cannot list them: look them up in the directory itself",
			host, strings.Join(unlisted, ", "))
	case len(unlisted) > 0:
		fmt.Fprintf(stderr, "koictl: not listed: the accounts in plugin %s (read-only, cannot list them)\n", strings.Join(unlisted, ", "))
	}
	return nil
}

func hostNames(cfg *config.Config) string {
	var n []string
	for _, h := range cfg.Hosts {
		n = append(n, h.Name)
	}
	return strings.Join(n, ", ")
}

// openHost starts only the plugins one host uses.
func openHost(ctx context.Context, cfg *config.Config, name string) (*modules.Host, func(), error) {
	var hc *config.Host
	for i := range cfg.Hosts {
		if cfg.Hosts[i].Name == name {
			hc = &cfg.Hosts[i]
		}
	}
	if hc == nil {
		return nil, nil, fmt.Errorf("host %s is not configured (configured: %s)", name, hostNames(cfg))
	}
	need := map[string]bool{}
	for _, a := range hc.Auth {
		need[a] = true
	}
	for _, f := range []string{hc.Roster, hc.SharedRoster, hc.Offline, hc.VCard, hc.Private, hc.Archive, hc.Blocklist, hc.Tokens} {
		if f != "" {
			need[f] = true
		}
	}
	one := *cfg
	one.Hosts = []config.Host{*hc}
	log := logging.New("koictl", config.Log{Level: "warn", Format: cfg.Log.Format}, os.Stderr)
	ph := pluginhost.New(log.Named("plugin"), server.PluginSpecs(&one, need))
	closeFn := func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ph.Close(cctx)
	}
	if err := ph.Start(ctx); err != nil {
		closeFn()
		return nil, nil, fmt.Errorf("starting plugins: %w", err)
	}
	hosts, err := server.BuildHosts(&one, ph, nil)
	if err != nil {
		closeFn()
		return nil, nil, err
	}
	return hosts[0], closeFn, nil
}

func password(args []string, stdin io.Reader) (string, error) {
	if len(args) == 2 && args[1] != "-" {
		return args[1], nil
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return "", fmt.Errorf("reading the password from standard input: %w", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", errors.New("the password is empty")
	}
	return pw, nil
}
