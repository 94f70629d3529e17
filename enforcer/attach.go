package enforcer

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// Side is the interface a program serves.
type Side uint8

const (
	N3 Side = iota // towards the gNBs: GTP-U in, uplink program
	N6             // towards the data network: IP in, downlink program
)

func (s Side) String() string {
	if s == N3 {
		return "n3"
	}
	return "n6"
}

// XDPMode is how a program is attached. The caller chooses: native needs
// driver support, generic works everywhere at a fraction of the speed.
type XDPMode uint8

const (
	XDPNative XDPMode = iota
	XDPGeneric
)

func (m XDPMode) String() string {
	if m == XDPGeneric {
		return "generic"
	}
	return "native"
}

func (m XDPMode) flags() link.XDPAttachFlags {
	if m == XDPGeneric {
		return link.XDPGenericMode
	}
	return link.XDPDriverMode
}

func (e *Enforcer) program(s Side) *ebpf.Program {
	if s == N3 {
		return e.objs.XdpN3
	}
	return e.objs.XdpN6
}

func (e *Enforcer) linkPin(iface string, s Side) string {
	return filepath.Join(e.cfg.PinDir, "link_"+s.String()+"_"+iface)
}

// Attach puts the side's program on an interface. With PinDir, the link is
// pinned; a link already pinned for that interface and side is adopted and
// switched to this process's program in one atomic update, so traffic is
// enforced without a gap across a restart.
func (e *Enforcer) Attach(iface string, s Side, mode XDPMode) error {
	ifc, err := net.InterfaceByName(iface)
	if err != nil {
		return fmt.Errorf("attach %s program: interface %q: %w", s, iface, err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.links[iface]; ok {
		return fmt.Errorf("attach %s program: %s already has a pine-upf program", s, iface)
	}
	prog := e.program(s)

	if e.cfg.PinDir != "" {
		l, err := link.LoadPinnedLink(e.linkPin(iface, s), nil)
		switch {
		case err == nil:
			if err := l.Update(prog); err != nil {
				l.Close()
				return fmt.Errorf("adopt pinned %s link on %s: %w", s, iface, err)
			}
			e.links[iface] = l
			e.log.Info("adopted pinned XDP link", "iface", iface, "side", s.String())
			return nil
		case !errors.Is(err, os.ErrNotExist):
			return fmt.Errorf("adopt pinned %s link on %s: %w", s, iface, err)
		}
	}

	l, err := link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifc.Index, Flags: mode.flags()})
	if err != nil {
		if mode == XDPNative {
			return fmt.Errorf("attach %s program to %s in native mode (the driver may lack XDP support; generic mode is the explicit alternative): %w", s, iface, err)
		}
		return fmt.Errorf("attach %s program to %s in %s mode: %w", s, iface, mode, err)
	}
	if e.cfg.PinDir != "" {
		if err := l.Pin(e.linkPin(iface, s)); err != nil {
			l.Close()
			return fmt.Errorf("pin %s link on %s: %w", s, iface, err)
		}
	}
	e.links[iface] = l
	e.log.Info("attached XDP program", "iface", iface, "side", s.String(), "mode", mode.String())
	return nil
}

// Detach removes pine-upf's program from an interface, pinned or not.
func (e *Enforcer) Detach(iface string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	l, ok := e.links[iface]
	if !ok {
		return fmt.Errorf("detach: no pine-upf program on %s", iface)
	}
	delete(e.links, iface)
	return errors.Join(l.Unpin(), l.Close())
}

// AttachProgram attaches any datapath program to an interface, unpinned,
// for benchmarks: a program attached to a device is called directly by the
// XDP dispatcher, as in production, which BPF_PROG_TEST_RUN then measures.
func (e *Enforcer) AttachProgram(p Program, iface string, mode XDPMode) (io.Closer, error) {
	prog, err := e.prog(p)
	if err != nil {
		return nil, err
	}
	ifc, err := net.InterfaceByName(iface)
	if err != nil {
		return nil, fmt.Errorf("attach program %d: %w", p, err)
	}
	l, err := link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifc.Index, Flags: mode.flags()})
	if err != nil {
		return nil, fmt.Errorf("attach program %d to %s: %w", p, iface, err)
	}
	return l, nil
}
