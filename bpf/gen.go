// Package bpf holds the XDP datapath sources and their generated loaders.
// Only package enforcer uses it.
package bpf

//go:generate go tool bpf2go -cc clang-14 -cflags "-O2 -g -Wall -Werror" -strip llvm-strip-14 -target bpfel -go-package bpf -type session -type ue6_key -type rule_key -type rule -type qer -type counter -type sess_stats -type ev_limit -type peer -type deny_event -type reason -type dir -type level -type action -type event_stat -type flags Pine pine.c -- -I/usr/include/x86_64-linux-gnu
