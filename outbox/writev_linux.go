//go:build linux

package outbox

import (
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// writeVectored writes a batch to a plain socket with writev, the buffers
// taken straight from the batch (no net.Buffers in between), through the
// socket's RawConn: a full socket waits for room, under the write
// deadline, as a Write would.
func (o *Outbox) writeVectored(v *vec, b *batch) (int64, error) {
	if o.raw == nil {
		sc, ok := o.conn.(syscall.Conn)
		if !ok {
			return o.writeBuffers(v, b)
		}
		rc, err := sc.SyscallConn()
		if err != nil {
			return o.writeBuffers(v, b)
		}
		o.raw = rc
	}
	w := &v.raw
	if w.fn == nil {
		w.fn = w.writev // once per scratch: a write allocates nothing
	}
	iov := w.iov[:0]
	for i := range b.items {
		it := &b.items[i]
		iov = appendIovec(iov, b.arena[it.start:it.end])
		iov = appendIovec(iov, it.shared)
		if it.published != 0 {
			v.pubs = append(v.pubs, it.published)
		}
	}
	w.iov, w.rest, w.n, w.errno = iov, iov, 0, 0
	err := o.raw.Write(w.fn)
	clear(iov) // hold no message past its write
	w.rest = nil
	if err == nil && w.errno != 0 {
		err = os.NewSyscallError("writev", w.errno)
	}
	return w.n, err
}

// rawWrite is the state of one writev through a RawConn.
type rawWrite struct {
	iov   []unix.Iovec // the batch
	rest  []unix.Iovec // what is left of it
	n     int64        // bytes written
	errno syscall.Errno
	fn    func(fd uintptr) bool // writev, as a value made once
}

func (w *rawWrite) tooBig() bool { return cap(w.iov) > maxPooledVec }

// writev writes what is left, IOV_MAX buffers at a time; it returns false
// (wait until the socket takes more) when the socket is full. It is a
// plain system call, not a raw one: a raw writev (the runtime not told)
// spared the runtime monitor's work (4% of broker CPU at fanout 100) but
// kept the processor from the poll workers while a fan-out's writers ran,
// so the publisher was read later: cheaper per delivery, but p50 and p99
// at a fixed 50k deliveries/s grew 1.5-4x in alternating runs.
func (w *rawWrite) writev(fd uintptr) bool {
	for len(w.rest) > 0 {
		iov := w.rest[:min(len(w.rest), iovMax)]
		r, _, e := syscall.Syscall(unix.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
		switch e {
		case 0:
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		default:
			w.errno = e
			return true
		}
		w.n += int64(r)
		w.rest = advance(w.rest, int64(r))
	}
	return true
}

// iovMax is the kernel's bound on the buffers of one writev (IOV_MAX).
const iovMax = 1024

// advance drops the first n bytes of iov.
func advance(iov []unix.Iovec, n int64) []unix.Iovec {
	for n > 0 && len(iov) > 0 {
		l := int64(iov[0].Len)
		if n < l {
			iov[0].Base = (*byte)(unsafe.Add(unsafe.Pointer(iov[0].Base), n))
			iov[0].SetLen(int(l - n))
			return iov
		}
		n -= l
		iov = iov[1:]
	}
	return iov
}

// appendIovec appends p, when not empty, as one buffer of a writev.
func appendIovec(iov []unix.Iovec, p []byte) []unix.Iovec {
	if len(p) == 0 {
		return iov
	}
	v := unix.Iovec{Base: &p[0]}
	v.SetLen(len(p))
	return append(iov, v)
}
