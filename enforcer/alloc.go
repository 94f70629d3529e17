package enforcer

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// ErrFull is returned when a map or an index space has no room left.
var ErrFull = errors.New("capacity exhausted")

// ErrNotFound is returned for a session or rule that is not installed.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned when a session claims what another one owns.
var ErrConflict = errors.New("conflict")

// allocator hands out dense indices. Freed ones are reused oldest first, so
// a late in-flight packet of a removed rule is unlikely to count against
// the next owner of its index.
type allocator struct {
	next, limit uint32
	free        []uint32
}

func newAllocator(first, limit uint32) *allocator {
	return &allocator{next: first, limit: limit}
}

func (a *allocator) alloc() (uint32, bool) {
	if len(a.free) > 0 {
		id := a.free[0]
		a.free = a.free[1:]
		return id, true
	}
	if a.next >= a.limit {
		return 0, false
	}
	a.next++
	return a.next - 1, true
}

func (a *allocator) release(id uint32) { a.free = append(a.free, id) }

// inUse is how many indices are allocated.
func (a *allocator) inUse(first uint32) uint32 { return a.next - first - uint32(len(a.free)) }

// txn records how to undo the steps of a change, so a change that fails
// leaves the datapath and the bookkeeping exactly as they were.
type txn struct{ undo []func() error }

func (t *txn) onUndo(f func() error) { t.undo = append(t.undo, f) }

func (t *txn) rollback() error {
	var errs []error
	for i := len(t.undo) - 1; i >= 0; i-- {
		errs = append(errs, t.undo[i]())
	}
	t.undo = nil
	return errors.Join(errs...)
}

// mapErr names the map and turns "map full" into ErrFull.
func mapErr(op, name string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, unix.E2BIG) || errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.ENOMEM) {
		return fmt.Errorf("%s %s: %w (%v)", op, name, ErrFull, err)
	}
	return fmt.Errorf("%s %s: %w", op, name, err)
}

func nativeEndianU32(b [4]byte) uint32 { return binary.NativeEndian.Uint32(b[:]) }

// deleteKeys removes keys in order, ignoring ones already gone.
func deleteKeys[K any](m *ebpf.Map, name string, keys []K) error {
	var errs []error
	for i := range keys {
		if err := m.Delete(&keys[i]); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, mapErr("delete from", name, err))
		}
	}
	return errors.Join(errs...)
}
