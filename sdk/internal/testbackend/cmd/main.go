// Command cmd is the testbackend plugin binary, built by tests.
package main

import (
	"github.com/koi-im/koi/sdk"
	"github.com/koi-im/koi/sdk/internal/testbackend"
)

func main() { sdk.Serve(testbackend.New, sdk.WithValidator(testbackend.Validate)) }
