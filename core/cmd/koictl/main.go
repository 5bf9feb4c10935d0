// Command koictl administers koi's accounts through the configured
// backends.
//
//	koictl [-config FILE] user add JID [PASSWORD|-]
//	koictl [-config FILE] user passwd JID [PASSWORD|-]
//	koictl [-config FILE] user del JID
//	koictl [-config FILE] user list [HOST]
//	koictl [-config FILE] db migrate [PLUGIN]
//
// A password given as "-" or left out is read from standard input (one
// line), which keeps it out of the process list and shell history.
//
// db migrate applies pending schema migrations of the named plugin, or of
// every plugin block, and prints each schema version. It runs the plugin's
// binary as "COMMAND migrate" with the plugin's config as JSON on standard
// input; plugins without such a command (they fail it) are skipped unless
// named. koi-backend-sql also migrates at every start, so this is for
// doing it ahead of an upgrade.
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

const usage = `usage:
  koictl [-config FILE] user add JID [PASSWORD|-]
  koictl [-config FILE] user passwd JID [PASSWORD|-]
  koictl [-config FILE] user del JID
  koictl [-config FILE] user list [HOST]
  koictl [-config FILE] db migrate [PLUGIN]`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("koictl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "config.hcl", "configuration file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	a := fs.Args()
	if len(a) < 2 || (a[0] != "user" && a[0] != "db") {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	cfg, err := config.Load(*path, os.Environ())
	if err != nil {
		fmt.Fprintf(stderr, "koictl: %s: configuration problems:\n%v\n", *path, err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := userCmd
	if a[0] == "db" {
		cmd = dbCmd
	}
	if err := cmd(ctx, cfg, a[1], a[2:], stdin, stdout); err != nil {
		fmt.Fprintf(stderr, "koictl: %v\n", err)
		if errors.Is(err, errUsage) {
			fmt.Fprintln(stderr, usage)
			return 2
		}
		return 1
	}
	return 0
}

var errUsage = errors.New("wrong arguments")

func userCmd(ctx context.Context, cfg *config.Config, verb string, args []string, stdin io.Reader, stdout io.Writer) error {
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
	case "add", "passwd", "del":
		if len(args) < 1 || len(args) > 2 || (verb == "del" && len(args) != 1) {
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
	h, closeHost, err := openHost(ctx, cfg, hostName)
	if err != nil {
		return err
	}
	defer closeHost()
	if verb != "list" && !h.Auth.Writable() {
		return fmt.Errorf("the auth backends of host %s are read-only: manage these accounts in the directory itself", hostName)
	}
	account := user + "@" + hostName
	switch verb {
	case "list":
		users, err := h.Auth.List(ctx)
		if err != nil {
			return err
		}
		for _, u := range users {
			fmt.Fprintln(stdout, u+"@"+hostName)
		}
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
			return fmt.Errorf("%s already exists", account)
		case errors.Is(err, sdk.ErrNotFound):
			return fmt.Errorf("%s does not exist", account)
		case errors.Is(err, sdk.ErrReadOnly):
			return fmt.Errorf("%s lives in a read-only backend: %w", account, err)
		case err != nil:
			return err
		}
		if verb == "add" {
			fmt.Fprintf(stdout, "created %s\n", account)
		} else {
			fmt.Fprintf(stdout, "changed the password of %s\n", account)
		}
	case "del":
		err := h.Auth.Delete(ctx, user)
		switch {
		case errors.Is(err, sdk.ErrNotFound):
			return fmt.Errorf("%s does not exist", account)
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
	for _, f := range []string{hc.Roster, hc.SharedRoster, hc.Offline, hc.VCard, hc.Private, hc.Archive} {
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
