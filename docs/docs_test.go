// Package docs_test runs the shell commands of README.md and docs/*.md.
//
// Every ```sh block of those pages is preceded by a marker the page's
// reader does not see (an HTML comment):
//
//	<!-- doc-test: skip: WHY -->        not run, and WHY says what runs it instead
//	<!-- doc-test: run -->              run
//	<!-- doc-test: run: SETUP -->       run after SETUP, a shell line of the test's own
//	<!-- doc-test: run; curl: 202 403 --> and its curl calls answer these statuses
//
// The run blocks of one page form one bash script (set -euo pipefail) in a
// temporary directory, in page order, so that a file or variable made by
// one block serves the next. On its PATH is the broker built from
// ./cmd/broker; STOMPBUS_HTTP, STOMPBUS_STOMP and STOMPBUS_DATA give every
// broker a block starts free loopback ports; localhost:8080 and
// https://broker.example.com in a block stand for that HTTP address, and
// /etc/stompbus/ for the temporary directory. Each ```yaml block of the
// page is there as page-N.yaml. SETUP may call start_broker FLAGS (start
// a broker in the background and wait for /readyz), make_user LOGIN
// PASSWORD ROLES (a users-file line), make_token USER ROLE (an HS256
// token signed with ./jwt.secret) and hold_port (BUSY_PORT: a port that is
// taken). Every curl of a block must answer 2xx,
// or the statuses the marker lists, in order. Every broker started is
// stopped with SIGTERM at the end and must exit 0.
package docs_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

type block struct {
	page, lang, marker, body string
	line                     int
}

var markerRE = regexp.MustCompile(`^<!-- doc-test: (.*) -->$`)

// blocks returns the fenced blocks of a page with the marker line just
// above each (or "").
func blocks(t *testing.T, page string) []block {
	t.Helper()
	b, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	var out []block
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if !strings.HasPrefix(l, "```") || len(l) == 3 {
			continue
		}
		bl := block{page: page, lang: strings.TrimSpace(l[3:]), line: i + 1}
		if i > 0 {
			if m := markerRE.FindStringSubmatch(lines[i-1]); m != nil {
				bl.marker = m[1]
			}
		}
		var body []string
		for i++; i < len(lines) && !strings.HasPrefix(lines[i], "```"); i++ {
			body = append(body, lines[i])
		}
		bl.body = strings.Join(body, "\n")
		out = append(out, bl)
	}
	return out
}

func pages(t *testing.T) []string {
	t.Helper()
	p, err := filepath.Glob("*.md")
	if err != nil {
		t.Fatal(err)
	}
	return append([]string{"../README.md"}, p...)
}

// TestEveryShellBlockIsMarked: a new command in the docs is either run by
// TestShellBlocks or says why not.
func TestEveryShellBlockIsMarked(t *testing.T) {
	for _, p := range pages(t) {
		for _, b := range blocks(t, p) {
			if b.lang != "sh" && b.lang != "bash" && b.lang != "shell" && b.lang != "console" {
				continue
			}
			switch {
			case b.marker == "run" || strings.HasPrefix(b.marker, "run:") || strings.HasPrefix(b.marker, "run;"):
			case strings.HasPrefix(b.marker, "skip: ") && len(b.marker) > len("skip: ")+10:
			default:
				t.Errorf("%s:%d: a %s block without a doc-test marker (run, or skip: WHY) above it", p, b.line, b.lang)
			}
		}
	}
}

