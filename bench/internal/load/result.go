// Package load runs the benchmark scenarios (idle, fanout, pairs, queue,
// slow, crossnode) against any STOMP broker through stompc, or (all but
// queue) against Centrifugo through centc, and returns their results as
// JSON-ready values.
//
// Concurrency: a scenario function owns every connection and goroutine it
// starts and ends them before it returns; results are plain values. Every
// loop is bounded by a count and a deadline.
package load

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/stompbus/stompbus/bench/internal/latency"
)

// Target is the broker under test.
type Target struct {
	// Name labels the results (stompbus, rabbitmq, spring, gostomp, ceiling).
	Name string
	// URL is ws://host:port/path or tcp://host:port; URL2 is where
	// subscribers connect in crossnode (another node of the same cluster).
	URL, URL2 string
	// PID is the broker's process, for RSS; 0 when unknown.
	PID int
	// Login, Passcode, Host go into CONNECT.
	Login, Passcode, Host string
	// LocalIPs spread client connections over several source addresses.
	LocalIPs []net.IP
	// Protocol is what the clients speak: ProtoSTOMP (the default) or
	// ProtoCentrifugo (Centrifugo's client protocol, JSON; topic and idle
	// scenarios only).
	Protocol string
}

// Transport names the target URL's transport.
func (t Target) Transport() string {
	if strings.HasPrefix(t.URL, "tcp://") {
		return "tcp"
	}
	return "ws"
}

// Step is one fixed-rate run inside a scenario.
type Step struct {
	// OfferedPerSec is the deliveries/s the schedule asked for (publish
	// rate times subscribers per topic, summed over topics).
	OfferedPerSec float64 `json:"offered_per_s"`
	// PublishRate is messages/s per publisher.
	PublishRate float64 `json:"publish_rate"`
	Seconds     float64 `json:"seconds"`
	// AchievedPerSec is deliveries received divided by the time from the
	// first scheduled send to the last delivery (drain included).
	AchievedPerSec float64 `json:"achieved_per_s"`
	Expected       int64   `json:"expected"`
	Delivered      int64   `json:"delivered"`
	Lost           int64   `json:"lost"`
	Duplicates     int64   `json:"duplicates"`
	// Reordered counts deliveries that arrived after a later message of
	// the same publisher (STOMP brokers should keep publish order).
	Reordered int64           `json:"reordered"`
	Latency   latency.Summary `json:"latency"`
	Dead      int             `json:"dead_subscribers"`
	// BrokerCPU is the CPU time (user+system, seconds) the broker process
	// used during the step, drain included; PerCPUSec is deliveries per
	// broker CPU-second, a figure the shared machine's noise moves little.
	BrokerCPU float64 `json:"broker_cpu_s,omitempty"`
	PerCPUSec float64 `json:"deliveries_per_cpu_s,omitempty"`
	// LoadCPU is the load program's own CPU time during the step.
	LoadCPU float64 `json:"loadgen_cpu_s,omitempty"`
	Pass    bool    `json:"pass"`
	Why     string  `json:"why,omitempty"`
}

