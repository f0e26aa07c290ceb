package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/stompbus/stompbus/auth"
	"github.com/stompbus/stompbus/server"
)

// Result is what Load found: the configuration and the one-shot commands.
type Result struct {
	Config Config
	// File is the configuration file read, if any.
	File string
	// Version and PrintConfig are the -version and -print-config flags.
	Version, PrintConfig bool
	// Warnings are things worth logging that did not stop the start
	// (unknown STOMPBUS_ variables).
	Warnings []string
}

// ErrHelp is returned when -h or -help was asked for; the usage has been
// written.
var ErrHelp = flag.ErrHelp

// Load builds the configuration: defaults, then the file named by -config
// or STOMPBUS_CONFIG, then STOMPBUS_ variables (looked up with getenv),
// then the flags in args. Usage and flag errors are written to usage.
func Load(args []string, getenv func(string) (string, bool), environ []string, usage io.Writer) (*Result, error) {
	res := &Result{Config: Default()}
	fs := flag.NewFlagSet("broker", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are returned; -help prints below
	var given []*flagValue
	for i := range settings {
		s := &settings[i]
		if s.fileOnly {
			continue
		}
		fv := &flagValue{s: s, def: showText(s, &res.Config), given: &given}
		help := s.usage + " (env " + envName(s.key) + ")"
		fs.Var(fv, s.key, help)
	}
	configFlag := fs.String("config", "", "configuration file (YAML); flags and env override it (env STOMPBUS_CONFIG)")
	fs.BoolVar(&res.Version, "version", false, "print the version and exit")
	fs.BoolVar(&res.PrintConfig, "print-config", false, "print the effective configuration (secrets masked) and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(usage, "Usage: broker [-config FILE] [-key value ...]\n\nEvery setting is also an environment variable STOMPBUS_<KEY> and a key of the YAML file.")
			fs.SetOutput(usage)
			fs.PrintDefaults()
		}
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (settings are flags: -key value)", fs.Arg(0))
	}

	res.File = *configFlag
	if res.File == "" {
		res.File, _ = getenv("STOMPBUS_CONFIG")
	}
	if res.File != "" {
		data, err := os.ReadFile(res.File)
		if err != nil {
			return nil, fmt.Errorf("config file: %w", err)
		}
		if err := parseFile(&res.Config, res.File, data); err != nil {
			return nil, err
		}
	}
	for i := range settings {
		s := &settings[i]
		if s.fileOnly {
			continue
		}
		if v, ok := getenv(envName(s.key)); ok {
			if err := s.set(&res.Config, v); err != nil {
				return nil, fmt.Errorf("environment %s: %w", envName(s.key), err)
			}
		}
	}
	for _, fv := range given {
		if err := fv.s.set(&res.Config, fv.val); err != nil {
			return nil, fmt.Errorf("flag -%s: %w", fv.s.key, err)
		}
	}
	if err := res.Config.Validate(); err != nil {
		return nil, err
	}
	res.Warnings = append(unknownEnv(environ), res.Config.warnings()...)
	return res, nil
}

// unknownEnv lists STOMPBUS_ variables that name no setting (typos).
func unknownEnv(environ []string) []string {
	var out []string
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(k, "STOMPBUS_") || k == "STOMPBUS_CONFIG" || strings.HasPrefix(k, "STOMPBUS_TEST") {
			continue
		}
		known := false
		for i := range settings {
			if !settings[i].fileOnly && envName(settings[i].key) == k {
				known = true
				break
			}
		}
		if !known {
			out = append(out, "unknown environment variable "+k+" ignored")
		}
	}
	return out
}

// flagValue records a flag's text; it is applied after the file and the
// environment, whatever the order of discovery.
type flagValue struct {
	s     *setting
	def   string
	val   string
	set   bool
	given *[]*flagValue
}

func (f *flagValue) String() string {
	if f == nil {
		return ""
	}
	if f.set {
		return f.val
	}
	return f.def
}

// IsBoolFlag lets boolean settings be given as a bare -flag.
func (f *flagValue) IsBoolFlag() bool { return f.s.isBool }

func (f *flagValue) Set(v string) error {
	// Check now so that a bad flag is reported with the usage.
	var scratch Config
	if err := f.s.set(&scratch, v); err != nil {
		return err
	}
	if !f.set {
		*f.given = append(*f.given, f)
	}
	f.val, f.set = v, true
	return nil
}

// parseFile applies a YAML document; name is for messages.
func parseFile(c *Config, name string, data []byte) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("config file %s: %w", name, err)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil // empty file
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil
	}
	if root.Kind != yaml.MappingNode {
		return fmt.Errorf("config file %s: line %d: want a mapping of keys to values", name, root.Line)
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		s := lookup(k.Value)
		if s == nil {
			return fmt.Errorf("config file %s: line %d: unknown key %q%s", name, k.Line, k.Value, suggest(k.Value))
		}
		if line, dup := seen[k.Value]; dup {
			return fmt.Errorf("config file %s: line %d: key %q given twice (first on line %d)", name, k.Line, k.Value, line)
		}
		seen[k.Value] = k.Line
		var err error
		switch {
		case s.setNode != nil:
			err = s.setNode(c, v)
		case v.Kind != yaml.ScalarNode:
			err = errors.New("want a single value")
		case v.Tag == "!!null":
			err = s.set(c, "")
		default:
			err = s.set(c, v.Value)
		}
		if err != nil {
			return fmt.Errorf("config file %s: line %d: key %q: %w", name, v.Line, k.Value, err)
		}
	}
	return nil
}

