package logbuffer

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

func TestConcurrentWritesAndTail(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				fmt.Fprintf(&b, "w%d-%03d\n", w, i)
			}
		}(w)
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 400 {
		t.Fatalf("%d lines, want 400 whole lines", len(lines))
	}
	for _, l := range lines {
		if len(l) != len("w0-000") {
			t.Fatalf("torn line %q", l)
		}
	}
	if got := b.Tail(7); len(got) != 7 || !strings.HasSuffix(b.String(), got) {
		t.Fatalf("Tail(7) = %q", got)
	}
	if got := b.Tail(1 << 20); got != b.String() {
		t.Fatal("Tail larger than the buffer must return all of it")
	}
}