// Result is one scenario's outcome against one target.
type Result struct {
	Scenario  string    `json:"scenario"`
	Target    string    `json:"target"`
	Transport string    `json:"transport"`
	Mode      string    `json:"mode,omitempty"`
	Started   time.Time `json:"started"`
	Seconds   float64   `json:"seconds"`
	Error     string    `json:"error,omitempty"`
	// LoadAvg is the machine's 1-minute load average at the start and end
	// (the machine is shared; a high figure means a noisy measurement).
	LoadAvg [2]float64 `json:"loadavg"`

	Subscribers int `json:"subscribers,omitempty"`
	Publishers  int `json:"publishers,omitempty"`
	Topics      int `json:"topics,omitempty"`
	BodySize    int `json:"body_size,omitempty"`

	// fanout, pairs, crossnode, slow
	Steps []Step `json:"steps,omitempty"`
	// SaturationPerSec is the highest offered deliveries/s that passed.
	SaturationPerSec float64 `json:"saturation_per_s,omitempty"`
	// Half is the longer run at half the saturation rate (fixed: the one
	// run at Fraction of ReferencePerSec).
	Half *Step `json:"half,omitempty"`
	// fixed: the offered rate is Fraction of Reference's fanout
	// saturation ReferencePerSec, the same for every target of a run.
	Reference       string  `json:"reference,omitempty"`
	ReferencePerSec float64 `json:"reference_per_s,omitempty"`
	Fraction        float64 `json:"fraction,omitempty"`
	// Baseline (slow) is the same fixed-rate run without slow subscribers.
	Baseline *Step `json:"baseline,omitempty"`
	// Slow (slow) is the run with 1% subscribers that stopped reading.
	Slow           *Step `json:"slow,omitempty"`
	SlowCount      int   `json:"slow_subscribers,omitempty"`
	SlowDropped    int   `json:"slow_dropped,omitempty"`
	PeakRSSKiB     int64 `json:"peak_rss_kib,omitempty"`
	BaselineRSSKiB int64 `json:"baseline_rss_kib,omitempty"`

	// idle
	Connections    int     `json:"connections,omitempty"`
	ConnectsPerSec float64 `json:"connects_per_s,omitempty"`
	RSSBeforeKiB   int64   `json:"rss_before_kib,omitempty"`
	RSSAfterKiB    int64   `json:"rss_after_kib,omitempty"`
	RSSPerConnKiB  float64 `json:"rss_per_conn_kib,omitempty"`
	ProbeDelivered int     `json:"probe_delivered,omitempty"`

	// queue
	Producers     int     `json:"producers,omitempty"`
	Consumers     int     `json:"consumers,omitempty"`
	Messages      int64   `json:"messages,omitempty"`
	Consumed      int64   `json:"consumed,omitempty"`
	Lost          int64   `json:"lost,omitempty"`
	Duplicates    int64   `json:"duplicates,omitempty"`
	ThroughputSec float64 `json:"throughput_per_s,omitempty"`
	// PerCPUSec is messages consumed per broker CPU-second.
	PerCPUSec    float64          `json:"messages_per_cpu_s,omitempty"`
	QueueLatency *latency.Summary `json:"queue_latency,omitempty"`
}

// WriteJSONL appends r as one JSON line.
func WriteJSONL(w io.Writer, r Result) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	b = append(b, '\n')
	_, err = w.Write(b)
	return err
}

// ReadJSONL reads every result line; blank lines are skipped.
func ReadJSONL(r io.Reader) ([]Result, error) {
	var out []Result
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	line := 0
	for sc.Scan() {
		line++
		b := strings.TrimSpace(sc.Text())
		if b == "" {
			continue
		}
		var res Result
		if err := json.Unmarshal([]byte(b), &res); err != nil {
			return nil, fmt.Errorf("results line %d: %w", line, err)
		}
		out = append(out, res)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read results: %w", err)
	}
	return out, nil
}

// RSSKiB returns VmRSS of pid from /proc, or 0 when unknown.
func RSSKiB(pid int) int64 {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	return parseVmRSS(string(b))
}

func parseVmRSS(status string) int64 {
	for _, line := range strings.Split(status, "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				v, err := strconv.ParseInt(f[0], 10, 64)
				if err == nil {
					return v
				}
			}
		}
	}
	return 0
}

// SaturationFrom returns the newest fanout saturation recorded in file for
// target with subs subscribers.
func SaturationFrom(file, target string, subs int) (float64, error) {
	if file == "" {
		return 0, fmt.Errorf("no -rate and no -rate-from file")
	}
	f, err := os.Open(file)
	if err != nil {
		return 0, fmt.Errorf("open results: %w", err)
	}
	defer f.Close()
	rs, err := ReadJSONL(f)
	if err != nil {
		return 0, err
	}
	sat := 0.0
	for _, r := range rs {
		if r.Scenario == "fanout" && r.Target == target && r.Subscribers == subs && r.SaturationPerSec > 0 {
			sat = r.SaturationPerSec
		}
	}
	if sat == 0 {
		return 0, fmt.Errorf("no fanout result for %s with %d subscribers in %s", target, subs, file)
	}
	return sat, nil
}

// LoadAvg1 returns the 1-minute load average, or 0 when unknown.
func LoadAvg1() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// CPUSeconds returns the user+system CPU time pid has used, from
// /proc/<pid>/stat (clock ticks of 1/100 s), or 0 when unknown.
func CPUSeconds(pid int) float64 {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	return parseStatCPU(string(b))
}

func parseStatCPU(stat string) float64 {
	// the command name may hold spaces: fields start after its ')'
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(stat[i+1:])
	// after ')': state(0) ppid(1) ... utime(11) stime(12)
	if len(f) < 13 {
		return 0
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	return float64(u+s) / 100
}
