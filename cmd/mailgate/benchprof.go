//go:build benchprof

package main

// Built only with -tags benchprof (scripts/bench-inbound with PROFILE=DIR):
// lets a benchmark take a CPU profile of exactly its measured window
// without any configuration key or listener in the default binary.
//
// With MAILGATE_BENCH_CPUPROFILE=PATH in the environment, SIGUSR1 starts
// CPU profiling and SIGUSR2 stops it and writes the profile to PATH
// (written to PATH.tmp and renamed, so a reader never sees a partial file).

import (
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
)

func init() {
	path := os.Getenv("MAILGATE_BENCH_CPUPROFILE")
	if path == "" {
		return
	}
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGUSR1, syscall.SIGUSR2)
	go func() {
		var f *os.File
		for s := range sig {
			switch {
			case s == syscall.SIGUSR1 && f == nil:
				var err error
				if f, err = os.Create(path + ".tmp"); err != nil {
					slog.Error("bench profile", "err", err)
					f = nil
					continue
				}
				if err := pprof.StartCPUProfile(f); err != nil {
					slog.Error("bench profile", "err", err)
					f.Close()
					f = nil
				}
			case s == syscall.SIGUSR2 && f != nil:
				pprof.StopCPUProfile()
				err := f.Close()
				f = nil
				if err == nil {
					err = os.Rename(path+".tmp", path)
				}
				if err != nil {
					slog.Error("bench profile", "err", err)
				}
			}
		}
	}()
}
