package bench

// The end-to-end suite's traffic programs (generator, sink, plain redirect),
// built like bpf/: clang 14, committed output. `make generate` runs this too.
//go:generate go tool bpf2go -cc clang-14 -cflags "-O2 -g -Wall -Werror" -strip llvm-strip-14 -target bpfel -go-package bench -type gen_cfg -type sink_count Traffic gen.c -- -I/usr/include/x86_64-linux-gnu
