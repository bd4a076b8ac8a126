package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
)

// rspamdReply is the part of a /checkv2 answer the benchmark reads.
type rspamdReply struct {
	Score         float64                    `json:"score"`
	RequiredScore float64                    `json:"required_score"`
	Action        string                     `json:"action"`
	Symbols       map[string]json.RawMessage `json:"symbols"`
}

// rspamdCheck posts msg to rspamd's normal worker and decodes the answer.
func rspamdCheck(ctx context.Context, hc *http.Client, base string, msg []byte) (*rspamdReply, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/checkv2", bytes.NewReader(msg))
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("rspamd checkv2: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("read rspamd answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("rspamd checkv2: %s: %.200s", resp.Status, body)
	}
	var r rspamdReply
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("decode rspamd answer: %w", err)
	}
	return &r, nil
}

// rspamdAction is one entry of the controller's /actions answer.
type rspamdAction struct {
	Action string   `json:"action"`
	Value  *float64 `json:"value"`
}

// spamThreshold picks the score from which rspamd marks a message as spam
// for a downstream MTA: "add header" (the X-Spam flag), else "rewrite
// subject", else "reject".
func spamThreshold(actions []rspamdAction) (float64, string, bool) {
	for _, want := range []string{"add header", "rewrite subject", "reject"} {
		for _, a := range actions {
			norm := strings.ReplaceAll(strings.ToLower(a.Action), "_", " ")
			if norm == want && a.Value != nil {
				return *a.Value, "action '" + want + "'", true
			}
		}
	}
	return 0, "", false
}

func rspamdActions(ctx context.Context, hc *http.Client, base string) ([]rspamdAction, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/actions", nil)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("rspamd controller /actions: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("read /actions: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("rspamd controller /actions: %s: %.200s", resp.Status, body)
	}
	var acts []rspamdAction
	if err := json.Unmarshal(body, &acts); err != nil {
		return nil, fmt.Errorf("decode /actions: %w", err)
	}
	return acts, nil
}

func cmdScoreRspamd(ctx context.Context, fs *flag.FlagSet, args []string) error {
	var c commonFlags
	c.register(fs)
	addr := fs.String("addr", "", "rspamd normal worker (127.0.0.1:PORT)")
	ctrl := fs.String("controller", "", "rspamd controller (127.0.0.1:PORT), for the action thresholds")
	pids := fs.String("pids", "", "rspamd main PID(s); workers are found in /proc")
	extra := fs.String("extra-pids", "", "LABEL=PID[,PID] of a helper daemon whose CPU counts too (e.g. redis=123)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := c.check(); err != nil {
		return err
	}
	roots, err := parsePIDs(*pids)
	if err != nil || len(roots) == 0 || *addr == "" || *ctrl == "" {
		return fmt.Errorf("need -addr, -controller and -pids")
	}
	trees := map[string][]int{"rspamd": roots}
	if *extra != "" {
		label, list, ok := strings.Cut(*extra, "=")
		p, err := parsePIDs(list)
		if !ok || err != nil || len(p) == 0 || label == "" || label == "rspamd" {
			return fmt.Errorf("bad -extra-pids %q", *extra)
		}
		trees[label] = p
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: c.conc, Proxy: nil}}
	defer hc.CloseIdleConnections()
	r := &result{Engine: "rspamd", Unit: "points"}
	acts, err := rspamdActions(ctx, hc, "http://"+*ctrl)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	symbols := map[string]int{}
	actions := map[string]int{}
	required := map[float64]int{}
	score := func(ctx context.Context, msg []byte) (float64, error) {
		rep, err := rspamdCheck(ctx, hc, "http://"+*addr, msg)
		if err != nil {
			return 0, err
		}
		mu.Lock()
		defer mu.Unlock()
		for s := range rep.Symbols {
			symbols[s]++
		}
		actions[rep.Action]++
		required[rep.RequiredScore]++
		return rep.Score, nil
	}
	warm := func(ctx context.Context, msg []byte) (float64, error) {
		rep, err := rspamdCheck(ctx, hc, "http://"+*addr, msg)
		if err != nil {
			return 0, err
		}
		return rep.Score, nil
	}
	if err := scoreDaemon(ctx, r, c, trees, warm, score); err != nil {
		return err
	}
	t, note, ok := spamThreshold(acts)
	if !ok {
		// Fall back to what every answer carries.
		for v := range required {
			t = v
		}
		note = "required_score"
	}
	r.Threshold = t
	r.ThresholdNote = fmt.Sprintf("%s %.1f", note, t)
	r.Notes = append(r.Notes, "actions: "+topCounts(actions, 10), "required_score in answers: "+fmtFloatCounts(required))
	r.Notes = append(r.Notes, "most frequent symbols: "+topCounts(symbols, 40))
	return r.write(c.out)
}

// topCounts formats the n most frequent keys as "key=count ...".
func topCounts(m map[string]int, n int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	if len(keys) > n {
		keys = keys[:n]
	}
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	return strings.Join(parts, " ")
}

func fmtFloatCounts(m map[float64]int) string {
	s := map[string]int{}
	for k, v := range m {
		s[fmt.Sprintf("%g", k)] += v
	}
	return topCounts(s, 5)
}
