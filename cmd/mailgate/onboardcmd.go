package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mailgate/mailgate/internal/admin"
	"github.com/mailgate/mailgate/internal/app"
	"github.com/mailgate/mailgate/internal/onboard"
)

func domainOnboardCmd(g *globals) *cobra.Command {
	var tenant, service, lang, sendTest string
	var step, done int
	var verify bool
	c := &cobra.Command{Use: "onboard DOMAIN", Short: "Walk a domain through onboarding: ownership, the primary service's connectors, SPF/DKIM/DMARC, MX TTL, a test message, the MX switch",
		Long: `Shows the onboarding steps of a domain as the console's wizard does, with mailgate's values
filled in, and runs each step's checks through the configured resolver: what is published,
what to publish, and why. The flags act first, in this order: --verify (look up the ownership
record), --service, --send-test, --done; then the steps are printed (all of them, or --step N).
The last step is done only when the resolver sees mailgate as the domain's only MX.`,
		Args: cobra.ExactArgs(1),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			act := operator()
			if tenant != "" {
				op, _, err := inTenant(ctx, a, tenant)
				if err != nil {
					return err
				}
				act = op
			}
			s := a.Admin()
			dom := args[0]
			if verify {
				if err := s.OnboardVerify(ctx, act, dom); err != nil {
					return err
				}
				fmt.Fprintf(g.stdout, "%s: ownership verified\n", dom)
			}
			if service != "" {
				if err := s.OnboardService(ctx, act, dom, service); err != nil {
					return err
				}
			}
			if sendTest != "" {
				id, err := s.OnboardSendTest(ctx, act, dom, sendTest)
				if err != nil {
					return err
				}
				fmt.Fprintf(g.stdout, "test message queued as %s (mailgate track %s)\n", id, id)
			}
			if done != 0 {
				if err := s.OnboardComplete(ctx, act, dom, done); err != nil {
					return err
				}
				fmt.Fprintf(g.stdout, "step %d done\n", done)
			}
			steps := []int{step}
			if step == 0 {
				steps = []int{1, 2, 3, 4, 5, 6}
			}
			for i, n := range steps {
				w, err := s.Onboard(ctx, act, dom, n)
				if err != nil {
					return err
				}
				if i == 0 {
					printSteps(g.stdout, w, lang)
				}
				printStep(g.stdout, w, lang)
			}
			return nil
		}),
	}
	c.Flags().StringVar(&tenant, "tenant", "", "the tenant, for a domain it has added but not verified yet")
	c.Flags().StringVar(&service, "service", "", "the primary mail service: m365, google or other")
	c.Flags().IntVar(&step, "step", 0, "show only this step (1-6)")
	c.Flags().IntVar(&done, "done", 0, "mark this step done (6: when the resolver sees mailgate as the MX)")
	c.Flags().BoolVar(&verify, "verify", false, "look up the ownership record of an unverified domain and serve it when right")
	c.Flags().StringVar(&sendTest, "send-test", "", "send a test message through mailgate to this address of the domain")
	c.Flags().StringVar(&lang, "lang", "en", "language of the steps: en or ja")
	return c
}

func printSteps(w io.Writer, wz admin.Wizard, lang string) {
	fmt.Fprintf(w, "Onboarding of %s", wz.Domain)
	if wz.Finished {
		fmt.Fprint(w, ": finished")
	}
	fmt.Fprintln(w)
	for _, s := range wz.Steps {
		mark := " "
		if s.Done {
			mark = "x"
		}
		fmt.Fprintf(w, "  [%s] %d. %s\n", mark, s.N, s.Title.In(lang))
	}
}

func printStep(w io.Writer, wz admin.Wizard, lang string) {
	fmt.Fprintf(w, "\n== %d. %s\n", wz.Step, onboard.StepTitle(wz.Step).In(lang))
	switch wz.Step {
	case onboard.StepOwnership:
		if wz.Verified {
			fmt.Fprintln(w, "OK: the domain is verified and served.")
		} else {
			fmt.Fprintf(w, "Publish, then run with --verify:\n%s. IN TXT %q\n", wz.Record.Name, wz.Record.Value)
		}
	case onboard.StepService:
		if wz.Service == "" {
			fmt.Fprintf(w, "Choose the primary mail service with --service (%s).\n", strings.Join(onboard.Services, ", "))
		} else {
			fmt.Fprintf(w, "Primary service: %s\n", onboard.ServiceName(wz.Service).In(lang))
		}
		for i, in := range wz.Instructions {
			fmt.Fprintf(w, "\n%d) %s\n   %s\n", i+1, in.Title.In(lang), in.Screen.In(lang))
			for _, v := range in.Values {
				fmt.Fprintf(w, "   %s: %s\n", v.Field.In(lang), v.Value)
			}
			for _, n := range in.Notes {
				fmt.Fprintf(w, "   ! %s\n", n.In(lang))
			}
		}
	case onboard.StepTest:
		if wz.Test == nil {
			fmt.Fprintln(w, "No test message yet: send one with --send-test ADDRESS (an address of the domain).")
		} else {
			fmt.Fprintf(w, "Test message %s:\n", wz.Test.ID)
			for _, r := range wz.Test.Recipients {
				fmt.Fprintf(w, "  %s: %s %s\n", r.Addr, r.State, r.LastReply)
			}
			for _, e := range wz.Test.Events {
				fmt.Fprintf(w, "  %s %s %s %s\n", e.At.Format("2006-01-02 15:04:05"), e.Kind, e.Rcpt, e.Detail)
			}
		}
	case onboard.StepMX:
		fmt.Fprintln(w, "Publish (replacing the other MX records):")
		for _, r := range onboard.MXRecords(wz.Domain, wz.Facts.Hostname) {
			fmt.Fprintln(w, r)
		}
	}
	for _, c := range wz.Checks {
		fmt.Fprintf(w, "\n%s %s: %s\n", strings.ToUpper(c.Key), c.Name, strings.ToUpper(c.Status))
		for _, p := range c.Published {
			fmt.Fprintf(w, "  published: %s\n", p)
		}
		for _, n := range c.Notes {
			fmt.Fprintf(w, "  - %s\n", n.In(lang))
		}
		for _, s := range c.Suggested {
			fmt.Fprintf(w, "  publish: %s\n", s)
		}
	}
}
