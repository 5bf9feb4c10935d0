package archive

import (
	"sort"
	"strings"
	"testing"
	"time"
)

func TestIDsAreOrderedAndUnique(t *testing.T) {
	g := NewIDs()
	seen := map[string]bool{}
	prev := ""
	var prevT time.Time
	for i := 0; i < 100000; i++ {
		id, ts := g.Next()
		if len(id) != idLen {
			t.Fatalf("id %q has length %d", id, len(id))
		}
		if id <= prev {
			t.Fatalf("id %q after %q is not greater", id, prev)
		}
		if ts.Before(prevT) {
			t.Fatalf("stamp %v after %v went back", ts, prevT)
		}
		if seen[id] {
			t.Fatalf("duplicate id %q", id)
		}
		seen[id] = true
		got, ok := IDTime(id)
		if !ok || !got.Equal(ts) {
			t.Fatalf("IDTime(%q) = %v, %v; want %v", id, got, ok, ts)
		}
		prev, prevT = id, ts
	}
}

func TestIDsSurviveAClockSteppingBack(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	g := &IDs{now: func() time.Time { return now }}
	a, ta := g.Next()
	now = now.Add(-time.Hour)
	b, tb := g.Next()
	if b <= a || tb.Before(ta) {
		t.Fatalf("after the clock stepped back: %q (%v) then %q (%v)", a, ta, b, tb)
	}
	// Overflowing the sequence borrows the next millisecond.
	g.seq = ^uint32(0)
	c, tc := g.Next()
	if c <= b || !tc.Equal(ta.Add(time.Millisecond)) {
		t.Fatalf("after overflow: %q at %v, want > %q at %v", c, tc, b, ta.Add(time.Millisecond))
	}
}

func TestTimeBounds(t *testing.T) {
	base := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	at := func(ms int64, seq uint32) string { return encode(base.UnixMilli()+ms, seq) }
	ids := []string{at(-1, 99), at(0, 1), at(0, 1<<31), at(1, 5), at(2, 7)}
	if !sort.StringsAreSorted(ids) {
		t.Fatalf("ids not sorted: %v", ids)
	}
	between := func(lo, hi string) []string {
		var out []string
		for _, id := range ids {
			if id > lo && id < hi {
				out = append(out, id)
			}
		}
		return out
	}
	tests := []struct {
		name       string
		start, end time.Time
		want       []string
	}{
		{"one millisecond", base, base, ids[1:3]},
		{"start inside a millisecond excludes it", base.Add(500 * time.Microsecond), base.Add(time.Millisecond), ids[3:4]},
		{"end inside a millisecond includes it", base.Add(-time.Millisecond), base.Add(1500 * time.Microsecond), ids[0:4]},
		{"everything", base.Add(-time.Hour), base.Add(time.Hour), ids},
		{"empty", base.Add(10 * time.Millisecond), base.Add(time.Hour), nil},
	}
	for _, tt := range tests {
		got := between(AfterTime(tt.start), BeforeTime(tt.end))
		if strings.Join(got, ",") != strings.Join(tt.want, ",") {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
	if FloorID(base) != at(0, 0) {
		t.Errorf("FloorID = %q", FloorID(base))
	}
	for _, bad := range []string{"", "short", strings.Repeat("u", idLen), strings.Repeat("0", idLen+1)} {
		if _, ok := IDTime(bad); ok {
			t.Errorf("IDTime(%q) accepted", bad)
		}
	}
}

// TestIDsFill checks that Fill makes what as many calls of Next would:
// ids increasing across calls and within one, each with its own stamp,
// which differ when the sequence overflows in the middle of a call.
func TestIDsFill(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	g := &IDs{now: func() time.Time { return now }}
	first, _ := g.Next()
	prev := first
	for _, n := range []int{0, 1, 2, 3, 5} {
		ids, stamps := make([]string, n), make([]time.Time, n)
		g.Fill(ids, stamps)
		for i, id := range ids {
			if id <= prev {
				t.Fatalf("Fill(%d): id %d %q after %q is not greater", n, i, id, prev)
			}
			if got, ok := IDTime(id); !ok || !got.Equal(stamps[i]) {
				t.Fatalf("Fill(%d): IDTime(%q) = %v, %v; stamp %v", n, id, got, ok, stamps[i])
			}
			prev = id
		}
	}
	g.seq = ^uint32(0) - 1
	ids, stamps := make([]string, 3), make([]time.Time, 3)
	g.Fill(ids, stamps)
	if !stamps[0].Equal(now) || !stamps[1].Equal(now.Add(time.Millisecond)) || !stamps[2].Equal(stamps[1]) {
		t.Fatalf("overflow inside Fill: stamps %v", stamps)
	}
	if !sort.StringsAreSorted(append([]string{prev}, ids...)) {
		t.Fatalf("overflow inside Fill: ids %v after %q are not increasing", ids, prev)
	}
}
