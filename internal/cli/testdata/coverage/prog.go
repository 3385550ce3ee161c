// prog is the Go program the coverage VM test builds with -cover: "serve"
// waits for SIGTERM and returns from main (so it writes its counters at a
// service's stop), anything else prints which branch it took.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		serve()
		return
	}
	fmt.Println("once")
}

func serve() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM)
	os.WriteFile("/tmp/prog-ready", nil, 0o644)
	<-stop
	fmt.Println("stopping")
}
