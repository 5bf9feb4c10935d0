// Command koi-backend-mongo is koi's MongoDB storage backend plugin. koi
// starts it as configured in a plugin block; it is not meant to be run by
// hand.
package main

import (
	mongobackend "github.com/koi-im/koi/plugins/mongo"
	"github.com/koi-im/koi/sdk"
)

func main() {
	sdk.Serve(mongobackend.New, sdk.WithValidator(mongobackend.Validate))
}