// preamble defines the helpers a marker's SETUP may call.
const preamble = `set -euo pipefail
brokers=()
stop_brokers() {
	local st=0
	for p in "${brokers[@]}"; do
		kill -TERM "$p" 2>/dev/null || true
		wait "$p" || { echo "doc-test: broker $p exited $?" >&2; st=1; }
	done
	brokers=()
	return $st
}
held=()
trap 'stop_brokers; kill "${held[@]}" 2>/dev/null || true' EXIT
# hold_port sets BUSY_PORT to a loopback port that a process of the test
# keeps listening on until the script ends. It is below the kernel's
# ephemeral range, as are the ports next to it that blocks use: other
# tests running at the same time take ephemeral ports for their outgoing
# connections, and one of them took a demo node's port (bind: address
# already in use).
hold_port() {
	exec {fd}< <(exec python3 -c 'import random, socket, sys, time
for _ in range(1000):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", random.randrange(20000, 30000)))
        break
    except OSError:
        s.close()
s.listen()
print(s.getsockname()[1], flush=True); time.sleep(300)' 2>/dev/null)
	held+=($!)
	read -r BUSY_PORT <&$fd
}
start_broker() {
	broker "$@" >>broker.log 2>&1 &
	brokers+=($!)
	for _ in $(seq 1 300); do
		if command curl -fsS "http://$STOMPBUS_HTTP/readyz" >/dev/null 2>&1; then return 0; fi
		kill -0 "$!" 2>/dev/null || { echo "doc-test: broker $* exited:" >&2; tail -20 broker.log >&2; return 1; }
		sleep 0.1
	done
	echo "doc-test: broker $* not ready in 30s" >&2; return 1
}
make_user() { printf '%s:%s:%s\n' "$1" "$(htpasswd -nbBC 4 "$1" "$2" | sed -n 's/^[^:]*:\(.\+\)$/\1/p')" "$3" >>users; }
make_token() {
	local b64='openssl base64 -A | tr "+/" "-_" | tr -d "="'
	local h p
	h=$(printf '{"alg":"HS256","typ":"JWT"}' | eval "$b64")
	p=$(printf '{"sub":"%s","roles":["%s"],"exp":%d}' "$1" "$2" $(( $(date +%s) + 3600 )) | eval "$b64")
	printf '%s.%s.%s' "$h" "$p" "$(printf '%s.%s' "$h" "$p" | openssl dgst -sha256 -hmac "$(cat jwt.secret)" -binary | eval "$b64")"
}
expect=()
curl() {
	local code want=2xx
	if ((${#expect[@]})); then want=${expect[0]}; expect=("${expect[@]:1}"); fi
	code=$(command curl -sS -o curl.out -w '%{http_code}' "$@") || { echo "doc-test: curl $* failed" >&2; return 1; }
	cat curl.out; echo
	case "$want" in
	2xx) [[ $code == 2?? ]] ;;
	*) [[ $code == "$want" ]] ;;
	esac || { echo "doc-test: curl $*: status $code, want $want" >&2; return 1; }
}
`

// TestShellBlocks runs the marked blocks of every page.
func TestShellBlocks(t *testing.T) {
	if testing.Short() {
		t.Skip("runs brokers and shell commands; not in -short")
	}
	for _, tool := range []string{"bash", "curl", "openssl", "htpasswd", "python3"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing (make deps installs it)", tool)
		}
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "broker"), "./cmd/broker")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, p := range pages(t) {
		var script strings.Builder
		var yamls []string
		n := 0
		for _, b := range blocks(t, p) {
			if b.lang == "yaml" {
				yamls = append(yamls, b.body)
				continue
			}
			m := b.marker
			if m != "run" && !strings.HasPrefix(m, "run:") && !strings.HasPrefix(m, "run;") {
				continue
			}
			n++
			m = strings.TrimPrefix(m, "run")
			setup, curls := "", ""
			if rest, ok := strings.CutPrefix(m, ";"); ok {
				m = ""
				if c, ok := strings.CutPrefix(strings.TrimSpace(rest), "curl:"); ok {
					curls = strings.TrimSpace(c)
				}
			}
			if s, ok := strings.CutPrefix(m, ":"); ok {
				setup, curls, _ = strings.Cut(s, "; curl:")
			}
			fmt.Fprintf(&script, "echo '== %s:%d'\n", filepath.Base(p), b.line)
			fmt.Fprintf(&script, "expect=(%s)\n%s\n%s\n", curls, setup, b.body)
			fmt.Fprintf(&script, "((${#expect[@]} == 0)) || { echo 'doc-test: %s:%d: fewer curl calls than statuses listed' >&2; exit 1; }\n", p, b.line)
		}
		if n == 0 {
			continue
		}
		t.Run(filepath.Base(p), func(t *testing.T) { runPage(t, root, bin, yamls, script.String()) })
	}
}

func runPage(t *testing.T, root, bin string, yamls []string, body string) {
	dir := t.TempDir()
	http, stomp := freePort(t), freePort(t)
	sub := strings.NewReplacer(
		"https://broker.example.com", "http://"+http,
		"localhost:8080", http,
		"127.0.0.1:8080", http,
		"/etc/stompbus/", dir+"/",
	)
	for i, y := range yamls {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("page-%d.yaml", i+1)), []byte(sub.Replace(y)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", preamble+sub.Replace(body)+"\nstop_brokers\n")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"),
		"REPO="+root,
		"STOMPBUS_HTTP="+http, "STOMPBUS_STOMP="+stomp, "STOMPBUS_DATA="+filepath.Join(dir, "data"),
		"STOMPBUS_NODE=doc-test",
	)
	// Its own process group: whatever a block left running is stopped with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "broker.log"))
		t.Fatalf("%v\n%s\n-- broker.log:\n%s", err, out.String(), log)
	}
	t.Logf("%s", out.String())
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
