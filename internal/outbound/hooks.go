package outbound

import (
	"context"
	"io"
	"time"

	"github.com/mailgate/mailgate/internal/policy"
	"github.com/mailgate/mailgate/internal/store"
)

// Transformer changes a message on its way out: the "zip" action puts its
// attachments into a password ZIP, the "link" action replaces them by a
// download link. The pipeline calls it after the rules, once per message,
// before the message is committed; package outbound only decides when.
//
// Transform reads the message from r and, when it changes it, writes the
// whole changed message to w and returns Changed. Recipients listed in
// Skip get the message without this change (an exception list); when
// every recipient is skipped Changed must be false. FollowUps are further
// messages the change needs (the password mail) queued with the message,
// each due its Delay after the message goes out; they are held and
// released with it. An error refuses the message for now (451): the
// sender's server tries again, nothing goes out unprotected.
type Transformer interface {
	Transform(ctx context.Context, in TransformInput, r io.Reader, w io.Writer) (TransformOutput, error)
}

// TransformInput describes the message to a Transformer.
type TransformInput struct {
	TenantID  int64
	MessageID string
	Sender    string   // the sender's address
	Subject   string   // the message's decoded Subject
	Rcpts     []string // envelope recipients
	// Params are the matching rule's parameters (Spec.Params).
	Params map[string]string
	// Settings are the sender's effective policy values.
	Settings policy.Settings
	Now      time.Time
}

// TransformOutput is what a Transformer did.
type TransformOutput struct {
	Changed   bool
	Skip      []string
	Detail    string // for tracking: "3 attachments into a ZIP (ZipCrypto)"
	FollowUps []FollowUp
}

// FollowUp is a message generated with a transformed one.
type FollowUp struct {
	Rcpts   []string
	Subject string
	Body    []byte // the whole message, RFC 5322
	Delay   time.Duration
}

// Archiver keeps a copy of an outbound message ("archive" action). It is
// called after the message is committed, with the message as the sender
// sent it; an error is logged and tracked, the message goes out anyway.
type Archiver interface {
	Archive(ctx context.Context, m store.Message, rcpts []string, open func() (io.ReadCloser, error)) error
}

// Hooks are the optional transformations; a nil hook makes its action
// do nothing but a tracking note.
type Hooks struct {
	Zip     Transformer
	Link    Transformer
	Archive Archiver
}
