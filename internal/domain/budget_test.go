package domain

import (
	"sync"
	"testing"
)

func TestBudget(t *testing.T) {
	tests := []struct {
		name  string
		limit int64
		takes []int64
		want  []bool
		used  int64
	}{
		{"fits exactly", 100, []int64{60, 40}, []bool{true, true}, 100},
		{"refuses what does not fit and keeps nothing of it", 100, []int64{60, 41, 40}, []bool{true, false, true}, 100},
		{"unlimited", 0, []int64{1 << 40}, []bool{true}, 0},
		{"zero bytes always fit", 10, []int64{10, 0}, []bool{true, true}, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := NewBudget(tt.limit)
			for i, n := range tt.takes {
				if got := b.TryTake(n); got != tt.want[i] {
					t.Fatalf("take %d of %d = %v, want %v", i, n, got, tt.want[i])
				}
			}
			if b.Used() != tt.used {
				t.Fatalf("used %d, want %d", b.Used(), tt.used)
			}
		})
	}
}

func TestBudgetNeverOvercommitsUnderContention(t *testing.T) {
	b := NewBudget(1000)
	var wg sync.WaitGroup
	var mu sync.Mutex
	held := int64(0)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10000 {
				if b.TryTake(7) {
					mu.Lock()
					held += 7
					if held > 1000 {
						t.Errorf("holders hold %d of a 1000-byte budget", held)
					}
					held -= 7
					mu.Unlock()
					b.Release(7)
				}
			}
		}()
	}
	wg.Wait()
	if b.Used() != 0 {
		t.Fatalf("used %d after every release", b.Used())
	}
}
