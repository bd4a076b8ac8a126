// Command benchoutbound is scripts/bench-outbound's latency probe: it sends
// messages one after another over one SMTP session (reconnecting after each,
// as smtp-source does) while smtp-source loads the relay, and reports the
// time from the final "." to the 250 reply.
//
//	benchoutbound -addr 127.0.0.1:PORT -n 100 -plain plain.eml -zip zip.eml
//
// Every tenth message (the 10th, 20th, ...) is the -zip file. The last line
// printed is "p50-ms=A p99-ms=B max-ms=C sent=N". Exit status 1 when a
// message was not accepted.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-smtp"
)

func main() {
	addr := flag.String("addr", "", "relay address host:port")
	n := flag.Int("n", 100, "messages to send")
	plain := flag.String("plain", "", "message file sent 9 times in 10")
	zip := flag.String("zip", "", "message file sent every 10th time")
	from := flag.String("from", "sender@bench.test", "envelope sender")
	to := flag.String("to", "user@dest.test", "envelope recipient")
	flag.Parse()
	if err := run(*addr, *n, *plain, *zip, *from, *to); err != nil {
		fmt.Fprintln(os.Stderr, "benchoutbound:", err)
		os.Exit(1)
	}
}

func run(addr string, n int, plainFile, zipFile, from, to string) error {
	plain, err := readCRLF(plainFile)
	if err != nil {
		return err
	}
	zip, err := readCRLF(zipFile)
	if err != nil {
		return err
	}
	lats := make([]float64, 0, n)
	for i := 1; i <= n; i++ {
		msg := plain
		if i%10 == 0 {
			msg = zip
		}
		d, err := sendOne(addr, from, to, msg)
		if err != nil {
			return fmt.Errorf("message %d: %w", i, err)
		}
		lats = append(lats, float64(d.Microseconds())/1000)
	}
	slices.Sort(lats)
	fmt.Printf("p50-ms=%.1f p99-ms=%.1f max-ms=%.1f sent=%d\n",
		percentile(lats, 0.50), percentile(lats, 0.99), percentile(lats, 1), len(lats))
	return nil
}

// readCRLF reads a message file and gives it CRLF line ends, as smtp-source -F does.
func readCRLF(name string) ([]byte, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("read message: %w", err)
	}
	s := strings.ReplaceAll(string(b), "\r\n", "\n")
	return []byte(strings.ReplaceAll(s, "\n", "\r\n")), nil
}

// sendOne sends msg in its own session and returns the time from the final
// "." to the reply.
func sendOne(addr, from, to string, msg []byte) (time.Duration, error) {
	c, err := smtp.Dial(addr)
	if err != nil {
		return 0, fmt.Errorf("dial: %w", err)
	}
	defer c.Close()
	if err := c.Hello("bench-client.test"); err != nil {
		return 0, fmt.Errorf("EHLO: %w", err)
	}
	if err := c.Mail(from, nil); err != nil {
		return 0, fmt.Errorf("MAIL: %w", err)
	}
	if err := c.Rcpt(to, nil); err != nil {
		return 0, fmt.Errorf("RCPT: %w", err)
	}
	w, err := c.Data()
	if err != nil {
		return 0, fmt.Errorf("DATA: %w", err)
	}
	if _, err := bytes.NewReader(msg).WriteTo(w); err != nil {
		return 0, fmt.Errorf("write body: %w", err)
	}
	start := time.Now()
	if err := w.Close(); err != nil {
		return 0, fmt.Errorf("end of data: %w", err)
	}
	d := time.Since(start)
	_ = c.Quit()
	return d, nil
}

// percentile of sorted values (nearest rank); 0 for none.
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted))+0.999999) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}
