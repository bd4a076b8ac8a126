//go:build linux

package clamd

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/testutil/clamdtest"
)

// benchMessages returns n distinct ~20 KB MIME messages (text, HTML and a
// small base64 attachment), so clamd's cache of clean files never hits.
func benchMessages(n int) [][]byte {
	out := make([][]byte, n)
	words := strings.Fields("the quarterly report meeting schedule invoice project update please find attached " +
		"regards customer order delivery contract review budget team office account notice")
	for i := range out {
		rng := rand.New(rand.NewPCG(7, uint64(i)))
		text := func(n int) string {
			var b strings.Builder
			for b.Len() < n {
				b.WriteString(words[rng.IntN(len(words))])
				if rng.IntN(12) == 0 {
					b.WriteString(".\r\n")
				} else {
					b.WriteByte(' ')
				}
			}
			return b.String()
		}
		att := make([]byte, 4<<10)
		for j := range att {
			att[j] = byte(rng.Uint32())
		}
		enc := base64.StdEncoding.EncodeToString(att)
		var b strings.Builder
		fmt.Fprintf(&b, "From: a@example.org\r\nTo: b@example.com\r\nSubject: report %d\r\nMessage-ID: <%d@example.org>\r\n", i, i)
		b.WriteString("MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"bb\"\r\n\r\n--bb\r\n")
		b.WriteString("Content-Type: multipart/alternative; boundary=\"aa\"\r\n\r\n--aa\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n")
		b.WriteString(text(6 << 10))
		b.WriteString("\r\n--aa\r\nContent-Type: text/html; charset=us-ascii\r\n\r\n<html><body><p>")
		b.WriteString(text(8 << 10))
		b.WriteString("</p><a href=\"https://example.org/x\">link</a></body></html>\r\n--aa--\r\n--bb\r\n")
		b.WriteString("Content-Type: application/octet-stream; name=\"data.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n")
		for len(enc) > 76 {
			b.WriteString(enc[:76] + "\r\n")
			enc = enc[76:]
		}
		b.WriteString(enc + "\r\n--bb--\r\n")
		out[i] = []byte(b.String())
	}
	return out
}

// cpuTicks is utime+stime of pid in clock ticks (proc(5)).
func cpuTicks(t testing.TB, pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return u + st
}

func selfCPU() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

const clkTck = 100 // sysconf(_SC_CLK_TCK) on Linux

// protoScanner is one way of handing a message to clamd.
type protoScanner interface {
	scan(msg []byte) (Result, error)
	close()
}

// client: the Client as it is.
type client struct{ c *Client }

func (p client) scan(msg []byte) (Result, error) {
	return p.c.Scan(context.Background(), bytes.NewReader(msg))
}
func (p client) close() { p.c.CloseIdleConnections() }

// perConn: a connection and FILDES per scan, with a new memory file per
// scan or, with reuseMem, one from a free list.
type perConn struct {
	addr     string
	reuseMem bool
	mem      memfds
}

func (p *perConn) scan(msg []byte) (Result, error) {
	f, done, err := p.mem.file(p.reuseMem)
	if err != nil {
		return Result{}, err
	}
	defer done()
	fill(f, msg, p.reuseMem)
	conn, err := net.Dial("unix", p.addr)
	if err != nil {
		return Result{}, err
	}
	defer conn.Close()
	uc := conn.(*net.UnixConn)
	if _, err := uc.Write([]byte("zFILDES\x00")); err != nil {
		return Result{}, err
	}
	if err := sendFD(uc, f); err != nil {
		return Result{}, err
	}
	reply, err := readReply(uc)
	if err != nil {
		return Result{}, err
	}
	return parseScanReply(reply)
}

func (p *perConn) close() { p.mem.close() }

// memfds is a free list of memory files.
type memfds struct {
	mu   sync.Mutex
	free []*os.File
}

func (m *memfds) get() *os.File {
	m.mu.Lock()
	defer m.mu.Unlock()
	if n := len(m.free); n > 0 {
		f := m.free[n-1]
		m.free = m.free[:n-1]
		return f
	}
	f, err := memFile()
	if err != nil {
		panic(err)
	}
	return f
}

func (m *memfds) put(f *os.File) {
	m.mu.Lock()
	m.free = append(m.free, f)
	m.mu.Unlock()
}

// file is a memory file from the free list when reuse is set, a new one
// otherwise; done gives it back or closes it.
func (m *memfds) file(reuse bool) (*os.File, func(), error) {
	if reuse {
		f := m.get()
		return f, func() { m.put(f) }, nil
	}
	f, err := memFile()
	if err != nil {
		return nil, nil, err
	}
	return f, func() { f.Close() }, nil
}

