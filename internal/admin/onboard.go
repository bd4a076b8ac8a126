package admin

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mailgate/mailgate/internal/addr"
	"github.com/mailgate/mailgate/internal/dkimsign"
	"github.com/mailgate/mailgate/internal/onboard"
	"github.com/mailgate/mailgate/internal/store"
)

// OnboardEnv are the node's own values the onboarding wizard fills in
// and the DKIM records it shows.
type OnboardEnv struct {
	Hostname string // mailgate's SMTP name
	// CertName is the name in the certificate presented when delivering;
	// "" when none is presented.
	CertName  string
	RelayPort int // the outbound listener's port; 0: none
	// DKIM returns the DKIM records of a domain, nil when it does not
	// sign (no dkim.selector).
	DKIM func(ctx context.Context, tenantID int64, domain string) ([]dkimsign.Published, error)
	// Sealer is the ARC sealing domain; ARC returns the record of the
	// sealing key, nil when mailgate does not seal.
	Sealer string
	ARC    func(ctx context.Context) (*dkimsign.Published, error)
}

// Wizard is a domain's onboarding wizard at one step.
type Wizard struct {
	Domain   string           `json:"domain"`
	Verified bool             `json:"verified"`
	Record   *Record          `json:"record,omitempty"` // the ownership record (unverified)
	State    store.Onboarding `json:"-"`
	Service  string           `json:"service"`
	Facts    onboard.Facts    `json:"facts"`
	Step     int              `json:"step"` // the step shown
	Steps    []WizardStep     `json:"steps"`
	// Instructions are the primary service's settings (step 2).
	Instructions []onboard.Instruction `json:"instructions,omitempty"`
	// Checks are the DNS checks of the step shown.
	Checks []onboard.Check `json:"checks,omitempty"`
	// Test is the last test message (step 5).
	Test     *TestMessage `json:"test,omitempty"`
	Finished bool         `json:"finished"`
}

// WizardStep is one step in the wizard's list.
type WizardStep struct {
	N     int          `json:"n"`
	Title onboard.Text `json:"title"`
	Done  bool         `json:"done"`
}

// TestMessage is the wizard's test message as tracking sees it.
type TestMessage struct {
	ID         string            `json:"id"`
	Recipients []store.Recipient `json:"recipients"`
	Events     []store.Event     `json:"events"`
}

// Delivered reports whether every recipient got the message.
func (t *TestMessage) Delivered() bool {
	if t == nil || len(t.Recipients) == 0 {
		return false
	}
	for _, r := range t.Recipients {
		if r.State != store.Delivered {
			return false
		}
	}
	return true
}

// OnboardRefusal is a wizard action that cannot be done yet, with the
// reason in both languages of the console; it is an Invalid.
type OnboardRefusal struct{ onboard.Text }

func (e OnboardRefusal) Error() string { return e.En }

// Unwrap makes the refusal an Invalid for errors.As.
func (e OnboardRefusal) Unwrap() error { return Invalid{e.En} }

func refuse(en, ja string) error { return OnboardRefusal{onboard.Text{En: en, Ja: ja}} }

func notVerified(domain string) error {
	return refuse(domain+" is not verified yet: complete the ownership step first", domain+" はまだ所有確認が済んでいません。先に所有確認の手順を完了してください")
}

// OnboardRow is a domain whose onboarding is not finished.
type OnboardRow struct {
	Domain string       `json:"domain"`
	Next   int          `json:"next"` // the first step not done
	Title  onboard.Text `json:"title"`
}

