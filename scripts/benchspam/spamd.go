package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
)

// spamcCheck sends msg to spamd at addr with the SPAMC/1.5 CHECK command and
// returns spamd's score and required score. spamd closes the connection
// after each answer; ctx bounds the whole exchange.
func spamcCheck(ctx context.Context, addr string, msg []byte) (score, required float64, err error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, 0, fmt.Errorf("connect to spamd: %w", err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(dl); err != nil {
			return 0, 0, fmt.Errorf("set deadline: %w", err)
		}
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	req := fmt.Sprintf("CHECK SPAMC/1.5\r\nContent-length: %d\r\n\r\n", len(msg))
	if _, err := io.WriteString(conn, req); err != nil {
		return 0, 0, fmt.Errorf("send to spamd: %w", err)
	}
	if _, err := conn.Write(msg); err != nil {
		return 0, 0, fmt.Errorf("send to spamd: %w", err)
	}
	return parseSpamdResponse(bufio.NewReader(conn))
}

// parseSpamdResponse reads a SPAMD/1.x reply to CHECK: a status line
// "SPAMD/1.1 0 EX_OK" and a header "Spam: True ; 15.3 / 5.0".
func parseSpamdResponse(r *bufio.Reader) (score, required float64, err error) {
	status, err := r.ReadString('\n')
	if err != nil && status == "" {
		return 0, 0, fmt.Errorf("read spamd status: %w", err)
	}
	f := strings.Fields(status)
	if len(f) < 2 || !strings.HasPrefix(f[0], "SPAMD/") {
		return 0, 0, fmt.Errorf("not a spamd reply: %q", strings.TrimSpace(status))
	}
	if f[1] != "0" {
		return 0, 0, fmt.Errorf("spamd error: %q", strings.TrimSpace(status))
	}
	for {
		line, err := r.ReadString('\n')
		line = strings.TrimRight(line, "\r\n")
		if name, val, ok := strings.Cut(line, ":"); ok && strings.EqualFold(strings.TrimSpace(name), "Spam") {
			return parseSpamHeader(val)
		}
		if err != nil || line == "" {
			return 0, 0, fmt.Errorf("spamd reply without a Spam header")
		}
	}
}

// parseSpamHeader parses the value of spamd's Spam header,
// "True ; 15.3 / 5.0".
func parseSpamHeader(v string) (score, required float64, err error) {
	_, rest, ok := strings.Cut(v, ";")
	if !ok {
		return 0, 0, fmt.Errorf("bad Spam header %q", v)
	}
	s, t, ok := strings.Cut(rest, "/")
	if !ok {
		return 0, 0, fmt.Errorf("bad Spam header %q", v)
	}
	if score, err = strconv.ParseFloat(strings.TrimSpace(s), 64); err != nil {
		return 0, 0, fmt.Errorf("bad score in Spam header %q: %w", v, err)
	}
	if required, err = strconv.ParseFloat(strings.TrimSpace(t), 64); err != nil {
		return 0, 0, fmt.Errorf("bad threshold in Spam header %q: %w", v, err)
	}
	return score, required, nil
}

func cmdScoreSpamd(ctx context.Context, fs *flag.FlagSet, args []string) error {
	var c commonFlags
	c.register(fs)
	addr := fs.String("addr", "", "spamd address (127.0.0.1:PORT)")
	pids := fs.String("pids", "", "spamd parent PID(s), comma-separated; children are found in /proc")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := c.check(); err != nil {
		return err
	}
	roots, err := parsePIDs(*pids)
	if err != nil || len(roots) == 0 || *addr == "" {
		return fmt.Errorf("need -addr and -pids")
	}
	r := &result{Engine: "spamassassin", Unit: "points"}
	var mu sync.Mutex
	thresholds := map[float64]int{}
	score := func(ctx context.Context, msg []byte) (float64, error) {
		s, req, err := spamcCheck(ctx, *addr, msg)
		if err == nil {
			mu.Lock()
			thresholds[req]++
			mu.Unlock()
		}
		return s, err
	}
	warm := func(ctx context.Context, msg []byte) (float64, error) {
		s, _, err := spamcCheck(ctx, *addr, msg)
		return s, err
	}
	if err := scoreDaemon(ctx, r, c, map[string][]int{"spamd": roots}, warm, score); err != nil {
		return err
	}
	// spamd reports required_score with every answer; it is the same for
	// all messages unless per-user preferences were in play.
	best, n := 0.0, 0
	for t, k := range thresholds {
		if k > n {
			best, n = t, k
		}
	}
	r.Threshold = best
	r.ThresholdNote = fmt.Sprintf("required_score %.1f", best)
	if len(thresholds) > 1 {
		r.Notes = append(r.Notes, fmt.Sprintf("spamd answered with %d different required scores", len(thresholds)))
	}
	return r.write(c.out)
}