// suggest names a known key close to an unknown one.
func suggest(key string) string {
	norm := func(s string) string {
		return strings.NewReplacer("-", "", "_", "", ".", "").Replace(strings.ToLower(s))
	}
	for i := range settings {
		if norm(settings[i].key) == norm(key) {
			return fmt.Sprintf(" (did you mean %q?)", settings[i].key)
		}
	}
	return ""
}

// strict decodes a section into out, refusing unknown fields.
func strict(n *yaml.Node, out any) error {
	// Re-encode the section so that a strict decoder checks its fields.
	raw, err := yaml.Marshal(n)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("section starting on line %d: %w", n.Line, err)
	}
	return nil
}

// decodePermissions reads the permissions section and checks its patterns.
func decodePermissions(c *Config, n *yaml.Node) error {
	var p auth.PermissionsConfig
	if n.Tag != "!!null" {
		if n.Kind != yaml.MappingNode {
			return errors.New("want a mapping: roles: {ROLE: {subscribe: [...], send: [...]}}")
		}
		if err := strict(n, &p); err != nil {
			return err
		}
	}
	if _, err := auth.NewPermissions(p); err != nil {
		return err
	}
	c.Permissions = p
	return nil
}

// decodeJWT reads the jwt section; a jwt-secret given elsewhere in the same
// file is kept unless the section sets one.
func decodeJWT(c *Config, n *yaml.Node) error {
	if n.Tag == "!!null" {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return errors.New("want a mapping of secret, secret_file, public_key_file, jwks_file, jwks_url, issuer, audience and the other jwt keys")
	}
	j := auth.JWTConfig{Secret: c.JWT.Secret}
	if err := strict(n, &j); err != nil {
		return err
	}
	c.JWT = j
	return nil
}

// warnings lists settings that are valid but work against each other.
func (c *Config) warnings() []string {
	var out []string
	// A MESSAGE is as large as the SEND it carries (plus a few headers).
	// The outbox takes a frame over its limit only when nothing else is
	// queued, so with room for fewer than two the largest messages close
	// any subscriber that is a little behind as a slow consumer.
	if c.OutboxMaxBytes < 2*c.MaxFrameSize {
		out = append(out, fmt.Sprintf("outbox-max-bytes (%s) holds fewer than two frames of max-frame-size (%s): "+
			"a subscriber with anything queued is closed as a slow consumer when a message near the frame limit arrives; "+
			"set outbox-max-bytes to at least %s", FormatSize(c.OutboxMaxBytes), FormatSize(c.MaxFrameSize), FormatSize(2*c.MaxFrameSize)))
	}
	return out
}

// Validate checks what involves more than one key.
func (c *Config) Validate() error {
	if c.HTTP == "" {
		return errors.New("http: the HTTP listener address is required")
	}
	if c.Stomp == "" {
		return errors.New("stomp: give an address or off")
	}
	if c.Node == "" {
		return errors.New("node: the node name must not be empty")
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("tls-cert and tls-key: give both or neither")
	}
	if c.MaxHeaderLength > c.MaxFrameSize {
		return fmt.Errorf("max-header-length (%s) exceeds max-frame-size (%s)", FormatSize(c.MaxHeaderLength), FormatSize(c.MaxFrameSize))
	}
	if c.DrainReadyDelay >= c.DrainTimeout {
		return fmt.Errorf("drain-ready-delay (%s) must be shorter than drain-timeout (%s)", c.DrainReadyDelay, c.DrainTimeout)
	}
	if c.DebugListen != "" {
		_, port, err := net.SplitHostPort(c.DebugListen)
		if err != nil {
			return fmt.Errorf("debug-listen %q: want host:port (like 127.0.0.1:6060): %w", c.DebugListen, err)
		}
		if c.DebugListen == c.HTTP && port != "0" {
			return fmt.Errorf("debug-listen %q: profiles are never served on the http listener; give another port", c.DebugListen)
		}
	}
	if err := (server.Limits{Exempt: c.LimitExempt}).Validate(); err != nil {
		return fmt.Errorf("limit-exempt: %w", err)
	}
	if err := c.Proxy().Validate(); err != nil {
		return fmt.Errorf("trusted-proxies: %w", err)
	}
	if c.ClusterRoutes != nil && c.ClusterListen == "" {
		return errors.New("cluster-routes needs cluster-listen: every node of an embedded cluster listens for routes")
	}
	if c.NATS != nil && (c.ClusterListen != "" || c.ClusterRoutes != nil) {
		return errors.New("nats and cluster-listen/cluster-routes: an external NATS cluster replaces the embedded one; give one or the other")
	}
	return nil
}

// showText is a setting's value as flag text (for -help defaults).
func showText(s *setting, c *Config) string {
	switch v := s.show(c).(type) {
	case []string:
		return strings.Join(v, ",")
	default:
		return fmt.Sprint(v)
	}
}

// YAML returns the configuration as a file Load accepts, secrets masked.
func (c *Config) YAML() []byte {
	root := &yaml.Node{Kind: yaml.MappingNode}
	for i := range settings {
		s := &settings[i]
		v := s.show(c)
		if s.secret && v != "" {
			v = masked
		}
		var vn yaml.Node
		if err := vn.Encode(v); err != nil {
			vn = yaml.Node{Kind: yaml.ScalarNode, Value: fmt.Sprint(v)}
		}
		if l, ok := v.([]string); ok {
			vn.Style = yaml.FlowStyle
			if len(l) == 0 {
				vn = yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle, Tag: "!!seq"}
			}
		}
		kn := yaml.Node{Kind: yaml.ScalarNode, Value: s.key}
		kn.HeadComment = s.usage
		root.Content = append(root.Content, &kn, &vn)
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	_ = enc.Encode(root)
	_ = enc.Close()
	return buf.Bytes()
}
