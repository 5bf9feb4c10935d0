// Command koi-backend-http is koi's REST backend plugin: it serves auth,
// rosters and the message archive by calling a web service. koi starts it
// as configured in a plugin block; it is not meant to be run by hand.
package main

import (
	httpbackend "github.com/koi-im/koi/plugins/http"
	"github.com/koi-im/koi/sdk"
)

func main() {
	sdk.Serve(httpbackend.New, sdk.WithValidator(httpbackend.Validate))
}
