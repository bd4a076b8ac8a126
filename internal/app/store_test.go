package app_test

import (
	"context"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/app"
	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/store"
)

// Report days follow [http] report_zone, not the machine's zone.
func TestReportZoneAppliesToStore(t *testing.T) {
	at := time.Date(2026, 2, 28, 12, 0, 0, 0, time.UTC)
	var zone string
	var loc *time.Location
	for _, z := range []string{"Pacific/Kiritimati", "Pacific/Pago_Pago"} { // UTC+14, UTC-11
		l, err := time.LoadLocation(z)
		if err != nil {
			t.Fatal(err)
		}
		if at.In(l).Format(time.DateOnly) != at.In(time.Local).Format(time.DateOnly) {
			zone, loc = z, l
			break
		}
	}
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.HTTP.ReportZone = zone
	ctx := context.Background()
	a, err := app.Open(ctx, cfg, nil, app.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, err := a.Store.Enqueue(ctx, store.Message{ID: "m", TenantID: 1, Direction: store.Inbound, BlobKey: "m", ReceivedAt: at},
		[]store.Recipient{{Addr: "a@x.test", State: store.Delivered}}, nil); err != nil {
		t.Fatal(err)
	}
	rows, err := a.Store.Report(ctx, store.ReportFilter{TenantID: 1})
	if err != nil {
		t.Fatal(err)
	}
	if want := at.In(loc).Format(time.DateOnly); len(rows) != 1 || rows[0].Period != want {
		t.Fatalf("report rows %+v, want one for %s (%s)", rows, want, zone)
	}
}
