package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// parseMailgateScores parses the output of "mailgate spam score": one line
// per message, "<path>\t<score>", score a spam probability in percent
// (0-100). Keys are the files' base names. A trailing "%" is tolerated.
func parseMailgateScores(out []byte) (map[string]float64, error) {
	scores := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		i := strings.LastIndexByte(line, '\t')
		if i < 0 {
			return nil, fmt.Errorf("line %d: no tab: %.120q", n, line)
		}
		v, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(line[i+1:]), "%"), 64)
		if err != nil {
			return nil, fmt.Errorf("line %d: bad score: %w", n, err)
		}
		if v < 0 || v > 100 {
			return nil, fmt.Errorf("line %d: score %g outside 0-100", n, v)
		}
		scores[filepath.Base(line[:i])] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read scores: %w", err)
	}
	return scores, nil
}

// cmdScoreMailgate runs "mailgate -c CFG spam score [--tenant T] [ARGS] DIR"
// once for the test set's spam and once for its ham directory, and charges
// the CLI's user+system time (its rusage, as time(1) reports it, start-up
// and model loading included) to mailgate.
func cmdScoreMailgate(ctx context.Context, fs *flag.FlagSet, args []string) error {
	var c commonFlags
	c.register(fs)
	bin := fs.String("mailgate", "", "mailgate binary")
	cfg := fs.String("config", "", "mailgate configuration file")
	tenant := fs.String("tenant", "", "tenant whose filter scores (none: the global model)")
	extra := fs.String("args", "", "more arguments for \"spam score\", space-separated (e.g. --no-builtin)")
	threshold := fs.Float64("threshold", 90, "mailgate's default spam threshold (percent)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := c.check(); err != nil {
		return err
	}
	if *bin == "" || *cfg == "" {
		return fmt.Errorf("need -mailgate and -config")
	}
	msgs, err := listTest(c.test)
	if err != nil {
		return err
	}
	r := &result{Engine: "mailgate", Unit: "percent", Threshold: *threshold,
		ThresholdNote: fmt.Sprintf("default %g%%", *threshold), CPUParts: map[string]float64{}}
	scores := map[string]float64{}
	for _, class := range []string{"spam", "ham"} {
		dir := filepath.Join(c.test, class)
		// The per-message limit scales to the whole directory.
		cctx, cancel := context.WithTimeout(ctx, c.timeout*time.Duration(len(msgs)))
		argv := []string{"-c", *cfg, "spam", "score"}
		if *tenant != "" {
			argv = append(argv, "--tenant", *tenant)
		}
		argv = append(argv, strings.Fields(*extra)...)
		cmd := exec.CommandContext(cctx, *bin, append(argv, dir)...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		began := time.Now()
		err := cmd.Run()
		r.WallSeconds += time.Since(began).Seconds()
		cancel()
		if cmd.ProcessState != nil {
			cpu := (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
			r.CPUSeconds += cpu
			r.CPUParts["mailgate "+class] = cpu
		}
		if err != nil {
			return fmt.Errorf("mailgate spam score %s: %w: %s", dir, err, lastLines(stderr.String(), 5))
		}
		got, err := parseMailgateScores(stdout.Bytes())
		if err != nil {
			return fmt.Errorf("mailgate spam score %s: %w", dir, err)
		}
		for k, v := range got {
			scores[k] = v
		}
	}
	r.Messages = len(msgs)
	for _, m := range msgs {
		name := filepath.Base(m.path)
		s, ok := scores[name]
		if !ok {
			r.Errors++
			if r.FirstError == "" {
				r.FirstError = name + ": no score in mailgate's output"
			}
			continue
		}
		r.Samples = append(r.Samples, sample{Name: name, Spam: m.spam, Score: s})
	}
	return r.write(c.out)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
