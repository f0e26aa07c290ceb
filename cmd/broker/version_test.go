package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"
)

func TestBuildVersion(t *testing.T) {
	vcs := func(rev, modified string) *debug.BuildInfo {
		return &debug.BuildInfo{Main: debug.Module{Path: "github.com/stompbus/stompbus", Version: "(devel)"},
			Settings: []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}}}
	}
	for _, c := range []struct {
		name string
		x    string
		info *debug.BuildInfo
		ok   bool
		want string
	}{
		{"ldflags win", "1.2.3", vcs("0123456789abcdef0123", "false"), true, "1.2.3"},
		{"go install at a version", "", &debug.BuildInfo{Main: debug.Module{Version: "v0.4.0"}}, true, "v0.4.0"},
		{"clean work tree", "", vcs("0123456789abcdef0123", "false"), true, "dev-0123456789ab"},
		{"changed work tree", "", vcs("0123456789abcdef0123", "true"), true, "dev-0123456789ab-dirty"},
		{"no vcs", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, true, "dev"},
		{"no build info", "", nil, false, "dev"},
	} {
		if got := buildVersion(c.x, c.info, c.ok); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

// The binary built from a git clone names its revision (it once printed
// 0.1.0-dev whatever it was built from). Go stamps the revision only where
// .git is a directory: in a linked work tree (git worktree add), where
// .git is a file, the build says "dev".
func TestVersionNamesRevision(t *testing.T) {
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatalf("git rev-parse HEAD (the tests run in a git work tree): %v", err)
	}
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(brokerBin, "-version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(strings.TrimSpace(string(top)), ".git")); err == nil && !fi.IsDir() {
		t.Logf("a linked work tree: Go records no revision, -version says %q", out)
		if string(out) != "stompbus dev\n" {
			t.Fatalf("-version printed %q, want \"stompbus dev\"", out)
		}
		return
	}
	// Go records the revision as a pseudo-version of the module
	// (v0.0.0-DATE-REV12[+dirty]).
	if !strings.HasPrefix(string(out), "stompbus ") || !strings.Contains(string(out), string(head[:12])) {
		t.Fatalf("-version printed %q, want the revision %s in it", out, head[:12])
	}
}

// Durations in JSON logs are Go duration strings, not nanoseconds.
func TestJSONLogDurations(t *testing.T) {
	var buf bytes.Buffer
	log, err := newLogger(&buf, "info", "json")
	if err != nil {
		t.Fatal(err)
	}
	log.Info("draining", "ready_delay", 1500*time.Millisecond, "timeout", 9*time.Second)
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("%v: %s", err, buf.Bytes())
	}
	if line["ready_delay"] != "1.5s" || line["timeout"] != "9s" {
		t.Fatalf("durations written as %v and %v: %s", line["ready_delay"], line["timeout"], buf.Bytes())
	}
}
