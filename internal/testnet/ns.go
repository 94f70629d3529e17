package testnet

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// NSPrefix starts the name of every namespace this package creates, so that
// leftovers from crashed runs are easy to spot (ip netns list | grep pinet-).
const NSPrefix = "pinet-"

// NS is a named network namespace created by NewNS and deleted, together with
// every link in it, when the test finishes.
type NS struct {
	// Name is the namespace's name as shown by `ip netns list`.
	Name string

	handle netns.NsHandle
	nl     *netlink.Handle
}

// NewNS creates a network namespace named NSPrefix+name+"-"+random suffix,
// brings its loopback up, and registers a t.Cleanup that deletes all links in
// it and then the namespace itself. name may be empty.
func NewNS(t testing.TB, name string) *NS {
	t.Helper()

	full, err := uniqueName(name)
	if err != nil {
		t.Fatalf("testnet: %v", err)
	}
	h, err := newNamedNS(full)
	if err != nil {
		t.Fatalf("testnet: create netns %s: %v", full, err)
	}
	ns := &NS{Name: full, handle: h}
	t.Cleanup(func() { ns.destroy(t) })

	if ns.nl, err = netlink.NewHandleAt(h); err != nil {
		t.Fatalf("testnet: netlink handle in %s: %v", full, err)
	}
	lo, err := ns.nl.LinkByName("lo")
	if err != nil {
		t.Fatalf("testnet: %s: lookup lo: %v", full, err)
	}
	if err := ns.nl.LinkSetUp(lo); err != nil {
		t.Fatalf("testnet: %s: set lo up: %v", full, err)
	}
	return ns
}

func uniqueName(name string) (string, error) {
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("random suffix: %w", err)
	}
	if name == "" {
		return NSPrefix + hex.EncodeToString(b[:]), nil
	}
	if strings.ContainsAny(name, "/\x00") {
		return "", fmt.Errorf("invalid namespace name %q", name)
	}
	return NSPrefix + name + "-" + hex.EncodeToString(b[:]), nil
}

// newNamedNS creates the namespace on a throw-away OS thread: netns.NewNamed
// moves the calling thread into the new namespace, so the goroutine locks its
// thread and exits without unlocking it, which makes the Go runtime terminate
// the thread instead of reusing it.
func newNamedNS(name string) (netns.NsHandle, error) {
	type result struct {
		h   netns.NsHandle
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread: this thread is now in the wrong namespace.
		h, err := netns.NewNamed(name)
		ch <- result{h, err}
	}()
	r := <-ch
	return r.h, r.err
}

// destroy deletes every deletable link in the namespace (so veth peers in
// other namespaces vanish synchronously) and then the namespace.
func (ns *NS) destroy(t testing.TB) {
	if ns.nl != nil {
		links, err := ns.nl.LinkList()
		if err != nil {
			t.Errorf("testnet: %s: list links for cleanup: %v", ns.Name, err)
		}
		for _, l := range links {
			if l.Attrs().Name == "lo" {
				continue
			}
			// Some kernel-owned fallback devices (e.g. gre0) cannot be
			// deleted; they disappear with the namespace anyway.
			// ENODEV: already gone with its veth peer.
			if err := ns.nl.LinkDel(l); err != nil && !errors.Is(err, unix.ENODEV) {
				t.Logf("testnet: %s: delete link %s: %v", ns.Name, l.Attrs().Name, err)
			}
		}
		ns.nl.Close()
		ns.nl = nil
	}
	if err := ns.handle.Close(); err != nil {
		t.Errorf("testnet: %s: close handle: %v", ns.Name, err)
	}
	if err := netns.DeleteNamed(ns.Name); err != nil {
		t.Errorf("testnet: delete netns %s: %v", ns.Name, err)
	}
}

// Handle returns a netlink handle bound to the namespace. It is owned by the
// NS and closed at cleanup; do not Close it yourself.
func (ns *NS) Handle() *netlink.Handle { return ns.nl }

// NsHandle returns the namespace's file handle (e.g. for
// netlink.NsFd(int(ns.NsHandle()))). It is closed at cleanup.
func (ns *NS) NsHandle() netns.NsHandle { return ns.handle }

// Path returns the namespace's bind-mount path, /run/netns/<Name>.
func (ns *NS) Path() string { return filepath.Join("/run/netns", ns.Name) }

// Do runs fn on a locked OS thread that has been switched into the
// namespace, and returns fn's error.
//
// fn runs on its own goroutine: it must not call t.Fatal/t.FailNow (return
// an error instead), and goroutines it starts do NOT run in the namespace.
// A panic in fn is re-raised in the caller. If the thread cannot be switched
// back to its original namespace it is never returned to the scheduler's
// pool (the goroutine exits still locked, so the runtime kills the thread).
func (ns *NS) Do(fn func() error) error {
	type result struct {
		err      error
		panicked bool
		panicVal any
	}
	ch := make(chan result, 1)
	go func() {
		var res result
		defer func() { ch <- res }() // also runs on runtime.Goexit

		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread() // still in the original namespace
			res.err = fmt.Errorf("testnet: get current netns: %w", err)
			return
		}
		defer orig.Close()

		if err := netns.Set(ns.handle); err != nil {
			// setns failed, so the thread should be unchanged, but do not
			// risk returning it to the pool.
			res.err = fmt.Errorf("testnet: enter netns %s: %w", ns.Name, err)
			return
		}

		func() {
			defer func() {
				if r := recover(); r != nil {
					res.panicked, res.panicVal = true, r
				}
			}()
			res.err = fn()
		}()

		if err := netns.Set(orig); err != nil {
			res.err = errors.Join(res.err,
				fmt.Errorf("testnet: leave netns %s (thread discarded): %w", ns.Name, err))
			return // stay locked: the thread dies with this goroutine
		}
		runtime.UnlockOSThread()
	}()
	res := <-ch
	if res.panicked {
		panic(res.panicVal)
	}
	return res.err
}

// Run executes a command inside the namespace via `ip netns exec` and returns
// its combined stdout and stderr. The error includes the output on failure.
func (ns *NS) Run(name string, args ...string) (string, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns.Name, name}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("testnet: %s: %s %s: %w: %s",
			ns.Name, name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Sysctl writes value to the sysctl key inside the namespace, e.g.
// Sysctl(t, "net.ipv4.conf.all.forwarding", "1"). key may use dots or
// slashes (use slashes if an interface name contains a dot).
func (ns *NS) Sysctl(t testing.TB, key, value string) {
	t.Helper()
	if err := ns.Do(func() error { return os.WriteFile(sysctlPath(key), []byte(value), 0o644) }); err != nil {
		t.Fatalf("testnet: %s: sysctl %s=%s: %v", ns.Name, key, value, err)
	}
}

// GetSysctl reads the sysctl key inside the namespace (trailing newline
// removed).
func (ns *NS) GetSysctl(t testing.TB, key string) string {
	t.Helper()
	var b []byte
	err := ns.Do(func() (err error) {
		b, err = os.ReadFile(sysctlPath(key))
		return err
	})
	if err != nil {
		t.Fatalf("testnet: %s: read sysctl %s: %v", ns.Name, key, err)
	}
	return strings.TrimSpace(string(b))
}

func sysctlPath(key string) string {
	if !strings.Contains(key, "/") {
		key = strings.ReplaceAll(key, ".", "/")
	}
	return filepath.Join("/proc/sys", key)
}
