package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// procStat is what benchspam needs from /proc/PID/stat (proc(5)).
type procStat struct {
	ppid                         int
	utime, stime, cutime, cstime int64 // clock ticks
}

// parseProcStat parses one /proc/PID/stat line. The command name may hold
// spaces and parentheses, so fields are counted from the last ')'.
func parseProcStat(line string) (procStat, error) {
	i := strings.LastIndexByte(line, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("stat line without ')'")
	}
	f := strings.Fields(line[i+1:])
	// f[0] is field 3 (state); ppid is field 4, utime..cstime fields 14-17.
	if len(f) < 15 {
		return procStat{}, fmt.Errorf("stat line has %d fields after the name", len(f))
	}
	var s procStat
	var err error
	if s.ppid, err = strconv.Atoi(f[1]); err != nil {
		return procStat{}, fmt.Errorf("ppid: %w", err)
	}
	for j, p := range []*int64{&s.utime, &s.stime, &s.cutime, &s.cstime} {
		if *p, err = strconv.ParseInt(f[11+j], 10, 64); err != nil {
			return procStat{}, fmt.Errorf("field %d: %w", 14+j, err)
		}
	}
	return s, nil
}

// readProcs reads the stat of every process under procDir; processes that
// exit while being read are skipped.
func readProcs(procDir string) (map[int]procStat, error) {
	ents, err := os.ReadDir(procDir)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", procDir, err)
	}
	out := map[int]procStat{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(procDir, e.Name(), "stat"))
		if err != nil {
			continue
		}
		s, err := parseProcStat(string(b))
		if err != nil {
			continue
		}
		out[pid] = s
	}
	return out, nil
}

// treeTicks sums utime+stime+cutime+cstime over the roots and all their
// living descendants. cutime/cstime hold children a process has already
// reaped (daemons that recycle workers), and a living process's own times
// never include its living children, so nothing is counted twice. It also
// returns the PIDs counted.
func treeTicks(procs map[int]procStat, roots []int) (int64, []int) {
	children := map[int][]int{}
	for pid, s := range procs {
		children[s.ppid] = append(children[s.ppid], pid)
	}
	seen := map[int]bool{}
	var sum int64
	var pids []int
	queue := append([]int(nil), roots...)
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		if seen[pid] {
			continue
		}
		seen[pid] = true
		s, ok := procs[pid]
		if !ok {
			continue
		}
		sum += s.utime + s.stime + s.cutime + s.cstime
		pids = append(pids, pid)
		queue = append(queue, children[pid]...)
	}
	return sum, pids
}

// cpuMeter measures the CPU time of process trees between two snapshots.
type cpuMeter struct {
	procDir string
	hz      int64
	groups  map[string][]int // label -> root PIDs
	start   map[string]int64
}

func newCPUMeter(hz int64, groups map[string][]int) *cpuMeter {
	return &cpuMeter{procDir: "/proc", hz: hz, groups: groups}
}

func (m *cpuMeter) snapshot() (map[string]int64, error) {
	procs, err := readProcs(m.procDir)
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for label, roots := range m.groups {
		t, pids := treeTicks(procs, roots)
		if len(pids) == 0 {
			return nil, fmt.Errorf("%s: none of the processes %v is running", label, roots)
		}
		out[label] = t
	}
	return out, nil
}

// Start takes the first snapshot.
func (m *cpuMeter) Start() error {
	s, err := m.snapshot()
	m.start = s
	return err
}

// Stop returns CPU seconds per label since Start.
func (m *cpuMeter) Stop() (map[string]float64, error) {
	s, err := m.snapshot()
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for label, t := range s {
		out[label] = float64(t-m.start[label]) / float64(m.hz)
	}
	return out, nil
}

// parsePIDs parses a comma-separated PID list.
func parsePIDs(s string) ([]int, error) {
	var out []int
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("bad PID %q", p)
		}
		out = append(out, n)
	}
	return out, nil
}
