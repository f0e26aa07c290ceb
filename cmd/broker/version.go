package main

import (
	"runtime/debug"
)

// version, when set at build time with -ldflags "-X main.version=...",
// is what -version prints; otherwise the Go build information names the
// build (see buildVersion).
var version string

// buildVersion names this build: the -X version when one was given; else
// the module version `go install module@version` recorded; else "dev"
// with the VCS revision `go build` recorded in a git work tree (12 hex
// digits, "-dirty" when the tree had changes); else "dev".
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