func (m *memfds) close() {
	for _, f := range m.free {
		f.Close()
	}
}

// fill writes msg at offset 0 and cuts the file to its length.
func fill(f *os.File, msg []byte, reuse bool) {
	if reuse {
		if _, err := f.WriteAt(msg, 0); err != nil {
			panic(err)
		}
		if err := f.Truncate(int64(len(msg))); err != nil {
			panic(err)
		}
		return
	}
	if _, err := f.Write(msg); err != nil {
		panic(err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		panic(err)
	}
}

// BenchmarkFDPassCPU measures the CPU that passing ~20 KB MIME messages to a
// real clamd costs mailgate's side (client-µs/op, from getrusage, so with
// the benchmark's own share) and clamd (clamd-µs/op, from /proc/PID/stat),
// for each way of doing it:
//
//	a       a new connection and a new memory file per scan
//	c       a new connection per scan, memory files reused
//	client  the Client: pooled IDSESSION connections and memory files
//
// The variants run in alternating rounds of 200 scans, so that load from
// other processes spreads evenly over them. Every message is distinct, so
// clamd's cache of clean files never answers; CACHED=1 scans the same eight
// messages over and over instead, leaving mostly the per-scan overhead.
// PAR=N scans from N goroutines; ONLY=a,client picks variants.
//
//	go test -run '^$' -bench FDPassCPU -benchtime 4000x ./internal/scan/av/clamd/
func BenchmarkFDPassCPU(b *testing.B) {
	tmp, err := os.MkdirTemp("/dev/shm", "clamd-bench-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	d := clamdtest.Start(b, clamdtest.WithTemporaryDirectory(tmp), clamdtest.WithMaxThreads(0))
	c := &Client{Network: "unix", Address: d.Socket(), FDPassMax: DefaultFDPassMax}
	par, _ := strconv.Atoi(os.Getenv("PAR"))
	par = max(par, 1)
	type variant struct {
		name        string
		ps          protoScanner
		clamd, self int64
		wall        time.Duration
		n           int
	}
	vs := []*variant{
		{name: "a", ps: &perConn{addr: d.Socket()}},
		{name: "c", ps: &perConn{addr: d.Socket(), reuseMem: true}},
		{name: "client", ps: client{c}},
	}
	if only := os.Getenv("ONLY"); only != "" {
		var keep []*variant
		for _, v := range vs {
			if strings.Contains(","+only+",", ","+v.name+",") {
				keep = append(keep, v)
			}
		}
		vs = keep
	}
	msgs := benchMessages((b.N + 20) * len(vs))
	if os.Getenv("CACHED") == "1" {
		// The same few messages again and again: clamd answers from its
		// cache of clean files, so what is left is the per-scan overhead.
		few := msgs[:8]
		for i := range msgs {
			msgs[i] = few[i%len(few)]
		}
	}
	k := 0
	for _, v := range vs {
		for range 20 {
			if _, err := v.ps.scan(msgs[k%len(msgs)]); err != nil {
				b.Fatal(err)
			}
			k++
		}
	}
	const round = 200
	b.ResetTimer()
	for done := 0; done < b.N; done += round {
		n := min(round, b.N-done)
		for _, v := range vs {
			c0, s0, w0 := cpuTicks(b, d.Pid()), selfCPU(), time.Now()
			var wg sync.WaitGroup
			var mu sync.Mutex
			left := n
			for range par {
				wg.Go(func() {
					for {
						mu.Lock()
						if left == 0 {
							mu.Unlock()
							return
						}
						left--
						m := msgs[k]
						k++
						mu.Unlock()
						res, err := v.ps.scan(m)
						if err != nil || !res.Clean() {
							b.Errorf("%s: %+v %v", v.name, res, err)
							return
						}
					}
				})
			}
			wg.Wait()
			v.clamd += cpuTicks(b, d.Pid()) - c0
			v.self += selfCPU() - s0
			v.wall += time.Since(w0)
			v.n += n
		}
	}
	b.StopTimer()
	for _, v := range vs {
		v.ps.close()
		b.ReportMetric(float64(v.clamd)*1e6/clkTck/float64(v.n), v.name+"-clamd-µs/op")
		b.ReportMetric(float64(v.self)/1e3/float64(v.n), v.name+"-client-µs/op")
		b.ReportMetric(float64(v.wall.Microseconds())/float64(v.n), v.name+"-wall-µs/op")
	}
}
