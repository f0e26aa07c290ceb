package main

import (
	"runtime/debug"
)

// version, when set at build time with -ldflags "-X main.version=...",
// is what -version prints; otherwise the Go build information names the
// build (see buildVersion).
var version string

// buildVersion names this build: the -X version when one was given; else
// the module version Go recorded (`go install module@v1.2.3` records
// v1.2.3; `go build` in a git clone records a pseudo-version holding the
// revision, v0.0.0-DATE-REV12, with +dirty when the tree had changes);
// else "dev-REV12[-dirty]" from the VCS settings; else "dev".
func buildVersion(x string, info *debug.BuildInfo, ok bool) string {
	if x != "" {
		return x
	}
	if !ok || info == nil {
		return "dev"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev string
	var dirty bool
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "dev"
	}
	v := "dev-" + rev[:min(12, len(rev))]
	if dirty {
		v += "-dirty"
	}
	return v
}

// currentVersion is this binary's version.
func currentVersion() string {
	info, ok := debug.ReadBuildInfo()
	return buildVersion(version, info, ok)
}