// onboardTarget finds the tenant's domain, served or claimed, with its
// wizard state (a fresh one when never started).
func (s *Service) onboardTarget(ctx context.Context, a Actor, name string) (w Wizard, tid int64, err error) {
	if err := a.require(store.RoleAdmin); err != nil {
		return w, 0, err
	}
	n, err := normalizeDomain(name)
	if err != nil {
		return w, 0, err
	}
	w.Domain = n
	d, err := s.Store.DomainByName(ctx, n)
	switch {
	case err == nil && (a.allTenants() || d.TenantID == a.TenantID):
		tid, w.Verified = d.TenantID, true
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return w, 0, err
	default:
		if tid, err = a.tenant(); err != nil {
			return w, 0, err
		}
		c, err := s.claim(ctx, tid, n)
		if err != nil {
			return w, 0, err
		}
		w.Record = OwnershipRecord(n, c.Token)
	}
	w.State, err = s.Store.Onboarding(ctx, tid, n)
	if errors.Is(err, store.ErrNotFound) {
		w.State, err = store.Onboarding{TenantID: tid, Domain: n}, nil
	}
	if err != nil {
		return w, 0, err
	}
	w.Service, w.Finished = w.State.Service, !w.State.Finished.IsZero()
	return w, tid, nil
}

// stepDone says whether step n of w is done: ownership when the domain is
// served, the others when the administrator completed them.
func (w *Wizard) stepDone(n int) bool {
	if n == onboard.StepOwnership {
		return w.Verified
	}
	return w.State.StepDone(n)
}

// facts are mailgate's values, its addresses looked up now.
func (s *Service) facts(ctx context.Context) onboard.Facts {
	f := onboard.Facts{Hostname: s.OnboardEnv.Hostname, CertName: s.OnboardEnv.CertName, SpamHeader: "X-Mailgate-Spam", SpamValue: "yes", RelayPort: s.OnboardEnv.RelayPort,
		Sealer: s.OnboardEnv.Sealer}
	if s.OnboardEnv.ARC != nil {
		if rec, err := s.OnboardEnv.ARC(ctx); err != nil {
			s.Log.Warn("onboarding: the ARC sealing key", "err", err)
		} else if rec != nil {
			f.ARC = &onboard.ARCKey{Name: rec.Name, Value: rec.Value}
		}
	}
	if s.Resolver != nil && f.Hostname != "" {
		if ips, err := s.Resolver.LookupIPAddr(ctx, f.Hostname); err == nil {
			for _, ip := range ips {
				f.IPs = append(f.IPs, ip.IP.String())
			}
		}
	}
	return f
}

// Onboard shows the wizard of a domain at step (0: the first step not
// done), with that step's settings and checks run now through the
// configured resolver.
func (s *Service) Onboard(ctx context.Context, a Actor, domain string, step int) (Wizard, error) {
	w, tid, err := s.onboardTarget(ctx, a, domain)
	if err != nil {
		return w, err
	}
	for n := 1; n <= onboard.Steps; n++ {
		w.Steps = append(w.Steps, WizardStep{N: n, Title: onboard.StepTitle(n), Done: w.stepDone(n)})
		if step == 0 && !w.stepDone(n) {
			step = n
		}
	}
	if step < 1 || step > onboard.Steps {
		step = onboard.Steps
	}
	w.Step, w.Facts = step, s.facts(ctx)
	if s.Resolver == nil && step != onboard.StepService && step != onboard.StepTest {
		return w, Invalidf("no DNS resolver is configured on this server ([dns] resolver): the wizard's checks need one")
	}
	h := w.Facts.Hostname
	switch step {
	case onboard.StepService:
		if w.Service != "" {
			w.Instructions = onboard.Instructions(w.Service, w.Facts, w.Domain)
		}
	case onboard.StepAuth:
		w.Checks = append(w.Checks, onboard.CheckSPF(ctx, s.Resolver, w.Domain, h))
		var recs []dkimsign.Published
		if w.Verified && s.OnboardEnv.DKIM != nil {
			if recs, err = s.OnboardEnv.DKIM(ctx, tid, w.Domain); err != nil {
				return w, fmt.Errorf("dkim records of %s: %w", w.Domain, err)
			}
		}
		dk := onboard.CheckDKIM(w.Domain, recs, dkimsign.Check(ctx, s.Resolver, recs))
		w.Checks = append(w.Checks, dk, onboard.CheckDMARC(ctx, s.Resolver, w.Domain, dk.OK()))
	case onboard.StepTTL:
		w.Checks = append(w.Checks, onboard.CheckMXTTL(ctx, s.Resolver, w.Domain, h))
	case onboard.StepTest:
		if w.State.TestMessage != "" {
			m := &TestMessage{ID: w.State.TestMessage}
			if _, m.Recipients, err = s.Store.Message(ctx, tid, m.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
				return w, err
			}
			if m.Events, err = s.Store.Events(ctx, tid, m.ID); err != nil {
				return w, err
			}
			w.Test = m
		}
	case onboard.StepMX:
		w.Checks = append(w.Checks, onboard.CheckMX(ctx, s.Resolver, w.Domain, h), onboard.CheckMTASTS(ctx, s.Resolver, w.Domain, h))
	}
	return w, nil
}

