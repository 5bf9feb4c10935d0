package memory

import (
	"testing"

	"github.com/koi-im/koi/sdk"
	"github.com/koi-im/koi/sdk/sdktest"
)

// memBackend offers the memory store to the SDK's conformance kit, which
// holds it to the same contract as the plugins' stores.
type memBackend struct{ *PubSub }

func (memBackend) Capabilities() sdk.Capabilities {
	return sdk.Capabilities{PubSub: sdk.AccessReadWrite}
}
func (memBackend) Close() error { return nil }

func TestPubSubConformance(t *testing.T) {
	sdktest.RunBackend(t, func(t *testing.T) sdk.Backend { return memBackend{NewPubSub()} }, sdktest.Options{})
}
