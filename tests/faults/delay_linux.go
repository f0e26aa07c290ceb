package faults

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// This kernel has no netem qdisc (many VM kernels leave it out), so delay
// is made in user space: iptables hands a node's packets to the other nodes
// to an NFQUEUE, and a delayer gives each packet its verdict (accept) only
// after its delay. Packets whose delays differ overtake each other, as
// with netem's jitter; TCP sees reordering and retransmits as on a slow
// network. Loss is iptables' statistic match, a real drop.
//
// The NFQUEUE protocol (linux/netfilter/nfnetlink_queue.h) over netlink:
// a CONFIG message binds the queue and sets the copy mode, each PACKET
// message carries the packet id, and a VERDICT message releases it.
const (
	nfnlSubsysQueue = 3
	nfqnlMsgPacket  = 0
	nfqnlMsgVerdict = 1
	nfqnlMsgConfig  = 2

	nfqaCfgCmd      = 1
	nfqaCfgParams   = 2
	nfqaCfgQueueMax = 3
	nfqaPacketHdr   = 1
	nfqaVerdictHdr  = 2

	nfqnlCfgCmdBind = 1
	nfqnlCopyMeta   = 1
	nfAccept        = 1
)

// delayer holds the packets of one namespace's NFQUEUE for their delay.
type delayer struct {
	conn  *netlink.Conn
	queue uint16
	base  time.Duration
	jit   time.Duration
	wg    sync.WaitGroup
	mu    sync.Mutex
	rng   *rand.Rand
	errs  int
	held  int // packets delayed
}

// startDelayer binds queue in namespace ns and delays each packet by
// base±jitter (uniform).
func startDelayer(ns string, queue uint16, base, jitter time.Duration) (*delayer, error) {
	f, err := os.Open(filepath.Join("/run/netns", ns))
	if err != nil {
		return nil, fmt.Errorf("open namespace %s: %w", ns, err)
	}
	defer f.Close()
	conn, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: int(f.Fd())})
	if err != nil {
		return nil, fmt.Errorf("netfilter netlink in %s: %w", ns, err)
	}
	d := &delayer{conn: conn, queue: queue, base: base, jit: jitter, rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(queue)))}
	cmd := make([]byte, 4)
	cmd[0] = nfqnlCfgCmdBind
	binary.BigEndian.PutUint16(cmd[2:], unix.AF_INET)
	params := make([]byte, 5)
	params[4] = nfqnlCopyMeta
	maxLen := binary.BigEndian.AppendUint32(nil, 1<<16)
	for _, a := range [][2]any{{uint16(nfqaCfgCmd), cmd}, {uint16(nfqaCfgParams), params}, {uint16(nfqaCfgQueueMax), maxLen}} {
		ae := netlink.NewAttributeEncoder()
		ae.Bytes(a[0].(uint16), a[1].([]byte))
		b, err := ae.Encode()
		if err != nil {
			conn.Close()
			return nil, err
		}
		if _, err := conn.Execute(d.message(nfqnlMsgConfig, netlink.Request|netlink.Acknowledge, b)); err != nil {
			conn.Close()
			return nil, fmt.Errorf("nfqueue %d config in %s: %w", queue, ns, err)
		}
	}
	d.wg.Add(1)
	go d.loop()
	return d, nil
}

// message builds a queue message: the nfgenmsg header, then attrs.
func (d *delayer) message(typ int, flags netlink.HeaderFlags, attrs []byte) netlink.Message {
	data := make([]byte, 4, 4+len(attrs))
	data[0] = unix.AF_UNSPEC
	data[1] = unix.NFNETLINK_V0
	binary.BigEndian.PutUint16(data[2:], d.queue)
	return netlink.Message{Header: netlink.Header{Type: netlink.HeaderType(nfnlSubsysQueue<<8 | typ), Flags: flags}, Data: append(data, attrs...)}
}

func (d *delayer) loop() {
	defer d.wg.Done()
	for {
		msgs, err := d.conn.Receive()
		if err != nil {
			if errors.Is(err, unix.ENOBUFS) { // the socket overflowed: those packets wait for the kernel's bypass
				continue
			}
			return // closed
		}
		for _, m := range msgs {
			if int(m.Header.Type)&0xff != nfqnlMsgPacket || len(m.Data) < 4 {
				continue
			}
			ad, err := netlink.NewAttributeDecoder(m.Data[4:])
			if err != nil {
				continue
			}
			for ad.Next() {
				if ad.Type() == nfqaPacketHdr && len(ad.Bytes()) >= 4 {
					id := binary.BigEndian.Uint32(ad.Bytes())
					time.AfterFunc(d.delay(), func() { d.accept(id) })
				}
			}
		}
	}
}

func (d *delayer) delay() time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.held++
	return d.base - d.jit + time.Duration(d.rng.Int64N(int64(2*d.jit)+1))
}

func (d *delayer) accept(id uint32) {
	v := make([]byte, 8)
	binary.BigEndian.PutUint32(v, nfAccept)
	binary.BigEndian.PutUint32(v[4:], id)
	ae := netlink.NewAttributeEncoder()
	ae.Bytes(nfqaVerdictHdr, v)
	b, err := ae.Encode()
	if err == nil {
		_, err = d.conn.Send(d.message(nfqnlMsgVerdict, netlink.Request, b))
	}
	if err != nil {
		d.mu.Lock()
		d.errs++
		d.mu.Unlock()
	}
}

// Close stops taking packets; those still held pass when the queue
// unbinds (iptables' --queue-bypass lets new ones through).
func (d *delayer) Close() error {
	err := d.conn.Close()
	d.wg.Wait()
	return err
}

// counts returns the packets delayed and the verdicts that failed.
func (d *delayer) counts() (held, errs int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.held, d.errs
}

// slowNetwork delays every packet node i sends to another node by
// base±jitter and drops the fraction loss of them. It returns the heal,
// which reports how many packets were delayed.
func (l *lab) slowNetwork(i int, base, jitter time.Duration, loss float64, report func(held int)) (func() error, error) {
	queue := uint16(100 + i)
	d, err := startDelayer(l.nodes[i].ns, queue, base, jitter)
	if err != nil {
		return nil, err
	}
	var rules [][]string
	for _, p := range l.peers(i) {
		rules = append(rules,
			[]string{"OUTPUT", "-d", p, "-m", "statistic", "--mode", "random", "--probability", strconv.FormatFloat(loss, 'f', 4, 64), "-j", "DROP"},
			[]string{"OUTPUT", "-d", p, "-j", "NFQUEUE", "--queue-num", strconv.Itoa(int(queue)), "--queue-bypass"})
	}
	remove, err := l.addRules(i, rules)
	if err != nil {
		_ = d.Close()
		return nil, err
	}
	return func() error {
		err := errors.Join(remove(), d.Close())
		held, _ := d.counts()
		report(held)
		if held == 0 {
			err = errors.Join(err, fmt.Errorf("no packet of %s reached the delay queue", l.nodes[i].ns))
		}
		return err
	}, nil
}
