// Command koi-backend-sql is koi's SQL storage backend plugin. koi starts it
// as configured in a plugin block; it is not meant to be run by hand.
package main

import (
	sqlbackend "github.com/koi-im/koi/plugins/sql"
	"github.com/koi-im/koi/sdk"
)

func main() {
	sdk.Serve(sqlbackend.New)
}
