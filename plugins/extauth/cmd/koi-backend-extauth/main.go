// Command koi-backend-extauth is koi's ejabberd external authentication
// backend plugin: it runs an existing ejabberd extauth program unchanged
// and asks it to check (and optionally change) accounts. koi starts it as
// configured in a plugin block; it is not meant to be run by hand.
package main

import (
	"github.com/koi-im/koi/plugins/extauth"
	"github.com/koi-im/koi/sdk"
)

func main() {
	sdk.Serve(extauth.New, sdk.WithValidator(extauth.Validate))
}
