// Command koi-backend-sql is koi's SQL storage backend plugin. koi starts it
// as configured in a plugin block; it is not meant to be run by hand,
// except to apply schema migrations ahead of a start:
//
//	koi-backend-sql migrate [-config-json JSON] [-timeout 5m]
//
// migrate reads the plugin's config block as JSON from -config-json or,
// without it, from standard input (which keeps a dsn's password out of the
// process list), applies pending migrations and prints the schema version.
// `koictl db migrate` runs it for each plugin block of a koi config.
//
//	koi-backend-sql validate [-json]
//
// checks the config block on standard input without opening the database
// (`koi check-config` runs it; see sdk.ValidateCommand).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"

	sqlbackend "github.com/koi-im/koi/plugins/sql"
	"github.com/koi-im/koi/sdk"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "migrate" {
		os.Exit(migrateCmd(os.Args[2:], os.Stdin, os.Stdout, os.Stderr))
	}
	sdk.Serve(sqlbackend.New, sdk.WithValidator(sqlbackend.Validate))
}

// maxConfigBytes bounds the config read from standard input.
const maxConfigBytes = 1 << 20

func migrateCmd(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("koi-backend-sql migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	raw := fs.String("config-json", "", "the plugin's config block as JSON (default: read from standard input)")
	timeout := fs.Duration("timeout", 5*time.Minute, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "koi-backend-sql migrate: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if err := migrate(*raw, *timeout, stdin, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "koi-backend-sql migrate: %v\n", err)
		return 1
	}
	return 0
}

func migrate(raw string, timeout time.Duration, stdin io.Reader, stdout, stderr io.Writer) error {
	data := []byte(raw)
	if raw == "" {
		var err error
		data, err = io.ReadAll(io.LimitReader(stdin, maxConfigBytes+1))
		if err != nil {
			return fmt.Errorf("reading the config from standard input: %w", err)
		}
		if len(data) > maxConfigBytes {
			return fmt.Errorf("the config on standard input is over %d bytes", maxConfigBytes)
		}
	}
	if len(data) == 0 {
		return errors.New("no config: pass -config-json or the JSON on standard input")
	}
	settings, err := sqlbackend.ParseConfig(sdk.Config{Raw: data})
	if err != nil {
		return err
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "koi-backend-sql", Output: stderr, Level: hclog.Info})
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	from, to, err := sqlbackend.Migrate(ctx, settings, log)
	if err != nil {
		return err
	}
	if from == to {
		fmt.Fprintf(stdout, "schema version %d (%s), up to date\n", to, settings.Driver)
	} else {
		fmt.Fprintf(stdout, "schema version %d (%s), migrated from %d\n", to, settings.Driver, from)
	}
	return nil
}
