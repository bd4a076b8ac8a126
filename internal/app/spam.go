package app

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/mailgate/mailgate/internal/mailtext"
	"github.com/mailgate/mailgate/internal/scan/spam"
	"github.com/mailgate/mailgate/internal/store"
)

// spamState holds the node's spam classifier, made on first use: the
// shipped model is decoded then, so commands that never score mail do not
// pay for it.
type spamState struct {
	once sync.Once
	cl   *spam.Classifier
}

// SpamClassifier is the node's spam classifier: the shipped base model,
// the site's global model and each tenant's, kept in memory over the
// store. One per node, shared by the inbound checks, feedback and the CLI.
func (a *App) SpamClassifier() *spam.Classifier {
	a.spam.once.Do(func() { a.spam.cl = a.NewSpamClassifier(true) })
	return a.spam.cl
}

// NewSpamClassifier returns a classifier over the store's models, with the
// shipped base model or (builtin false, for evaluating a site's own
// training alone) without it. Scoring and training through two
// classifiers of one store is consistent: each notices the other's
// changes by the model versions.
func (a *App) NewSpamClassifier(builtin bool) *spam.Classifier {
	var base *spam.Model
	if builtin {
		m, err := spam.BuiltinBase()
		if err != nil {
			a.Log.Error("spam: the shipped model cannot be read; scoring without it", "err", err)
		} else {
			base = m
		}
	}
	return spam.NewClassifier(spamModels{a}, spam.DefaultParams(), spam.Options{Base: base, Log: a.Log})
}

// LearnMessage trains a tenant's spam model with one message (feedback
// from the console, the API or the CLI): a message already learned with
// the same label is not counted again, one learned with the other label
// is moved.
func (a *App) LearnMessage(ctx context.Context, tenantID int64, raw []byte, isSpam bool) error {
	msg, err := mailtext.Parse(ctx, bytes.NewReader(raw), mailtext.DefaultLimits())
	if err != nil {
		return fmt.Errorf("feedback: %w", err)
	}
	label := spam.LabelHam
	if isSpam {
		label = spam.LabelSpam
	}
	_, err = a.SpamClassifier().Learn(ctx, tenantID, []spam.Example{spam.NewExample(msg, label)})
	return err
}

// spamModels adapts the store to the classifier.
type spamModels struct{ a *App }

func (m spamModels) LoadModel(ctx context.Context, tenantID int64, fn func(string, spam.TokenCount), labels func(fp, label string)) (spam.ModelInfo, error) {
	info, err := m.a.Store.SpamLoad(ctx, tenantID, func(tok string, c store.TokenCount) { fn(tok, spam.TokenCount(c)) }, labels)
	return spam.ModelInfo{Spam: info.Totals.Spam, Ham: info.Totals.Ham, Tokens: info.Tokens, Messages: info.Messages, Version: info.Version}, err
}

func (m spamModels) ModelVersion(ctx context.Context, tenantID int64) (int64, error) {
	return m.a.Store.SpamVersion(ctx, tenantID)
}

func (m spamModels) Labels(ctx context.Context, tenantID int64, fps []string) (map[string]spam.Trained, error) {
	got, err := m.a.Store.SpamLabels(ctx, tenantID, fps)
	out := make(map[string]spam.Trained, len(got))
	for f, tr := range got {
		out[f] = spam.Trained(tr)
	}
	return out, err
}

func (m spamModels) Apply(ctx context.Context, tenantID int64, ch spam.Change) (int64, error) {
	d := make(map[string]store.TokenCount, len(ch.Deltas))
	for k, v := range ch.Deltas {
		d[k] = store.TokenCount(v)
	}
	v, err := m.a.Store.SpamApply(ctx, tenantID, store.SpamChange{Deltas: d, Total: store.TokenCount(ch.Total),
		Labels: ch.Labels, Expect: ch.Expect, Lessons: ch.Lessons, At: m.a.Clock.Now()})
	if errors.Is(err, store.ErrSpamConflict) {
		return 0, spam.ErrConflict
	}
	return v, err
}

func (m spamModels) Reset(ctx context.Context, tenantID int64) (int64, error) {
	return m.a.Store.SpamReset(ctx, tenantID)
}
