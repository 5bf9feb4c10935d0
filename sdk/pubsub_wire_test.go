package sdk

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/koi-im/koi/sdk/pb"
)

func TestChunks(t *testing.T) {
	item := func(n int) *pb.PubSubItem { return &pb.PubSubItem{Id: "x", Payload: strings.Repeat("a", n)} }
	if got := chunks([]*pb.PubSubItem(nil)); len(got) != 1 || len(got[0]) != 0 {
		t.Errorf("chunks of nothing = %v, want one empty chunk", got)
	}
	// 10 items of 300 KiB: three to a chunk under 1 MiB.
	var many []*pb.PubSubItem
	for range 10 {
		many = append(many, item(300<<10))
	}
	got := chunks(many)
	n := 0
	for _, c := range got {
		size := 0
		for _, m := range c {
			size += proto.Size(m)
		}
		if len(c) == 0 || (len(c) > 1 && size > chunkBytes) {
			t.Errorf("chunk of %d items, %d bytes", len(c), size)
		}
		n += len(c)
	}
	if n != 10 || len(got) != 4 {
		t.Errorf("10 items of 300 KiB in %d chunks holding %d, want 4 holding 10", len(got), n)
	}
	// An item over the budget goes alone, between the others.
	got = chunks([]*pb.PubSubItem{item(10), item(2 << 20), item(10)})
	if len(got) != 3 || len(got[1]) != 1 {
		t.Errorf("a large item between small ones: %d chunks, want 3 with it alone", len(got))
	}
}
