package bench

import (
	"fmt"
	"image/color"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Plots writes the PNGs into dir and returns their paths: ns/packet against
// rule count per direction (64-byte payload, the floors dashed), and Mpps
// per end-to-end scenario.
func (r *Report) Plots(dir, prefix string) ([]string, error) {
	var out []string
	if dp := r.Datapath; dp != nil && len(dp.Rows) > 0 {
		for _, d := range []string{"uplink", "downlink"} {
			path := filepath.Join(dir, prefix+"datapath-"+d+".png")
			if err := dpPlot(dp, d, path); err != nil {
				return out, err
			}
			out = append(out, path)
		}
	}
	if e := r.E2E; e != nil && len(e.Rows) > 0 {
		path := filepath.Join(dir, prefix+"e2e-mpps.png")
		if err := e2ePlot(e, path); err != nil {
			return out, err
		}
		out = append(out, path)
	}
	return out, nil
}

func dpPlot(dp *DPReport, dir, path string) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("pine-upf %s: ns/packet vs PINE rules (64 B payload)", dir)
	p.X.Label.Text = "installed PINE rules"
	p.Y.Label.Text = "ns/packet (net of XDP_PASS)"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Legend.Top = true
	p.Legend.Left = false
	p.Legend.XOffs = -vg.Points(4)
	payload := 64
	top := 0.0
	i := 0
	for _, fam := range []string{"ipv4", "ipv6"} {
		for _, verdict := range []string{"allowed", "denied"} {
			var xy, f1, f2 plotter.XYs
			for _, row := range dp.Rows {
				if row.Dir == dir && row.Family == fam && row.Verdict == verdict && row.Payload == payload {
					xy = append(xy, plotter.XY{X: float64(row.Rules), Y: row.NS})
					top = max(top, row.NS, row.F2)
					f1 = append(f1, plotter.XY{X: float64(row.Rules), Y: row.F1})
					f2 = append(f2, plotter.XY{X: float64(row.Rules), Y: row.F2})
				}
			}
			if len(xy) == 0 {
				continue
			}
			l, pts, err := plotter.NewLinePoints(xy)
			if err != nil {
				return err
			}
			c := plotutil.Color(i)
			l.Color, pts.Color = c, c
			pts.Shape = plotutil.Shape(i)
			p.Add(l, pts)
			p.Legend.Add(fmt.Sprintf("%s %s", verdict, fam), l, pts)
			if verdict == "allowed" {
				// The floors of the same run, same frames: F2 beside the
				// allowed line, F1 (parse and drop) beside both.
				for k, fl := range []plotter.XYs{f1, f2} {
					ln, err := plotter.NewLine(fl)
					if err != nil {
						return err
					}
					ln.Color = c
					ln.Dashes = []vg.Length{vg.Points(2 + 4*float64(k)), vg.Points(3)}
					p.Add(ln)
					p.Legend.Add(fmt.Sprintf("floor F%d %s", k+1, fam), ln)
				}
			}
			i++
		}
	}
	p.Y.Min = 0
	p.Y.Max = top * 1.6 // room for the legend above the lines
	p.Add(plotter.NewGrid())
	return p.Save(8*vg.Inch, 5*vg.Inch, path)
}

func e2ePlot(e *E2EReport, path string) error {
	p := plot.New()
	p.Title.Text = "end to end: Mpps reaching the sink (live-frame generator, veths)"
	p.Y.Label.Text = "Mpps (median of trials)"
	var vals plotter.Values
	var names []string
	for _, r := range e.Rows {
		vals = append(vals, r.Mpps)
		names = append(names, r.Scenario)
	}
	bars, err := plotter.NewBarChart(vals, vg.Points(28))
	if err != nil {
		return err
	}
	bars.Color = color.RGBA{R: 0x33, G: 0x66, B: 0xcc, A: 0xff}
	bars.LineStyle.Width = 0
	p.Add(bars)
	// Trials as dots over the bars.
	var pts plotter.XYs
	for i, r := range e.Rows {
		for _, x := range r.Runs {
			pts = append(pts, plotter.XY{X: float64(i), Y: x})
		}
	}
	if sc, err := plotter.NewScatter(pts); err == nil {
		sc.Shape = draw.CircleGlyph{}
		sc.Radius = vg.Points(2)
		sc.Color = color.Black
		p.Add(sc)
	}
	p.NominalX(names...)
	top := 0.0
	for _, r := range e.Rows {
		for _, x := range append([]float64{r.Mpps}, r.Runs...) {
			top = max(top, x)
		}
	}
	p.Y.Max = top * 1.12
	p.X.Min, p.X.Max = -0.6, float64(len(e.Rows))-0.4
	p.X.Tick.Label.Rotation = 0.35
	p.X.Tick.Label.XAlign = draw.XRight
	p.X.Tick.Label.YAlign = draw.YCenter
	p.Y.Min = 0
	p.Add(plotter.NewGrid())
	return p.Save(9*vg.Inch, 5.5*vg.Inch, path)
}
