# pine-upf — build, test and benchmark. Tests and benchmarks load BPF
# programs and create network namespaces: run them as root.

GO        ?= go
PKGS      := ./...
DIFF_PACKETS ?= 100000
FUZZTIME  ?= 20s
BENCHTIME ?= 20000x

.PHONY: all generate build test fuzz bench vet clean demo

all: build

# BPF objects and their Go bindings: clang 14 and the flags in bpf/gen.go.
generate:
	$(GO) generate ./bpf

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

# Datapath cost against the floor programs, as a table.
bench:
	$(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) -timeout 60m ./bench

# The demo: namespaces gNB <-> pine-upf <-> data network, an SMF simulator
# authorizing PINE A but not B, traffic for both, a table of what happened.
demo:
	bash scripts/demo.sh

clean:
	rm -rf bin
