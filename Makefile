# pine-upf — build, test and benchmark. Tests and benchmarks load BPF
# programs and create network namespaces: run them as root.

GO        ?= go
PKGS      := ./...
DIFF_PACKETS ?= 100000
FUZZTIME  ?= 20s
BENCHTIME ?= 20000x

.PHONY: all generate build test fuzz bench bench-quick bench-go vet clean demo

all: build

# BPF objects and their Go bindings: clang 14 and the flags in bpf/gen.go
# (and bench/gen.go for the traffic generator and sink).
generate:
	$(GO) generate ./bpf ./bench

build:
	$(GO) build $(PKGS)

vet:
	$(GO) vet $(PKGS)

# Every test, privileged ones included (as root), with a differential run
# of DIFF_PACKETS random packets through the programs and the model.
test: vet
	PINE_DIFF_PACKETS=$(DIFF_PACKETS) $(GO) test -count=1 -timeout 30m $(PKGS)

# Fuzz the datapath against the reference model, and the N4 server's
# raw-bytes path.
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDatapath -fuzztime $(FUZZTIME) ./enforcer
	$(GO) test -run '^$$' -fuzz FuzzHandleMessage -fuzztime $(FUZZTIME) ./pfcp

# Datapath, end to end and control plane side by side, into
# bench/results/*.{json,md,png}; bench-quick in about 30 s.
BENCHFLAGS ?=
bench:
	$(GO) build -o bin/pine-upf ./cmd/pine-upf
	$(GO) run ./cmd/pine-bench --daemon bin/pine-upf $(BENCHFLAGS)

bench-quick:
	$(MAKE) bench BENCHFLAGS=--quick

# The datapath alone, as go test benchmarks.
bench-go:
	$(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) -timeout 60m ./bench

# The demo: namespaces gNB <-> pine-upf <-> data network, an SMF simulator
# authorizing PINE A but not B, traffic for both, a table of what happened.
demo:
	bash scripts/demo.sh

clean:
	rm -rf bin
