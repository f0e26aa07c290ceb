package config

import (
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stompbus/stompbus/auth"
)

// env is a fake environment.
type env map[string]string

func (e env) get(k string) (string, bool) { v, ok := e[k]; return v, ok }

func (e env) list() []string {
	var out []string
	for k, v := range e {
		out = append(out, k+"="+v)
	}
	return out
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "stompbus.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func load(t *testing.T, args []string, e env) (*Result, error) {
	t.Helper()
	return Load(args, e.get, e.list(), io.Discard)
}

func TestDefaults(t *testing.T) {
	res, err := load(t, nil, env{})
	if err != nil {
		t.Fatal(err)
	}
	c := res.Config
	if c.HTTP != ":8080" || c.Stomp != ":61613" || c.Data != "./data" || c.LogLevel != "info" || c.LogFormat != "text" {
		t.Fatalf("defaults: %+v", c)
	}
	if host, _ := os.Hostname(); host != "" && c.Node != host {
		t.Fatalf("node default %q, want host name %q", c.Node, host)
	}
	if c.MaxFrameSize != 1<<20 || c.OutboxMaxBytes != 4<<20 || c.HeartBeat != 10*time.Second {
		t.Fatalf("limit defaults: %+v", c)
	}
}

// TestPrecedence sets one key in each source combination: flags beat the
// environment, which beats the file, which beats the defaults.
func TestPrecedence(t *testing.T) {
	file := writeFile(t, `
http: 127.0.0.1:1001
stomp: 127.0.0.1:2001
node: from-file
max-frame-size: 64KiB
heart-beat: 3s
allowed-origins: [https://a.example, https://b.example]
`)
	e := env{
		"STOMPBUS_CONFIG":         file,
		"STOMPBUS_STOMP":          "127.0.0.1:2002",
		"STOMPBUS_NODE":           "from-env",
		"STOMPBUS_MAX_FRAME_SIZE": "128KiB",
	}
	res, err := load(t, []string{"-node", "from-flag", "-log-level", "debug", "-limit-loopback"}, e)
	if err != nil {
		t.Fatal(err)
	}
	c := res.Config
	checks := []struct {
		key       string
		got, want any
	}{
		{"http (file only)", c.HTTP, "127.0.0.1:1001"},
		{"stomp (file, env)", c.Stomp, "127.0.0.1:2002"},
		{"node (file, env, flag)", c.Node, "from-flag"},
		{"max-frame-size (file, env)", c.MaxFrameSize, 128 << 10},
		{"heart-beat (file)", c.HeartBeat, 3 * time.Second},
		{"log-level (flag)", c.LogLevel, "debug"},
		{"log-format (default)", c.LogFormat, "text"},
		{"limit-loopback (bare bool flag)", c.LimitLoopback, true},
		{"allowed-origins (file list)", c.AllowedOrigins, []string{"https://a.example", "https://b.example"}},
	}
	for _, ch := range checks {
		if !reflect.DeepEqual(ch.got, ch.want) {
			t.Errorf("%s = %v, want %v", ch.key, ch.got, ch.want)
		}
	}
	if res.File != file {
		t.Errorf("File = %q", res.File)
	}
	// -config beats STOMPBUS_CONFIG.
	other := writeFile(t, "node: other-file\n")
	res, err = load(t, []string{"-config", other}, env{"STOMPBUS_CONFIG": file})
	if err != nil {
		t.Fatal(err)
	}
	if res.Config.Node != "other-file" || res.Config.HTTP != ":8080" {
		t.Errorf("-config over STOMPBUS_CONFIG: node %q http %q", res.Config.Node, res.Config.HTTP)
	}
}

func TestListsFromEnvAndFlags(t *testing.T) {
	res, err := load(t, []string{"-cluster-routes", "nats-route://b:6222, nats-route://c:6222"},
		env{"STOMPBUS_ALLOWED_ORIGINS": "*", "STOMPBUS_CLUSTER_LISTEN": "0.0.0.0:6222"})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(res.Config.ClusterRoutes, []string{"nats-route://b:6222", "nats-route://c:6222"}) {
		t.Errorf("cluster-routes %q", res.Config.ClusterRoutes)
	}
	if !reflect.DeepEqual(res.Config.AllowedOrigins, []string{"*"}) {
		t.Errorf("allowed-origins %q", res.Config.AllowedOrigins)
	}
}

