package domain

import "sync/atomic"

// Budget is a byte allowance shared by many holders: the events all topics keep, or the buffers all
// connections hold. A holder takes bytes before it allocates or keeps them and releases them when it
// lets go, so the sum of what is held never exceeds the limit. Take and Release are one atomic add
// each: call them per batch, per frame or per publish, never per delivery. Safe for concurrent use;
// a nil *Budget is unlimited.
type Budget struct {
	limit int64
	used  atomic.Int64
}

// NewBudget returns a Budget of limit bytes; limit <= 0 means unlimited.
func NewBudget(limit int64) *Budget {
	if limit <= 0 {
		return nil
	}
	return &Budget{limit: limit}
}

// TryTake takes n bytes if they fit, and reports whether they did.
func (b *Budget) TryTake(n int64) bool {
	if b == nil || n <= 0 {
		return true
	}
	if b.used.Add(n) > b.limit {
		b.used.Add(-n)
		return false
	}
	return true
}

// Release gives back n bytes taken earlier.
func (b *Budget) Release(n int64) {
	if b != nil && n > 0 {
		b.used.Add(-n)
	}
}

// Used returns the bytes held now.
func (b *Budget) Used() int64 {
	if b == nil {
		return 0
	}
	return b.used.Load()
}

// Limit returns the budget's size, 0 when unlimited.
func (b *Budget) Limit() int64 {
	if b == nil {
		return 0
	}
	return b.limit
}
