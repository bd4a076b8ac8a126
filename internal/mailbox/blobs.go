package mailbox

import (
	"github.com/mailgate/mailgate/internal/blob"
)

// Blobs keeps the mailboxes' message bodies: the node's blob store for
// the "mailbox" namespace (local files under data_dir/mailbox, or S3
// shared by the nodes). A body is durable (Writer.Commit) before the row
// that refers to it is inserted; its key names the writing node.
type Blobs = blob.Store
