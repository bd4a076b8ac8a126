package app

import (
	"context"
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/mailgate/mailgate/internal/store"
)

// exposed lists the registry's metric names with their label names, the
// series names of histograms (_bucket, _sum, _count) included.
func exposed(t *testing.T) map[string][]string {
	m := newMetrics(func(context.Context) (store.ClusterStatus, error) { return store.ClusterStatus{}, nil })
	descs := make(chan *prometheus.Desc, 256)
	go func() { m.reg.Describe(descs); close(descs) }()
	re := regexp.MustCompile(`fqName: "([^"]+)".*variableLabels: \{([^}]*)\}`)
	names := map[string][]string{}
	for d := range descs {
		g := re.FindStringSubmatch(d.String())
		if g == nil {
			t.Fatalf("unreadable descriptor %s", d)
		}
		var labels []string
		if g[2] != "" {
			labels = strings.Split(g[2], ",")
		}
		names[g[1]] = labels
	}
	// Histograms expose their series under three names.
	m.checkSeconds.WithLabelValues("spf").Observe(0.1)
	fams, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetType() == dto.MetricType_HISTOGRAM {
			base := f.GetName()
			names[base+"_bucket"] = append(append([]string{}, names[base]...), "le")
			names[base+"_sum"] = names[base]
			names[base+"_count"] = names[base]
		}
	}
	return names
}

// Every query of the Grafana dashboard names metrics the node exposes, and
// groups by labels those metrics have.
func TestDashboardUsesExposedMetrics(t *testing.T) {
	raw, err := os.ReadFile("../../docs/grafana/mailgate.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	names := exposed(t)
	metricRE := regexp.MustCompile(`\b(mailgate_[a-z0-9_]+)\b`)
	byRE := regexp.MustCompile(`\bby \(([^)]*)\)`)
	used := map[string]bool{}
	exprs := 0
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			exprs++
			ms := metricRE.FindAllString(tg.Expr, -1)
			if len(ms) == 0 {
				t.Errorf("panel %q: %q names no mailgate metric", p.Title, tg.Expr)
			}
			labels := map[string]bool{}
			for _, n := range ms {
				ls, ok := names[n]
				if !ok {
					t.Errorf("panel %q: metric %s is not exposed", p.Title, n)
				}
				used[n] = true
				for _, l := range ls {
					labels[l] = true
				}
			}
			for _, g := range byRE.FindAllStringSubmatch(tg.Expr, -1) {
				for _, l := range strings.Split(g[1], ",") {
					if l = strings.TrimSpace(l); !labels[l] {
						t.Errorf("panel %q: %q groups by %q, which its metrics do not have", p.Title, tg.Expr, l)
					}
				}
			}
		}
	}
	if exprs == 0 {
		t.Fatal("no queries in the dashboard")
	}
	// And every mailgate metric has a panel.
	for n := range names {
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_sum"), "_count")
		if strings.HasPrefix(n, "mailgate_") && !used[n] && !used[base+"_bucket"] && !used[base+"_sum"] && !used[base] {
			t.Errorf("metric %s has no panel", n)
		}
	}
}