// OnboardVerify is the ownership step: the claim's record is looked up and
// the domain served when it is right (VerifyDomain).
func (s *Service) OnboardVerify(ctx context.Context, a Actor, domain string) error {
	w, tid, err := s.onboardTarget(ctx, a, domain)
	if err != nil || w.Verified {
		return err
	}
	if _, err := s.VerifyDomain(ctx, a.In(tid), domain); err != nil {
		return err
	}
	return s.saveOnboarding(ctx, a, w.State)
}

// OnboardService records the primary mail service of a domain.
func (s *Service) OnboardService(ctx context.Context, a Actor, domain, service string) error {
	if !onboard.ValidService(service) {
		return Invalidf("service %q: one of %s", service, strings.Join(onboard.Services, ", "))
	}
	w, _, err := s.onboardTarget(ctx, a, domain)
	if err != nil {
		return err
	}
	w.State.Service = service
	return s.saveOnboarding(ctx, a, w.State)
}

// OnboardComplete marks a step done. The ownership step is done by
// verification, the service step needs a service chosen, and the last
// step needs the resolver to see mailgate as the only MX: it then
// finishes the wizard.
func (s *Service) OnboardComplete(ctx context.Context, a Actor, domain string, step int) error {
	w, _, err := s.onboardTarget(ctx, a, domain)
	if err != nil {
		return err
	}
	switch step {
	case onboard.StepOwnership:
		if !w.Verified {
			return refuse(fmt.Sprintf("%s is not verified yet: publish %s TXT %q, then verify", w.Domain, w.Record.Name, w.Record.Value),
				fmt.Sprintf("%s はまだ所有確認が済んでいません。%s に TXT %q を公開してから確認してください", w.Domain, w.Record.Name, w.Record.Value))
		}
	case onboard.StepService:
		if w.Service == "" {
			return refuse("choose the primary mail service first", "先にメールサービスを選んでください")
		}
	case onboard.StepAuth, onboard.StepTTL, onboard.StepTest:
		if !w.Verified {
			return notVerified(w.Domain)
		}
	case onboard.StepMX:
		if !w.Verified {
			return notVerified(w.Domain)
		}
		if s.Resolver == nil {
			return Invalidf("no DNS resolver is configured on this server ([dns] resolver)")
		}
		c := onboard.CheckMX(ctx, s.Resolver, w.Domain, s.OnboardEnv.Hostname)
		if !c.OK() {
			var en, ja []string
			for _, n := range c.Notes {
				en, ja = append(en, n.En), append(ja, n.Ja)
			}
			return refuse(strings.Join(en, " "), strings.Join(ja, ""))
		}
		w.State.Finished = s.now().Now()
	default:
		return Invalidf("step %d: the steps are 1 to %d", step, onboard.Steps)
	}
	w.State.Done |= 1 << (step - 1)
	if err := s.saveOnboarding(ctx, a, w.State); err != nil {
		return err
	}
	if !w.State.Finished.IsZero() && !w.Finished {
		return s.Audit(ctx, a, w.State.TenantID, "domain.onboarded", w.Domain, "", "")
	}
	return nil
}

