package testnet

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// BPFFSPath is where MountBPFFS mounts the BPF filesystem.
const BPFFSPath = "/sys/fs/bpf"

var (
	privOnce sync.Once
	privErr  error
)

// RequirePrivileged skips the test unless the process can do privileged
// network and BPF work: it must run as root with CAP_NET_ADMIN, CAP_SYS_ADMIN
// (needed to create and enter network namespaces) and CAP_BPF, and the bpf()
// syscall must actually be permitted.
//
// If the environment variable CI is "true" the test fails instead of being
// skipped: in CI every privileged test must run for real.
func RequirePrivileged(t testing.TB) {
	t.Helper()
	privOnce.Do(func() { privErr = checkPrivileged() })
	requirePrivileged(t, privErr)
}

func requirePrivileged(t testing.TB, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("testnet: privileged test cannot run, and CI=true forbids skipping: %v", err)
		return
	}
	t.Skipf("testnet: skipping privileged test (run as root with CAP_NET_ADMIN, CAP_SYS_ADMIN and CAP_BPF): %v", err)
}

func checkPrivileged() error {
	if euid := os.Geteuid(); euid != 0 {
		return fmt.Errorf("not running as root (euid %d)", euid)
	}

	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capget: %w", err)
	}
	var missing []string
	for _, c := range []struct {
		bit  uint
		name string
	}{
		{unix.CAP_NET_ADMIN, "CAP_NET_ADMIN"},
		{unix.CAP_SYS_ADMIN, "CAP_SYS_ADMIN"},
		{unix.CAP_BPF, "CAP_BPF"},
	} {
		if data[c.bit/32].Effective&(1<<(c.bit%32)) == 0 {
			missing = append(missing, c.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing effective capabilities: %s", strings.Join(missing, ", "))
	}

	if err := probeBPF(); err != nil {
		return fmt.Errorf("bpf() not permitted: %w", err)
	}
	return nil
}

// probeBPF creates (and immediately closes) a one-entry array map.
func probeBPF() error {
	attr := struct {
		mapType, keySize, valueSize, maxEntries uint32
	}{unix.BPF_MAP_TYPE_ARRAY, 4, 4, 1}
	fd, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_MAP_CREATE,
		uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	if errno != 0 {
		return errno
	}
	return unix.Close(int(fd))
}

var bpffsMu sync.Mutex

// MountBPFFS mounts the BPF filesystem at /sys/fs/bpf unless a bpffs is
// already mounted there. It is idempotent and safe for concurrent use.
func MountBPFFS() error {
	return mountBPFFS(BPFFSPath)
}

func mountBPFFS(path string) error {
	bpffsMu.Lock()
	defer bpffsMu.Unlock()

	if isBPFFS(path) {
		return nil
	}
	if err := os.MkdirAll(path, 0o755); err != nil {
		return fmt.Errorf("mount bpffs: %w", err)
	}
	if err := unix.Mount("bpf", path, "bpf", 0, "mode=0700"); err != nil {
		return fmt.Errorf("mount -t bpf bpf %s: %w", path, err)
	}
	if !isBPFFS(path) {
		return errors.New("mount bpffs: " + path + " is not a bpffs after mounting")
	}
	return nil
}

func isBPFFS(path string) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && st.Type == unix.BPF_FS_MAGIC
}
