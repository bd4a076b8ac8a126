package outbound

import (
	"github.com/mailgate/mailgate/internal/attachtext"
	"github.com/mailgate/mailgate/internal/mailtext"
)

// Attachment types a condition may name: attachtext's, recognised by
// content, not by name.
const (
	TypeZip       = attachtext.TypeZip
	TypeArchive   = attachtext.TypeArchive
	TypeEncrypted = attachtext.TypeEncrypted
	TypeOffice    = attachtext.TypeOffice
	TypeDocx      = attachtext.TypeDocx
	TypeXlsx      = attachtext.TypeXlsx
	TypePptx      = attachtext.TypePptx
	TypePDF       = attachtext.TypePDF
	TypeExe       = attachtext.TypeExe
	TypeImage     = attachtext.TypeImage
	TypeText      = attachtext.TypeText
	TypeHTML      = attachtext.TypeHTML
	TypeOther     = attachtext.TypeOther
)

// Types lists the attachment types a condition may name.
var Types = attachtext.Types

// ExtractLimits bound the work of reading attachments for the rules.
type ExtractLimits = attachtext.Limits

// Attachment is what the rules see of one attachment.
type Attachment = attachtext.Attachment

// DefaultExtractLimits fit ordinary office mail with a wide margin (a PDF's
// text is read for at most attachtext.DefaultPDFTimeout while the client
// waits for its answer).
func DefaultExtractLimits() ExtractLimits { return attachtext.DefaultLimits() }

func truncUTF8(s string, n int) string { return mailtext.TruncUTF8(s, n) }
