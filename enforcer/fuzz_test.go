package enforcer_test

import (
	"bytes"
	"testing"

	"github.com/pine-upf/pine-upf/enforcer"
	"github.com/pine-upf/pine-upf/internal/dptest"
)

// FuzzDatapath runs arbitrary frames through the programs and the
// reference model: same verdict, same reason, same bytes, never a crash.
// Run it with `make fuzz`; plain `go test` runs the seed corpus.
func FuzzDatapath(f *testing.F) {
	w := dptest.NewWorld(f)
	e := w.Load(f, w.Config())
	gen := dptest.NewGen(42, 6, w)
	for _, s := range gen.Sessions {
		if err := e.InstallSession(s); err != nil {
			f.Fatal(err)
		}
	}
	model := modelFor(w, gen.Sessions)
	for range 40 {
		f.Add(gen.UplinkFrame(), false)
		f.Add(gen.DownlinkFrame(), true)
	}
	f.Fuzz(func(t *testing.T, frame []byte, downlink bool) {
		if len(frame) < 14 || len(frame) > 3000 {
			t.Skip("BPF_PROG_TEST_RUN takes 14 bytes to a page")
		}
		prog, ifindex, dir := enforcer.ProgUplink, w.N3.Index, enforcer.Uplink
		if downlink {
			prog, ifindex, dir = enforcer.ProgDownlink, w.N6.Index, enforcer.Downlink
		}
		var want = model.Uplink
		if downlink {
			want = model.Downlink
		}
		err := w.UPF.Do(func() error {
			st0, err := e.Stats()
			if err != nil {
				return err
			}
			act, out, err := e.TestRun(prog, frame, ifindex)
			if err != nil {
				return err
			}
			st1, err := e.Stats()
			if err != nil {
				return err
			}
			m := want(frame)
			if got := movedReason(st0, st1, dir); act != m.Action || got != m.Reason || !bytes.Equal(out, m.Out) {
				t.Errorf("%v frame %x: program %v/%v out %x, model %v/%v out %x", dir, frame, act, got, out, m.Action, m.Reason, m.Out)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}