// TestRefused: every refusal names the key (and where it came from).
func TestRefused(t *testing.T) {
	cases := []struct {
		name string
		file string
		env  env
		args []string
		want []string
	}{
		{name: "unknown file key", file: "http: :1\nmax-frame-sise: 1MiB\n", want: []string{"line 2", `unknown key "max-frame-sise"`}},
		{name: "unknown key, near miss", file: "log_level: debug\n", want: []string{`unknown key "log_level"`, `did you mean "log-level"`}},
		{name: "bad size in file", file: "max-frame-size: lots\n", want: []string{`key "max-frame-size"`, `"lots" is not a size`}},
		{name: "bad duration in file", file: "\nheart-beat: 10\n", want: []string{"line 2", `key "heart-beat"`, "not a duration"}},
		{name: "too small in file", file: "max-subscriptions: 0\n", want: []string{`key "max-subscriptions"`, "minimum 1"}},
		{name: "bad choice in file", file: "log-format: xml\n", want: []string{`key "log-format"`, `"xml" is not one of text, json`}},
		{name: "map for scalar", file: "http:\n  a: b\n", want: []string{`key "http"`, "want a single value"}},
		{name: "duplicate key", file: "node: a\nnode: b\n", want: []string{`"node"`}},
		{name: "not a mapping", file: "- a\n- b\n", want: []string{"want a mapping"}},
		{name: "bad yaml", file: "http: [\n", want: []string{"config file"}},
		{name: "unknown permission field", file: "permissions:\n  roles:\n    admin:\n      publish: [/topic/#]\n", want: []string{`key "permissions"`, "publish"}},
		{name: "bad permission pattern", file: "permissions:\n  roles:\n    admin:\n      send: [/foo/#]\n", want: []string{`key "permissions"`, "/foo/#"}},
		{name: "unknown jwt field", file: "jwt:\n  secrit: x\n", want: []string{`key "jwt"`, "secrit"}},
		{name: "bad env", env: env{"STOMPBUS_HEART_BEAT_GRACE": "lots"}, want: []string{"STOMPBUS_HEART_BEAT_GRACE", "not a number"}},
		{name: "bad flag", args: []string{"-max-headers", "-3"}, want: []string{"-max-headers", "minimum 1"}},
		{name: "unknown flag", args: []string{"-max-headerz", "3"}, want: []string{"max-headerz"}},
		{name: "tls half", args: []string{"-tls-cert", "c.pem"}, want: []string{"tls-cert and tls-key"}},
		{name: "nats and embedded", args: []string{"-nats", "nats://x:4222", "-cluster-listen", ":6222"}, want: []string{"nats and cluster-listen"}},
		{name: "bad bool", env: env{"STOMPBUS_LIMIT_LOOPBACK": "maybe"}, want: []string{"STOMPBUS_LIMIT_LOOPBACK", "not a boolean"}},
		{name: "bad exempt", args: []string{"-limit-exempt", "10.0.0.0/33"}, want: []string{"limit-exempt"}},
		{name: "routes without listen", args: []string{"-cluster-routes", "nats-route://b:6222"}, want: []string{"cluster-routes needs cluster-listen"}},
		{name: "missing file", args: []string{"-config", "/nonexistent/stompbus.yaml"}, want: []string{"config file", "nonexistent"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := tc.env
			if e == nil {
				e = env{}
			}
			if tc.file != "" {
				e["STOMPBUS_CONFIG"] = writeFile(t, tc.file)
			}
			_, err := load(t, tc.args, e)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestPermissionsSection(t *testing.T) {
	file := writeFile(t, `
permissions:
  roles:
    admin:
      send: ["/topic/#", "/queue/#"]
      subscribe: ["/topic/#"]
    "*":
      subscribe: [/topic/public/#]
jwt:
  secret_file: /run/secrets/jwt
  issuer: stompbus
`)
	res, err := load(t, []string{"-config", file}, env{})
	if err != nil {
		t.Fatal(err)
	}
	want := auth.PermissionsConfig{Roles: map[string]auth.Rules{
		"admin": {Send: []string{"/topic/#", "/queue/#"}, Subscribe: []string{"/topic/#"}},
		"*":     {Subscribe: []string{"/topic/public/#"}},
	}}
	if !reflect.DeepEqual(res.Config.Permissions, want) {
		t.Fatalf("permissions %+v", res.Config.Permissions)
	}
	if res.Config.JWT.SecretFile != "/run/secrets/jwt" || res.Config.JWT.Issuer != "stompbus" || !res.Config.JWTEnabled() {
		t.Fatalf("jwt %+v", res.Config.JWT)
	}
}

// TestPrintConfig: the printed configuration masks secrets (also passwords
// in URLs) and loads back to the same configuration.
func TestPrintConfig(t *testing.T) {
	file := writeFile(t, "jwt-secret: hunter2-file\nmax-frame-size: 65536\npermissions:\n  roles:\n    admin:\n      send: [/topic/#]\n")
	res, err := load(t, []string{"-nats", "nats://bob:s3cret@n1:4222,nats://n2:4222", "-jwt-secret", "hunter2-flag"},
		env{"STOMPBUS_CONFIG": file})
	if err != nil {
		t.Fatal(err)
	}
	out := string(res.Config.YAML())
	for _, secret := range []string{"hunter2", "s3cret"} {
		if strings.Contains(out, secret) {
			t.Errorf("printed config shows secret %q:\n%s", secret, out)
		}
	}
	for _, want := range []string{"jwt-secret: '********'", "nats://bob:xxxxx@n1:4222", "max-frame-size: 64KiB", "admin:", "  secret: '********'"} {
		if !strings.Contains(out, want) {
			t.Errorf("printed config lacks %q:\n%s", want, out)
		}
	}
	// Round trip (the masked secret aside).
	back, err := load(t, []string{"-config", writeFile(t, out)}, env{})
	if err != nil {
		t.Fatalf("printed config does not load: %v\n%s", err, out)
	}
	if again := string(back.Config.YAML()); again != out {
		t.Errorf("round trip differs:\n%s\n---\n%s", out, again)
	}
}

func TestUnknownEnvWarned(t *testing.T) {
	res, err := load(t, nil, env{"STOMPBUS_HTTP_ADR": ":1", "STOMPBUS_TEST_LOG": "1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "STOMPBUS_HTTP_ADR") {
		t.Fatalf("warnings %q", res.Warnings)
	}
}

func TestSize(t *testing.T) {
	for in, want := range map[string]int{"65536": 65536, "64KiB": 64 << 10, "1 MiB": 1 << 20, "2MB": 2e6, "1GiB": 1 << 30, "10b": 10} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "1XB", "-1", "1.5MiB", "99999999999999999999GiB"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) accepted", in)
		}
	}
}

// TestDocumentedExample loads the example file of docs/operations.md, so
// the documentation cannot drift from the keys.
func TestDocumentedExample(t *testing.T) {
	doc, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "```yaml\n")
	if !ok {
		t.Fatal("no yaml block in docs/operations.md")
	}
	example, _, _ := strings.Cut(rest, "```")
	res, err := load(t, []string{"-config", writeFile(t, example)}, env{})
	if err != nil {
		t.Fatalf("the documented example is refused: %v", err)
	}
	c := res.Config
	if c.Node != "broker1" || c.MaxFrameSize != 256<<10 || len(c.ClusterRoutes) != 2 || c.JWT.Issuer == "" || len(c.Permissions.Roles) != 2 {
		t.Errorf("example read as %+v", c)
	}
}

// TestEveryKeyDocumented: the settings table of docs/operations.md names
// every key.
func TestEveryKeyDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range settings {
		if !strings.Contains(string(doc), "| `"+s.key+"` |") {
			t.Errorf("docs/operations.md has no row for %s", s.key)
		}
	}
}

