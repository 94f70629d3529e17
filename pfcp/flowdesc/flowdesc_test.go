package flowdesc

import (
	"errors"
	"net/netip"
	"reflect"
	"testing"
)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func TestParseGood(t *testing.T) {
	tests := []struct {
		in   string
		want Filter
	}{
		{"permit out ip from any to assigned",
			Filter{From: Endpoint{Any: true}, To: Endpoint{Assigned: true}}},
		{"permit out 17 from 10.0.0.0/8 to assigned 5000-5010",
			Filter{Protocol: 17, From: Endpoint{Prefix: pfx("10.0.0.0/8")},
				To: Endpoint{Assigned: true, Ports: []PortRange{{5000, 5010}}}}},
		{"permit out 6 from 198.51.100.7 80,443,8000-8080 to 10.45.0.2 1024-2047",
			Filter{Protocol: 6,
				From: Endpoint{Prefix: pfx("198.51.100.7/32"), Ports: []PortRange{{80, 80}, {443, 443}, {8000, 8080}}},
				To:   Endpoint{Prefix: pfx("10.45.0.2/32"), Ports: []PortRange{{1024, 2047}}}}},
		{"permit out udp from 2001:db8::/32 to 2001:db8:1::5 53",
			Filter{Protocol: 17, From: Endpoint{Prefix: pfx("2001:db8::/32")},
				To: Endpoint{Prefix: pfx("2001:db8:1::5/128"), Ports: []PortRange{{53, 53}}}}},
		{"  PERMIT  OUT  TCP  FROM  any  TO  any  ", // case and spacing
			Filter{Protocol: 6, From: Endpoint{Any: true}, To: Endpoint{Any: true}}},
		{"permit out 58 from any to 2001:db8:1::/64",
			Filter{Protocol: 58, From: Endpoint{Any: true}, To: Endpoint{Prefix: pfx("2001:db8:1::/64")}}},
		{"permit out 0 from any 0-65535 to assigned",
			Filter{From: Endpoint{Any: true, Ports: []PortRange{{0, 65535}}}, To: Endpoint{Assigned: true}}},
		{"permit out 132 from 10.0.0.1/24 to assigned",
			Filter{Protocol: 132, From: Endpoint{Prefix: pfx("10.0.0.1/24")}, To: Endpoint{Assigned: true}}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tt.want)
			}
			again, err := Parse(got.String())
			if err != nil || !reflect.DeepEqual(again, got) {
				t.Fatalf("round trip %q: %+v, %v", got.String(), again, err)
			}
		})
	}
}

func TestParseBad(t *testing.T) {
	for _, in := range []string{
		"",
		"permit out ip from any",
		"deny out ip from any to assigned",
		"permit in ip from any to assigned",
		"permit out foo from any to assigned",
		"permit out 256 from any to assigned",
		"permit out -1 from any to assigned",
		"permit out ip to any from assigned",
		"permit out ip from any any to assigned",
		"permit out ip from !10.0.0.0/8 to assigned",
		"permit out ip from 10.0.0.0/33 to assigned",
		"permit out ip from 10.0.0.300 to assigned",
		"permit out ip from fe80::1%eth0 to assigned",
		"permit out ip from ::ffff:10.0.0.1 to assigned",
		"permit out 17 from any to assigned 80,",
		"permit out 17 from any to assigned 10-5",
		"permit out 17 from any to assigned 65536",
		"permit out 17 from any to assigned 1-2-3",
		"permit out 6 from any to assigned 80 established",
		"permit out 6 from any to assigned frag",
		"permit out 6 from any 80 443 to assigned",
	} {
		t.Run(in, func(t *testing.T) {
			f, err := Parse(in)
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("Parse = %+v, %v; want ErrSyntax", f, err)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add("permit out 17 from 10.0.0.0/8 to assigned 5000-5010")
	f.Add("permit out ip from any to 2001:db8::1 1,2,3-4")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := Parse(s)
		if err != nil {
			return
		}
		again, err := Parse(got.String())
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Fatalf("round trip of %q via %q: %+v, %v", s, got.String(), again, err)
		}
	})
}
