// Command testservice runs the scripted service of package testservice on
// 127.0.0.1, for tests that need it as a separate process (the container
// tests). It prints its address on the first line of standard output.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"

	"github.com/immune-cd/immune/internal/testkit/testservice"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "address to listen on")
	scriptFile := flag.String("script", "", "JSON file: {\"<sha>\": {behaviour}, ...}")
	current := flag.String("current", "", "commit running at start")
	flag.Parse()

	script := map[string]testservice.Behaviour{}
	if *scriptFile != "" {
		data, err := os.ReadFile(*scriptFile)
		if err == nil {
			err = json.Unmarshal(data, &script)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "testservice: script: %v\n", err)
			os.Exit(2)
		}
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "testservice: %v\n", err)
		os.Exit(1)
	}
	fmt.Println(ln.Addr().String())
	if err := http.Serve(ln, testservice.New(script, *current)); err != nil {
		fmt.Fprintf(os.Stderr, "testservice: %v\n", err)
		os.Exit(1)
	}
}