// TestDebugListen: debug-listen is off by default, set by file, environment
// or flag (in that precedence), printed by -print-config, and refused when
// it is not host:port or is the http listener itself.
func TestDebugListen(t *testing.T) {
	res, err := load(t, nil, env{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Config.DebugListen != "" {
		t.Fatalf("default %q, want off", res.Config.DebugListen)
	}
	file := writeFile(t, "debug-listen: 127.0.0.1:6060\n")
	for _, tc := range []struct {
		args []string
		env  env
		want string
	}{
		{nil, env{"STOMPBUS_CONFIG": file}, "127.0.0.1:6060"},
		{nil, env{"STOMPBUS_CONFIG": file, "STOMPBUS_DEBUG_LISTEN": "127.0.0.1:6061"}, "127.0.0.1:6061"},
		{[]string{"-debug-listen", "localhost:6062"}, env{"STOMPBUS_CONFIG": file, "STOMPBUS_DEBUG_LISTEN": "127.0.0.1:6061"}, "localhost:6062"},
	} {
		res, err := load(t, tc.args, tc.env)
		if err != nil {
			t.Fatalf("%v %v: %v", tc.args, tc.env, err)
		}
		if res.Config.DebugListen != tc.want {
			t.Errorf("%v %v: %q, want %q", tc.args, tc.env, res.Config.DebugListen, tc.want)
		}
		if len(res.Warnings) != 0 {
			t.Errorf("warnings %v", res.Warnings)
		}
		if out := string(res.Config.YAML()); !strings.Contains(out, "debug-listen: "+tc.want) {
			t.Errorf("printed config lacks debug-listen %s:\n%s", tc.want, out)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-debug-listen", "6060"}, "want host:port"},
		{[]string{"-http", "127.0.0.1:8080", "-debug-listen", "127.0.0.1:8080"}, "never served on the http listener"},
	} {
		if _, err := load(t, tc.args, env{}); err == nil || !strings.Contains(err.Error(), "debug-listen") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want a refusal naming debug-listen and %q", tc.args, err, tc.want)
		}
	}
	// Both on port 0 pick different ports: allowed.
	if _, err := load(t, []string{"-http", "127.0.0.1:0", "-debug-listen", "127.0.0.1:0"}, env{}); err != nil {
		t.Errorf("port 0 twice refused: %v", err)
	}
}
