// Command koi is the koi XMPP server.
//
//	koi [-config FILE]               run the server
//	koi [-config FILE] check-config  report every problem in the config and exit
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/koi-im/koi/core/config"
	"github.com/koi-im/koi/core/logging"
	"github.com/koi-im/koi/core/sdnotify"
	"github.com/koi-im/koi/core/server"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// checkTimeout bounds check-config, which runs every plugin's validate
// command.
const checkTimeout = time.Minute

func usage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, `Usage: koi [flags] [command]

Commands:
  (none)        run the server
  check-config  report every problem that would keep koi from starting, and exit
                (1 on problems; warnings alone exit 0)

Flags:
`)
	fs.SetOutput(w)
	fs.PrintDefaults()
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("koi", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {} // printed below, to stdout for -h
	path := fs.String("config", "config.hcl", "configuration file")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return usageExit(err, fs, stdout, stderr)
	}
	if *showVersion {
		fmt.Fprintln(stdout, "koi", version)
		return 0
	}
	cmd := fs.Arg(0)
	if cmd == "check-config" {
		// Accept flags after the subcommand too: koi check-config -config F.
		sub := flag.NewFlagSet("check-config", flag.ContinueOnError)
		sub.SetOutput(stderr)
		sub.Usage = func() {}
		p2 := sub.String("config", *path, "configuration file")
		if err := sub.Parse(fs.Args()[1:]); err != nil {
			return usageExit(err, fs, stdout, stderr)
		}
		path = p2
	} else if cmd != "" {
		fmt.Fprintf(stderr, "koi: unknown command %q (commands: check-config; koi -h for help)\n", cmd)
		return 2
	}
	cfg, err := config.Load(*path, os.Environ())
	if err != nil {
		fmt.Fprintf(stderr, "koi: %s: configuration problems:\n%v\n", *path, err)
		return 1
	}
	if cmd == "check-config" {
		return checkConfig(*path, cfg, stdout, stderr)
	}
	log := logging.New("koi", cfg.Log, stderr)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	srv := server.New(cfg, log, version)
	srv.ConfigPath = *path
	// SIGHUP reloads what can change without dropping sessions.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			rctx, cancel := context.WithTimeout(ctx, time.Minute)
			if _, err := srv.Reload(rctx); err != nil {
				log.Error("reload refused, nothing changed", "error", err)
			}
			cancel()
		}
	}()
	srv.Notify = sdnotify.FromEnv(os.Getenv, os.Getpid())
	if err := srv.Run(ctx); err != nil {
		// A log value would show config problems as a Go slice.
		var probs config.Errors
		if errors.As(err, &probs) {
			fmt.Fprintf(stderr, "koi: %s: configuration problems:\n%v\n", *path, probs)
			return 1
		}
		log.Error("koi stopped", "error", err)
		return 1
	}
	return 0
}

// usageExit answers -h with the usage on stdout and exit 0, and a bad flag
// (already reported by the flag package) with the usage on stderr.
func usageExit(err error, fs *flag.FlagSet, stdout, stderr io.Writer) int {
	if errors.Is(err, flag.ErrHelp) {
		usage(stdout, fs)
		return 0
	}
	usage(stderr, fs)
	return 2
}

// checkConfig reports what koi would refuse at start beyond the file's own
// problems: each on a line with its key, warnings as "warning: …".
func checkConfig(path string, cfg *config.Config, stdout, stderr io.Writer) int {
	ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
	defer cancel()
	problems, warnings := server.Check(ctx, cfg)
	for _, w := range warnings {
		fmt.Fprintf(stderr, "warning: %v\n", config.Errors{w})
	}
	if len(problems) > 0 {
		fmt.Fprintf(stderr, "koi: %s: configuration problems:\n%v\n", path, problems)
		return 1
	}
	note := ""
	if len(warnings) > 0 {
		note = fmt.Sprintf(", %d warnings", len(warnings))
	}
	fmt.Fprintf(stdout, "%s: OK (%d listeners, %d plugins, %d hosts%s)\n", path, len(cfg.Listeners), len(cfg.Plugins), len(cfg.Hosts), note)
	return 0
}
