//go:build !linux

package outbox

// writeVectored writes a batch with net.Buffers.
func (o *Outbox) writeVectored(v *vec, b *batch) (int64, error) {
	return o.writeBuffers(v, b)
}

// rawWrite is unused here (writev_linux.go).
type rawWrite struct{}

func (w *rawWrite) tooBig() bool { return false }
