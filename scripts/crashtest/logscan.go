package main

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// logReport summarises mailgate's stderr over all runs.
type logReport struct {
	errorLines int            // level=ERROR lines
	errorMsgs  map[string]int // msg= of ERROR lines → count
	blobLines  []string       // lines about damaged, missing or corrupt blobs
	recoveries int            // "spool recovered" lines (one per start)
	discarded  int            // sum of discarded_unacknowledged
	missing    int            // sum of missing
	damaged    int            // sum of damaged
	released   int            // sum of leases released at start
	panics     []string       // Go panics or fatal errors
}

var (
	blobRE = regexp.MustCompile(`(?i)blob (missing|damaged)|damaged blob|corrupt|cannot be delivered`)
	msgRE  = regexp.MustCompile(`\bmsg=("(?:[^"\\]|\\.)*"|\S+)`)
	kvRE   = regexp.MustCompile(`\b(discarded_unacknowledged|missing|damaged|recipients)=(\d+)`)
)

// scanLog reads slog text-handler output (key=value lines) interleaved
// with this program's "=== crash-test" markers.
func scanLog(r io.Reader) (logReport, error) {
	rep := logReport{errorMsgs: map[string]int{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "panic:") || strings.HasPrefix(line, "fatal error:") {
			rep.panics = append(rep.panics, line)
		}
		if blobRE.MatchString(line) {
			rep.blobLines = append(rep.blobLines, line)
		}
		if strings.Contains(line, "level=ERROR") {
			rep.errorLines++
			msg := "?"
			if m := msgRE.FindStringSubmatch(line); m != nil {
				msg = strings.Trim(m[1], `"`)
			}
			rep.errorMsgs[msg]++
		}
		isRecovery := strings.Contains(line, `msg="spool recovered"`)
		isRelease := strings.Contains(line, `msg="released leases from before restart"`)
		if isRecovery {
			rep.recoveries++
		}
		if !isRecovery && !isRelease {
			continue
		}
		for _, m := range kvRE.FindAllStringSubmatch(line, -1) {
			n, _ := strconv.Atoi(m[2])
			switch {
			case isRecovery && m[1] == "discarded_unacknowledged":
				rep.discarded += n
			case isRecovery && m[1] == "missing":
				rep.missing += n
			case isRecovery && m[1] == "damaged":
				rep.damaged += n
			case isRelease && m[1] == "recipients":
				rep.released += n
			}
		}
	}
	if err := sc.Err(); err != nil {
		return rep, fmt.Errorf("read log: %w", err)
	}
	return rep, nil
}

// add sums another log's report into r (one report over several nodes).
func (r *logReport) add(o logReport) {
	if r.errorMsgs == nil {
		r.errorMsgs = map[string]int{}
	}
	r.errorLines += o.errorLines
	for m, n := range o.errorMsgs {
		r.errorMsgs[m] += n
	}
	r.blobLines = append(r.blobLines, o.blobLines...)
	r.recoveries += o.recoveries
	r.discarded += o.discarded
	r.missing += o.missing
	r.damaged += o.damaged
	r.released += o.released
	r.panics = append(r.panics, o.panics...)
}

// blobTrouble reports whether the log ever mentioned damaged or missing blobs.
func (r logReport) blobTrouble() bool {
	return len(r.blobLines) > 0 || r.missing > 0 || r.damaged > 0
}

// topErrors lists ERROR messages by count, most frequent first.
func (r logReport) topErrors() []string {
	type kv struct {
		msg string
		n   int
	}
	var xs []kv
	for m, n := range r.errorMsgs {
		xs = append(xs, kv{m, n})
	}
	sort.Slice(xs, func(i, j int) bool { return xs[i].n > xs[j].n || xs[i].n == xs[j].n && xs[i].msg < xs[j].msg })
	var out []string
	for _, x := range xs {
		out = append(out, fmt.Sprintf("%dx %q", x.n, x.msg))
	}
	return out
}
