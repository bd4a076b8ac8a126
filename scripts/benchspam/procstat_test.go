package main

import (
	"slices"
	"testing"
)

func TestParseProcStatNameWithParens(t *testing.T) {
	line := "4242 (spamd child) x) S 4200 4242 4242 0 -1 4194560 1 0 0 0 731 52 9 4 20 0 1 0 55 1 1 18446744073709551615\n"
	s, err := parseProcStat(line)
	if err != nil {
		t.Fatal(err)
	}
	if s.ppid != 4200 || s.utime != 731 || s.stime != 52 || s.cutime != 9 || s.cstime != 4 {
		t.Fatalf("parsed %+v", s)
	}
	if _, err := parseProcStat("1 (x) S 0 1"); err == nil {
		t.Fatal("short line accepted")
	}
	if _, err := parseProcStat("no paren"); err == nil {
		t.Fatal("line without name accepted")
	}
}

func TestTreeTicksCountsDescendantsOnce(t *testing.T) {
	procs := map[int]procStat{
		1:  {ppid: 0, utime: 1000},                               // init: not ours
		10: {ppid: 1, utime: 5, stime: 1, cutime: 30, cstime: 2}, // daemon, reaped children
		11: {ppid: 10, utime: 100, stime: 10},                    // worker
		12: {ppid: 10, utime: 200, stime: 20},                    // worker
		13: {ppid: 12, utime: 7},                                 // worker's helper
		20: {ppid: 1, utime: 999},                                // unrelated
	}
	sum, pids := treeTicks(procs, []int{10})
	if sum != 5+1+30+2+110+220+7 {
		t.Fatalf("sum %d", sum)
	}
	slices.Sort(pids)
	if !slices.Equal(pids, []int{10, 11, 12, 13}) {
		t.Fatalf("pids %v", pids)
	}
	// A root listed twice, or a child listed as a root, is counted once.
	if s2, _ := treeTicks(procs, []int{10, 12, 10}); s2 != sum {
		t.Fatalf("duplicate roots counted twice: %d", s2)
	}
	if s3, p3 := treeTicks(procs, []int{99}); s3 != 0 || len(p3) != 0 {
		t.Fatalf("missing root: %d %v", s3, p3)
	}
}
