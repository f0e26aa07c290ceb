// Command gostomp-server runs go-stomp's own in-memory STOMP server
// (github.com/go-stomp/stomp/v3/server) on a TCP address: a cheap extra
// baseline for the benchmarks. It speaks plain STOMP over TCP only.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"

	"github.com/go-stomp/stomp/v3/server"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:61615", "TCP listen address")
	flag.Parse()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gostomp-server:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "msg=listening transport=stomp addr=%s\n", ln.Addr())
	if err := (&server.Server{}).Serve(ln); err != nil {
		fmt.Fprintln(os.Stderr, "gostomp-server:", err)
		os.Exit(1)
	}
}