// OnboardSendTest sends a test message through mailgate's delivery path
// to rcpt, an address of the domain (or a local part of it), so it reaches the primary service by
// the domain's routes; the wizard then shows its tracking.
func (s *Service) OnboardSendTest(ctx context.Context, a Actor, domain, rcpt string) (string, error) {
	w, tid, err := s.onboardTarget(ctx, a, domain)
	if err != nil {
		return "", err
	}
	if !w.Verified {
		return "", notVerified(w.Domain)
	}
	if s.Mailer == nil {
		return "", Invalidf("this node cannot send mail")
	}
	rcpt = strings.TrimSpace(rcpt)
	if rcpt != "" && !strings.Contains(rcpt, "@") {
		rcpt += "@" + w.Domain // a local part of the domain
	}
	to, err := addr.Parse(rcpt)
	if err != nil {
		return "", Invalidf("recipient %q: %v", rcpt, err)
	}
	if !strings.EqualFold(to.Domain, w.Domain) {
		return "", refuse(fmt.Sprintf("the test message goes to an address of %s, not %s", w.Domain, to.String()),
			fmt.Sprintf("テストメールの宛先は %s ではなく %s のアドレスにしてください", to.String(), w.Domain))
	}
	now := s.now().Now()
	host := s.OnboardEnv.Hostname
	body := fmt.Sprintf("From: mailgate <postmaster@%s>\r\nTo: <%s>\r\nSubject: mailgate test message for %s\r\nDate: %s\r\n"+
		"Message-ID: <onboard.%d.%s@%s>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"+
		"This message was sent by mailgate's onboarding wizard to check that mail through mailgate reaches %s.\r\n"+
		"mailgate のオンボーディング ウィザードが、mailgate 経由のメールが %s に届くことを確認するために送信したメッセージです。\r\n",
		host, to.String(), w.Domain, now.Format(time.RFC1123Z), now.UnixNano(), randomHex(4), host, w.Domain, w.Domain)
	id, err := s.Mailer.Submit(ctx, store.Message{TenantID: tid, Direction: store.Inbound, Subject: "mailgate test message for " + w.Domain},
		[]string{to.String()}, strings.NewReader(body), "onboarding test by "+a.Name)
	if err != nil {
		return "", err
	}
	w.State.TestMessage = id
	if err := s.saveOnboarding(ctx, a, w.State); err != nil {
		return id, err
	}
	return id, s.Audit(ctx, a, tid, "domain.onboard_test", w.Domain, "", to.String()+" queued as "+id)
}

// OnboardPending lists the tenant's domains whose onboarding has not
// finished: claims, and served domains whose wizard was started (adding a
// domain starts it) and not finished.
func (s *Service) OnboardPending(ctx context.Context, a Actor) ([]OnboardRow, error) {
	if err := a.require(store.RoleAdmin); err != nil {
		return nil, err
	}
	tid, err := a.tenant()
	if err != nil {
		return nil, err
	}
	states, err := s.Store.Onboardings(ctx, tid)
	if err != nil {
		return nil, err
	}
	byName := map[string]store.Onboarding{}
	for _, o := range states {
		byName[o.Domain] = o
	}
	ds, err := s.Domains(ctx, a)
	if err != nil {
		return nil, err
	}
	out := []OnboardRow{}
	for _, d := range ds {
		o, started := byName[d.Name]
		if (d.Verified && !started) || !o.Finished.IsZero() {
			continue
		}
		w := Wizard{Verified: d.Verified, State: o}
		next := onboard.StepMX
		for n := 1; n <= onboard.Steps; n++ {
			if !w.stepDone(n) {
				next = n
				break
			}
		}
		out = append(out, OnboardRow{Domain: d.Name, Next: next, Title: onboard.StepTitle(next)})
	}
	return out, nil
}

// startOnboarding starts the wizard of a domain just added.
func (s *Service) startOnboarding(ctx context.Context, a Actor, tid int64, domain string) error {
	if _, err := s.Store.Onboarding(ctx, tid, domain); !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return s.saveOnboarding(ctx, a, store.Onboarding{TenantID: tid, Domain: domain})
}

func (s *Service) saveOnboarding(ctx context.Context, a Actor, o store.Onboarding) error {
	o.Updated, o.UpdatedBy = s.now().Now(), a.Name
	return s.Store.SaveOnboarding(ctx, o)
}
