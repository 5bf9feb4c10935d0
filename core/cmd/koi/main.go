// Command koi is the koi XMPP server.
//
//	koi [-config FILE]               run the server
//	koi [-config FILE] check-config  report every problem in the config and exit
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/koi-im/koi/core/config"
	"github.com/koi-im/koi/core/logging"
	"github.com/koi-im/koi/core/server"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs := flag.NewFlagSet("koi", flag.ContinueOnError)
	path := fs.String("config", "config.hcl", "configuration file")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *showVersion {
		fmt.Println("koi", version)
		return 0
	}
	cmd := fs.Arg(0)
	if cmd == "check-config" {
		// Accept flags after the subcommand too: koi check-config -config F.
		sub := flag.NewFlagSet("check-config", flag.ContinueOnError)
		p2 := sub.String("config", *path, "configuration file")
		if err := sub.Parse(fs.Args()[1:]); err != nil {
			return 2
		}
		path = p2
	} else if cmd != "" {
		fmt.Fprintf(os.Stderr, "koi: unknown command %q (commands: check-config)\n", cmd)
		return 2
	}
	cfg, err := config.Load(*path, os.Environ())
	if err != nil {
		fmt.Fprintf(os.Stderr, "koi: %s: configuration problems:\n%v\n", *path, err)
		return 1
	}
	if cmd == "check-config" {
		fmt.Printf("%s: OK (%d listeners, %d plugins, %d hosts)\n", *path, len(cfg.Listeners), len(cfg.Plugins), len(cfg.Hosts))
		return 0
	}
	log := logging.New("koi", cfg.Log, os.Stderr)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := server.New(cfg, log, version).Run(ctx); err != nil {
		log.Error("koi stopped", "error", err)
		return 1
	}
	return 0
}
