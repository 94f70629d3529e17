package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"syscall"

	"github.com/wmnsk/go-gtp/gtpv1/ie"
	"github.com/wmnsk/go-gtp/gtpv1/message"
	"golang.org/x/sys/unix"
)

// GTPUPort is the GTP-U UDP port (TS 29.281).
const GTPUPort = 2152

// listenGTPU binds UDP 2152 on an N3 address. IP_FREEBIND lets an IPv6
// address still in duplicate address detection be bound.
func listenGTPU(a netip.Addr) (*net.UDPConn, error) {
	lc := net.ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			if a.Is4() {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_FREEBIND, 1)
			} else {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_FREEBIND, 1)
			}
		})
		return errors.Join(err, serr)
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp", netip.AddrPortFrom(a, GTPUPort).String())
	if err != nil {
		return nil, err
	}
	return pc.(*net.UDPConn), nil
}

// serveGTPU answers GTP-U Echo Requests (the XDP program passes every
// non-G-PDU message to the kernel) with Echo Responses carrying the
// Recovery IE, whose restart counter is 0 as TS 29.281 7.2.2 wants for
// GTP-U. Other messages are counted and logged at debug level.
func serveGTPU(ctx context.Context, conn *net.UDPConn, c *daemonCounters, log *slog.Logger) {
	go func() {
		<-ctx.Done()
		conn.Close()
	}()
	buf := make([]byte, 65536)
	for {
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			log.Warn("GTP-U read", "err", err)
			continue
		}
		msg, err := message.Parse(buf[:n])
		if err != nil {
			c.gtpMalformed.Add(1)
			log.Debug("GTP-U: malformed message", "from", from, "err", err)
			continue
		}
		req, ok := msg.(*message.EchoRequest)
		if !ok {
			c.gtpOther.Add(1)
			log.Debug("GTP-U: message ignored", "from", from, "type", msg.MessageTypeName())
			continue
		}
		c.gtpEchoRequests.Add(1)
		resp, err := message.NewEchoResponse(req.Sequence(), ie.NewRecovery(0)).Marshal()
		if err != nil {
			log.Error("GTP-U: marshal echo response", "err", err)
			continue
		}
		if _, err := conn.WriteToUDPAddrPort(resp, from); err != nil {
			log.Warn("GTP-U: send echo response", "to", from, "err", err)
			continue
		}
		c.gtpEchoResponses.Add(1)
	}
}
