package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"testing"
)

// Env is a testing.TB for running the harness outside `go test` (the
// pine-bench command): the namespace and datapath fixtures (internal/testnet,
// internal/dptest) take a testing.TB for their cleanups and failures. Fatal
// panics with a fatalError, which Env.Run recovers; Skip is fatal too, since
// a skipped suite must not pass silently. Close runs the cleanups, last
// registered first.
type Env struct {
	testing.TB // nil: only the methods below are used by the fixtures

	name     string
	log      io.Writer // Log lines; nil = discarded
	mu       sync.Mutex
	cleanups []func()
	failed   bool
}

type fatalError struct{ msg string }

func (f fatalError) Error() string { return f.msg }

// NewEnv is an Env whose log lines go to log (nil: discarded).
func NewEnv(name string, log io.Writer) *Env { return &Env{name: name, log: log} }

// Run runs fn, turns a Fatal inside it into an error, then runs the
// cleanups fn registered.
func (e *Env) Run(fn func(tb testing.TB) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(fatalError)
			if !ok {
				e.Close()
				panic(r)
			}
			err = f
		}
		e.Close()
	}()
	return fn(e)
}

func (e *Env) Close() {
	e.mu.Lock()
	cs := e.cleanups
	e.cleanups = nil
	e.mu.Unlock()
	for i := len(cs) - 1; i >= 0; i-- {
		cs[i]()
	}
}

func (e *Env) Cleanup(f func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.cleanups = append(e.cleanups, f)
}
func (e *Env) Helper()      {}
func (e *Env) Name() string { return e.name }
func (e *Env) Logf(format string, args ...any) {
	if e.log != nil {
		fmt.Fprintf(e.log, e.name+": "+format+"\n", args...)
	}
}
func (e *Env) Log(args ...any) { e.Logf("%s", fmt.Sprint(args...)) }
func (e *Env) Errorf(format string, args ...any) {
	e.mu.Lock()
	e.failed = true
	e.mu.Unlock()
	e.Logf("error: "+format, args...)
}
func (e *Env) Error(args ...any) { e.Errorf("%s", fmt.Sprint(args...)) }
func (e *Env) Fatalf(format string, args ...any) {
	panic(fatalError{fmt.Sprintf(format, args...)})
}
func (e *Env) Fatal(args ...any)                { panic(fatalError{fmt.Sprint(args...)}) }
func (e *Env) FailNow()                         { panic(fatalError{"failed"}) }
func (e *Env) Fail()                            { e.mu.Lock(); e.failed = true; e.mu.Unlock() }
func (e *Env) Failed() bool                     { e.mu.Lock(); defer e.mu.Unlock(); return e.failed }
func (e *Env) Skipf(format string, args ...any) { e.Fatalf("cannot run: "+format, args...) }
func (e *Env) Skip(args ...any)                 { e.Fatal(append([]any{"cannot run: "}, args...)...) }
func (e *Env) SkipNow()                         { e.Fatal("cannot run") }
func (e *Env) Skipped() bool                    { return false }
func (e *Env) Context() context.Context         { return context.Background() }
func (e *Env) Output() io.Writer                { return e.log }
func (e *Env) Setenv(key, value string)         { os.Setenv(key, value) }
func (e *Env) TempDir() string {
	d, err := os.MkdirTemp("", "pine-bench-")
	if err != nil {
		e.Fatal(err)
	}
	e.Cleanup(func() { os.RemoveAll(d) })
	return d
}
