package presence

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// JetStreamConfig sets up a JetStreamLog.
type JetStreamConfig struct {
	// Bucket names the key-value bucket (default stompbus_presence).
	Bucket string
	// Replicas is the bucket's replication factor (default 1).
	Replicas int
}

// JetStreamLog is a Log in a JetStream key-value bucket (memory storage,
// one value per key), shared by every node that uses the same bucket.
//
// Key layout: u.<node>.<user> holds an Update as JSON, n.<node> a
// heartbeat (Unix milliseconds); node and user names are base64url so
// that any name is a valid key.
type JetStreamLog struct {
	js  jetstream.JetStream
	cfg JetStreamConfig

	mu sync.Mutex
	kv jetstream.KeyValue // set by Open
}

var _ Log = (*JetStreamLog)(nil)

// NewJetStreamLog returns a log in js; Open creates its bucket.
func NewJetStreamLog(js jetstream.JetStream, cfg JetStreamConfig) *JetStreamLog {
	if cfg.Bucket == "" {
		cfg.Bucket = "stompbus_presence"
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	return &JetStreamLog{js: js, cfg: cfg}
}

// errNotOpen is returned by writes before Open succeeded.
var errNotOpen = errors.New("presence: log not open")

// Open implements Log: it binds the bucket, creating it if needed.
func (l *JetStreamLog) Open(ctx context.Context) error {
	kv, err := l.js.KeyValue(ctx, l.cfg.Bucket)
	if err != nil {
		kv, err = l.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: l.cfg.Bucket, Description: "stompbus presence: sessions per user and node",
			History: 1, Storage: jetstream.MemoryStorage, Replicas: l.cfg.Replicas,
		})
	}
	if err != nil {
		return fmt.Errorf("presence bucket %s: %w", l.cfg.Bucket, err)
	}
	l.mu.Lock()
	l.kv = kv
	l.mu.Unlock()
	return nil
}

func (l *JetStreamLog) bucket() (jetstream.KeyValue, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.kv == nil {
		return nil, errNotOpen
	}
	return l.kv, nil
}

var b64 = base64.RawURLEncoding

func userKey(node, user string) string {
	return "u." + b64.EncodeToString([]byte(node)) + "." + b64.EncodeToString([]byte(user))
}

func nodeKey(node string) string { return "n." + b64.EncodeToString([]byte(node)) }

func decodeName(s string) (string, error) {
	b, err := b64.DecodeString(s)
	return string(b), err
}

// Put implements Log.
func (l *JetStreamLog) Put(ctx context.Context, u Update) error {
	kv, err := l.bucket()
	if err != nil {
		return err
	}
	b, err := json.Marshal(u)
	if err != nil {
		return fmt.Errorf("presence: encode update: %w", err)
	}
	if _, err := kv.Put(ctx, userKey(u.Node, u.User), b); err != nil {
		return fmt.Errorf("presence: write %s of %s: %w", u.User, u.Node, err)
	}
	return nil
}

// Beat implements Log.
func (l *JetStreamLog) Beat(ctx context.Context, node string, at time.Time) error {
	kv, err := l.bucket()
	if err != nil {
		return err
	}
	if _, err := kv.Put(ctx, nodeKey(node), []byte(strconv.FormatInt(at.UnixMilli(), 10))); err != nil {
		return fmt.Errorf("presence: heartbeat of %s: %w", node, err)
	}
	return nil
}

// Withdraw implements Log.
func (l *JetStreamLog) Withdraw(ctx context.Context, node string) error {
	kv, err := l.bucket()
	if err != nil {
		return err
	}
	if err := kv.Delete(ctx, nodeKey(node)); err != nil {
		return fmt.Errorf("presence: withdraw %s: %w", node, err)
	}
	return nil
}

// Watch implements Log.
func (l *JetStreamLog) Watch(ctx context.Context) (Watcher, error) {
	kv, err := l.bucket()
	if err != nil {
		return nil, err
	}
	w, err := kv.WatchAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("presence: watch bucket: %w", err)
	}
	return jsWatcher{w}, nil
}

type jsWatcher struct{ w jetstream.KeyWatcher }

func (w jsWatcher) Stop() error { return w.w.Stop() }

// Next implements Watcher.
func (w jsWatcher) Next(ctx context.Context) (Entry, error) {
	select {
	case <-ctx.Done():
		return Entry{}, ErrWatchEnded
	case e, ok := <-w.w.Updates():
		if !ok {
			return Entry{}, ErrWatchEnded
		}
		if e == nil {
			return Entry{Kind: EntrySynced}, nil
		}
		return decodeEntry(e)
	}
}

// decodeEntry turns a bucket entry into an Entry.
func decodeEntry(e jetstream.KeyValueEntry) (Entry, error) {
	put := e.Operation() == jetstream.KeyValuePut
	parts := strings.Split(e.Key(), ".")
	switch {
	case len(parts) == 2 && parts[0] == "n":
		node, err := decodeName(parts[1])
		if err != nil {
			return Entry{}, fmt.Errorf("presence: key %q: %w", e.Key(), err)
		}
		if put {
			return Entry{Kind: EntryBeat, Node: node}, nil
		}
		return Entry{Kind: EntryGone, Node: node}, nil
	case len(parts) == 3 && parts[0] == "u":
		if put {
			var u Update
			if err := json.Unmarshal(e.Value(), &u); err != nil {
				return Entry{}, fmt.Errorf("presence: entry %q: %w", e.Key(), err)
			}
			return Entry{Kind: EntryUpdate, Update: u}, nil
		}
		node, err1 := decodeName(parts[1])
		user, err2 := decodeName(parts[2])
		if err := errors.Join(err1, err2); err != nil {
			return Entry{}, fmt.Errorf("presence: key %q: %w", e.Key(), err)
		}
		return Entry{Kind: EntryUpdate, Update: Update{Node: node, User: user}}, nil
	}
	return Entry{}, fmt.Errorf("presence: unexpected key %q", e.Key())
}
