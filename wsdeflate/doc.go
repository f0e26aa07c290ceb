// Package wsdeflate is stompbus's side of permessage-deflate (RFC 7692):
// it negotiates the extension on a WebSocket upgrade, compresses a
// message's shared encoding once for every compressed subscriber, frames a
// subscriber's own head around it without compressing, and inflates what
// clients send within a size limit.
//
// The broker always negotiates no context takeover in both directions.
// server_no_context_takeover makes every outgoing message compressible on
// its own, so the compressed form of a published message does not depend
// on what a subscriber received before: it is computed once (Compress) and
// shared, by reference, by every subscriber that negotiated the extension.
// client_no_context_takeover means no connection keeps a 32 KiB inflate
// window between messages: an idle connection holds nothing, and the
// inflater is pooled. The price is the ratio lost by not referring to
// earlier messages (see docs/operations.md, WebSocket compression, for the
// figures).
//
// A message travels as a stored (uncompressed) deflate block holding the
// per-subscription head (AppendStoredHead, a few bytes of framing, no
// compressor), followed by the shared compressed tail. A deflate stream may
// mix block types, so the client inflates both as one message.
//
// The raw deflate coding is github.com/klauspost/compress/flate. gobwas/ws's
// wsflate strips the RFC's 0x00 0x00 0xff 0xff tail from compressed output
// and parses offers (wsflate.Parameters); the inflater puts the tail back
// behind a copy of the payload, so that flate reads from a bytes.Reader.
//
// Concurrency: every function is safe for concurrent use; the compressors
// and inflaters are pooled (sync.Pool) and used by one caller at a time.
package wsdeflate
